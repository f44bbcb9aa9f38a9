// Tests that run the shipped programs as real processes: kpxd killed and
// restarted mid-delivery, clean stops, and kpxctl's commands and errors.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "crypto/crypto.h"
#include "federation.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "node/util.h"

namespace kpx {
namespace {

using testing::GrpcFederation;
using testing::ValidCertificate;

using testing::Capture;
using testing::Output;

std::vector<v1::LedgerEntry> Export(GrpcFederation& fed, const std::string& code) {
  auto stub = fed.Authority(code, "auditor");
  grpc::ClientContext ctx;
  auto reader = stub->ExportLedger(&ctx, {});
  std::vector<v1::LedgerEntry> out;
  v1::LedgerEntry e;
  while (reader->Read(&e)) out.push_back(e);
  REQUIRE(reader->Finish().ok());
  return out;
}

TEST_CASE("nodes killed mid-delivery lose and duplicate nothing", "[process][crash]") {
  GrpcFederation fed({"BW", "EU"});
  // Retry often, so the test does not wait out a production backoff.
  fed.AppendConfig("BW", "delivery { initial_backoff_ms: 100 max_backoff_ms: 500 }");
  fed.StartProcess("BW");
  fed.StartProcess("EU");
  auto bw = fed.Authority("BW", "exporter");
  constexpr int kCount = 60;
  std::vector<std::string> numbers;
  for (int i = 0; i < kCount; ++i) {
    numbers.push_back(absl::StrCat("BW-K-", i));
    if (i == kCount / 3) fed.KillProcess("EU", /*crash=*/true);  // receiver dies mid-stream
    grpc::ClientContext ctx;
    v1::SubmitCertificateRequest req;
    *req.mutable_certificate() = ValidCertificate(numbers.back(), "BW", "EU");
    v1::CertificateRecord rec;
    REQUIRE(bw->SubmitCertificate(&ctx, req, &rec).ok());
  }
  // The sender dies too, with messages still in its outbox.
  fed.KillProcess("BW", /*crash=*/true);
  fed.StartProcess("EU");
  fed.StartProcess("BW");
  for (const std::string& n : numbers) REQUIRE(fed.WaitForState("BW", n, v1::DELIVERED));
  REQUIRE(fed.WaitForState("EU", numbers.back(), v1::RECEIVED));

  // Every certificate is stored exactly once on each side.
  std::multiset<std::string> received, sent, receipts;
  for (const v1::LedgerEntry& e : Export(fed, "EU")) {
    if (e.kind() == v1::RECEIVED_MESSAGE) received.insert(e.certificate_number());
  }
  for (const v1::LedgerEntry& e : Export(fed, "BW")) {
    if (e.kind() == v1::SENT) sent.insert(e.certificate_number());
    if (e.kind() == v1::RECEIPT) receipts.insert(e.certificate_number());
  }
  const std::multiset<std::string> expected(numbers.begin(), numbers.end());
  CHECK(received == expected);
  CHECK(sent == expected);
  CHECK(receipts == expected);

  for (const char* code : {"BW", "EU"}) {
    auto auditor = fed.Authority(code, "auditor");
    grpc::ClientContext ctx;
    v1::VerifyLedgerResponse resp;
    REQUIRE(auditor->VerifyLedger(&ctx, {}, &resp).ok());
    CHECK(resp.ok());
  }
  // A clean stop exits 0 (KillProcess waits for it).
  fed.KillProcess("BW", /*crash=*/false);
}

TEST_CASE("kpxctl drives a node and reports failures in one line", "[process][kpxctl]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartProcess("BW");
  fed.StartProcess("EU");
  const std::string kpxctl = testing::KpxctlPath();
  const std::string exporter = fed.KpxctlEnv("BW", "exporter") + " " + kpxctl;
  const std::string auditor = fed.KpxctlEnv("BW", "auditor") + " " + kpxctl;
  const std::string importer = fed.KpxctlEnv("EU", "importer") + " " + kpxctl;

  std::string json;
  REQUIRE(
      google::protobuf::util::MessageToJsonString(ValidCertificate("BW-CLI-1", "BW", "EU"), &json)
          .ok());
  const std::string file = fed.dir() + "/cert.json";
  std::ofstream(file) << json;

  Output o = Capture(exporter + " cert submit " + file);
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("submitted BW-CLI-1") != std::string::npos);
  REQUIRE(fed.WaitForState("EU", "BW-CLI-1", v1::RECEIVED));
  o = Capture(importer + " cert confirm BW-CLI-1 --as-declared");
  CHECK(o.exit_code == 0);
  REQUIRE(fed.WaitForState("BW", "BW-CLI-1", v1::CONFIRMED));

