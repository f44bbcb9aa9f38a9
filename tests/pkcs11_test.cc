// Signing keys kept in a PKCS#11 token: a SoftHSM2 token is made at test
// time (tests/softhsm.h), key pairs are generated inside it, loaded by
// PKCS#11 URI and used to sign; then a federation runs with BW's signing
// key in the token.
#include "crypto/pkcs11.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "crypto/crypto.h"
#include "federation.h"
#include "gateway/check_config.h"
#include "google/protobuf/text_format.h"
#include "softhsm.h"

namespace kpx {
namespace {

using absl::StatusCode;
using crypto::Algorithm;
using crypto::PrivateKey;
using crypto::PublicKey;
using testing::SoftHsmToken;

std::string Module() { return testing::kSoftHsmModule; }

// A URI for `object` in the test token with the given query part.
std::string UriWith(const std::string& object, const std::string& query) {
  return absl::StrCat("pkcs11:token=", SoftHsmToken::kLabel, ";object=", object, "?", query);
}

TEST_CASE("Ed25519 and P-256 keys in a SoftHSM2 token sign as file keys do", "[pkcs11]") {
  SoftHsmToken token;
  token.Generate(Algorithm::kEd25519, "ed", "\x01");
  token.Generate(Algorithm::kEcdsaP256, "ec", "\x02");
  const std::pair<const char*, Algorithm> keys[] = {{"ed", Algorithm::kEd25519},
                                                    {"ec", Algorithm::kEcdsaP256}};
  for (const auto& [label, algorithm] : keys) {
    INFO(label);
    absl::StatusOr<PrivateKey> key = PrivateKey::FromPkcs11Uri(token.Uri(label));
    INFO(key.status());
    REQUIRE(key.ok());
    CHECK(key->algorithm() == algorithm);
    CHECK(key->in_token());
    CHECK(key->ToPem().empty());  // the secret never leaves the token
    // The public key goes on the trust list as PEM; the peer verifies with
    // what it reads back from there.
    absl::StatusOr<PublicKey> listed = PublicKey::FromPem(key->public_key().ToPem());
    REQUIRE(listed.ok());
    CHECK(listed->key_id() == key->key_id());
    CHECK(key->key_id().size() == 64);
    absl::StatusOr<std::string> sig = key->Sign("certificate bytes");
    REQUIRE(sig.ok());
    if (algorithm == Algorithm::kEd25519) {
      CHECK(sig->size() == 64);
    } else {
      CHECK(static_cast<unsigned char>((*sig)[0]) == 0x30);  // DER, as a file key signs
    }
    CHECK(listed->Verify("certificate bytes", *sig).ok());
    CHECK(listed->Verify("certificate bytez", *sig).code() == StatusCode::kUnauthenticated);

    // Load (what the node calls) takes the URI as it takes a file name.
    absl::StatusOr<PrivateKey> again = PrivateKey::Load(token.Uri(label));
    REQUIRE(again.ok());
    CHECK(again->key_id() == key->key_id());

    // Several threads share the key's one session.
    std::vector<std::thread> threads;
    std::vector<int> bad(4, 0);
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 25; ++i) {
          const std::string data = absl::StrCat("thread ", t, " message ", i);
          absl::StatusOr<std::string> s = key->Sign(data);
          if (!s.ok() || !listed->Verify(data, *s).ok()) ++bad[t];
        }
      });
    }
    for (std::thread& th : threads) th.join();
    for (int b : bad) CHECK(b == 0);
  }
  // By id instead of label, and with the PIN in the URI.
  absl::StatusOr<PrivateKey> by_id = PrivateKey::FromPkcs11Uri(absl::StrCat(
      "pkcs11:token=kpx-test;id=%02;type=private?module-path=", Module(), "&pin-value=1234"));
  INFO(by_id.status());
  REQUIRE(by_id.ok());
  CHECK(by_id->algorithm() == Algorithm::kEcdsaP256);
}

