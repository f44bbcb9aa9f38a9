// node/ tests: the KP rules, the state machine, signing and every check on
// received messages, the outbox and dedup — three nodes in one process,
// connected by MemoryTransport, with real ledgers on disk and a clock the
// test moves.
#include "node/node.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/util/message_differencer.h"
#include "node/config.h"
#include "node/envelope.h"
#include "node/evidence.h"
#include "node/queries.h"
#include "node/rules.h"
#include "node/state.h"
#include "node/trust_chain.h"
#include "node/trust_list.h"
#include "node/util.h"
#include "storage/ledger.h"
#include "storage/log_leaf.h"
#include "test_util.h"
#include "tests/fault_fs.h"
#include "tests/ledger_rewrite.h"

namespace kpx {
namespace {

using kpx::testing::kBootEntries;

using node::Node;
using testing::TempDir;
using testing::ValidCertificate;

class Clock {
 public:
  absl::Time Now() {
    absl::MutexLock l(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock l(&mu_);
    now_ += d;
  }

 private:
  absl::Mutex mu_;
  absl::Time now_ = absl::Now();
};

// Three Participants (BW, AE, EU) plus a suspended one (VE), each with an
// Ed25519 key (EU's is ECDSA P-256), on one trust list.
class Federation {
 public:
  // `edit`, if set, changes the trust list before any node starts.
  explicit Federation(const std::function<void(v1::TrustList&)>& edit = nullptr) {
    for (const char* code : {"BW", "AE", "EU", "VE"}) {
      auto alg =
          std::string(code) == "EU" ? crypto::Algorithm::kEcdsaP256 : crypto::Algorithm::kEd25519;
      keys_.emplace(code, kpx::testing::Must(crypto::PrivateKey::Generate(alg)));
      v1::Participant* p = trust_proto_.add_participants();
      p->set_code(code);
      p->set_name(std::string("Participant ") + code);
      p->set_status(std::string(code) == "VE" ? v1::SUSPENDED : v1::ACTIVE);
      kpx::testing::AddOffices(*p);
      // As deploy/pki.sh: the EU refuses mixed, undisclosed origin.
      if (std::string(code) == "EU") p->mutable_import_policy()->set_refuse_mixed_undisclosed(true);
      testing::ListSigningKey(*p, keys_.at(code));
    }
    if (edit) edit(trust_proto_);
    trust_ = kpx::testing::Must(node::TrustList::FromProto(trust_proto_));
    for (const char* code : {"BW", "AE", "EU"}) Start(code);
  }

  ~Federation() {
    for (const char* code : {"BW", "AE", "EU"}) Stop(code);
  }

  void Start(const std::string& code) {
    if (ledgers_[code] == nullptr) {
      ledgers_[code] = kpx::testing::Must(storage::Ledger::Open(dir_.Sub(code)));
    }
    transports_[code] = std::make_unique<node::MemoryTransport>(&network_, code);
    node::NodeOptions o;
    o.participant = code;
    o.trust_list = trust_;
    o.signing_keys = {keys_.at(code)};
    for (const crypto::PrivateKey& k : spare_keys[code]) o.signing_keys.push_back(k);
    o.ledger = ledgers_[code].get();
    o.transport = transports_[code].get();
    o.delivery.set_initial_backoff_ms(1000);
    o.delivery.set_max_backoff_ms(8000);
    o.clock = [this] { return clock_.Now(); };
    o.random_seed = 1000 + static_cast<uint64_t>(code[0]);  // reproducible retry jitter
    o.limits.set_partner_mib_per_hour(partner_mib_per_hour);
    nodes_[code] = kpx::testing::Must(Node::Create(std::move(o)));
    network_.Register(code, nodes_[code].get());
  }

  // Stops a node and starts it again over its ledger opened with `options`
  // (a fault-injecting file system, say).
  void Restart(const std::string& code, const storage::LedgerOptions& options) {
    Stop(code);
    absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger =
        storage::Ledger::Open(dir_.Sub(code), options);
    REQUIRE(ledger.ok());
    ledgers_[code] = *std::move(ledger);
    Start(code);
  }

  // Takes a node off the network and closes its ledger, as a crash would.
  void Stop(const std::string& code) {
    network_.Unregister(code);
    nodes_.erase(code);
    ledgers_.erase(code);
  }
  void Disconnect(const std::string& code) { network_.Unregister(code); }
  // Routes deliveries for `code` to `r` instead of its node.
  void Route(const std::string& code, node::Receiver* r) { network_.Register(code, r); }
  void Reconnect(const std::string& code) { network_.Register(code, nodes_[code].get()); }

  Node& operator[](const std::string& code) { return *nodes_.at(code); }
  // The folder of `code`'s ledger.
  std::string LedgerDir(const std::string& code) const { return dir_.Sub(code); }
  // For nodes started from now on (0: the default).
  uint32_t partner_mib_per_hour = 0;
  // Keys a node holds beside its own (started from now on).
  std::map<std::string, std::vector<crypto::PrivateKey>> spare_keys;
  storage::Ledger& ledger(const std::string& code) { return *ledgers_.at(code); }
  const crypto::PrivateKey& key(const std::string& code) { return keys_.at(code); }
  const node::TrustList& trust() { return *trust_; }
  Clock& clock() { return clock_; }

  // Delivers everything due, everywhere, until nothing moves.
  void Settle() {
    for (int round = 0; round < 10; ++round) {
      size_t n = 0;
      for (auto& [code, node] : nodes_) n += node->DeliverDue();
      if (n == 0) return;
    }
  }

  v1::CertificateState State(const std::string& code, const std::string& number) {
    absl::StatusOr<v1::CertificateRecord> r = nodes_.at(code)->Get(number);
    return r.ok() ? r->state() : v1::CERTIFICATE_STATE_UNSPECIFIED;
  }

  // A message as `signer` would sign it to `recipient`.
  v1::SignedMessage Signed(const std::string& signer, const std::string& recipient,
                           v1::MessageBody body) {
    v1::Header* h = body.mutable_header();
    h->set_message_id(node::NewMessageId());
    h->set_sender(signer);
    h->set_recipient(recipient);
    *h->mutable_created_at() = node::ToTimestamp(clock_.Now());
    return kpx::testing::Must(node::Signer(signer, keys_.at(signer)).Sign(body));
  }

  v1::SignedMessage CertificateMessage(const std::string& signer, const std::string& recipient,
                                       const v1::Certificate& cert) {
    v1::MessageBody b;
    b.mutable_header()->set_kind(v1::CERTIFICATE);
    *b.mutable_certificate() = cert;
    return Signed(signer, recipient, b);
  }

 private:
  TempDir dir_;
  Clock clock_;
  v1::TrustList trust_proto_;
  std::shared_ptr<const node::TrustList> trust_;
  std::map<std::string, crypto::PrivateKey> keys_;
  node::MemoryTransport::Network network_;
  std::map<std::string, std::unique_ptr<storage::Ledger>> ledgers_;
  std::map<std::string, std::unique_ptr<node::MemoryTransport>> transports_;
  std::map<std::string, std::unique_ptr<Node>> nodes_;
};

std::vector<v1::CertificateState> Journey(const v1::CertificateRecord& r) {
  std::vector<v1::CertificateState> out;
  for (const auto& h : r.history()) out.push_back(h.state());
  return out;
}

TEST_CASE("a certificate travels from issue to confirmed receipt", "[node][journey]") {
  Federation f;
  absl::StatusOr<v1::CertificateRecord> issued =
      f["BW"].Submit(ValidCertificate("BW-2026-0001", "BW", "EU"));
  REQUIRE(issued.ok());
  CHECK(issued->state() == v1::ISSUED);
  CHECK(issued->history(0).sequence() == kBootEntries + 1);
  CHECK(f["BW"].ledger().OutboxSize() == 1);

  REQUIRE(f["BW"].DeliverDue() == 1);
  CHECK(f.State("BW", "BW-2026-0001") == v1::DELIVERED);
  CHECK(f.State("EU", "BW-2026-0001") == v1::RECEIVED);
  CHECK(f["BW"].ledger().OutboxSize() == 0);

  absl::StatusOr<v1::CertificateRecord> confirmed =
      f["EU"].Confirm("BW-2026-0001", testing::AsDeclared(), absl::InfinitePast());
  REQUIRE(confirmed.ok());
  CHECK(confirmed->state() == v1::CONFIRMED);
  f.Settle();

  v1::CertificateRecord bw = *f["BW"].Get("BW-2026-0001");
  v1::CertificateRecord eu = *f["EU"].Get("BW-2026-0001");
  CHECK(Journey(bw) == std::vector<v1::CertificateState>{v1::ISSUED, v1::DELIVERED, v1::CONFIRMED});
  CHECK(Journey(eu) == std::vector<v1::CertificateState>{v1::RECEIVED, v1::CONFIRMED});
  // Both ledgers hold the same signed certificate.
  CHECK(bw.certificate_digest() == eu.certificate_digest());
  CHECK(bw.certificate().SerializeAsString() == eu.certificate().SerializeAsString());
  CHECK(f["BW"].ledger().OutboxSize() == 0);
  CHECK(f["EU"].ledger().OutboxSize() == 0);
  CHECK(f["BW"].ledger().Verify().ok);
  CHECK(f["EU"].ledger().Verify().ok);
  // BW: SENT cert, RECEIPT, RECEIVED confirmation. EU: RECEIVED cert, SENT
  // confirmation, RECEIPT.
  CHECK(f["BW"].ledger().head().sequence == kBootEntries + 3);
  CHECK(f["EU"].ledger().head().sequence == kBootEntries + 3);

  // BW holds EU's signed tree head and the proof that EU's log holds the
  // certificate as EU's entry kBootEntries + 1.
  std::vector<v1::LedgerEntry> entries = *f["BW"].ledger().ReadEntries(kBootEntries + 1, 10);
  REQUIRE(entries[1].kind() == v1::RECEIPT);
  const v1::DeliveryProof& proof = entries[1].proof();
  absl::StatusOr<node::SignedTree> head =
      node::CheckTreeHead(proof.tree_head(), "EU", f.trust(), absl::Now());
  REQUIRE(head.ok());
  CHECK(head->size == kBootEntries + 1);
  CHECK(head->root == *f["EU"].ledger().RootAt(kBootEntries + 1));
  absl::StatusOr<storage::LogLeaf> leaf = storage::DecodeLogLeaf(proof.leaf());
  REQUIRE(leaf.ok());
  CHECK(leaf->sequence == kBootEntries + 1);
  CHECK(leaf->kind == v1::RECEIVED_MESSAGE);
  CHECK(proof.leaf() == *f["EU"].ledger().Leaf(kBootEntries + 1));
  std::vector<v1::LedgerEntry> eu_entries = *f["EU"].ledger().ReadEntries(kBootEntries + 1, 1);
  CHECK(leaf->message_digest == node::MessageDigest(eu_entries[0].message()));
  CHECK(leaf->message_digest == node::MessageDigest(entries[0].message()));
  // And the confirmation's receipt on EU is BW's head over all three entries.
  std::vector<v1::LedgerEntry> eu_all = *f["EU"].ledger().ReadEntries(kBootEntries + 1, 10);
  REQUIRE(eu_all[2].kind() == v1::RECEIPT);
  absl::StatusOr<node::SignedTree> bw_head =
      node::CheckTreeHead(eu_all[2].proof().tree_head(), "BW", f.trust(), absl::Now());
  REQUIRE(bw_head.ok());
  CHECK(bw_head->size == kBootEntries + 3);
  CHECK(bw_head->root == f["BW"].ledger().head().root);
}

TEST_CASE("the importer rejects, the exporter cancels", "[node][journey]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-R-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-C-1", "BW", "AE")).ok());
  f.Settle();

  REQUIRE(f["EU"].Reject("BW-R-1", {v1::SEALS_OR_GOODS_TAMPERED, "seals broken on arrival"}).ok());
  // A repeated verb whose result holds is answered with the record, unchanged.
  absl::StatusOr<v1::CertificateRecord> again =
      f["EU"].Reject("BW-R-1", {v1::SEALS_OR_GOODS_TAMPERED, "again"});
  REQUIRE(again.ok());
  CHECK(again->state() == v1::REJECTED);
  CHECK(again->history().rbegin()->detail() == "seals broken on arrival");
  REQUIRE(f["BW"].Cancel("BW-C-1", {v1::SHIPMENT_WITHDRAWN, "shipment withdrawn"}).ok());
  f.Settle();
  CHECK(f.State("BW", "BW-R-1") == v1::REJECTED);
  CHECK(f.State("EU", "BW-R-1") == v1::REJECTED);
  CHECK(f.State("BW", "BW-C-1") == v1::CANCELLED);
  CHECK(f.State("AE", "BW-C-1") == v1::CANCELLED);
  CHECK(f["BW"].Get("BW-R-1")->history(2).detail() == "seals broken on arrival");

