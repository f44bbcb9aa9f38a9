// Tests that run the shipped programs as real processes: kpxd killed and
// restarted mid-delivery, clean stops, and kpxctl's commands and errors.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "federation.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "node/util.h"

namespace kpx {
namespace {

using testing::GrpcFederation;
using testing::ValidCertificate;

struct Output {
  int exit_code;
  std::string out;  // stdout and stderr together
};

Output Capture(const std::string& command) {
  Output o{-1, ""};
  FILE* f = ::popen((command + " 2>&1").c_str(), "r");
  if (f == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) o.out.append(buf, n);
  int rc = ::pclose(f);
  o.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return o;
}

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

  Output o = Capture(exporter + " submit " + file);
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("submitted BW-CLI-1") != std::string::npos);
  REQUIRE(fed.WaitForState("EU", "BW-CLI-1", v1::RECEIVED));
  o = Capture(importer + " confirm BW-CLI-1");
  CHECK(o.exit_code == 0);
  REQUIRE(fed.WaitForState("BW", "BW-CLI-1", v1::CONFIRMED));

  o = Capture(exporter + " get BW-CLI-1");
  CHECK(o.exit_code == 0);
  const size_t issued = o.out.find("ISSUED"), delivered = o.out.find("DELIVERED"),
               confirmed = o.out.find("CONFIRMED", o.out.find("journey"));
  CHECK(issued != std::string::npos);
  CHECK(delivered > issued);
  CHECK(confirmed > delivered);
  CHECK(confirmed != std::string::npos);

  o = Capture(auditor + " ledger verify");
  CHECK(o.exit_code == 0);
  CHECK(o.out.rfind("ledger OK: 3 entries", 0) == 0);
  o = Capture(auditor + " ledger export");
  CHECK(o.exit_code == 0);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 3);
  o = Capture(auditor + " list --state CONFIRMED");
  CHECK(o.out.find("BW-CLI-1") != std::string::npos);

  // Failures: one line, non-zero.
  for (const std::string& cmd :
       {exporter + " get BW-NOPE", exporter + " ledger verify", exporter + " submit /nonexistent",
        importer + " confirm BW-CLI-1", exporter + " frobnicate", exporter + " cancel BW-CLI-1"}) {
    o = Capture(cmd);
    INFO(cmd << "\n" << o.out);
    CHECK(o.exit_code != 0);
    CHECK(std::count(o.out.begin(), o.out.end(), '\n') <= 1);
    CHECK(o.out.rfind("kpxctl: ", 0) == 0);
  }
  o = Capture(exporter + " get BW-NOPE");
  CHECK(o.out.find("NOT_FOUND") != std::string::npos);
  o = Capture(exporter + " ledger verify");
  CHECK(o.out.find("PERMISSION_DENIED") != std::string::npos);
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
  Output o = Capture(auditor + " health");
  CHECK(o.exit_code == 0);
  CHECK(o.out == "SERVING\n");
  o = Capture(auditor + " list --overdue");
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
  const std::string good = *crypto::ReadFile(path);
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
  o = Capture(auditor + " health");
  CHECK(o.exit_code == 0);  // still serving with the list in force

  // Operators may reload through the API too; other roles may not.
  std::ofstream(path, std::ios::trunc) << good;
  o = Capture(fed.KpxctlEnv("BW", "operator") + " " + testing::KpxctlPath() + " reload");
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("trust list version 1") != std::string::npos);
  o = Capture(auditor + " reload");
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