  o = Capture(exporter + " cert get BW-CLI-1");
  CHECK(o.exit_code == 0);
  const size_t issued = o.out.find("ISSUED"), delivered = o.out.find("DELIVERED"),
               confirmed = o.out.find("CONFIRMED", o.out.find("journey"));
  CHECK(issued != std::string::npos);
  CHECK(delivered > issued);
  CHECK(confirmed > delivered);
  CHECK(confirmed != std::string::npos);

  o = Capture(auditor + " ledger verify");
  CHECK(o.exit_code == 0);
  CHECK(o.out.rfind(absl::StrCat("ledger OK: ", kpx::testing::kBootEntries + 3, " entries"), 0) ==
        0);
  o = Capture(auditor + " ledger export");
  CHECK(o.exit_code == 0);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == kpx::testing::kBootEntries + 3);
  o = Capture(auditor + " cert list --state CONFIRMED");
  CHECK(o.out.find("BW-CLI-1") != std::string::npos);

  // Failures: one line, non-zero.
  for (const std::string& cmd :
       {exporter + " cert get BW-NOPE", exporter + " ledger verify",
        exporter + " cert submit /nonexistent", importer + " cert reject BW-CLI-1 --reason late",
        exporter + " frobnicate", exporter + " cert cancel BW-CLI-1"}) {
    o = Capture(cmd);
    INFO(cmd << "\n" << o.out);
    CHECK(o.exit_code != 0);
    CHECK(std::count(o.out.begin(), o.out.end(), '\n') <= 1);
    CHECK(o.out.rfind("kpxctl: ", 0) == 0);
  }
  o = Capture(exporter + " cert get BW-NOPE");
  CHECK(o.out.find("NOT_FOUND") != std::string::npos);
  o = Capture(exporter + " ledger verify");
  CHECK(o.out.find("PERMISSION_DENIED") != std::string::npos);
}

// `c` as protobuf JSON in fed.dir()/NAME (a kpxctl input file); its path.
std::string WriteCertificate(GrpcFederation& fed, const v1::Certificate& c,
                             const std::string& name) {
  std::string json;
  REQUIRE(google::protobuf::util::MessageToJsonString(c, &json).ok());
  std::ofstream(fed.dir() + "/" + name) << json;
  return fed.dir() + "/" + name;
}