  // Final states refuse further transitions.
  CHECK(f["BW"].Cancel("BW-R-1", {v1::SHIPMENT_WITHDRAWN, "too late"}).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f["AE"].Confirm("BW-C-1", testing::AsDeclared(), absl::InfinitePast()).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f["EU"].Reject("BW-R-1", {v1::SEALS_OR_GOODS_TAMPERED, ""}).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("KP rules refuse bad certificates and store nothing", "[node][rules]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-DUP", "BW", "EU")).ok());
  const storage::Head before = f["BW"].ledger().head();

  struct Case {
    const char* name;
    std::function<void(v1::Certificate&)> spoil;
    absl::StatusCode code;
  };
  std::vector<Case> cases = {
      {"invalid HS code", [](v1::Certificate& c) { c.mutable_lines(0)->set_hs_code("7103.10"); },
       absl::StatusCode::kInvalidArgument},
      {"carat total off", [](v1::Certificate& c) { c.set_total_carats_hundredths(1); },
       absl::StatusCode::kInvalidArgument},
      {"value total off", [](v1::Certificate& c) { c.set_total_value_usd_cents(1); },
       absl::StatusCode::kInvalidArgument},
      {"no parcels", [](v1::Certificate& c) { c.set_number_of_parcels(0); },
       absl::StatusCode::kInvalidArgument},
      {"zero carats", [](v1::Certificate& c) { c.mutable_lines(1)->set_carats_hundredths(0); },
       absl::StatusCode::kInvalidArgument},
      {"duplicate number", [](v1::Certificate& c) { c.set_number("BW-DUP"); },
       absl::StatusCode::kAlreadyExists},
      {"number without exporter prefix", [](v1::Certificate& c) { c.set_number("ZA-1"); },
       absl::StatusCode::kInvalidArgument},
      {"expiry before issue", [](v1::Certificate& c) { *c.mutable_expires_at() = c.issued_at(); },
       absl::StatusCode::kInvalidArgument},
      {"importer not a Participant", [](v1::Certificate& c) { c.set_importing_participant("XX"); },
       absl::StatusCode::kFailedPrecondition},
      {"importer suspended", [](v1::Certificate& c) { c.set_importing_participant("VE"); },
       absl::StatusCode::kFailedPrecondition},
      {"importer is the exporter", [](v1::Certificate& c) { c.set_importing_participant("BW"); },
       absl::StatusCode::kInvalidArgument},
      {"no importer address", [](v1::Certificate& c) { c.mutable_importer()->clear_address(); },
       absl::StatusCode::kInvalidArgument},
      {"no origin", [](v1::Certificate& c) { c.mutable_lines(1)->clear_origin(); },
       absl::StatusCode::kInvalidArgument},
      {"wrong title", [](v1::Certificate& c) { c.set_title("Certificate"); },
       absl::StatusCode::kInvalidArgument},
      {"another exporter", [](v1::Certificate& c) { c.set_exporting_participant("AE"); },
       absl::StatusCode::kInvalidArgument},
      {"oversized",
       [](v1::Certificate& c) { (*c.mutable_extensions())["x"] = std::string(300 * 1024, 'x'); },
       absl::StatusCode::kInvalidArgument},
  };
  for (const Case& c : cases) {
    SECTION(c.name) {
      v1::Certificate cert = ValidCertificate("BW-2026-0002", "BW", "EU");
      c.spoil(cert);
      absl::Status s = f["BW"].Submit(cert).status();
      CHECK(s.code() == c.code);
      CHECK_FALSE(s.message().empty());
      CHECK(f["BW"].ledger().head().sequence == before.sequence);
      CHECK(f["BW"].ledger().OutboxSize() == 1);
    }
  }
  SECTION("mixed, undisclosed origin is allowed where the importer has no policy against it") {
    v1::Certificate cert = ValidCertificate("BW-MIX-1", "BW", "AE");
    cert.mutable_lines(1)->mutable_origin()->set_mixed_undisclosed(true);
    CHECK(f["BW"].Submit(cert).status().code() == absl::StatusCode::kInvalidArgument);
    cert.mutable_lines(1)->mutable_origin()->clear_countries();
    CHECK(f["BW"].Submit(cert).ok());
  }
  SECTION("empty title, statement and type get the defaults; number and HS codes normalised") {
    v1::Certificate cert = ValidCertificate("BW-FIX-1", "BW", "EU");
    cert.clear_title();
    cert.clear_statement();
    cert.clear_type();
    cert.set_number(" bw-fix 1 ");
    cert.mutable_lines(1)->set_hs_code("7102 21");
    absl::StatusOr<v1::CertificateRecord> r = f["BW"].Submit(cert);
    REQUIRE(r.ok());
    CHECK(r->certificate().title() == node::kKpTitle);
    CHECK(r->certificate().statement() == v1::KPCS);
    CHECK(r->certificate().type() == v1::STANDARD);
    CHECK(r->certificate().number() == "BW-FIX1");
    CHECK(r->certificate().lines(1).hs_code() == "7102.21");
  }
}

TEST_CASE("an importer's policy is enforced at submit and again on arrival", "[node][policy]") {
  Federation f;
  v1::Certificate cert = ValidCertificate("BW-POL-1", "BW", "EU");
  cert.mutable_lines(1)->mutable_origin()->clear_countries();
  cert.mutable_lines(1)->mutable_origin()->set_mixed_undisclosed(true);

  // BW's node refuses what the EU's policy refuses, and stores nothing.
  absl::Status s = f["BW"].Submit(cert).status();
  CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(s.message()) ==
        "EU import policy refuse_mixed_undisclosed: line 2 has mixed, undisclosed origin");
  CHECK(f["BW"].ledger().head().sequence == kBootEntries);

  // An exporter bypassing its own check (signing the message itself): the
  // EU's node refuses it on arrival by its own policy and stores nothing.
  const v1::SignedMessage m = f.CertificateMessage("BW", "EU", cert);
  absl::Status arrived = f["EU"].Receive("BW", {m})[0].status;
  CHECK(arrived.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(arrived.message()).find("EU import policy refuse_mixed_undisclosed") !=
        std::string::npos);
  CHECK(f["EU"].ledger().head().sequence == kBootEntries);
  CHECK(f.State("EU", "BW-POL-1") == v1::CERTIFICATE_STATE_UNSPECIFIED);

  // The same goods to a Participant without that rule travel.
  cert.set_number("BW-POL-2");
  cert.set_importing_participant("AE");
  REQUIRE(f["BW"].Submit(cert).ok());
  f.Settle();
  CHECK(f.State("AE", "BW-POL-2") == v1::RECEIVED);
  CHECK(f["AE"].Get("BW-POL-2")->certificate().lines(1).origin().mixed_undisclosed());
}

