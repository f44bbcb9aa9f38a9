// Multi-node tests over real gRPC with mutual TLS on 127.0.0.1: nodes run
// in this process (gateway::NodeServer) with PKI from deploy/pki.sh.
#include <catch2/catch.hpp>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "federation.h"
#include "google/protobuf/text_format.h"
#include "node/envelope.h"
#include "node/util.h"

namespace kpx {
namespace {

using kpx::testing::kBootEntries;

using testing::GrpcFederation;
using testing::ValidCertificate;

grpc::Status Submit(v1::AuthorityService::Stub& stub, const v1::Certificate& cert,
                    v1::CertificateRecord* out = nullptr) {
  grpc::ClientContext ctx;
  v1::SubmitCertificateRequest req;
  *req.mutable_certificate() = cert;
  v1::CertificateRecord rec;
  grpc::Status s = stub.SubmitCertificate(&ctx, req, &rec);
  if (out) *out = rec;
  return s;
}

grpc::Status Confirm(v1::AuthorityService::Stub& stub, const std::string& number) {
  grpc::ClientContext ctx;
  v1::ConfirmReceiptRequest req;
  req.mutable_findings()->set_as_declared(true);
  req.set_number(number);
  v1::CertificateRecord rec;
  return stub.ConfirmReceipt(&ctx, req, &rec);
}

v1::VerifyLedgerResponse Verify(v1::AuthorityService::Stub& stub) {
  grpc::ClientContext ctx;
  v1::VerifyLedgerResponse resp;
  REQUIRE(stub.VerifyLedger(&ctx, {}, &resp).ok());
  return resp;
}

v1::CertificateRecord Get(v1::AuthorityService::Stub& stub, const std::string& number) {
  grpc::ClientContext ctx;
  v1::GetCertificateRequest req;
  req.set_number(number);
  v1::CertificateRecord rec;
  REQUIRE(stub.GetCertificate(&ctx, req, &rec).ok());
  return rec;
}

TEST_CASE("three nodes carry a certificate to CONFIRMED over mutual TLS", "[grpc][journey]") {
  GrpcFederation fed({"BW", "AE", "EU"});
  for (const char* c : {"BW", "AE", "EU"}) fed.StartInProcess(c);
  auto bw = fed.Authority("BW", "exporter");
  auto eu = fed.Authority("EU", "importer");

  REQUIRE(Submit(*bw, ValidCertificate("BW-G-1", "BW", "EU")).ok());
  REQUIRE(fed.WaitForState("BW", "BW-G-1", v1::DELIVERED));
  REQUIRE(fed.WaitForState("EU", "BW-G-1", v1::RECEIVED));
  REQUIRE(Confirm(*eu, "BW-G-1").ok());
  REQUIRE(fed.WaitForState("BW", "BW-G-1", v1::CONFIRMED));

  auto bw_audit = fed.Authority("BW", "auditor");
  auto eu_audit = fed.Authority("EU", "auditor");
  v1::VerifyLedgerResponse vb = Verify(*bw_audit);
  v1::VerifyLedgerResponse ve = Verify(*eu_audit);
  CHECK(vb.ok());
  CHECK(ve.ok());
  CHECK(vb.entries_checked() == kBootEntries + 3);
  CHECK(ve.entries_checked() == kBootEntries + 3);
  v1::CertificateRecord at_bw = Get(*bw_audit, "BW-G-1");
  v1::CertificateRecord at_eu = Get(*eu_audit, "BW-G-1");
  CHECK(at_bw.certificate_digest() == at_eu.certificate_digest());
  CHECK(at_bw.certificate().SerializeAsString() == at_eu.certificate().SerializeAsString());

  SECTION("reject and cancel travel too") {
    REQUIRE(Submit(*bw, ValidCertificate("BW-G-2", "BW", "EU")).ok());
    REQUIRE(Submit(*bw, ValidCertificate("BW-G-3", "BW", "AE")).ok());
    REQUIRE(fed.WaitForState("EU", "BW-G-2", v1::RECEIVED));
    {
      grpc::ClientContext ctx;
      v1::RejectShipmentRequest req;
      req.set_number("BW-G-2");
      req.set_reason("parcel count differs");
      v1::CertificateRecord rec;
      REQUIRE(eu->RejectShipment(&ctx, req, &rec).ok());
    }
    {
      grpc::ClientContext ctx;
      v1::CancelCertificateRequest req;
      req.set_number("BW-G-3");
      req.set_reason("buyer withdrew");
      v1::CertificateRecord rec;
      REQUIRE(bw->CancelCertificate(&ctx, req, &rec).ok());
    }
    CHECK(fed.WaitForState("BW", "BW-G-2", v1::REJECTED));
    CHECK(fed.WaitForState("AE", "BW-G-3", v1::CANCELLED));
  }

  SECTION("watch streams ledger events and resumes from a cursor") {
    grpc::ClientContext ctx;
    v1::WatchRequest req;
    req.set_from_sequence(kBootEntries + 2);
    auto reader = bw_audit->Watch(&ctx, req);
    v1::LedgerEntry e;
    REQUIRE(reader->Read(&e));
    CHECK(e.sequence() == kBootEntries + 2);
    CHECK(e.kind() == v1::RECEIPT);
    REQUIRE(reader->Read(&e));
    CHECK(e.sequence() == kBootEntries + 3);
    CHECK(e.state() == v1::CONFIRMED);
    // A new event arrives on the open stream.
    REQUIRE(Submit(*bw, ValidCertificate("BW-G-4", "BW", "EU")).ok());
    REQUIRE(reader->Read(&e));
    CHECK(e.sequence() == kBootEntries + 4);
    CHECK(e.certificate_number() == "BW-G-4");
    ctx.TryCancel();
  }
}

TEST_CASE("each role may only use its own verbs", "[grpc][roles]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartInProcess("BW");
  fed.StartInProcess("EU");
  auto importer = fed.Authority("BW", "importer");
  auto auditor = fed.Authority("BW", "auditor");
  auto exporter = fed.Authority("BW", "exporter");

  CHECK(Submit(*importer, ValidCertificate("BW-R-1", "BW", "EU")).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  CHECK(Submit(*auditor, ValidCertificate("BW-R-1", "BW", "EU")).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE(Submit(*exporter, ValidCertificate("BW-R-2", "BW", "EU")).ok());
  CHECK(Confirm(*exporter, "BW-R-2").error_code() == grpc::StatusCode::PERMISSION_DENIED);
  {
    grpc::ClientContext ctx;
    v1::VerifyLedgerResponse resp;
    CHECK(exporter->VerifyLedger(&ctx, {}, &resp).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext ctx;
    v1::CancelCertificateRequest req;
    req.set_number("BW-R-2");
    req.set_reason("x");
    v1::CertificateRecord rec;
    CHECK(importer->CancelCertificate(&ctx, req, &rec).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
  }
  // A confirmation of a certificate EU never received.
  auto eu_importer = fed.Authority("EU", "importer");
  CHECK(Confirm(*eu_importer, "BW-NEVER").error_code() == grpc::StatusCode::NOT_FOUND);
  // Another Participant's authority cannot even connect.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::CertificateRecord rec;
    v1::SubmitCertificateRequest req;
    // EU's exporter certificate, pointed at BW's listener.
    auto stub = v1::AuthorityService::NewStub(gateway::MutualTlsChannel(
        absl::StrCat("127.0.0.1:", fed.AuthorityPort("BW")),
        *gateway::LoadTlsIdentity(fed.dir() + "/EU/exporter.pem", fed.dir() + "/EU/exporter.key"),
        kpx::testing::Must(crypto::ReadFile(fed.dir() + "/BW/ca.pem")), "node.bw.kpx"));
    CHECK(stub->SubmitCertificate(&ctx, req, &rec).error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  // Only the exporter's certificate was stored (issued, then its receipt):
  // wait until it has arrived and its receipt is recorded.
  REQUIRE(fed.WaitForState("EU", "BW-R-2", v1::RECEIVED));
  REQUIRE(fed.WaitForState("BW", "BW-R-2", v1::DELIVERED));
  for (const char* code : {"BW", "EU"}) {
    storage::Ledger& ledger = fed.server(code).node().ledger();
    std::vector<v1::LedgerEntry> entries =
        kpx::testing::Must(ledger.ReadEntries(kBootEntries + 1, 100));
    CHECK_FALSE(entries.empty());
    for (const v1::LedgerEntry& e : entries) {
      CHECK(e.certificate_number() == "BW-R-2");
    }
  }
}

TEST_CASE("peers are refused when TLS identity, signature or status do not hold",
          "[grpc][security]") {
  GrpcFederation fed({"BW", "AE", "EU", "VE"});
  // EU's node sees VE suspended and does not list ZA.
  v1::NodeConfig eu_config = fed.Config("EU");
  {
    v1::TrustList t;
    REQUIRE(google::protobuf::TextFormat::ParseFromString(
        kpx::testing::Must(crypto::ReadFile(eu_config.trust_list_file())), &t));
    for (auto& p : *t.mutable_participants()) {
      if (p.code() == "VE") p.set_status(v1::SUSPENDED);
    }
    std::string text;
    google::protobuf::TextFormat::PrintToString(t, &text);
    const std::string path = fed.dir() + "/EU/trust-list-eu.textpb";
    std::ofstream(path) << text;
    eu_config.set_trust_list_file(path);
  }
  fed.StartInProcess("EU", eu_config);
  storage::Ledger& eu_ledger = fed.server("EU").node().ledger();

  auto sign = [&](const std::string& signer, const v1::Certificate& cert) {
    crypto::PrivateKey key = kpx::testing::Must(
        crypto::PrivateKey::FromPem(*crypto::ReadFile(fed.dir() + "/" + signer + "/signing.key")));
    v1::MessageBody b;
    b.mutable_header()->set_message_id(node::NewMessageId());
    b.mutable_header()->set_sender(signer);
    b.mutable_header()->set_recipient("EU");
    b.mutable_header()->set_kind(v1::CERTIFICATE);
    *b.mutable_header()->mutable_created_at() = node::ToTimestamp(absl::Now());
    *b.mutable_certificate() = cert;
    return kpx::testing::Must(node::Signer(signer, key).Sign(b));
  };
  auto deliver = [&](const std::string& tls_as, const v1::SignedMessage& m) {
    auto stub = fed.Peer(tls_as, "EU");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::DeliverRequest req;
    *req.add_messages() = m;
    v1::DeliverResponse resp;
    grpc::Status s = stub->Deliver(&ctx, req, &resp);
    if (!s.ok()) return static_cast<int>(s.error_code());
    REQUIRE(resp.results_size() == 1);
    return resp.results(0).code();
  };
  const v1::Certificate cert = ValidCertificate("BW-P-1", "BW", "EU");

  SECTION("TLS identity differs from the sender") {
    CHECK(deliver("AE", sign("BW", cert)) == grpc::StatusCode::PERMISSION_DENIED);
  }
  SECTION("forged signature") {
    v1::SignedMessage m = sign("BW", cert);
    std::string sig = m.signature();
    sig[0] ^= 0x40;
    m.set_signature(sig);
    CHECK(deliver("BW", m) == grpc::StatusCode::UNAUTHENTICATED);
  }
  SECTION("suspended Participant") {
    CHECK(deliver("VE", sign("VE", ValidCertificate("VE-1", "VE", "EU"))) ==
          grpc::StatusCode::PERMISSION_DENIED);
  }
  SECTION("invalid HS code from a valid peer") {
    v1::Certificate bad = cert;
    bad.mutable_lines(0)->set_hs_code("7102.39");
    CHECK(deliver("BW", sign("BW", bad)) == grpc::StatusCode::INVALID_ARGUMENT);
  }
  SECTION("an authority client certificate is no node identity") {
    // BW's auditor certificate chains to BW's CA, but it is not BW's node.
    auto stub = v1::PeerService::NewStub(gateway::MutualTlsChannel(
        absl::StrCat("127.0.0.1:", fed.PeerPort("EU")),
        *gateway::LoadTlsIdentity(fed.dir() + "/BW/auditor.pem", fed.dir() + "/BW/auditor.key"),
        kpx::testing::Must(crypto::ReadFile(fed.dir() + "/EU/ca.pem")), "node.eu.kpx"));
    grpc::ClientContext ctx;
    v1::DeliverRequest req;
    *req.add_messages() = sign("BW", cert);
    v1::DeliverResponse resp;
    CHECK(stub->Deliver(&ctx, req, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  }
  SECTION("a node whose CA is on no trust list cannot connect") {
    GrpcFederation outsiders({"ZA"});
    auto stub = v1::PeerService::NewStub(gateway::MutualTlsChannel(
        absl::StrCat("127.0.0.1:", fed.PeerPort("EU")),
        *gateway::LoadTlsIdentity(outsiders.dir() + "/ZA/node.pem",
                                  outsiders.dir() + "/ZA/node.key"),
        kpx::testing::Must(crypto::ReadFile(fed.dir() + "/EU/ca.pem")), "node.eu.kpx"));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::DeliverResponse resp;
    CHECK(stub->Deliver(&ctx, {}, &resp).error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  SECTION("a valid message is accepted (the checks above are not vacuous)") {
    CHECK(deliver("BW", sign("BW", cert)) == grpc::StatusCode::OK);
    CHECK(eu_ledger.head().sequence == kBootEntries + 1);
    return;
  }
  CHECK(eu_ledger.head().sequence == kBootEntries);
}

TEST_CASE("a certificate to a non-Participant is refused at submit", "[grpc][rules]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartInProcess("BW");
  auto bw = fed.Authority("BW", "exporter");
  grpc::Status s = Submit(*bw, ValidCertificate("BW-N-1", "BW", "XX"));
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(s.error_message().find("XX") != std::string::npos);
  v1::Certificate totals = ValidCertificate("BW-N-2", "BW", "EU");
  totals.set_total_value_usd_cents(totals.total_value_usd_cents() + 1);
  CHECK(Submit(*bw, totals).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(Submit(*bw, ValidCertificate("BW-N-3", "BW", "EU")).ok());
  CHECK(Submit(*bw, ValidCertificate("BW-N-3", "BW", "EU")).error_code() ==
        grpc::StatusCode::ALREADY_EXISTS);
  CHECK(fed.server("BW").node().ledger().head().sequence == kBootEntries + 1);
}

}  // namespace
}  // namespace kpx