TEST_CASE("kpxctl corrects certificates: replace, confirm with findings, void, trace",
          "[process][kpxctl][lifecycle]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartProcess("BW");
  fed.StartProcess("EU");
  const std::string kpxctl = testing::KpxctlPath();
  const std::string exporter = fed.KpxctlEnv("BW", "exporter") + " " + kpxctl;
  const std::string importer = fed.KpxctlEnv("EU", "importer") + " " + kpxctl;
  const std::string old_file =
      WriteCertificate(fed, ValidCertificate("BW-LC-1", "BW", "EU"), "old.json");
  const std::string new_file =
      WriteCertificate(fed, ValidCertificate("BW-LC-2", "BW", "EU"), "new.json");

  REQUIRE(Capture(exporter + " cert submit " + old_file).exit_code == 0);
  REQUIRE(fed.WaitForState("BW", "BW-LC-1", v1::DELIVERED));
  Output o = Capture(exporter + " cert replace BW-LC-1 " + new_file);
  INFO(o.out);
  CHECK(o.exit_code == 0);
  REQUIRE(fed.WaitForState("EU", "BW-LC-1", v1::REPLACED));
  REQUIRE(fed.WaitForState("EU", "BW-LC-2", v1::RECEIVED));

  // Found short by one parcel, seals broken: both sides list it.
  o = Capture(importer + " cert confirm BW-LC-2 --parcels 13 --seals-broken --office ANR " +
              "--found 7102.31:1250.50:312625,7102.21:400:18000");
  INFO(o.out);
  CHECK(o.exit_code == 0);
  REQUIRE(fed.WaitForState("BW", "BW-LC-2", v1::CONFIRMED));
  o = Capture(exporter + " cert list --discrepancies");
  CHECK(o.out.find("BW-LC-2") != std::string::npos);
  o = Capture(exporter + " cert get BW-LC-2");
  CHECK(o.out.find("DISCREPANCY seals: declared intact, found broken") != std::string::npos);

  o = Capture(exporter + " cert void BW-LC-2 --reason 'origin documents false'");
  CHECK(o.exit_code == 2);  // no --code: a usage error
  o = Capture(exporter + " cert void BW-LC-2 --code SUSPECTED_FRAUD --reason 'origin false'");
  CHECK(o.exit_code == 0);
  REQUIRE(fed.WaitForState("EU", "BW-LC-2", v1::VOIDED));

  // An amendment before the importer decides: EU holds both versions.
  v1::Certificate third = ValidCertificate("BW-LC-3", "BW", "EU");
  REQUIRE(
      Capture(exporter + " cert submit " + WriteCertificate(fed, third, "third.json")).exit_code ==
      0);
  REQUIRE(fed.WaitForState("BW", "BW-LC-3", v1::DELIVERED));
  v1::GetCertificateRequest get;
  get.set_number("BW-LC-3");
  v1::CertificateRecord issued;
  {
    grpc::ClientContext ctx;
    REQUIRE(fed.Authority("BW", "exporter")->GetCertificate(&ctx, get, &issued).ok());
  }
  v1::Certificate corrected = issued.certificate();
  corrected.set_number_of_parcels(15);
  const std::string fixed_file = WriteCertificate(fed, corrected, "third-fixed.json");
  o = Capture(exporter + " cert amend BW-LC-3 " + fixed_file + " --reason 'one parcel left off'");
  CHECK(o.exit_code == 2);  // no --code
  o = Capture(exporter + " cert amend BW-LC-3 " + fixed_file +
              " --code CLERICAL_ERROR --reason 'one parcel left off'");
  INFO(o.out);
  CHECK(o.exit_code == 0);
  bool amended = false;
  for (int i = 0; i < 400 && !amended; ++i) {
    amended =
        Capture(importer + " cert get BW-LC-3").out.find("version 1 amended") != std::string::npos;
    if (!amended) absl::SleepFor(absl::Milliseconds(50));
  }
  CHECK(amended);
  CHECK(Capture(importer + " cert get BW-LC-3").out.find("15 parcel(s)") != std::string::npos);

  o = Capture(importer + " cert trace BW-LC-2");
  INFO(o.out);
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("BW-LC-2 (issued by BW)  VOIDED") != std::string::npos);
  CHECK(o.out.find("replaces BW-LC-1 (issued by BW)  REPLACED") != std::string::npos);
}

// `code`'s own copy of the trust list, with `edit` applied: from now on
// that node alone sees the change (as after a reload the others missed).
void EditOwnTrustList(GrpcFederation& fed, const std::string& code,
                      const std::function<void(v1::TrustList&)>& edit) {
  const auto parse = [](const std::string& path) {
    v1::TrustList list;
    REQUIRE(google::protobuf::TextFormat::ParseFromString(testing::Must(crypto::ReadFile(path)),
                                                          &list));
    return list;
  };
  const v1::TrustList shared = parse(fed.dir() + "/trust-list.textpb");
  fed.SetPeerEndpoint(code, shared.participants(0).code(), shared.participants(0).endpoint());
  const std::string own = fed.dir() + "/" + code + "/trust-list.textpb";
  v1::TrustList list = parse(own);
  edit(list);
  std::string text;
  REQUIRE(google::protobuf::TextFormat::PrintToString(list, &text));
  std::ofstream(own, std::ios::trunc) << text;
}