TEST_CASE("received messages are checked and refusals change nothing", "[node][security]") {
  Federation f;
  const v1::Certificate cert = ValidCertificate("BW-SEC-1", "BW", "EU");
  const storage::Head before = f["EU"].ledger().head();
  auto receive_one = [&](const std::string& peer, const v1::SignedMessage& m) {
    return f["EU"].Receive(peer, {m})[0].status;
  };

  SECTION("forged signature") {
    v1::SignedMessage m = f.CertificateMessage("BW", "EU", cert);
    std::string body = m.body();
    body[body.size() / 2] ^= 0x01;
    m.set_body(body);
    CHECK(receive_one("BW", m).code() == absl::StatusCode::kUnauthenticated);
  }
  SECTION("signed with another Participant's key") {
    v1::SignedMessage m = f.CertificateMessage("AE", "EU", cert);
    m.set_signer("BW");  // claims BW, signed by AE's key
    CHECK(receive_one("BW", m).code() == absl::StatusCode::kUnauthenticated);
  }
  SECTION("TLS identity differs from the signer") {
    v1::SignedMessage m = f.CertificateMessage("BW", "EU", cert);
    CHECK(receive_one("AE", m).code() == absl::StatusCode::kPermissionDenied);
  }
  SECTION("suspended sender") {
    v1::Certificate c = ValidCertificate("VE-1", "VE", "EU");
    CHECK(receive_one("VE", f.CertificateMessage("VE", "EU", c)).code() ==
          absl::StatusCode::kPermissionDenied);
  }
  SECTION("unknown Participant") {
    v1::SignedMessage m = f.CertificateMessage("BW", "EU", cert);
    m.set_signer("XX");
    CHECK(receive_one("XX", m).code() == absl::StatusCode::kPermissionDenied);
  }
  SECTION("addressed to another node") {
    CHECK(receive_one("BW", f.CertificateMessage("BW", "AE", cert)).code() ==
          absl::StatusCode::kPermissionDenied);
  }
  SECTION("certificate breaking the KP rules") {
    v1::Certificate c = cert;
    c.mutable_lines(0)->set_hs_code("7102.99");
    CHECK(receive_one("BW", f.CertificateMessage("BW", "EU", c)).code() ==
          absl::StatusCode::kInvalidArgument);
  }
  SECTION("certificate claiming another exporter") {
    v1::Certificate c = ValidCertificate("AE-1", "AE", "EU");
    CHECK(receive_one("BW", f.CertificateMessage("BW", "EU", c)).code() ==
          absl::StatusCode::kInvalidArgument);
  }
  SECTION("confirmation of a certificate never issued") {
    v1::MessageBody b;
    b.mutable_header()->set_kind(v1::IMPORT_CONFIRMATION);
    b.mutable_confirmation()->set_certificate_number("EU-NEVER");
    CHECK(f["BW"].Receive("EU", {f.Signed("EU", "BW", b)})[0].status.code() ==
          absl::StatusCode::kNotFound);
    CHECK(f["BW"].ledger().head().sequence == kBootEntries);
  }
  SECTION("created more than the allowed clock skew ahead") {
    v1::MessageBody b;
    b.mutable_header()->set_message_id(node::NewMessageId());
    b.mutable_header()->set_sender("BW");
    b.mutable_header()->set_recipient("EU");
    b.mutable_header()->set_kind(v1::CERTIFICATE);
    *b.mutable_header()->mutable_created_at() = node::ToTimestamp(f.clock().Now() + absl::Hours(1));
    *b.mutable_certificate() = cert;
    v1::SignedMessage m = kpx::testing::Must(node::Signer("BW", f.key("BW")).Sign(b));
    // Retryable (not dropped): the sender tries again later.
    CHECK(receive_one("BW", m).code() == absl::StatusCode::kOutOfRange);
  }
  SECTION("a receipt pushed as a message") {
    v1::MessageBody b;
    b.mutable_header()->set_kind(v1::DELIVERY_RECEIPT);
    b.mutable_receipt()->set_message_id(node::NewMessageId());
    CHECK(receive_one("BW", f.Signed("BW", "EU", b)).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(f["EU"].ledger().head().sequence == before.sequence);
  CHECK(f["EU"].ledger().Verify().ok);
}

TEST_CASE("a redelivered message is stored once and gets its original leaf", "[node][dedup]") {
  Federation f;
  v1::SignedMessage m = f.CertificateMessage("BW", "EU", ValidCertificate("BW-D-1", "BW", "EU"));
  std::vector<node::ReceiveOutcome> first = f["EU"].Receive("BW", {m});
  REQUIRE(first[0].status.ok());
  CHECK(first[0].sequence == kBootEntries + 1);
  std::vector<node::ReceiveOutcome> again = f["EU"].Receive("BW", {m, m});
  REQUIRE(again[0].status.ok());
  CHECK(again[0].leaf == first[0].leaf);
  CHECK(again[1].leaf == first[0].leaf);
  CHECK(again[1].sequence == kBootEntries + 1);
  CHECK(f["EU"].ledger().head().sequence == kBootEntries + 1);

  // The same certificate number under a new message id is a duplicate.
  v1::SignedMessage other =
      f.CertificateMessage("BW", "EU", ValidCertificate("BW-D-1", "BW", "EU"));
  CHECK(f["EU"].Receive("BW", {other})[0].status.code() == absl::StatusCode::kAlreadyExists);

  // Duplicates inside one batch are stored once as well.
  v1::SignedMessage n = f.CertificateMessage("BW", "EU", ValidCertificate("BW-D-2", "BW", "EU"));
  std::vector<node::ReceiveOutcome> batch = f["EU"].Receive("BW", {n, n});
  REQUIRE(batch[0].status.ok());
  CHECK(batch[1].leaf == batch[0].leaf);
  CHECK(f["EU"].ledger().head().sequence == kBootEntries + 2);

  // The same id on other bytes is not a redelivery: refused, not answered
  // with the first message's leaf (which would acknowledge what was not
  // stored), in a later batch and within one.
  v1::MessageBody body;
  REQUIRE(body.ParseFromString(m.body()));
  body.mutable_certificate()->set_remarks("other bytes, same id");
  const v1::SignedMessage reused = kpx::testing::Must(node::Signer("BW", f.key("BW")).Sign(body));
  CHECK(f["EU"].Receive("BW", {reused})[0].status.code() == absl::StatusCode::kAlreadyExists);
  v1::MessageBody fresh_body;
  REQUIRE(fresh_body.ParseFromString(
      f.CertificateMessage("BW", "EU", ValidCertificate("BW-D-3", "BW", "EU")).body()));
  const v1::SignedMessage one =
      kpx::testing::Must(node::Signer("BW", f.key("BW")).Sign(fresh_body));
  fresh_body.mutable_certificate()->set_remarks("changed in the same batch");
  const v1::SignedMessage two =
      kpx::testing::Must(node::Signer("BW", f.key("BW")).Sign(fresh_body));
  std::vector<node::ReceiveOutcome> mixed = f["EU"].Receive("BW", {one, two});
  CHECK(mixed[0].status.ok());
  CHECK(mixed[1].status.code() == absl::StatusCode::kAlreadyExists);
  CHECK(f["EU"].ledger().head().sequence == kBootEntries + 3);
}

TEST_CASE("confirming what was never received is refused", "[node][state]") {
  Federation f;
  CHECK(f["EU"].Confirm("BW-NONE", testing::AsDeclared(), absl::InfinitePast()).status().code() ==
        absl::StatusCode::kNotFound);
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-S-1", "BW", "EU")).ok());
  // The exporter cannot confirm its own certificate.
  CHECK(f["BW"].Confirm("BW-S-1", testing::AsDeclared(), absl::InfinitePast()).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(f["EU"].ledger().head().sequence == kBootEntries);
  CHECK(f["BW"].ledger().head().sequence == kBootEntries + 1);

  CHECK(node::CheckTransition(v1::EXPORTING, v1::CONFIRMED, v1::CANCELLED).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(node::CheckTransition(v1::IMPORTING, v1::RECEIVED, v1::DELIVERED).code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(node::CheckTransition(v1::EXPORTING, v1::DELIVERED, v1::CONFIRMED).ok());
}

TEST_CASE("the outbox survives a restart and retries with backoff", "[node][outbox]") {
  Federation f;
  f.Disconnect("EU");
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-O-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].DeliverDue() == 1);  // fails: EU is down
  std::vector<v1::OutboxItem> due = *f.ledger("BW").DueOutbox(absl::InfiniteFuture(), 10);
  REQUIRE(due.size() == 1);
  CHECK(due[0].attempts() == 1);
  CHECK_FALSE(due[0].last_error().empty());
  const absl::Time first_retry = node::FromTimestamp(due[0].due_at());
  CHECK(first_retry > f.clock().Now());
  CHECK(f["BW"].DeliverDue() == 0);  // not due yet

  f.clock().Advance(absl::Seconds(2));
  REQUIRE(f["BW"].DeliverDue() == 1);  // fails again, waits longer
  due = *f.ledger("BW").DueOutbox(absl::InfiniteFuture(), 10);
  CHECK(due[0].attempts() == 2);
  CHECK(node::FromTimestamp(due[0].due_at()) - f.clock().Now() > absl::Milliseconds(1500));

  // Crash BW; bring both back.
  f.Stop("BW");
  f.Reconnect("EU");
  f.Start("BW");
  CHECK(f.State("BW", "BW-O-1") == v1::ISSUED);
  f.clock().Advance(absl::Seconds(10));
  REQUIRE(f["BW"].DeliverDue() == 1);
  CHECK(f.State("BW", "BW-O-1") == v1::DELIVERED);
  CHECK(f.State("EU", "BW-O-1") == v1::RECEIVED);
  CHECK(f["BW"].ledger().OutboxSize() == 0);
  CHECK(f["EU"].ledger().head().sequence == kBootEntries + 1);
}

TEST_CASE("a node whose ledger refuses writes reports unhealthy until reopened", "[node][health]") {
  Federation f;
  auto fs = std::make_shared<testing::FaultFileSystem>();
  storage::LedgerOptions faulty;
  faulty.file_system = fs;
  f.Restart("BW", faulty);
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-H-1", "BW", "EU")).ok());
  CHECK(f["BW"].Health().ok());

  fs->FailSyncs(true);
  CHECK_FALSE(f["BW"].Submit(ValidCertificate("BW-H-2", "BW", "EU")).ok());
  fs->FailSyncs(false);
  // The disk works again, but the ledger refuses writes until reopened, and
  // the node says so (the gateway turns this into NOT_SERVING).
  const absl::Status health = f["BW"].Health();
  CHECK_FALSE(health.ok());
  CHECK(health == f.ledger("BW").WriteStatus());
  CHECK(health.message().find("injected sync failure") != absl::string_view::npos);
  CHECK_FALSE(f["BW"].Submit(ValidCertificate("BW-H-3", "BW", "EU")).ok());
  CHECK_FALSE(f["BW"].Health().ok());
  CHECK(f.State("BW", "BW-H-1") == v1::ISSUED);  // reads still answer

  // Restarted on the plain disk: healthy, with what it acknowledged only.
  f.Restart("BW", storage::LedgerOptions());
  CHECK(f["BW"].Health().ok());
  CHECK(f.State("BW", "BW-H-1") == v1::ISSUED);
  CHECK(f.State("BW", "BW-H-2") == v1::CERTIFICATE_STATE_UNSPECIFIED);
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-H-3", "BW", "EU")).ok());
  f.Settle();
  CHECK(f.State("EU", "BW-H-1") == v1::RECEIVED);
  CHECK(f.State("EU", "BW-H-3") == v1::RECEIVED);
  CHECK(f.ledger("BW").Verify().ok);
}

// Counts what a node reports, as gateway::Metrics would.
class CountingObserver : public node::Observer {
 public:
  void Delivered(const std::string&, const std::string&, absl::Duration) override {
    Add("delivered");
  }
  void DeliveryRefused(const std::string&, absl::StatusCode) override { Add("delivery_refused"); }
  void Received(const std::string&, const std::string&) override { Add("received"); }
  void Refused(const std::string&, absl::StatusCode) override { Add("refused"); }
  void LedgerWriteFailed(const std::string& step) override { Add("write_failed:" + step); }
  int Count(const std::string& what) {
    absl::MutexLock l(&mu_);
    return counts_[what];
  }

 private:
  void Add(const std::string& what) {
    absl::MutexLock l(&mu_);
    ++counts_[what];
  }
  absl::Mutex mu_;
  std::map<std::string, int> counts_;
};

TEST_CASE("a failed write while recording a receipt is counted, reported after, and loses nothing",
          "[node][health][outbox]") {
  Federation f;
  auto fs = std::make_shared<testing::FaultFileSystem>();
  storage::LedgerOptions faulty;
  faulty.file_system = fs;
  f.Restart("BW", faulty);
  CountingObserver obs;
  f["BW"].SetObserver(&obs);
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-W-1", "BW", "EU")).ok());

  fs->FailSyncs(true);
  CHECK(f["BW"].DeliverDue() == 1);  // EU stores it and answers; BW cannot record that
  fs->FailSyncs(false);
  CHECK(f.State("EU", "BW-W-1") == v1::RECEIVED);
  CHECK(obs.Count("write_failed:deliver") == 1);
  CHECK(obs.Count("delivered") == 0);  // events follow the write they report
  CHECK(f.State("BW", "BW-W-1") == v1::ISSUED);
  CHECK(f.ledger("BW").OutboxSize() == 1);  // still queued
  f["BW"].SetObserver(nullptr);

  // Restarted on a working disk, BW sends again; EU answers with the
  // original receipt and stores nothing twice.
  const uint64_t eu_head = f.ledger("EU").head().sequence;
  f.Restart("BW", storage::LedgerOptions());
  f.Settle();
  CHECK(f.State("BW", "BW-W-1") == v1::DELIVERED);
  CHECK(f.ledger("BW").OutboxSize() == 0);
  CHECK(f.ledger("EU").head().sequence == eu_head);
  CHECK(f.ledger("BW").Verify().ok);
}

TEST_CASE("a message queued past stuck_after is reported, still retried and delivered",
          "[node][outbox]") {
  Federation f;
  f.Disconnect("EU");
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-S-1", "BW", "EU")).ok());
  CHECK(f["BW"].DeliverDue() == 1);  // EU is unreachable: rescheduled
  CHECK(f["BW"].StuckMessages() == 0);
  f.clock().Advance(absl::Hours(24 * 7) + absl::Minutes(1));  // past the default 168 hours
  CHECK(f["BW"].DeliverDue() == 1);
  CHECK(f["BW"].StuckMessages() == 1);
  CHECK(f["BW"].DeliverDue() == 0);  // not due again before its backoff
  CHECK(f["BW"].StuckMessages() == 1);

  f.Reconnect("EU");
  f.clock().Advance(absl::Seconds(10));  // past the test's 8 s maximum backoff
  f.Settle();
  CHECK(f.State("BW", "BW-S-1") == v1::DELIVERED);
  CHECK(f.State("EU", "BW-S-1") == v1::RECEIVED);
  CHECK(f["BW"].StuckMessages() == 0);
}

TEST_CASE("validity governs arrival; the importer's node alone decides expiry", "[node][expiry]") {
  Federation f;  // certificates valid 30 days; confirmation grace 30 days (the default)
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-E-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-E-2", "BW", "EU")).ok());
  f.Settle();
  const absl::Time expires = node::FromTimestamp(f["BW"].Get("BW-E-1")->certificate().expires_at());
  f.clock().Advance(absl::Hours(24 * 31));  // past expiry, within the grace

  // Arrived after expiry: refused. Arrived the day before: confirmed late.
  CHECK(f["EU"].Confirm("BW-E-1", testing::AsDeclared(), absl::InfinitePast()).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  REQUIRE(f["EU"].Confirm("BW-E-2", testing::AsDeclared(), expires - absl::Hours(24)).ok());
  CHECK(f["BW"].ExpireDue() == 0);  // the exporter never expires by its own clock
  CHECK(f["EU"].ExpireDue() == 0);  // within the grace
  f.Settle();
  CHECK(f.State("BW", "BW-E-2") == v1::CONFIRMED);

  f.clock().Advance(absl::Hours(24 * 30));  // past the grace
  CHECK(f["BW"].ExpireDue() == 0);
  CHECK(f["EU"].ExpireDue() == 1);
  CHECK(f.State("EU", "BW-E-1") == v1::EXPIRED);
  CHECK(f.State("BW", "BW-E-1") == v1::DELIVERED);  // until EU's Expiry arrives
  f.Settle();
  CHECK(f.State("BW", "BW-E-1") == v1::EXPIRED);
  CHECK(f["EU"].ExpireDue() == 0);
  CHECK(f["EU"].Reject("BW-E-1", {v1::SEALS_OR_GOODS_TAMPERED, "late"}).status().code() ==
        absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("listing filters by state, partner, date and overdue, with paging", "[node][list]") {
  Federation f;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(f["BW"]
                .Submit(ValidCertificate("BW-L-" + std::to_string(i), "BW", i % 2 ? "AE" : "EU"))
                .ok());
  }
  f.Settle();
  REQUIRE(f["EU"].Confirm("BW-L-0", testing::AsDeclared(), absl::InfinitePast()).ok());
  f.Settle();

  v1::ListCertificatesRequest req;
  req.set_partner("EU");
  CHECK(f["BW"].List(req)->certificates_size() == 3);
  req.set_state(v1::CONFIRMED);
  CHECK(f["BW"].List(req)->certificates_size() == 1);

  v1::ListCertificatesRequest page;
  page.set_page_size(2);
  std::vector<std::string> seen;
  do {
    v1::ListCertificatesResponse r = *f["BW"].List(page);
    for (const auto& c : r.certificates()) seen.push_back(c.certificate().number());
    page.set_page_token(r.next_page_token());
  } while (!page.page_token().empty());
  CHECK(seen == std::vector<std::string>{"BW-L-0", "BW-L-1", "BW-L-2", "BW-L-3", "BW-L-4"});

  v1::ListCertificatesRequest overdue;
  overdue.set_overdue_days(15);
  CHECK(f["BW"].List(overdue)->certificates_size() == 0);
  f.clock().Advance(absl::Hours(24 * 16));
  CHECK(f["BW"].List(overdue)->certificates_size() == 4);
  CHECK(f["EU"].List(overdue)->certificates_size() == 2);
  // The node's own setting (15 days here) and the daily log agree.
  v1::ListCertificatesRequest configured;
  configured.set_overdue(true);
  CHECK(f["BW"].List(configured)->certificates_size() == 4);
  CHECK(f["BW"].LogOverdue() == 4);
  CHECK(f["EU"].LogOverdue() == 2);

  v1::ListCertificatesRequest dated;
  *dated.mutable_issued_from() = node::ToTimestamp(absl::Now() + absl::Hours(1));
  CHECK(f["BW"].List(dated)->certificates_size() == 0);
}

TEST_CASE("a cancellation queued behind its certificate waits for the certificate's receipt",
          "[node][order]") {
  Federation f;
  f.Disconnect("EU");
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-B-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].Cancel("BW-B-1", {v1::SHIPMENT_WITHDRAWN, "withdrawn"}).ok());
  REQUIRE(f["BW"].DeliverDue() == 1);  // the certificate only; it fails
  f.Reconnect("EU");
  f.clock().Advance(absl::Minutes(2));  // past any backoff
  REQUIRE(f["BW"].DeliverDue() == 1);   // the certificate
  CHECK(f.State("EU", "BW-B-1") == v1::RECEIVED);
  REQUIRE(f["BW"].DeliverDue() == 1);  // then its cancellation, released by the receipt
  CHECK(f.State("EU", "BW-B-1") == v1::CANCELLED);
  CHECK(f.State("BW", "BW-B-1") == v1::CANCELLED);
  CHECK(f["BW"].ledger().OutboxSize() == 0);
  CHECK(f["EU"].ledger().Verify().ok);
}

// A partner that takes every exchange and answers none until released.
class SilentPartner : public node::Receiver {
 public:
  explicit SilentPartner(node::Receiver* inner) : inner_(inner) {}
  v1::DeliverResponse Exchange(const std::string& peer,
                               const v1::DeliverRequest& request) override {
    release_.WaitForNotification();
    return inner_->Exchange(peer, request);
  }
  absl::StatusOr<v1::ConsistencyResponse> Consistency(
      const std::string& peer, const v1::ConsistencyRequest& request) override {
    return inner_->Consistency(peer, request);
  }
  void Release() { release_.Notify(); }

 private:
  node::Receiver* const inner_;
  absl::Notification release_;
};

TEST_CASE("a silent partner holds up only its own deliveries", "[node][lanes]") {
  Federation f;
  SilentPartner silent_ae(&f["AE"]);
  f.Route("AE", &silent_ae);
  f["BW"].StartDelivery();
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-H-1", "BW", "AE")).ok());
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-H-2", "BW", "EU")).ok());
  CHECK(testing::WaitFor([&] { return f.State("BW", "BW-H-2") == v1::DELIVERED; }));
  CHECK(f.State("EU", "BW-H-2") == v1::RECEIVED);
  CHECK(f.State("AE", "BW-H-1") == v1::CERTIFICATE_STATE_UNSPECIFIED);  // still held up
  silent_ae.Release();
  CHECK(testing::WaitFor([&] { return f.State("BW", "BW-H-1") == v1::DELIVERED; }));
  CHECK(f.State("AE", "BW-H-1") == v1::RECEIVED);
  f["BW"].StopDelivery();
  f.Route("AE", &f["AE"]);
}

TEST_CASE("a partner's backoff resets as soon as it answers again", "[node][backoff]") {
  Federation f;  // backoff from 1 s, at most 8 s
  f.Disconnect("EU");
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-K-1", "BW", "EU")).ok());
  for (int i = 0; i < 4; ++i) {
    REQUIRE(f["BW"].DeliverDue() == 1);  // fails; waits longer each time
    f.clock().Advance(absl::Seconds(9));
  }
  REQUIRE(f["BW"].DeliverDue() == 1);  // 5 failed exchanges: BW-K-1 waits about 8 s now
  f.Reconnect("EU");
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-K-2", "BW", "EU")).ok());
  REQUIRE(f["BW"].DeliverDue() == 1);  // the new one goes; EU answers
  CHECK(f.State("EU", "BW-K-2") == v1::RECEIVED);
  // ... which makes the old one due at once, without waiting out its delay.
  REQUIRE(f["BW"].DeliverDue() == 1);
  CHECK(f.State("EU", "BW-K-1") == v1::RECEIVED);
  CHECK(f["BW"].ledger().OutboxSize() == 0);
}

TEST_CASE("crossing messages converge: the importer's decision stands", "[node][converge]") {
  Federation f;
  for (const char* n : {"BW-X-1", "BW-X-2", "BW-X-3"}) {
    REQUIRE(f["BW"].Submit(ValidCertificate(n, "BW", "EU")).ok());
  }
  f.Settle();
  // Each pair of verbs is made before either message is delivered.
  REQUIRE(f["EU"].Confirm("BW-X-1", testing::AsDeclared(), absl::InfinitePast()).ok());
  REQUIRE(f["BW"].Cancel("BW-X-1", {v1::SHIPMENT_WITHDRAWN, "withdrawn"}).ok());
  REQUIRE(f["EU"].Reject("BW-X-2", {v1::SEALS_OR_GOODS_TAMPERED, "seal broken"}).ok());
  REQUIRE(f["BW"].Cancel("BW-X-2", {v1::SHIPMENT_WITHDRAWN, "withdrawn"}).ok());
  REQUIRE(f["BW"]
              .Cancel("BW-X-3", {v1::SHIPMENT_WITHDRAWN, "withdrawn"})
              .ok());  // no crossing: cancelled
  f.Settle();
  CHECK(f.State("BW", "BW-X-1") == v1::CONFIRMED);
  CHECK(f.State("EU", "BW-X-1") == v1::CONFIRMED);
  CHECK(f.State("BW", "BW-X-2") == v1::REJECTED);
  CHECK(f.State("EU", "BW-X-2") == v1::REJECTED);
  CHECK(f.State("BW", "BW-X-3") == v1::CANCELLED);
  CHECK(f.State("EU", "BW-X-3") == v1::CANCELLED);
  // Both signed messages are kept on both sides; the exporter's history
  // says why its cancellation did not stand.
  v1::CertificateRecord bw = *f["BW"].Get("BW-X-1");
  CHECK_THAT(bw.history().rbegin()->detail(),
             Catch::Matchers::Contains("crossed our cancellation"));
  size_t noted = 0;
  const std::vector<v1::LedgerEntry> eu_entries = *f["EU"].ledger().ReadEntries(1, 100);
  for (const v1::LedgerEntry& e : eu_entries) {
    if (e.certificate_number() == "BW-X-1" && e.kind() == v1::RECEIVED_MESSAGE &&
        e.message().signer() == "BW" && e.state() == v1::CERTIFICATE_STATE_UNSPECIFIED) {
      ++noted;
      CHECK_THAT(e.detail(), Catch::Matchers::Contains("CONFIRMED stands"));
    }
  }
  CHECK(noted == 1);
  CHECK(f["BW"].ledger().OutboxSize() == 0);
  CHECK(f["EU"].ledger().OutboxSize() == 0);
}

TEST_CASE("the import confirmation carries what was found; both sides list the discrepancies",
          "[node][findings]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-F-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-F-2", "BW", "EU")).ok());
  f.Settle();
  const v1::Certificate cert = f["EU"].Get("BW-F-1")->certificate();

  // Nothing recorded: refused, nothing stored.
  CHECK(f["EU"].Confirm("BW-F-1", v1::ImportFindings(), absl::InfinitePast()).status().code() ==
        absl::StatusCode::kInvalidArgument);
  v1::ImportFindings wrong_office = testing::AsDeclared();
  wrong_office.set_office("XXX");
  CHECK(f["EU"].Confirm("BW-F-1", wrong_office, absl::InfinitePast()).status().code() ==
        absl::StatusCode::kInvalidArgument);

  // Found: one parcel fewer, the gem line 10 ct light, seals broken.
  v1::ImportFindings found;
  found.set_number_of_parcels(cert.number_of_parcels() - 1);
  found.set_seals_broken(true);
  found.set_office("ANR");
  found.set_official("Inspector B. Janssens");
  for (const v1::CertificateLine& l : cert.lines()) {
    v1::FoundLine* fl = found.add_lines();
    fl->set_hs_code(absl::StrReplaceAll(l.hs_code(), {{".", ""}}));  // as officers type it
    fl->set_carats_hundredths(l.carats_hundredths() - (l.hs_code() == "7102.31" ? 1000 : 0));
    fl->set_value_usd_cents(l.value_usd_cents());
  }
  absl::StatusOr<v1::CertificateRecord> eu = f["EU"].Confirm("BW-F-1", found, absl::InfinitePast());
  REQUIRE(eu.ok());
  CHECK(eu->state() == v1::CONFIRMED);
  CHECK(eu->confirmation().office_name() == "Antwerp Diamond Office");
  REQUIRE(eu->discrepancies_size() == 3);
  CHECK(eu->discrepancies(0).field() == "number_of_parcels");
  CHECK(eu->discrepancies(1).field() == "7102.31 carats");
  CHECK(eu->discrepancies(2).field() == "seals");
  REQUIRE(f["EU"].Confirm("BW-F-2", testing::AsDeclared(), absl::InfinitePast()).ok());
  f.Settle();

  v1::CertificateRecord bw = *f["BW"].Get("BW-F-1");
  CHECK(bw.state() == v1::CONFIRMED);
  REQUIRE(bw.discrepancies_size() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(google::protobuf::util::MessageDifferencer::Equals(bw.discrepancies(i),
                                                             eu->discrepancies(i)));
  }
  CHECK(f["BW"].Get("BW-F-2")->discrepancies().empty());
  v1::ListCertificatesRequest with;
  with.set_discrepancies(true);
  for (const char* code : {"BW", "EU"}) {
    absl::StatusOr<v1::ListCertificatesResponse> listed = f[code].List(with);
    REQUIRE(listed->certificates_size() == 1);
    CHECK(listed->certificates(0).certificate().number() == "BW-F-1");
  }
}