TEST_CASE("a wrong PIN, a missing key or token, a bad module are clear errors", "[pkcs11]") {
  SoftHsmToken token;
  token.Generate(Algorithm::kEd25519, "ed", "\x01");
  // Two key pairs spliced: the private key of one under the label of the
  // other's public key. Loading it must fail, not name the wrong key.
  token.Generate(Algorithm::kEd25519, "spliced", "\x03", "spliced-own-public");
  token.Generate(Algorithm::kEd25519, "other", "\x04", "spliced");

  std::ofstream(token.dir() + "/wrong.pin") << "9999\n";
  absl::Status s = PrivateKey::FromPkcs11Uri(
                       UriWith("ed", absl::StrCat("module-path=", Module(),
                                                  "&pin-source=", token.dir(), "/wrong.pin")))
                       .status();
  CHECK(s.code() == StatusCode::kPermissionDenied);
  CHECK(absl::StrContains(s.message(), "CKR_PIN_INCORRECT"));
  CHECK(absl::StrContains(s.message(), "kpx-test"));

  s = PrivateKey::FromPkcs11Uri(token.Uri("nope")).status();
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK(absl::StrContains(s.message(), "no private key 'nope' in token 'kpx-test'"));

  s = PrivateKey::FromPkcs11Uri(
          absl::StrCat("pkcs11:token=other;object=ed?module-path=", Module(), "&pin-value=1234"))
          .status();
  CHECK(s.code() == StatusCode::kNotFound);
  CHECK(absl::StrContains(s.message(), "no token labelled 'other'"));

  s = PrivateKey::FromPkcs11Uri(UriWith("ed", "module-path=/nonexistent/p11.so&pin-value=1234"))
          .status();
  CHECK(s.code() == StatusCode::kUnavailable);
  CHECK(absl::StrContains(s.message(), "/nonexistent/p11.so cannot be loaded"));

  s = PrivateKey::FromPkcs11Uri(token.Uri("spliced")).status();
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(s.message(), "public key object does not match its private key"));

  // Once the wrong tries are over, the right PIN still works.
  CHECK(PrivateKey::FromPkcs11Uri(token.Uri("ed")).ok());
}

TEST_CASE("PKCS#11 URIs are checked strictly and PINs kept out of messages", "[pkcs11]") {
  const std::string m = "module-path=" + Module();
  const std::pair<std::string, std::string> bad[] = {
      {"pkcs11:object=k?" + m + "&pin-value=1", "token= is required"},
      {"pkcs11:token=t?" + m + "&pin-value=1", "object= or id= is required"},
      {"pkcs11:token=t;object=k?pin-value=1", "module-path= is required"},
      {"pkcs11:token=t;object=k?module-path=lib.so&pin-value=1", "must be an absolute path"},
      {"pkcs11:token=t;object=k?" + m, "exactly one of pin-source= or pin-value="},
      {"pkcs11:token=t;object=k?" + m + "&pin-value=1&pin-source=/p", "exactly one of"},
      {"pkcs11:token=t;object=k?" + m + "&pin-source=pin.txt", "must be an absolute path"},
      {"pkcs11:token=t;objekt=k?" + m + "&pin-value=1", "unsupported path attribute 'objekt'"},
      {"pkcs11:token=t;object=k?" + m + "&pin-valeu=1", "unsupported query attribute"},
      {"pkcs11:token=t;token=u;object=k?" + m + "&pin-value=1", "given twice"},
      {"pkcs11:token=t;object=k%2?" + m + "&pin-value=1", "bad percent-encoding"},
      {"pkcs11:token=t;object=k;type=public?" + m + "&pin-value=1", "type must be 'private'"},
      {"pkcs11:token=t%0a;object=k?" + m + "&pin-value=1", "control character"},
  };
  for (const auto& [uri, why] : bad) {
    INFO(uri);
    absl::Status s = PrivateKey::FromPkcs11Uri(uri).status();
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(s.message(), why));
  }
  absl::StatusOr<crypto::Pkcs11Uri> ok = crypto::ParsePkcs11Uri(
      "pkcs11:token=My%20Token;id=%01%ff?" + m + "&pin-source=file:/etc/kpx/pin");
  REQUIRE(ok.ok());
  CHECK(ok->token == "My Token");
  CHECK(ok->id == std::string("\x01\xff", 2));
  CHECK(ok->pin_source == "/etc/kpx/pin");

  // A PIN given in the URI never appears in an error.
  const std::string uri = "pkcs11:token=t;object=k?module-path=/nonexistent.so&pin-value=s3cret";
  CHECK(crypto::RedactPkcs11Uri(uri) ==
        "pkcs11:token=t;object=k?module-path=/nonexistent.so&pin-value=***");
  absl::Status s = PrivateKey::Load(uri).status();
  CHECK(s.code() == StatusCode::kUnavailable);
  CHECK(absl::StartsWith(s.message(), "pkcs11:token=t;object=k?"));
  CHECK_FALSE(absl::StrContains(s.message(), "s3cret"));
  CHECK(crypto::RedactPkcs11Uri("/etc/kpx/signing.key") == "/etc/kpx/signing.key");
}

// ------------------------------------------------------------- federation

v1::TrustList ReadTrustList(const std::string& path) {
  v1::TrustList t;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(testing::Must(crypto::ReadFile(path)), &t));
  return t;
}

void WriteTrustList(const std::string& path, const v1::TrustList& t) {
  std::string text;
  REQUIRE(google::protobuf::TextFormat::PrintToString(t, &text));
  std::ofstream(path, std::ios::trunc) << text;
}