TEST_CASE("kpxctl shows a certificate the importer's node refused, and re-sends it corrected",
          "[process][kpxctl][refused]") {
  GrpcFederation fed({"BW", "EU"});
  // EU refuses mixed, undisclosed origin (deploy/pki.sh); BW's copy of the
  // trust list does not say so yet, so BW's node signs and sends what EU's
  // node will refuse.
  EditOwnTrustList(fed, "BW", [](v1::TrustList& list) {
    for (v1::Participant& p : *list.mutable_participants()) {
      if (p.code() == "EU") p.clear_import_policy();
    }
  });
  fed.StartProcess("BW");
  fed.StartProcess("EU");
  const std::string kpxctl = testing::KpxctlPath();
  const std::string exporter = fed.KpxctlEnv("BW", "exporter") + " " + kpxctl;
  const std::string importer = fed.KpxctlEnv("EU", "importer") + " " + kpxctl;
  v1::Certificate mixed = ValidCertificate("BW-RS-1", "BW", "EU");
  *mixed.mutable_lines(1)->mutable_origin() = v1::Origin();
  mixed.mutable_lines(1)->mutable_origin()->set_mixed_undisclosed(true);
  Output o = Capture(exporter + " cert submit " + WriteCertificate(fed, mixed, "mixed.json"));
  INFO(o.out);
  REQUIRE(o.exit_code == 0);
  REQUIRE(fed.WaitForState("BW", "BW-RS-1", v1::REFUSED));

  o = Capture(exporter + " cert get BW-RS-1");
  INFO(o.out);
  CHECK(o.out.find("state REFUSED") != std::string::npos);
  CHECK(o.out.find("refuse_mixed_undisclosed") != std::string::npos);  // why, from EU's node
  CHECK(Capture(exporter + " cert list --state REFUSED").out.find("BW-RS-1") != std::string::npos);
  o = Capture(exporter + " outbox list");
  CHECK(o.out.find("BW-RS-1") == std::string::npos);  // nothing left to retry

  // Corrected (origin disclosed) and re-sent.
  v1::Certificate fixed = mixed;
  *fixed.mutable_lines(1)->mutable_origin() = mixed.lines(0).origin();
  o = Capture(exporter + " cert resend BW-RS-1 " + WriteCertificate(fed, fixed, "fixed.json"));
  INFO(o.out);
  CHECK(o.exit_code == 0);
  CHECK(o.out == "BW-RS-1: ISSUED\n");
  REQUIRE(fed.WaitForState("EU", "BW-RS-1", v1::RECEIVED));
  REQUIRE(fed.WaitForState("BW", "BW-RS-1", v1::DELIVERED));
  o = Capture(exporter + " cert resend BW-RS-1");
  CHECK(o.exit_code == 1);  // only a refused certificate is re-sent
  CHECK(o.out.find("FAILED_PRECONDITION") != std::string::npos);

  // What the importer writes is shown escaped: it cannot add a line that
  // looks like a state change, nor drive the terminal.
  o = Capture(importer +
              " cert confirm BW-RS-1 --as-declared --remarks 'all well\n"
              "    CONFIRMED  2026-01-01T00:00:00Z  seq 999'");
  INFO(o.out);
  REQUIRE(o.exit_code == 0);
  REQUIRE(fed.WaitForState("BW", "BW-RS-1", v1::CONFIRMED));
  o = Capture(exporter + " cert get BW-RS-1");
  INFO(o.out);
  CHECK(o.out.find("remarks all well\\n    CONFIRMED  2026-01-01T00:00:00Z  seq 999\n") !=
        std::string::npos);
  CHECK(o.out.find("\n    CONFIRMED  2026-01-01") == std::string::npos);
  // JSON keeps the text as it is, correctly escaped.
  o = Capture(exporter + " -o json cert get BW-RS-1");
  CHECK(o.out.find(R"(all well\n    CONFIRMED)") != std::string::npos);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 1);
}

// One line, exit 2, naming the command's --help.
void CheckUsageError(const std::string& command, const std::string& help) {
  Output o = Capture(command);
  INFO(command << "\n" << o.out);
  CHECK(o.exit_code == 2);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 1);
  CHECK(o.out.rfind("kpxctl: ", 0) == 0);
  CHECK(o.out.find(help + " --help") != std::string::npos);
}

bool IsVersionLine(const std::string& program, const std::string& out) {
  const std::string prefix = program + " ";
  if (out.rfind(prefix, 0) != 0 || out.back() != '\n') return false;
  const std::string v = out.substr(prefix.size(), out.size() - prefix.size() - 1);
  return std::count(v.begin(), v.end(), '.') == 2 &&
         v.find_first_not_of("0123456789.") == std::string::npos;
}