// A replacement of `old` from BW to EU.
v1::Certificate Replacement(const std::string& number, const std::string& old) {
  v1::Certificate c = ValidCertificate(number, "BW", "EU");
  c.set_type(v1::REPLACEMENT);
  c.set_replaces(old);
  return c;
}

TEST_CASE("a replacement makes its predecessor REPLACED on both sides, linked both ways",
          "[node][lifecycle]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-P-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-P-2", "BW", "EU")).ok());
  // Not delivered yet: refused, nothing stored.
  const uint64_t head = f["BW"].ledger().head().sequence;
  CHECK(f["BW"].Submit(Replacement("BW-P-1R", "BW-P-1")).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f["BW"].ledger().head().sequence == head);
  f.Settle();

  absl::StatusOr<v1::CertificateRecord> r = f["BW"].Submit(Replacement("BW-P-1R", "BW-P-1"));
  REQUIRE(r.ok());
  CHECK(r->state() == v1::ISSUED);
  CHECK(f.State("BW", "BW-P-1") == v1::REPLACED);
  CHECK(f["BW"].Get("BW-P-1")->replaced_by() == "BW-P-1R");
  // A replaced one, one issued to another importer, one we received: refused.
  CHECK(f["BW"].Submit(Replacement("BW-P-1S", "BW-P-1")).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-P-AE", "BW", "AE")).ok());
  REQUIRE(f["AE"].Submit(ValidCertificate("AE-P-1", "AE", "BW")).ok());
  f.Settle();
  CHECK(f["BW"].Submit(Replacement("BW-P-AE2", "BW-P-AE")).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f["BW"].Submit(Replacement("BW-P-R", "AE-P-1")).status().code() ==
        absl::StatusCode::kNotFound);
  f.Settle();
  CHECK(f.State("EU", "BW-P-1") == v1::REPLACED);
  CHECK(f["EU"].Get("BW-P-1")->replaced_by() == "BW-P-1R");
  CHECK(f.State("EU", "BW-P-1R") == v1::RECEIVED);
  CHECK(f["EU"].Get("BW-P-1R")->certificate().replaces() == "BW-P-1");
  CHECK(f["EU"].Confirm("BW-P-1", testing::AsDeclared(), absl::InfinitePast()).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  REQUIRE(f["EU"].Confirm("BW-P-1R", testing::AsDeclared(), absl::InfinitePast()).ok());
  f.Settle();
  CHECK(f.State("BW", "BW-P-1R") == v1::CONFIRMED);

  // The trace follows the replacement both ways.
  absl::StatusOr<v1::TraceCertificateResponse> trace = f["EU"].Trace("BW-P-1R");
  REQUIRE(trace.ok());
  REQUIRE(trace->steps_size() == 2);
  CHECK(trace->steps(1).number() == "BW-P-1");
  CHECK(trace->steps(1).relation() == "replaces");
  CHECK(trace->steps(1).record().state() == v1::REPLACED);
}

TEST_CASE("a replacement that crosses the importer's decision is DISPUTED on both sides",
          "[node][lifecycle][converge]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-Q-1", "BW", "EU")).ok());
  f.Settle();
  // EU confirms the old one while BW replaces it; neither has heard yet.
  REQUIRE(f["EU"].Confirm("BW-Q-1", testing::AsDeclared(), absl::InfinitePast()).ok());
  REQUIRE(f["BW"].Submit(Replacement("BW-Q-1R", "BW-Q-1")).ok());
  f.Settle();
  CHECK(f.State("BW", "BW-Q-1") == v1::CONFIRMED);  // the importer's decision stands
  CHECK(f.State("EU", "BW-Q-1") == v1::CONFIRMED);
  CHECK(f.State("BW", "BW-Q-1R") == v1::DISPUTED);
  CHECK(f.State("EU", "BW-Q-1R") == v1::DISPUTED);
  CHECK_THAT(f["BW"].Get("BW-Q-1")->history().rbegin()->detail(),
             Catch::Matchers::Contains("crossed our replacement"));
  CHECK(f["BW"].Get("BW-Q-1")->replaced_by().empty());  // as at EU: it was not replaced
  CHECK(f["EU"].Get("BW-Q-1")->replaced_by().empty());
  // An authority resolves it; both ledgers record it.
  REQUIRE(f["BW"].Cancel("BW-Q-1R", {v1::SHIPMENT_WITHDRAWN, "old certificate stands"}).ok());
  f.Settle();
  CHECK(f.State("BW", "BW-Q-1R") == v1::CANCELLED);
  CHECK(f.State("EU", "BW-Q-1R") == v1::CANCELLED);
  CHECK(f["EU"].Get("BW-Q-1R")->history().rbegin()->reason_code() == v1::SHIPMENT_WITHDRAWN);
}