// Points `code`'s signing_key_file at `location` in its node.textpb.
void SetSigningKey(testing::GrpcFederation& fed, const std::string& code,
                   const std::string& location) {
  const std::string path = fed.ConfigPath(code);
  std::string text = testing::Must(crypto::ReadFile(path));
  const std::string file_line = "signing_key_file: \"signing.key\"";
  REQUIRE(absl::StrContains(text, file_line));
  absl::StrReplaceAll({{file_line, absl::StrCat("signing_key_file: \"", location, "\"")}}, &text);
  std::ofstream(path, std::ios::trunc) << text;
}

grpc::Status Submit(testing::GrpcFederation& fed, const v1::Certificate& c) {
  auto stub = fed.Authority("BW", "exporter");
  grpc::ClientContext ctx;
  v1::SubmitCertificateRequest req;
  *req.mutable_certificate() = c;
  v1::CertificateRecord rec;
  return stub->SubmitCertificate(&ctx, req, &rec);
}

grpc::Status Confirm(testing::GrpcFederation& fed, const std::string& number) {
  auto stub = fed.Authority("EU", "importer");
  grpc::ClientContext ctx;
  v1::ConfirmReceiptRequest req;
  req.mutable_findings()->set_as_declared(true);
  req.set_number(number);
  v1::CertificateRecord rec;
  return stub->ConfirmReceipt(&ctx, req, &rec);
}

TEST_CASE("a federation runs with BW's signing key in SoftHSM2", "[pkcs11][grpc]") {
  SoftHsmToken token;
  for (Algorithm a : {Algorithm::kEd25519, Algorithm::kEcdsaP256}) {
    DYNAMIC_SECTION(crypto::AlgorithmName(a)) {
      const std::string label = "bw-signing-" + std::string(crypto::AlgorithmName(a));
      token.Generate(a, label, label);
      testing::GrpcFederation fed({"BW", "EU"});
      // Enrolment: `kpxd key-info URI` prints the trust-list entry of the
      // key in the token; it replaces BW's file key on the trust list.
      const testing::Output info =
          testing::Capture(absl::StrCat(testing::KpxdPath(), " key-info '", token.Uri(label), "'"));
      INFO(info.out);
      REQUIRE(info.exit_code == 0);
      v1::Participant printed;
      REQUIRE(google::protobuf::TextFormat::ParseFromString(info.out, &printed));
      REQUIRE(printed.signing_keys_size() == 1);
      const std::string key_id = printed.signing_keys(0).key_id();
      CHECK(key_id == testing::Must(PrivateKey::Load(token.Uri(label))).key_id());
      CHECK(printed.signing_keys(0).algorithm() ==
            (a == Algorithm::kEd25519 ? v1::ED25519 : v1::ECDSA_P256_SHA256));
      const std::string list_path = fed.dir() + "/trust-list.textpb";
      v1::TrustList list = ReadTrustList(list_path);
      for (v1::Participant& p : *list.mutable_participants()) {
        if (p.code() != "BW") continue;
        REQUIRE(p.signing_keys_size() == 1);
        *p.mutable_signing_keys(0) = printed.signing_keys(0);
      }
      WriteTrustList(list_path, list);
      SetSigningKey(fed, "BW", token.Uri(label));
      std::filesystem::remove(fed.dir() + "/BW/signing.key");  // only the token signs

      // kpxd check-config accepts the URI (it opens the token and signs).
      const std::vector<std::string> problems =
          gateway::CheckConfig(fed.ConfigPath("BW"), absl::Now());
      for (const std::string& p : problems) INFO(p);
      CHECK(problems.empty());

      fed.StartInProcess("BW");
      fed.StartInProcess("EU");
      CHECK(*fed.server("BW").node().CurrentKeyId() == key_id);
      REQUIRE(Submit(fed, testing::ValidCertificate("BW-HSM-1", "BW", "EU")).ok());
      REQUIRE(fed.WaitForState("EU", "BW-HSM-1", v1::RECEIVED));
      REQUIRE(Confirm(fed, "BW-HSM-1").ok());
      REQUIRE(fed.WaitForState("BW", "BW-HSM-1", v1::CONFIRMED));
      // EU stored the certificate as signed by the key in the token.
      bool signed_by_token = false;
      const std::vector<v1::LedgerEntry> entries =
          testing::Must(fed.server("EU").node().ledger().ReadEntries(1, 10));
      for (const v1::LedgerEntry& e : entries) {
        if (e.certificate_number() == "BW-HSM-1" && e.message().key_id() == key_id) {
          signed_by_token = true;
        }
      }
      CHECK(signed_by_token);
      CHECK(fed.server("BW").node().ledger().Verify().ok);
      CHECK(fed.server("EU").node().ledger().Verify().ok);
    }
  }
}

}  // namespace
}  // namespace kpx