// deploy/examples/NAME with its placeholders filled, written to DIR; the
// path of the copy. `edit` (an exact text and its replacement) applies last.
std::string Example(const std::string& name, const std::string& dir, const std::string& number,
                    std::pair<std::string, std::string> edit = {}) {
  std::string text =
      testing::Must(crypto::ReadFile(testing::SourceDir() + "/deploy/examples/" + name));
  const absl::Time now = absl::Now();
  text = absl::StrReplaceAll(text,
                             {{"@NUMBER@", number},
                              {"@ISSUED_AT@", node::FormatRfc3339(now)},
                              {"@EXPIRES_AT@", node::FormatRfc3339(now + absl::Hours(24 * 30))}});
  if (!edit.first.empty()) {
    REQUIRE(text.find(edit.first) != std::string::npos);
    text = absl::StrReplaceAll(text, {edit});
  }
  const std::string path = dir + "/" + number + ".json";
  std::ofstream(path) << text;
  return path;
}

TEST_CASE("kpxctl submits the shipped example certificates; the EU policy refuses one",
          "[process][kpxctl][examples]") {
  GrpcFederation fed({"BW", "US", "AE", "EU"});
  for (const char* code : {"BW", "US", "AE", "EU"}) fed.StartInProcess(code);
  const std::string kpxctl = testing::KpxctlPath();
  auto as = [&](const std::string& code, const std::string& role) {
    return fed.KpxctlEnv(code, role) + " " + kpxctl;
  };

  // BW -> EU: three lines, 14 parcels, origins with shares.
  Output o = Capture(as("BW", "exporter") + " cert submit " +
                     Example("certificate.json", fed.dir(), "BW-2026-0412"));
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("submitted BW-2026-0412") != std::string::npos);
  REQUIRE(fed.WaitForState("EU", "BW-2026-0412", v1::RECEIVED));
  o = Capture(as("EU", "importer") + " cert get BW-2026-0412");
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("14 parcel(s)") != std::string::npos);
  CHECK(o.out.find("HS 7102.31 (71023100)") != std::string::npos);  // "71023100" normalised
  CHECK(o.out.find("BW 70.00 %, NA 20.00 %, ZA 10.00 %") != std::string::npos);
  CHECK(o.out.find("HS 7102.21  412.60 ct") != std::string::npos);  // "7102 21" normalised
  CHECK(o.out.find("seals BWS-0457812, BWS-0457813") != std::string::npos);
  CHECK(o.out.find("issued at office HQ, validated by T. Kgosi") != std::string::npos);
  CHECK(o.out.find("International Certification Scheme") != std::string::npos);

  // US -> AE: US wording, mixed and undisclosed origin.
  o = Capture(as("US", "exporter") + " cert submit " +
              Example("certificate-us-mixed.json", fed.dir(), "US-2026-0001"));
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("submitted US-2026-0001") != std::string::npos);
  REQUIRE(fed.WaitForState("AE", "US-2026-0001", v1::RECEIVED));
  o = Capture(as("AE", "importer") + " cert get US-2026-0001");
  CHECK(o.out.find("origin ***** (mixed, undisclosed)") != std::string::npos);
  CHECK(o.out.find("statement (US): The rough diamonds in this shipment have been handled in "
                   "accordance with the provisions of the Kimberley Process Certification "
                   "Scheme") != std::string::npos);

  // The same goods to the EU: refused at submit, naming the EU's rule.
  o = Capture(as("US", "exporter") + " cert submit " +
              Example("certificate-us-mixed.json", fed.dir(), "US-2026-0002",
                      {"\"importingParticipant\": \"AE\"", "\"importingParticipant\": \"EU\""}));
  CHECK(o.exit_code != 0);
  CHECK(o.out.find("EU import policy refuse_mixed_undisclosed: line 1 has mixed, undisclosed "
                   "origin") != std::string::npos);
  CHECK(Capture(as("US", "auditor") + " cert get US-2026-0002").exit_code != 0);
}