TEST_CASE("an amendment corrects a certificate on both sides, keeping the earlier version",
          "[node][lifecycle][amend]") {
  Federation f;
  f.Disconnect("EU");
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-A-1", "BW", "EU")).ok());
  v1::Certificate fixed = f["BW"].Get("BW-A-1")->certificate();
  fixed.set_number_of_parcels(15);
  fixed.mutable_shipment()->add_seal_numbers("BW-SEAL-778");
  // Before delivery: the amendment waits behind the certificate.
  absl::StatusOr<v1::CertificateRecord> a =
      f["BW"].Amend(fixed, {v1::CLERICAL_ERROR, "one parcel was left off"});
  REQUIRE(a.ok());
  CHECK(a->version() == 2);
  REQUIRE(a->earlier_versions_size() == 1);
  CHECK(std::vector<std::string>(a->earlier_versions(0).changed_fields().begin(),
                                 a->earlier_versions(0).changed_fields().end()) ==
        std::vector<std::string>{"number_of_parcels", "shipment"});
  // Nothing changed, or the number changed: refused.
  CHECK(f["BW"].Amend(fixed, {v1::CLERICAL_ERROR, "again"}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(f["BW"].Amend(fixed, {v1::REASON_CODE_UNSPECIFIED, "x"}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  f.Reconnect("EU");
  f.clock().Advance(absl::Minutes(2));
  f.Settle();
  v1::CertificateRecord eu = *f["EU"].Get("BW-A-1");
  CHECK(eu.state() == v1::RECEIVED);
  CHECK(eu.version() == 2);
  CHECK(eu.certificate().number_of_parcels() == 15);
  REQUIRE(eu.earlier_versions_size() == 1);
  CHECK(eu.earlier_versions(0).certificate().number_of_parcels() == 14);
  CHECK(eu.earlier_versions(0).reason_code() == v1::CLERICAL_ERROR);
  CHECK(eu.certificate_digest() == f["BW"].Get("BW-A-1")->certificate_digest());
  REQUIRE(f["EU"].Confirm("BW-A-1", testing::AsDeclared(), absl::InfinitePast()).ok());
  f.Settle();
  CHECK(f.State("BW", "BW-A-1") == v1::CONFIRMED);
  CHECK(f["BW"].Get("BW-A-1")->discrepancies().empty());  // found as amended
  fixed.set_number_of_parcels(16);
  CHECK(f["BW"].Amend(fixed, {v1::CLERICAL_ERROR, "too late"}).status().code() ==
        absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("an amendment that crosses the importer's decision is DISPUTED on both sides",
          "[node][lifecycle][amend][converge]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-A-2", "BW", "EU")).ok());
  f.Settle();
  v1::Certificate fixed = f["BW"].Get("BW-A-2")->certificate();
  fixed.set_number_of_parcels(13);
  REQUIRE(f["EU"].Confirm("BW-A-2", testing::AsDeclared(), absl::InfinitePast()).ok());
  REQUIRE(f["BW"].Amend(fixed, {v1::SHIPMENT_CHANGED, "one parcel held back"}).ok());
  f.Settle();
  CHECK(f.State("BW", "BW-A-2") == v1::DISPUTED);
  CHECK(f.State("EU", "BW-A-2") == v1::DISPUTED);
  CHECK(f["EU"].Get("BW-A-2")->certificate().number_of_parcels() == 13);
  // The importer decides again, on the amended version: both agree.
  REQUIRE(f["EU"].Confirm("BW-A-2", testing::AsDeclared(), absl::InfinitePast()).ok());
  f.Settle();
  CHECK(f.State("BW", "BW-A-2") == v1::CONFIRMED);
  CHECK(f.State("EU", "BW-A-2") == v1::CONFIRMED);
  CHECK(f["BW"].ledger().OutboxSize() == 0);
}

TEST_CASE("amend, then replace, while a decision on the first version is under way: both agree",
          "[node][lifecycle][amend][converge]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-A-3", "BW", "EU")).ok());
  f.Settle();
  REQUIRE(f["EU"].Confirm("BW-A-3", testing::AsDeclared(), absl::InfinitePast()).ok());
  v1::Certificate fixed = f["BW"].Get("BW-A-3")->certificate();
  fixed.set_number_of_parcels(13);
  REQUIRE(f["BW"].Amend(fixed, {v1::CLERICAL_ERROR, "parcel count"}).ok());
  // Not while the amendment is on its way.
  CHECK(f["BW"].Submit(Replacement("BW-A-3R", "BW-A-3")).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  REQUIRE(f["BW"].DeliverDue() == 1);  // the amendment: EU's confirmation crossed it
  CHECK(f.State("EU", "BW-A-3") == v1::DISPUTED);
  CHECK_FALSE(f["EU"].Get("BW-A-3")->has_confirmation());
  REQUIRE(f["BW"].Submit(Replacement("BW-A-3R", "BW-A-3")).ok());
  REQUIRE(f["BW"].DeliverDue() == 1);  // the replacement
  CHECK(f.State("EU", "BW-A-3") == v1::REPLACED);
  REQUIRE(f["EU"].DeliverDue() == 1);  // EU's confirmation of version 1, at last
  f.Settle();
  CHECK(f.State("BW", "BW-A-3") == v1::REPLACED);
  CHECK(f.State("EU", "BW-A-3") == v1::REPLACED);
  CHECK(f.State("BW", "BW-A-3R") == v1::DELIVERED);
  CHECK(f.State("EU", "BW-A-3R") == v1::RECEIVED);
  CHECK(f["EU"].ledger().OutboxSize() == 0);  // its confirmation was taken, not refused
}

TEST_CASE("a confirmed certificate can be voided by its exporter, with a reason code",
          "[node][lifecycle]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-V-1", "BW", "EU")).ok());
  f.Settle();
  CHECK(f["BW"].Void("BW-V-1", {v1::SUSPECTED_FRAUD, "origin false"}).status().code() ==
        absl::StatusCode::kFailedPrecondition);  // not confirmed yet: cancel instead
  REQUIRE(f["EU"].Confirm("BW-V-1", testing::AsDeclared(), absl::InfinitePast()).ok());
  f.Settle();
  CHECK(f["BW"].Void("BW-V-1", {v1::REASON_CODE_UNSPECIFIED, "no code"}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  absl::StatusOr<v1::CertificateRecord> v =
      f["BW"].Void("BW-V-1", {v1::SUSPECTED_FRAUD, "origin documents found false"});
  REQUIRE(v.ok());
  CHECK(v->state() == v1::VOIDED);
  f.Settle();
  v1::CertificateRecord eu = *f["EU"].Get("BW-V-1");
  CHECK(eu.state() == v1::VOIDED);
  CHECK(eu.history().rbegin()->reason_code() == v1::SUSPECTED_FRAUD);
  CHECK(eu.history().rbegin()->detail() == "origin documents found false");
  CHECK(f["BW"].ledger().OutboxSize() == 0);
}

TEST_CASE("a re-export names the import certificates its goods arrived under; trace follows them",
          "[node][lifecycle][trace]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-T-1", "BW", "AE")).ok());
  f.Settle();
  v1::Certificate reexport = ValidCertificate("AE-T-1", "AE", "EU");
  v1::CertificateReference* ref = reexport.add_provenance();
  ref->set_number("BW-T-1");
  ref->set_participant("BW");
  // Not yet arrived (RECEIVED, not CONFIRMED): refused.
  CHECK(f["AE"].Submit(reexport).status().code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(f["AE"].Confirm("BW-T-1", testing::AsDeclared(), absl::InfinitePast()).ok());
  REQUIRE(f["AE"].Submit(reexport).ok());
  v1::Certificate unknown = ValidCertificate("AE-T-2", "AE", "EU");
  unknown.add_provenance()->set_number("BW-NEVER");
  unknown.mutable_provenance(0)->set_participant("BW");
  CHECK(f["AE"].Submit(unknown).status().code() == absl::StatusCode::kFailedPrecondition);
  f.Settle();

  // At AE both links are held; at EU the mining country's certificate is a
  // reference only AE and BW hold.
  absl::StatusOr<v1::TraceCertificateResponse> at_ae = f["AE"].Trace("AE-T-1");
  REQUIRE(at_ae.ok());
  REQUIRE(at_ae->steps_size() == 2);
  CHECK(at_ae->steps(1).relation() == "arrived under");
  CHECK(at_ae->steps(1).issuer() == "BW");
  CHECK(at_ae->steps(1).record().state() == v1::CONFIRMED);
  absl::StatusOr<v1::TraceCertificateResponse> at_eu = f["EU"].Trace("AE-T-1");
  REQUIRE(at_eu.ok());
  REQUIRE(at_eu->steps_size() == 2);
  CHECK(at_eu->steps(1).number() == "BW-T-1");
  CHECK_FALSE(at_eu->steps(1).has_record());
  CHECK(f["EU"].Trace("NOPE").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("retried authority calls return their original result", "[node][idempotent]") {
  Federation f;
  const v1::Certificate cert = ValidCertificate("BW-I-1", "BW", "EU");
  absl::StatusOr<v1::CertificateRecord> first = f["BW"].Submit(cert, "req-1");
  REQUIRE(first.ok());
  const uint64_t head = f["BW"].ledger().head().sequence;
  // The same certificate again (a retry after a lost answer): its record.
  absl::StatusOr<v1::CertificateRecord> again = f["BW"].Submit(cert, "req-1");
  REQUIRE(again.ok());
  CHECK(again->certificate_message_id() == first->certificate_message_id());
  CHECK(f["BW"].Submit(cert).ok());  // identical content, no request id
  v1::Certificate other = cert;
  other.mutable_exporter()->set_name("Someone Else Ltd");
  absl::StatusOr<v1::CertificateRecord> clash = f["BW"].Submit(other);
  CHECK(clash.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK_THAT(std::string(clash.status().message()),
             Catch::Matchers::Contains("already used by a different certificate"));
  CHECK(f["BW"].ledger().head().sequence == head);  // nothing stored twice
  f.Settle();

  REQUIRE(f["EU"].Confirm("BW-I-1", testing::AsDeclared(), absl::InfinitePast(), "conf-1").ok());
  absl::StatusOr<v1::CertificateRecord> reconfirm =
      f["EU"].Confirm("BW-I-1", testing::AsDeclared(), absl::InfinitePast(), "conf-1");
  REQUIRE(reconfirm.ok());
  CHECK(reconfirm->state() == v1::CONFIRMED);
  CHECK(reconfirm->history().rbegin()->request_id() == "conf-1");
  CHECK(f["EU"].ledger().OutboxSize() == 1);  // one confirmation queued, not two
  CHECK(f["EU"]
            .Confirm("BW-I-1", testing::AsDeclared(), absl::InfinitePast(), "bad id!")
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("trust list loading refuses inconsistent lists", "[node][trust]") {
  crypto::PrivateKey k =
      kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519));
  v1::TrustList t;
  v1::Participant* p = t.add_participants();
  p->set_code("BW");
  p->set_status(v1::ACTIVE);
  testing::ListSigningKey(*p, k);
  REQUIRE(node::TrustList::FromProto(t).ok());

  v1::TrustList wrong_id = t;
  wrong_id.mutable_participants(0)->mutable_signing_keys(0)->set_key_id(std::string(64, 'a'));
  CHECK_FALSE(node::TrustList::FromProto(wrong_id).ok());
  v1::TrustList wrong_alg = t;
  wrong_alg.mutable_participants(0)->mutable_signing_keys(0)->set_algorithm(v1::ECDSA_P256_SHA256);
  CHECK_FALSE(node::TrustList::FromProto(wrong_alg).ok());
  v1::TrustList twice = t;
  *twice.add_participants() = t.participants(0);
  CHECK_FALSE(node::TrustList::FromProto(twice).ok());

  // Suspension from a date: active before, refused from then on.
  v1::TrustList later = t;
  later.mutable_participants(0)->set_status(v1::SUSPENDED);
  const absl::Time from = absl::FromUnixSeconds(1'900'000'000);
  *later.mutable_participants(0)->mutable_suspended_from() = node::ToTimestamp(from);
  auto list = kpx::testing::Must(node::TrustList::FromProto(later));
  CHECK(list->CheckActive("BW", from - absl::Seconds(1)).ok());
  CHECK(list->CheckActive("BW", from).code() == absl::StatusCode::kPermissionDenied);
}

TEST_CASE("the config reference and the example config cover every NodeConfig field",
          "[node][config]") {
  const std::string src = std::getenv("KPX_SOURCE_DIR") ? std::getenv("KPX_SOURCE_DIR") : ".";
  const std::string ops = kpx::testing::Must(crypto::ReadFile(src + "/docs/operations.md"));
  const std::string example_path = src + "/deploy/config/kpxd.example.textpb";
  const std::string example = kpx::testing::Must(crypto::ReadFile(example_path));
  // The example must load as a real config (files it names are not read).
  absl::StatusOr<v1::NodeConfig> loaded = node::LoadConfig(example_path);
  REQUIRE(loaded.ok());
  auto check_fields = [&](const google::protobuf::Descriptor* d, const std::string& prefix) {
    for (int i = 0; i < d->field_count(); ++i) {
      const std::string name = d->field(i)->name();
      INFO(prefix << name);
      CHECK(ops.find("`" + prefix + name + "`") != std::string::npos);
      CHECK((example.find("\n" + name + ":") != std::string::npos ||
             example.find("\n" + name + " {") != std::string::npos ||
             example.find(" " + name + ":") != std::string::npos));
    }
  };
  check_fields(v1::NodeConfig::descriptor(), "");
  check_fields(v1::DeliveryConfig::descriptor(), "delivery.");
  check_fields(v1::ConsoleConfig::descriptor(), "console.");
}

// The bounds (node/bounds.h) hold for a partner as for an authority.
TEST_CASE("a partner is held to the bounds an authority is held to", "[node][security][bounds]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-BD-1", "BW", "EU")).ok());
  f.Settle();
  REQUIRE(f.State("EU", "BW-BD-1") == v1::RECEIVED);
  const storage::Head eu_before = f["EU"].ledger().head();
  auto cancellation = [&](const std::string& reason) {
    v1::MessageBody b;
    b.mutable_header()->set_kind(v1::CANCELLATION);
    b.mutable_cancellation()->set_certificate_number("BW-BD-1");
    b.mutable_cancellation()->set_reason(reason);
    return f["EU"].Receive("BW", {f.Signed("BW", "EU", b)})[0].status;
  };

  SECTION("reasons: too long, several lines, terminal escapes, not UTF-8") {
    for (const std::string& reason :
         {std::string(2049, 'x'), std::string(33 << 20, 'x'), std::string("ok\nCONFIRMED seq 999"),
          std::string("\x1b[31mred"),
          std::string("\xc2\x9b"
                      "2J"),
          std::string("\xff\xfe")}) {
      const absl::Status s = cancellation(reason);
      INFO(s);
      CHECK(s.code() == absl::StatusCode::kInvalidArgument);
      CHECK(s.message().size() < 200);  // the error never echoes the text
    }
    // The same reasons are refused to the local authority.
    CHECK(f["BW"].Cancel("BW-BD-1", {v1::OTHER, "ok\nCONFIRMED seq 999"}).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(f.State("BW", "BW-BD-1") == v1::DELIVERED);
  }
  SECTION("timestamps outside protobuf's range or the plausible window") {
    for (auto [seconds, nanos] : std::vector<std::pair<int64_t, int32_t>>{{253402300800, 0},
                                                                          {-62135596801, 0},
                                                                          {1800000000, -1},
                                                                          {1800000000, 1000000000},
                                                                          {946684799, 0},
                                                                          {4102444800, 0}}) {
      v1::Certificate c = ValidCertificate("BW-BD-2", "BW", "EU");
      c.mutable_issued_at()->set_seconds(seconds);
      c.mutable_issued_at()->set_nanos(nanos);
      const absl::Status s = f["EU"].Receive("BW", {f.CertificateMessage("BW", "EU", c)})[0].status;
      INFO(seconds << " s " << nanos << " ns: " << s);
      CHECK(s.code() == absl::StatusCode::kInvalidArgument);
      CHECK(absl::StrContains(s.message(), "certificate.issued_at"));
    }
  }
  SECTION("unknown fields and enum values") {
    v1::MessageBody b;
    b.mutable_header()->set_kind(v1::CANCELLATION);
    b.mutable_cancellation()->set_certificate_number("BW-BD-1");
    b.mutable_cancellation()->set_reason("withdrawn");
    b.mutable_cancellation()
        ->GetReflection()
        ->MutableUnknownFields(b.mutable_cancellation())
        ->AddLengthDelimited(999, std::string(1000, 'j'));
    CHECK(f["EU"].Receive("BW", {f.Signed("BW", "EU", b)})[0].status.code() ==
          absl::StatusCode::kInvalidArgument);
    b.mutable_cancellation()
        ->GetReflection()
        ->MutableUnknownFields(b.mutable_cancellation())
        ->Clear();
    b.mutable_cancellation()->set_reason_code(static_cast<v1::ReasonCode>(99));
    const absl::Status s = f["EU"].Receive("BW", {f.Signed("BW", "EU", b)})[0].status;
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(s.message(), "reason_code: unknown value 99"));
  }
  SECTION("an unsigned message with a 100 KiB signer gets a short refusal") {
    v1::SignedMessage junk;
    junk.set_signer(std::string(100 << 10, 'B'));
    junk.set_body("\xff\xff junk");
    const absl::Status s = f["EU"].Receive(std::string(100 << 10, 'B'), {junk})[0].status;
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(s.message().size() < 200);
  }
  SECTION("an arrival before the certificate was issued") {
    const absl::Time issued =
        node::FromTimestamp(f["EU"].Get("BW-BD-1")->certificate().issued_at());
    const absl::Status s =
        f["EU"].Confirm("BW-BD-1", testing::AsDeclared(), issued - absl::Hours(1)).status();
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(s.message(), "before certificate BW-BD-1 was issued"));
  }
  CHECK(f["EU"].ledger().head().sequence == eu_before.sequence);
  CHECK(f["EU"].ledger().Verify().ok);
}

// An importer's node that refuses every message for good, with a reason
// written to mislead a terminal.
class RefusingPartner : public node::Receiver {
 public:
  v1::DeliverResponse Exchange(const std::string& peer,
                               const v1::DeliverRequest& request) override {
    v1::DeliverResponse resp;
    for (int i = 0; i < request.messages_size(); ++i) {
      v1::DeliveryResult* r = resp.add_results();
      r->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
      r->set_error("no\nCONFIRMED seq 999 \x1b[2J" + std::string(5000, 'x'));
    }
    return resp;
  }
  absl::StatusOr<v1::ConsistencyResponse> Consistency(const std::string&,
                                                      const v1::ConsistencyRequest&) override {
    return absl::UnimplementedError("refuses everything");
  }
};

TEST_CASE("a certificate the importer's node refuses is REFUSED and can be re-sent",
          "[node][refused]") {
  Federation f;
  RefusingPartner refusing;
  f.Route("EU", &refusing);
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-RF-1", "BW", "EU")).ok());
  f.Settle();
  absl::StatusOr<v1::CertificateRecord> rec = f["BW"].Get("BW-RF-1");
  REQUIRE(rec.ok());
  CHECK(rec->state() == v1::REFUSED);
  const std::string why = rec->history().rbegin()->detail();
  INFO(why);
  CHECK(absl::StartsWith(why, "INVALID_ARGUMENT: no\\nCONFIRMED seq 999 \\x1B[2J"));
  CHECK(why.size() < 600);  // bounded, one line
  CHECK(why.find('\n') == std::string::npos);
  CHECK(f["BW"].ledger().OutboxSize() == 0);
  v1::ListCertificatesRequest open;
  open.set_state(v1::REFUSED);
  CHECK(f["BW"].List(open)->certificates_size() == 1);

  // Corrected and re-sent once the importer's node takes it.
  f.Reconnect("EU");
  v1::Certificate corrected = rec->certificate();
  corrected.set_remarks("re-issued after the importer's refusal");
  absl::StatusOr<v1::CertificateRecord> again = f["BW"].Resend("BW-RF-1", corrected, "rs-1");
  REQUIRE(again.ok());
  CHECK(again->state() == v1::ISSUED);
  CHECK(f["BW"].Resend("BW-RF-1", corrected, "rs-1")->state() == v1::ISSUED);  // a retry
  f.Settle();
  CHECK(f.State("BW", "BW-RF-1") == v1::DELIVERED);
  CHECK(f.State("EU", "BW-RF-1") == v1::RECEIVED);
  CHECK(f["EU"].Get("BW-RF-1")->certificate().remarks() == corrected.remarks());
  // Only a refused certificate is re-sent.
  CHECK(f["BW"].Resend("BW-RF-1", std::nullopt).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(f["BW"].ledger().Verify().ok);
}

TEST_CASE("a refused certificate can be cancelled", "[node][refused]") {
  Federation f;
  RefusingPartner refusing;
  f.Route("EU", &refusing);
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-RF-2", "BW", "EU")).ok());
  f.Settle();
  REQUIRE(f.State("BW", "BW-RF-2") == v1::REFUSED);
  CHECK(f["BW"].Cancel("BW-RF-2", {v1::SHIPMENT_WITHDRAWN, "not shipped"}).ok());
  CHECK(f.State("BW", "BW-RF-2") == v1::CANCELLED);
  f.Reconnect("EU");
}

TEST_CASE("one partner cannot make a node store more than its hourly allowance", "[node][quota]") {
  Federation f;
  f.partner_mib_per_hour = 1;
  f.Stop("EU");
  f.Start("EU");
  // About 240 KiB each: four fit in 1 MiB, the fifth does not.
  auto large = [](const std::string& number) {
    v1::Certificate c = ValidCertificate(number, "BW", "EU");
    for (int i = 0; i < 15; ++i) {
      (*c.mutable_extensions())[absl::StrCat("annex-", i)] = std::string(16 * 1024 - 16, 'a');
    }
    return c;
  };
  for (int i = 1; i <= 4; ++i) {
    const std::string n = absl::StrCat("BW-Q-", i);
    REQUIRE(f["EU"].Receive("BW", {f.CertificateMessage("BW", "EU", large(n))})[0].status.ok());
  }
  const storage::Head full = f["EU"].ledger().head();
  const absl::Status s =
      f["EU"].Receive("BW", {f.CertificateMessage("BW", "EU", large("BW-Q-5"))})[0].status;
  CHECK(s.code() == absl::StatusCode::kResourceExhausted);  // the sender retries later
  CHECK(absl::StrContains(s.message(), "limits.partner_mib_per_hour"));
  CHECK(f["EU"].ledger().head().sequence == full.sequence);
  // Another partner keeps its own allowance.
  CHECK(f["EU"]
            .Receive("AE",
                     {f.CertificateMessage("AE", "EU", ValidCertificate("AE-Q-1", "AE", "EU"))})[0]
            .status.ok());
  // An hour on, BW's allowance is back.
  f.clock().Advance(absl::Hours(1));
  CHECK(f["EU"].Receive("BW", {f.CertificateMessage("BW", "EU", large("BW-Q-5"))})[0].status.ok());
}

TEST_CASE("a list page never grows past what a client can receive", "[node][list][bounds]") {
  Federation f;
  f.Disconnect("EU");  // the certificates stay ISSUED at BW; nothing else matters here
  // About 240 KiB each: 80 of them are 19 MiB, more than one page may hold.
  for (int i = 0; i < 80; ++i) {
    v1::Certificate c = ValidCertificate(absl::StrFormat("BW-PG-%03d", i), "BW", "EU");
    for (int k = 0; k < 15; ++k) {
      (*c.mutable_extensions())[absl::StrCat("annex-", k)] = std::string(16 * 1024 - 16, 'a');
    }
    REQUIRE(f["BW"].Submit(c).ok());
  }
  v1::ListCertificatesRequest req;
  req.set_page_size(500);
  int seen = 0;
  int pages = 0;
  do {
    absl::StatusOr<v1::ListCertificatesResponse> page = f["BW"].List(req);
    REQUIRE(page.ok());
    CHECK(page->ByteSizeLong() <= node::kMaxListPageBytes + (1 << 20));
    CHECK(page->certificates_size() > 0);
    seen += page->certificates_size();
    ++pages;
    req.set_page_token(page->next_page_token());
  } while (!req.page_token().empty());
  CHECK(seen == 80);
  CHECK(pages == 2);
}

}  // namespace
}  // namespace kpx

namespace kpx {
namespace {

// The PEER_LOG_INCONSISTENT entries in `ledger`.
std::vector<v1::LedgerEntry> Forks(storage::Ledger& ledger) {
  std::vector<v1::LedgerEntry> forks;
  std::vector<v1::LedgerEntry> entries = *ledger.ReadEntries(1, ledger.head().sequence);
  for (v1::LedgerEntry& e : entries) {
    if (e.kind() == v1::PEER_LOG_INCONSISTENT) forks.push_back(std::move(e));
  }
  return forks;
}

TEST_CASE("a Deliver exchange costs the receiver one signature, whatever its size",
          "[node][evidence]") {
  Federation f;
  for (int i = 1; i <= 5; ++i) {
    REQUIRE(f["BW"].Submit(ValidCertificate(absl::StrCat("BW-S-", i), "BW", "EU")).ok());
  }
  const uint64_t before = f["EU"].TreeHeadsSigned();
  CHECK(f["BW"].DeliverDue() == 5);  // one batch, one exchange
  CHECK(f["EU"].TreeHeadsSigned() == before + 1);
  std::set<std::string> leaves;
  std::string head;
  const std::vector<v1::LedgerEntry> entries = *f["BW"].ledger().ReadEntries(1, 100);
  for (const v1::LedgerEntry& e : entries) {
    if (e.kind() != v1::RECEIPT) continue;
    leaves.insert(e.proof().leaf());
    if (head.empty()) head = e.proof().tree_head().SerializeAsString();
    CHECK(e.proof().tree_head().SerializeAsString() == head);
  }
  CHECK(leaves.size() == 5);
  for (int i = 1; i <= 5; ++i) CHECK(f.State("BW", absl::StrCat("BW-S-", i)) == v1::DELIVERED);

  // A redelivery (a lost answer) is answered with the leaf stored the first
  // time, under the same head: nothing new to sign.
  v1::DeliverRequest again;
  *again.add_messages() = f["BW"].ledger().ReadEntries(kBootEntries + 1, 1)->front().message();
  v1::DeliverResponse r1 = f["EU"].Exchange("BW", again);
  v1::DeliverResponse r2 = f["EU"].Exchange("BW", again);
  REQUIRE(r1.results(0).code() == 0);
  CHECK(r2.results(0).leaf() == r1.results(0).leaf());
  absl::StatusOr<storage::LogLeaf> leaf = storage::DecodeLogLeaf(r1.results(0).leaf());
  REQUIRE(leaf.ok());
  CHECK(r1.results(0).leaf() == *f["EU"].ledger().Leaf(leaf->sequence));
  CHECK(leaf->message_digest == node::MessageDigest(again.messages(0)));
  CHECK(f["EU"].TreeHeadsSigned() == before + 1);
  CHECK(f["EU"].ledger().head().sequence == kBootEntries + 5);
}

TEST_CASE("a consistently rewritten ledger is caught by the peers it showed its log to",
          "[node][evidence]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-F-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-F-2", "BW", "EU")).ok());
  f.Settle();
  REQUIRE(f.State("BW", "BW-F-2") == v1::DELIVERED);
  REQUIRE(f["BW"].ledger().GetPeerLog("EU").value()->tree_size() == kBootEntries + 2);

  // EU's operator (or whoever can write its disk) rewrites its history:
  // the first certificate was never received. On its own the ledger
  // verifies.
  f.Stop("EU");
  absl::StatusOr<int> changed = testing::RewriteLedger(f.LedgerDir("EU"), [](v1::LedgerEntry& e) {
    if (e.sequence() != kBootEntries + 1) return false;
    e.set_detail("nothing arrived");
    return true;
  });
  REQUIRE(changed.ok());
  REQUIRE(*changed == 1);
  f.Start("EU");
  CHECK(f["EU"].ledger().Verify().ok);

  // BW's next delivery: EU's new head does not extend the one BW holds.
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-F-3", "BW", "EU")).ok());
  f.Settle();
  absl::StatusOr<std::optional<v1::PeerLog>> log = f["BW"].ledger().GetPeerLog("EU");
  REQUIRE(log.ok());
  REQUIRE(log->has_value());
  CHECK((*log)->inconsistent());
  CHECK((*log)->tree_size() == kBootEntries + 2);
  CHECK(absl::StrContains((*log)->problem(),
                          absl::StrCat("does not extend the one of ", kBootEntries + 2)));
  std::vector<v1::LedgerEntry> forks = Forks(f["BW"].ledger());
  REQUIRE(forks.size() == 1);
  CHECK(forks[0].partner() == "EU");
  // The evidence: two tree heads, both signed by EU, that cannot both be true.
  REQUIRE(forks[0].tree_heads_size() == 2);
  absl::StatusOr<node::SignedTree> before =
      node::CheckTreeHead(forks[0].tree_heads(0), "EU", f.trust(), f.clock().Now());
  absl::StatusOr<node::SignedTree> after =
      node::CheckTreeHead(forks[0].tree_heads(1), "EU", f.trust(), f.clock().Now());
  REQUIRE(before.ok());
  REQUIRE(after.ok());
  CHECK(before->size == kBootEntries + 2);
  CHECK(after->size == kBootEntries + 3);
  // Never silently accepted: the certificate is not DELIVERED, its message
  // stays queued, and the next exchange does not record the fork twice.
  CHECK(f.State("BW", "BW-F-3") == v1::ISSUED);
  CHECK(f["BW"].ledger().OutboxSize() == 1);
  f.clock().Advance(absl::Minutes(1));
  f.Settle();
  CHECK(Forks(f["BW"].ledger()).size() == 1);
  CHECK(f.State("BW", "BW-F-3") == v1::ISSUED);
  CHECK(f["BW"].ledger().Verify().ok);

  // AE never saw EU's old log, so EU's new one looks fine to it ...
  REQUIRE(f["AE"].Submit(ValidCertificate("AE-F-1", "AE", "EU")).ok());
  f.Settle();
  REQUIRE(f.State("AE", "AE-F-1") == v1::DELIVERED);
  CHECK_FALSE(f["AE"].ledger().GetPeerLog("EU").value()->inconsistent());
  // ... until BW passes on the head EU showed it, and AE asks EU to prove
  // that both are the same log.
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-F-4", "BW", "AE")).ok());
  f.Settle();
  CHECK(f["AE"].CheckGossip() == 1);
  log = f["AE"].ledger().GetPeerLog("EU");
  REQUIRE(log->has_value());
  CHECK((*log)->inconsistent());
  forks = Forks(f["AE"].ledger());
  REQUIRE(forks.size() == 1);
  CHECK(absl::StrContains(forks[0].detail(), "passed on by BW"));

  // Once the operators have settled it, BW's operator clears the mark: the
  // evidence stays, and EU's receipts count again from its next head.
  REQUIRE(f["BW"].ResetPeerLog("EU", "settled with EU's operator").ok());
  CHECK(f["BW"].ResetPeerLog("EU", "again").status().code() ==
        absl::StatusCode::kFailedPrecondition);
  f.clock().Advance(absl::Minutes(5));
  f.Settle();
  CHECK(f.State("BW", "BW-F-3") == v1::DELIVERED);
  CHECK_FALSE(f["BW"].ledger().GetPeerLog("EU").value()->inconsistent());
  CHECK(Forks(f["BW"].ledger()).size() == 1);
  const std::vector<v1::LedgerEntry> all =
      *f["BW"].ledger().ReadEntries(1, f["BW"].ledger().head().sequence);
  const auto reset = std::find_if(all.begin(), all.end(), [](const v1::LedgerEntry& e) {
    return e.kind() == v1::PEER_LOG_RESET;
  });
  REQUIRE(reset != all.end());
  CHECK(reset->detail() == "settled with EU's operator");
  CHECK(reset->tree_heads_size() == 2);
}