TEST_CASE("kpxctl's command line is strict, speaks JSON and documents itself",
          "[process][kpxctl][cli]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartProcess("BW");
  const std::string kpxctl = testing::KpxctlPath();
  const std::string exporter = fed.KpxctlEnv("BW", "exporter") + " " + kpxctl;
  const std::string auditor = fed.KpxctlEnv("BW", "auditor") + " " + kpxctl;
  std::string json;
  REQUIRE(google::protobuf::util::MessageToJsonString(ValidCertificate("BW-J-1", "BW", "EU"), &json)
              .ok());
  const std::string file = fed.dir() + "/cert.json";
  std::ofstream(file) << json;
  REQUIRE(Capture(exporter + " cert submit " + file).exit_code == 0);

  // Misplaced, unknown and borrowed flags, wrong arity: usage errors.
  CheckUsageError(exporter + " cert get BW-J-1 --state ISSUED", "kpxctl cert get");
  CheckUsageError(exporter + " cert get BW-J-1 --reason x", "kpxctl cert get");
  CheckUsageError(exporter + " cert list --frobnicate", "kpxctl cert list");
  CheckUsageError(exporter + " cert list --state ISSUED --state DELIVERED", "kpxctl cert list");
  CheckUsageError(exporter + " --state ISSUED cert list", "kpxctl");
  CheckUsageError(exporter + " cert get", "kpxctl cert get");
  CheckUsageError(exporter + " cert get BW-J-1 BW-J-2", "kpxctl cert get");
  // Times outside 2000-2099 (protobuf itself takes years 1 to 9999).
  CheckUsageError(exporter + " cert confirm BW-J-1 --as-declared --received-at 1000-01-01",
                  "kpxctl cert confirm");
  CheckUsageError(exporter + " cert list --issued-from 2100-01-01", "kpxctl cert list");
  CheckUsageError(exporter + " cert reject BW-J-1", "kpxctl cert reject");
  CheckUsageError(exporter + " cert", "kpxctl");
  CheckUsageError(exporter + " ledger watch --from-seq x", "kpxctl ledger watch");
  CheckUsageError(exporter + " cert get BW-J-1 --timeout soon", "kpxctl cert get");
  // Global options go anywhere; the text output is unchanged by them.
  Output o = Capture(exporter + " cert get BW-J-1 --timeout 10s");
  CHECK(o.exit_code == 0);
  CHECK(o.out.rfind("certificate BW-J-1  BW -> EU  state", 0) == 0);

  // -o json: each line of output is one JSON object, errors included.
  o = Capture(exporter + " -o json cert get BW-J-1");
  REQUIRE(o.exit_code == 0);
  v1::CertificateRecord rec;
  REQUIRE(google::protobuf::util::JsonStringToMessage(o.out, &rec).ok());
  CHECK(rec.certificate().number() == "BW-J-1");
  o = Capture(auditor + " cert list --output=json");
  REQUIRE(o.exit_code == 0);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 1);
  REQUIRE(google::protobuf::util::JsonStringToMessage(o.out, &rec).ok());
  CHECK(rec.partner() == "EU");
  for (const auto& [command, code, exit_code] :
       std::vector<std::tuple<std::string, std::string, int>>{
           {exporter + " cert get BW-NOPE -o json", "NOT_FOUND", 1},
           {exporter + " -o json ledger verify", "PERMISSION_DENIED", 1},
           {exporter + " -o json cert get", "INVALID_ARGUMENT", 2}}) {
    o = Capture(command);
    INFO(command << "\n" << o.out);
    CHECK(o.exit_code == exit_code);
    google::protobuf::Struct error;
    REQUIRE(google::protobuf::util::JsonStringToMessage(o.out, &error).ok());
    const google::protobuf::Struct& e = error.fields().at("error").struct_value();
    CHECK(e.fields().at("code").string_value() == code);
    CHECK_FALSE(e.fields().at("message").string_value().empty());
  }
  o = Capture(auditor + " -o json ledger verify");
  google::protobuf::Struct verified;
  REQUIRE(google::protobuf::util::JsonStringToMessage(o.out, &verified).ok());
  CHECK(verified.fields().at("ok").bool_value());

  // A watch with --timeout ends by itself, after printing what there is.
  o = Capture(auditor + " ledger watch --timeout 1s --from-seq 1");
  CHECK(o.exit_code == 0);
  CHECK(o.out.rfind("1  ", 0) == 0);
  CHECK(o.out.find("SENT") != std::string::npos);

  // Help per command and the version; neither needs a node.
  o = Capture(kpxctl + " cert list --help");
  CHECK(o.exit_code == 0);
  CHECK(o.out.rfind("usage: kpxctl cert list", 0) == 0);
  CHECK(o.out.find("--issued-from DATE") != std::string::npos);
  o = Capture(kpxctl + " --help");
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("outbox list") != std::string::npos);
  CHECK(IsVersionLine("kpxctl", Capture(kpxctl + " --version").out));
  CHECK(IsVersionLine("kpxd", Capture(testing::KpxdPath() + " --version").out));
}