TEST_CASE("a passed-on tree head that conflicts with one held is a fork at once",
          "[node][evidence]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-G-1", "BW", "EU")).ok());
  f.Settle();
  const v1::PeerLog held = *f["BW"].ledger().GetPeerLog("EU").value();
  auto head_of_eu = [&](uint64_t size, const std::string& root) {
    return f.Signed("EU", "", node::TreeHeadBody(size, root));
  };

  SECTION("a consistent one of the same size changes nothing") {
    v1::DeliverRequest req;
    *req.add_tree_heads() = held.tree_head();
    f["BW"].Exchange("AE", req);
    CHECK(f["BW"].CheckGossip() == 0);
    CHECK_FALSE(f["BW"].ledger().GetPeerLog("EU").value()->inconsistent());
  }
  SECTION("two roots for one size, both signed by EU") {
    v1::DeliverRequest req;
    *req.add_tree_heads() = head_of_eu(held.tree_size(), std::string(32, 'x'));
    f["BW"].Exchange("AE", req);
    CHECK(f["BW"].ledger().GetPeerLog("EU").value()->inconsistent());
    REQUIRE(Forks(f["BW"].ledger()).size() == 1);
    CHECK(absl::StrContains(Forks(f["BW"].ledger())[0].detail(), "passed on by AE"));
  }
  SECTION("after a reset, passed-on heads are not compared until EU shows one") {
    v1::DeliverRequest req;
    *req.add_tree_heads() = head_of_eu(held.tree_size(), std::string(32, 'x'));
    f["BW"].Exchange("AE", req);
    REQUIRE(f["BW"].ledger().GetPeerLog("EU").value()->inconsistent());
    REQUIRE(f["BW"].ResetPeerLog("EU", "settled").ok());
    v1::DeliverRequest later;
    *later.add_tree_heads() = head_of_eu(held.tree_size() + 3, std::string(32, 'w'));
    *later.add_tree_heads() = head_of_eu(0, node::TreeHeadBody(0, "").tree_head().root_hash());
    f["BW"].Exchange("AE", later);
    CHECK(f["BW"].CheckGossip() == 0);
    CHECK_FALSE(f["BW"].ledger().GetPeerLog("EU").value()->inconsistent());
    CHECK(Forks(f["BW"].ledger()).size() == 1);
  }
  SECTION("a larger one EU cannot prove") {
    v1::DeliverRequest req;
    *req.add_tree_heads() = head_of_eu(held.tree_size() + 5, std::string(32, 'y'));
    f["BW"].Exchange("AE", req);
    CHECK_FALSE(f["BW"].ledger().GetPeerLog("EU").value()->inconsistent());
    CHECK(f["BW"].CheckGossip() == 1);
    CHECK(f["BW"].ledger().GetPeerLog("EU").value()->inconsistent());
  }
  SECTION("heads not signed by their Participant are ignored") {
    v1::DeliverRequest req;
    v1::SignedMessage forged = head_of_eu(held.tree_size(), std::string(32, 'z'));
    forged.mutable_signature()->back() ^= 1;
    *req.add_tree_heads() = forged;
    *req.add_tree_heads() = f.Signed("AE", "", node::TreeHeadBody(1, std::string(32, 'q')));
    f["BW"].Exchange("AE", req);
    CHECK(f["BW"].CheckGossip() == 0);
    CHECK_FALSE(f["BW"].ledger().GetPeerLog("EU").value()->inconsistent());
    CHECK(Forks(f["BW"].ledger()).empty());
  }
}

}  // namespace
}  // namespace kpx

namespace kpx {
namespace {

TEST_CASE("evidence bundles from both sides verify offline, and no altered byte does",
          "[node][evidence]") {
  Federation f;
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-E-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-E-2", "BW", "EU")).ok());
  f.Settle();
  REQUIRE(f["EU"].Confirm("BW-E-1", testing::AsDeclared(), absl::InfinitePast()).ok());
  f.Settle();
  REQUIRE(f.State("BW", "BW-E-1") == v1::CONFIRMED);

  for (const char* side : {"BW", "EU"}) {
    INFO("exported by " << side);
    absl::StatusOr<v1::EvidenceBundle> bundle = f[side].ExportEvidence("BW-E-1");
    REQUIRE(bundle.ok());
    const std::string bytes = bundle->SerializeAsString();
    node::EvidenceReport report = node::VerifyEvidence(bytes, nullptr);
    std::string all;
    for (const node::EvidenceCheck& c : report.checks)
      all += (c.ok ? "OK " : "FAIL ") + c.what + "\n";
    INFO(all);
    CHECK(report.ok);
    CHECK(report.certificate_number == "BW-E-1");
    // Three entries each side: BW SENT / RECEIPT / RECEIVED confirmation,
    // EU RECEIVED certificate / SENT confirmation / RECEIPT.
    CHECK(absl::StrContains(all, "3 entries"));
    const std::string other = std::string(side) == "BW" ? "EU" : "BW";
    CHECK(absl::StrContains(all, other + "'s log holds our message"));
    CHECK(absl::StrContains(all, "is in " + std::string(side) + "'s signed log"));
    CHECK_FALSE(absl::StrContains(all, "BW-E-2"));

    // Checked with the trust list the verifier trusts, it is the same.
    v1::TrustList trust;
    v1::EvidenceContent content;
    REQUIRE(content.ParseFromString(bundle->content()));
    REQUIRE(content.trust_lists_size() == 1);  // the bootstrap version, in force throughout
    CHECK(content.trust_lists(0).sequence() == kBootEntries);
    REQUIRE(trust.ParseFromString(content.trust_lists(0).signed_list().trust_list()));
    node::EvidenceReport anchored = node::VerifyEvidence(bytes, &trust);
    CHECK(anchored.ok);
    CHECK(std::any_of(anchored.checks.begin(), anchored.checks.end(), [](const auto& c) {
      return absl::StrContains(c.what, "the trust list given is the bundle's version 0");
    }));
    // With a trust list in which the exporter's key is another one: refused.
    v1::TrustList other_keys = trust;
    for (v1::Participant& p : *other_keys.mutable_participants()) {
      if (p.code() == side) {
        p.mutable_signing_keys(0)->set_public_key_pem(f.key("AE").public_key().ToPem());
        p.mutable_signing_keys(0)->set_key_id(f.key("AE").key_id());
        p.mutable_signing_keys(0)->set_algorithm(node::ToProtoAlgorithm(f.key("AE").algorithm()));
      }
    }
    CHECK_FALSE(node::VerifyEvidence(bytes, &other_keys).ok);

    // Every altered byte (a spread of ~300 positions) is refused.
    const size_t step = std::max<size_t>(1, bytes.size() / 300);
    int accepted = 0;
    for (size_t at = 0; at < bytes.size(); at += step) {
      std::string changed = bytes;
      changed[at] ^= 0x01;
      if (node::VerifyEvidence(changed, nullptr).ok) ++accepted;
    }
    CHECK(accepted == 0);
  }
  CHECK(f["BW"].ExportEvidence("BW-NONE").status().code() == absl::StatusCode::kNotFound);
}

// Publishers of a governed trust list, and versions they sign.
class Publishers {
 public:
  Publishers() {
    for (int i = 0; i < 3; ++i) {
      keys_.push_back(
          kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519)));
    }
  }
  // Makes `list` version 1, signed next by 2 of the 3.
  void Govern(v1::TrustList& list) const {
    list.set_version(1);
    list.set_threshold(2);
    for (size_t i = 0; i < keys_.size(); ++i) {
      v1::TrustListPublisher* p = list.add_publishers();
      p->set_name(absl::StrCat("publisher ", i + 1));
      p->set_key_id(keys_[i].key_id());
      p->set_algorithm(v1::ED25519);
      p->set_public_key_pem(keys_[i].public_key().ToPem());
    }
  }
  // `list` as published, signed by the first `signers` publishers.
  v1::SignedTrustList Sign(const v1::TrustList& list, int signers) const {
    v1::SignedTrustList s;
    s.set_trust_list(list.SerializeAsString());
    for (int i = 0; i < signers; ++i) s = kpx::testing::Must(node::SignTrustList(s, keys_[i]));
    return s;
  }

 private:
  std::vector<crypto::PrivateKey> keys_;
};

// A peer that answers GetTrustLists with whatever the test sets.
class TrustPeer : public node::Receiver {
 public:
  v1::DeliverResponse Exchange(const std::string&, const v1::DeliverRequest&) override {
    return {};
  }
  absl::StatusOr<v1::ConsistencyResponse> Consistency(const std::string&,
                                                      const v1::ConsistencyRequest&) override {
    return absl::UnavailableError("no");
  }
  absl::StatusOr<v1::GetTrustListsResponse> TrustLists(const std::string&,
                                                       const v1::GetTrustListsRequest&) override {
    return answer;
  }
  v1::GetTrustListsResponse answer;
};

TEST_CASE("a node takes the next trust-list version from a peer only if 2 of 3 signed it",
          "[node][trust]") {
  Publishers pubs;
  Federation f([&](v1::TrustList& t) { pubs.Govern(t); });
  v1::TrustList v2 = f["BW"].trust_list()->proto();
  v2.set_version(2);
  for (v1::Participant& p : *v2.mutable_participants()) {
    if (p.code() == "AE") p.set_status(v1::SUSPENDED);
  }
  TrustPeer peer;
  f.Route("AE", &peer);
  const uint64_t head = f["BW"].ledger().head().sequence;

  SECTION("one signature of three is refused, reported and changes nothing") {
    *peer.answer.add_versions() = pubs.Sign(v2, 1);
    CHECK(f["BW"].PollTrustLists() == 0);
    CHECK(f["BW"].trust_list()->version() == 1);
    CHECK(f["BW"].ledger().head().sequence == head);
    v1::ListTrustListsResponse listed = kpx::testing::Must(f["BW"].ListTrustLists());
    CHECK(listed.versions_size() == 1);
    CHECK(absl::StrContains(listed.last_refused(), "version 2 from AE"));
    CHECK(absl::StrContains(listed.last_refused(), "signed by 1 of the 2 publishers"));
  }
  SECTION("a changed byte after signing is refused") {
    v1::SignedTrustList s = pubs.Sign(v2, 2);
    std::string bytes = s.trust_list();
    bytes[bytes.size() / 2] ^= 0x01;
    s.set_trust_list(bytes);
    *peer.answer.add_versions() = s;
    CHECK(f["BW"].PollTrustLists() == 0);
    CHECK(f["BW"].trust_list()->version() == 1);
    CHECK(f["BW"].ledger().head().sequence == head);
  }
  SECTION("a version that skips one is refused") {
    v1::TrustList v3 = v2;
    v3.set_version(3);
    *peer.answer.add_versions() = pubs.Sign(v3, 3);
    CHECK(f["BW"].PollTrustLists() == 0);
    CHECK(absl::StrContains(kpx::testing::Must(f["BW"].ListTrustLists()).last_refused(),
                            "does not follow version 1"));
  }
  SECTION("two signatures of three put it in force, recorded, and it spreads") {
    REQUIRE(f["BW"].Submit(ValidCertificate("BW-TL-0", "BW", "EU")).ok());
    f.Settle();
    REQUIRE(f.State("BW", "BW-TL-0") == v1::DELIVERED);
    const uint64_t before_poll = f["BW"].ledger().head().sequence;
    *peer.answer.add_versions() = pubs.Sign(v2, 2);
    CHECK(f["BW"].PollTrustLists() == 1);
    CHECK(f["BW"].trust_list()->version() == 2);
    CHECK(f["BW"].trust_list()->CheckActive("AE", f.clock().Now()).code() ==
          absl::StatusCode::kPermissionDenied);
    std::vector<v1::LedgerEntry> last =
        kpx::testing::Must(f["BW"].ledger().ReadEntries(before_poll + 1, 1));
    REQUIRE(last.size() == 1);
    CHECK(last[0].kind() == v1::TRUST_LIST_INSTALLED);
    CHECK(absl::StrContains(last[0].detail(), "from peer AE"));
    // EU fetches it from BW (its AE peer is the test's, now silent).
    peer.answer.clear_versions();
    CHECK(f["EU"].PollTrustLists() == 1);
    CHECK(f["EU"].trust_list()->version() == 2);
    CHECK(f["EU"].trust_list()->digest() == f["BW"].trust_list()->digest());
    // A certificate for the suspended Participant is refused at submit.
    CHECK(f["BW"].Submit(ValidCertificate("BW-TL-1", "BW", "AE")).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    // The operator's older file does not take the node back; an unsigned
    // newer one is refused.
    CHECK(f["BW"]
              .Reconfigure(kpx::testing::Must(node::TrustList::FromProto(f.trust().proto())),
                           {f.key("BW")})
              .ok());
    CHECK(f["BW"].trust_list()->version() == 2);
    v1::TrustList v3 = v2;
    v3.set_version(3);
    absl::Status s =
        f["BW"].Reconfigure(kpx::testing::Must(node::TrustList::FromProto(v3)), {f.key("BW")});
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StrContains(s.message(), "signed by 0 of the 2"));
    CHECK(f["BW"].trust_list()->version() == 2);
    CHECK(f["BW"].ledger().Verify().ok);
    // Evidence spanning the change carries both versions and checks the
    // second with the publishers of the first.
    REQUIRE(f["EU"].Confirm("BW-TL-0", testing::AsDeclared(), absl::InfinitePast()).ok());
    f.Settle();
    REQUIRE(f.State("BW", "BW-TL-0") == v1::CONFIRMED);
    const std::string bytes =
        kpx::testing::Must(f["BW"].ExportEvidence("BW-TL-0")).SerializeAsString();
    node::EvidenceReport report = node::VerifyEvidence(bytes, nullptr);
    std::string all;
    for (const node::EvidenceCheck& c : report.checks) all += c.what + "\n";
    INFO(all);
    CHECK(report.ok);
    CHECK(absl::StrContains(all, "the trust list loads (versions 1, 2)"));
    CHECK(absl::StrContains(all, "trust-list version 2 is signed by the publishers of version 1"));
  }
}

TEST_CASE("a trust-list record its ledger entry does not back stops the node from starting",
          "[node][trust]") {
  Federation f;
  f.Stop("EU");
  {
    // Whoever can write the data folder puts a list of their own in force,
    // beside an entry that is no TRUST_LIST_INSTALLED one.
    auto ledger = kpx::testing::Must(storage::Ledger::Open(f.LedgerDir("EU")));
    v1::TrustList forged = f.trust().proto();
    forged.set_version(99);
    storage::Transition t;
    t.entry.set_kind(v1::STATE_CHANGE);
    t.entry.set_detail("nothing to see");
    v1::TrustListRecord record;
    record.set_version(99);
    record.mutable_signed_list()->set_trust_list(forged.SerializeAsString());
    t.trust_list = record;
    REQUIRE(ledger->Append(std::move(t)).ok());
  }
  CHECK_THROWS_WITH(f.Start("EU"), Catch::Contains("is not the one ledger entry"));
}

TEST_CASE("onboarding controls on the trust list are enforced at submit and on receipt",
          "[node][trust]") {
  const absl::Time later = absl::Now() + absl::Hours(24 * 30);
  Federation f([&](v1::TrustList& t) {
    for (v1::Participant& p : *t.mutable_participants()) {
      if (p.code() == "AE") *p.mutable_onboarding()->mutable_live_from() = node::ToTimestamp(later);
      if (p.code() == "EU") {
        p.mutable_onboarding()->add_accepted_types(v1::STANDARD);
        p.mutable_onboarding()->set_paper_in_parallel(true);
      }
    }
  });
  absl::StatusOr<v1::CertificateRecord> r = f["BW"].Submit(ValidCertificate("BW-OB-1", "BW", "AE"));
  CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(r.status().message(), "AE is live on kpx only from"));
  r = f["BW"].Submit(ValidCertificate("BW-OB-2", "BW", "EU"));
  REQUIRE(r.ok());
  CHECK(r->paper_in_parallel());
  f.Settle();
  REQUIRE(f.State("EU", "BW-OB-2") == v1::RECEIVED);
  CHECK(kpx::testing::Must(f["EU"].Get("BW-OB-2")).paper_in_parallel());
  // A type the importer does not accept yet, as a peer would send it.
  v1::Certificate technical = ValidCertificate("BW-OB-3", "BW", "EU");
  technical.set_type(v1::TECHNICAL);
  std::vector<node::ReceiveOutcome> out =
      f["EU"].Receive("BW", {f.CertificateMessage("BW", "EU", technical)});
  REQUIRE(out.size() == 1);
  CHECK_FALSE(out[0].status.ok());
  CHECK(absl::StrContains(out[0].status.message(), "does not accept TECHNICAL"));
}

// Entries of `ledger` of `kind` (about `message_id`, if given).
std::vector<v1::LedgerEntry> EntriesOf(storage::Ledger& ledger, v1::EntryKind kind,
                                       const std::string& message_id = "") {
  std::vector<v1::LedgerEntry> out;
  for (const v1::LedgerEntry& e :
       kpx::testing::Must(ledger.ReadEntries(1, ledger.head().sequence))) {
    if (e.kind() == kind && (message_id.empty() || e.message_id() == message_id)) out.push_back(e);
  }
  return out;
}

TEST_CASE("a revoked key's queued messages are signed again and delivered", "[node][trust][keys]") {
  Publishers pubs;
  Federation f([&](v1::TrustList& t) { pubs.Govern(t); });
  // BW's node also holds its next key, not yet on the list.
  const crypto::PrivateKey next =
      kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEcdsaP256));
  f.spare_keys["BW"] = {next};
  f.Stop("BW");
  f.Start("BW");
  const std::string old_key = f.key("BW").key_id();

  // EU is away: a certificate with its cancellation held behind it, and a
  // second certificate, wait in BW's outbox under the old key.
  f.Disconnect("EU");
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-RK-1", "BW", "EU")).ok());
  REQUIRE(f["BW"].Cancel("BW-RK-1", {v1::SHIPMENT_WITHDRAWN, "withdrawn"}).ok());
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-RK-2", "BW", "EU")).ok());
  f.Settle();
  std::vector<v1::OutboxItem> queued = kpx::testing::Must(f["BW"].ledger().ListOutbox("", 10));
  REQUIRE(queued.size() == 3);
  for (const v1::OutboxItem& item : queued) CHECK(item.message().key_id() == old_key);
  // EU did store BW-RK-2's certificate, but BW never heard back.
  const v1::OutboxItem* rk2 = nullptr;
  std::string rk1_id;  // BW-RK-1's certificate message
  for (const v1::OutboxItem& item : queued) {
    if (item.certificate_number() == "BW-RK-2") rk2 = &item;
    if (item.certificate_number() == "BW-RK-1" && !item.held()) rk1_id = item.message_id();
  }
  REQUIRE(rk2 != nullptr);
  REQUIRE(f["EU"].Receive("BW", {rk2->message()})[0].status.ok());
  const std::string rk2_id = rk2->message_id();

  // Version 2 revokes BW's old key from before those messages were made
  // and lists the next one. EU has it first.
  v1::TrustList v2 = f["EU"].trust_list()->proto();
  v2.set_version(2);
  for (v1::Participant& p : *v2.mutable_participants()) {
    if (p.code() != "BW") continue;
    *p.mutable_signing_keys(0)->mutable_revoked_at() =
        node::ToTimestamp(f.clock().Now() - absl::Minutes(1));
    testing::ListSigningKey(p, next);
  }
  REQUIRE(f["EU"].PublishTrustList(pubs.Sign(v2, 2)).ok());
  f.Reconnect("EU");
  f.clock().Advance(absl::Seconds(10));
  f.Settle();
  // Refused, and it would be for ever: EU no longer trusts the old key.
  CHECK(f.State("EU", "BW-RK-1") == v1::CERTIFICATE_STATE_UNSPECIFIED);
  CHECK(f.State("BW", "BW-RK-2") == v1::ISSUED);
  queued = kpx::testing::Must(f["BW"].ledger().ListOutbox("", 10));
  REQUIRE(queued.size() == 3);
  for (const v1::OutboxItem& item : queued) {
    if (!item.held()) CHECK(absl::StrContains(item.last_error(), "is revoked from"));
  }

  // BW takes version 2 from EU and signs its queue again with the next key.
  CHECK(f["BW"].PollTrustLists() == 1);
  CHECK(kpx::testing::Must(f["BW"].CurrentKeyId()) == next.key_id());
  CHECK(kpx::testing::Must(f["BW"].ResignWithdrawn()) == 3);
  CHECK(kpx::testing::Must(f["BW"].ResignWithdrawn()) == 0);
  CHECK(f["BW"].MessagesResigned() == 3);
  std::vector<v1::LedgerEntry> resigned = EntriesOf(f["BW"].ledger(), v1::RESIGNED);
  REQUIRE(resigned.size() == 3);
  for (const v1::LedgerEntry& e : resigned) {
    CHECK(e.message().key_id() == next.key_id());
    CHECK(absl::StrContains(e.detail(), "is revoked from"));
  }

  f.clock().Advance(absl::Seconds(10));
  f.Settle();
  CHECK(f["BW"].ledger().OutboxSize() == 0);
  CHECK(f.State("EU", "BW-RK-1") == v1::CANCELLED);
  CHECK(f.State("BW", "BW-RK-2") == v1::DELIVERED);
  CHECK(f.State("EU", "BW-RK-2") == v1::RECEIVED);
  // What EU stored before is what counts: stored once, same digest.
  CHECK(EntriesOf(f["EU"].ledger(), v1::RECEIVED_MESSAGE, rk2_id).size() == 1);
  CHECK(kpx::testing::Must(f["EU"].Get("BW-RK-2")).certificate_digest() ==
        kpx::testing::Must(f["BW"].Get("BW-RK-2")).certificate_digest());
  std::vector<v1::LedgerEntry> received = EntriesOf(f["EU"].ledger(), v1::RECEIVED_MESSAGE, rk1_id);
  REQUIRE(received.size() == 1);
  CHECK(received[0].message().key_id() == next.key_id());

  // The importer confirms against the digest it holds; the exporter agrees.
  REQUIRE(f["EU"].Confirm("BW-RK-2", testing::AsDeclared(), absl::InfinitePast()).ok());
  f.Settle();
  CHECK(f.State("BW", "BW-RK-2") == v1::CONFIRMED);
  CHECK(f["BW"].ledger().Verify().ok);
  CHECK(f["EU"].ledger().Verify().ok);

  // Evidence on both sides, across both keys and both versions.
  for (const char* side : {"BW", "EU"}) {
    for (const char* number : {"BW-RK-1", "BW-RK-2"}) {
      const std::string bytes =
          kpx::testing::Must(f[side].ExportEvidence(number)).SerializeAsString();
      node::EvidenceReport report = node::VerifyEvidence(bytes, nullptr);
      std::string all;
      for (const node::EvidenceCheck& c : report.checks) all += c.what + "\n";
      INFO(side << " " << number << "\n" << all);
      CHECK(report.ok);
      if (std::string(side) == "BW") CHECK(absl::StrContains(all, "signed again, unchanged"));
    }
  }
  // What BW signs from now on carries the next key.
  REQUIRE(f["BW"].Submit(ValidCertificate("BW-RK-3", "BW", "EU")).ok());
  f.Settle();
  CHECK(f.State("EU", "BW-RK-3") == v1::RECEIVED);
  CHECK(EntriesOf(f["BW"].ledger(), v1::RESIGNED).size() == 3);
}

}  // namespace
}  // namespace kpx