TEST_CASE("kpxd checks a config without starting", "[process][config]") {
  GrpcFederation fed({"BW"});
  Output o = Capture(testing::KpxdPath() + " --check-config " + fed.ConfigPath("BW"));
  CHECK(o.exit_code == 0);
  CHECK(o.out == "config OK\n");
  std::filesystem::remove(fed.dir() + "/BW/signing.key");
  o = Capture(testing::KpxdPath() + " --check-config " + fed.ConfigPath("BW"));
  CHECK(o.exit_code == 1);
  CHECK(o.out.find("signing_key_file") != std::string::npos);
  CHECK(o.out.find("1 problem(s)") != std::string::npos);
  o = Capture(testing::KpxdPath() + " --config " + fed.ConfigPath("BW") + " --frobnicate");
  CHECK(o.exit_code == 2);
  CHECK_FALSE(std::filesystem::exists(fed.dir() + "/BW/data"));
}

TEST_CASE("kpxd refuses a bad config with one line", "[process][config]") {
  GrpcFederation fed({"BW"});
  const std::string bad = fed.dir() + "/bad.textpb";
  std::ofstream(bad) << "participant: \"BW\"\nfrobnicate: 1\n";
  Output o = Capture(testing::KpxdPath() + " --config " + bad);
  CHECK(o.exit_code == 1);
  CHECK(o.out.find("frobnicate") != std::string::npos);
  o = Capture(testing::KpxdPath() + " --config " + fed.dir() + "/missing.textpb");
  CHECK(o.exit_code == 1);
  CHECK(o.out.find("missing.textpb") != std::string::npos);
}

TEST_CASE("kpxd reloads on SIGHUP, keeps a good trust list, logs JSON lines", "[process][reload]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartProcess("BW", {"--log-format", "json"});
  const std::string auditor = fed.KpxctlEnv("BW", "auditor") + " " + testing::KpxctlPath();
  Output o = Capture(auditor + " node health");
  CHECK(o.exit_code == 0);
  CHECK(o.out == "SERVING\n");
  o = Capture(auditor + " cert list --overdue");
  CHECK(o.exit_code == 0);
  CHECK(o.out.empty());

  auto log_has = [&](const std::string& needle) {
    for (int i = 0; i < 100; ++i) {
      if (Capture("cat " + fed.LogPath("BW")).out.find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  const std::string path = fed.Config("BW").trust_list_file();
  const std::string good = kpx::testing::Must(crypto::ReadFile(path));
  v1::TrustList v2;
  REQUIRE(node::ParseTextProto(good, "trust list", &v2).ok());
  v2.set_version(2);
  std::string text;
  google::protobuf::TextFormat::PrintToString(v2, &text);
  std::ofstream(path, std::ios::trunc) << text;
  fed.SignalProcess("BW", SIGHUP);
  CHECK(log_has(R"("event":"reloaded","trust_list_version":"2")"));

  std::ofstream(path, std::ios::trunc) << "participants { code: ";
  fed.SignalProcess("BW", SIGHUP);
  CHECK(log_has(R"("event":"reload_refused")"));
  o = Capture(auditor + " node health");
  CHECK(o.exit_code == 0);  // still serving with the list in force

  // Operators may reload through the API too; other roles may not.
  std::ofstream(path, std::ios::trunc) << good;
  o = Capture(fed.KpxctlEnv("BW", "operator") + " " + testing::KpxctlPath() + " node reload");
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("trust list version 1") != std::string::npos);
  o = Capture(auditor + " node reload");
  CHECK(o.out.find("PERMISSION_DENIED") != std::string::npos);

  fed.KillProcess("BW", /*crash=*/false);
  std::ifstream in(fed.LogPath("BW"));
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    INFO(line);
    CHECK(line.front() == '{');
    CHECK(line.back() == '}');
    CHECK(line.find(R"("time":")") != std::string::npos);
  }
  CHECK(lines >= 5);
}

}  // namespace
}  // namespace kpx
