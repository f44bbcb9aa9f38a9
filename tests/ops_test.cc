// Operating a node over real gRPC on loopback: health checks from a
// standard grpc.health.v1 client, Prometheus scrapes, online backup and
// restore, and key rotation, suspension and reload on a running federation.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "federation.h"
#include "gateway/health_client.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/generic/generic_stub.h"
#include "node/envelope.h"
#include "node/util.h"
#include "storage/ledger.h"
#include "tests/ledger_rewrite.h"

namespace kpx {
namespace {

using kpx::testing::kBootEntries;

using testing::GrpcFederation;
using testing::ValidCertificate;

// grpc.health.v1.Health/Check: 1 SERVING, 2 NOT_SERVING, -1 on an error.
int HealthCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  absl::StatusOr<gateway::ServingStatus> s = gateway::CheckHealth(channel, service);
  return s.ok() ? static_cast<int>(*s) : -1;
}

std::shared_ptr<grpc::Channel> AuthorityChannel(GrpcFederation& fed, const std::string& code,
                                                const std::string& role) {
  const std::string base = fed.dir() + "/" + code + "/";
  return gateway::MutualTlsChannel(
      absl::StrCat("127.0.0.1:", fed.AuthorityPort(code)),
      *gateway::LoadTlsIdentity(base + role + ".pem", base + role + ".key"),
      kpx::testing::Must(crypto::ReadFile(base + "ca.pem")),
      "node." + absl::AsciiStrToLower(code) + ".kpx");
}

// GET http://127.0.0.1:port/path; returns the body.
std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::string resp;
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) resp.append(buf, n);
  ::close(fd);
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

// The value of the first sample line starting with `prefix`, or -1.
double Sample(const std::string& metrics, const std::string& prefix) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, prefix)) {
      size_t sp = line.rfind(' ');
      return std::stod(std::string(line.substr(sp + 1)));
    }
  }
  return -1;
}

grpc::Status Submit(GrpcFederation& fed, const std::string& code, const v1::Certificate& c) {
  auto stub = fed.Authority(code, "exporter");
  grpc::ClientContext ctx;
  v1::SubmitCertificateRequest req;
  *req.mutable_certificate() = c;
  v1::CertificateRecord rec;
  return stub->SubmitCertificate(&ctx, req, &rec);
}

v1::TrustList ReadTrustList(const std::string& path) {
  v1::TrustList t;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(kpx::testing::Must(crypto::ReadFile(path)),
                                                        &t));
  return t;
}

void WriteTrustList(const std::string& path, const v1::TrustList& t) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(t, &text);
  std::ofstream(path, std::ios::trunc) << text;
}

v1::Participant* FindParticipant(v1::TrustList& t, const std::string& code) {
  for (auto& p : *t.mutable_participants()) {
    if (p.code() == code) return &p;
  }
  FAIL("no participant " << code);
  return nullptr;
}

TEST_CASE("a node answers standard health checks and Prometheus scrapes", "[ops][health]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/true);
  fed.StartInProcess("BW");
  fed.StartInProcess("EU");
  auto channel = AuthorityChannel(fed, "BW", "auditor");
  CHECK(HealthCheck(channel, "") == 1);
  CHECK(HealthCheck(channel, "kpx.v1.AuthorityService") == 1);
  CHECK(HealthCheck(channel, "no.such.Service") == -1);  // NOT_FOUND

  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-M-1", "BW", "EU")).ok());
  REQUIRE(fed.WaitForState("BW", "BW-M-1", v1::DELIVERED));
  const std::string bw = HttpGet(fed.MetricsPort("BW"), "/metrics");
  INFO(bw);
  CHECK(Sample(bw, "kpx_ledger_head_sequence ") == kBootEntries + 2);
  CHECK(Sample(bw, "kpx_outbox_depth ") == 0);
  CHECK(Sample(bw, "kpx_ledger_size_bytes ") > 0);
  CHECK(Sample(bw, "kpx_certificates{state=\"DELIVERED\"}") == 1);
  CHECK(Sample(bw, "kpx_messages_sent_total{kind=\"CERTIFICATE\",partner=\"EU\"}") == 1);
  CHECK(Sample(bw, "kpx_delivery_latency_seconds_count{partner=\"EU\"}") == 1);
  CHECK(Sample(bw, "kpx_tls_certificate_expiry_days{certificate=\"node\"}") > 700);
  CHECK(Sample(bw, "kpx_node_healthy ") == 1);
  CHECK(Sample(bw, "kpx_certificates_overdue ") == 0);
  CHECK(Sample(bw, "kpx_peer_log_inconsistent{partner=\"EU\"}") == 0);
  const std::string eu = HttpGet(fed.MetricsPort("EU"), "/metrics");
  CHECK(Sample(eu, "kpx_messages_received_total{kind=\"CERTIFICATE\",partner=\"BW\"}") == 1);

  SECTION("NOT_SERVING once the signing key's window has closed") {
    const std::string path = fed.Config("BW").trust_list_file();
    v1::TrustList t = ReadTrustList(path);
    *FindParticipant(t, "BW")->mutable_signing_keys(0)->mutable_not_after() =
        node::ToTimestamp(absl::Now() + absl::Seconds(1));
    WriteTrustList(path, t);
    REQUIRE(fed.server("BW").Reload().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));
    CHECK(HealthCheck(channel, "") == 2);
    CHECK(Sample(HttpGet(fed.MetricsPort("BW"), "/metrics"), "kpx_node_healthy ") == 0);
    // Nothing can be signed now: submits fail and store nothing.
    CHECK(Submit(fed, "BW", ValidCertificate("BW-M-2", "BW", "EU")).error_code() ==
          grpc::StatusCode::FAILED_PRECONDITION);
  }
}

// Lists the services of `channel`'s server through gRPC server reflection
// (grpc.reflection.v1alpha, what grpcurl and similar tools use); returns the
// raw response bytes.
std::string ReflectionListServices(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  auto step = [&](int n) {
    REQUIRE(cq.Next(&tag, &ok));
    CHECK(tag == reinterpret_cast<void*>(n));
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  step(1);
  // ServerReflectionRequest { string list_services = 7; } set to "".
  const std::string req("\x3a\x00", 2);
  grpc::Slice slice(req);
  grpc::ByteBuffer request(&slice, 1), response;
  call->Write(request, reinterpret_cast<void*>(2));
  step(2);
  call->Read(&response, reinterpret_cast<void*>(3));
  const bool got = step(3);
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!got) return "";
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& sl : slices)
    bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  return bytes;
}

TEST_CASE("both listeners offer server reflection", "[ops][reflection]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartInProcess("BW");
  const std::string services = ReflectionListServices(AuthorityChannel(fed, "BW", "auditor"));
  CHECK(services.find("kpx.v1.AuthorityService") != std::string::npos);
  CHECK(services.find("grpc.health.v1.Health") != std::string::npos);
  const std::string base = fed.dir() + "/EU/";
  const std::string peer = ReflectionListServices(gateway::MutualTlsChannel(
      absl::StrCat("127.0.0.1:", fed.PeerPort("BW")),
      *gateway::LoadTlsIdentity(base + "node.pem", base + "node.key"),
      kpx::testing::Must(crypto::ReadFile(fed.dir() + "/BW/ca.pem")), "node.bw.kpx"));
  CHECK(peer.find("kpx.v1.PeerService") != std::string::npos);
}

TEST_CASE("a new Participant is enrolled with a trust-list reload, no restart",
          "[ops][enrolment]") {
  GrpcFederation fed({"BW", "EU"});
  GrpcFederation newcomer({"ZA"});
  fed.StartInProcess("EU");
  auto za_to_eu = [&] {
    auto stub = v1::PeerService::NewStub(gateway::MutualTlsChannel(
        absl::StrCat("127.0.0.1:", fed.PeerPort("EU")),
        *gateway::LoadTlsIdentity(newcomer.dir() + "/ZA/node.pem", newcomer.dir() + "/ZA/node.key"),
        kpx::testing::Must(crypto::ReadFile(fed.dir() + "/EU/ca.pem")), "node.eu.kpx"));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::DeliverResponse resp;
    return stub->Deliver(&ctx, {}, &resp).error_code();
  };
  // ZA's CA is on no trust list EU knows: the TLS handshake fails.
  CHECK(za_to_eu() == grpc::StatusCode::UNAVAILABLE);

  const std::string path = fed.Config("EU").trust_list_file();
  v1::TrustList list = ReadTrustList(path);
  list.set_version(2);
  *list.add_participants() = *FindParticipant(
      *std::make_unique<v1::TrustList>(ReadTrustList(newcomer.dir() + "/trust-list.textpb")), "ZA");
  WriteTrustList(path, list);
  REQUIRE(fed.server("EU").Reload().ok());
  // The peer listener re-reads its roots within a few seconds.
  grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
  for (int i = 0; i < 40 && code == grpc::StatusCode::UNAVAILABLE; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    code = za_to_eu();
  }
  CHECK(code == grpc::StatusCode::OK);
}

TEST_CASE("an online backup restores into a node that resumes without duplicates",
          "[ops][backup]") {
  GrpcFederation fed({"BW", "EU"});
  fed.AppendConfig("BW", "delivery { initial_backoff_ms: 100 max_backoff_ms: 300 }");
  fed.StartInProcess("BW");  // EU is down: deliveries wait in the outbox
  for (int i = 0; i < 3; ++i) {
    REQUIRE(Submit(fed, "BW", ValidCertificate(absl::StrCat("BW-B-", i), "BW", "EU")).ok());
  }
  auto op = fed.Authority("BW", "operator");
  const std::string backup = fed.dir() + "/backup-1";
  {
    grpc::ClientContext ctx;
    v1::BackupRequest req;
    req.set_directory(backup);
    v1::BackupResponse resp;
    REQUIRE(op->Backup(&ctx, req, &resp).ok());
    CHECK(resp.head_sequence() == kBootEntries + 3);
  }
  {
    // Only the operator may take backups; relative paths are refused.
    grpc::ClientContext ctx;
    v1::BackupRequest req;
    req.set_directory(fed.dir() + "/backup-2");
    v1::BackupResponse resp;
    CHECK(fed.Authority("BW", "auditor")->Backup(&ctx, req, &resp).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
    grpc::ClientContext ctx2;
    req.set_directory("relative");
    CHECK(op->Backup(&ctx2, req, &resp).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  // EU comes up; the original BW delivers everything after the backup.
  fed.StartInProcess("EU");
  for (int i = 0; i < 3; ++i) {
    REQUIRE(fed.WaitForState("BW", absl::StrCat("BW-B-", i), v1::DELIVERED));
  }
  const uint64_t eu_head = fed.server("EU").node().ledger().head().sequence;
  CHECK(eu_head == kBootEntries + 3);

  // With the node stopped, its ledger verifies offline.
  fed.StopInProcess("BW");
  const std::string kpxd = testing::KpxdPath();
  testing::Output o = testing::Capture(kpxd + " verify --data-dir " + fed.Config("BW").data_dir());
  CHECK(o.exit_code == 0);
  CHECK(o.out.rfind(absl::StrCat("ledger OK: ", kBootEntries + 6, " entries"), 0) == 0);
  o = testing::Capture(kpxd + " verify --data-dir " + fed.dir() + "/nowhere");
  CHECK(o.exit_code == 1);
  CHECK(o.out.find("no ledger in") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(fed.dir() + "/nowhere"));

  // BW's disk is lost; the operator restores the backup with kpxd.
  const std::string restored = fed.dir() + "/BW/restored";
  o = testing::Capture(kpxd + " restore " + backup + " " + restored);
  REQUIRE(o.exit_code == 0);
  CHECK(o.out.rfind("restored into " + restored +
                        absl::StrCat(": ledger OK: ", kBootEntries + 3, " entries"),
                    0) == 0);
  CHECK(testing::Run(kpxd + " restore " + backup + " " + restored + " 2>/dev/null") ==
        1);  // not into a non-empty folder
  o = testing::Capture(kpxd + " verify --data-dir " + restored);
  CHECK(o.out.rfind(absl::StrCat("ledger OK: ", kBootEntries + 3, " entries"), 0) == 0);
  v1::NodeConfig config = fed.Config("BW");
  config.set_data_dir(restored);
  fed.StartInProcess("BW", config);
  // The restored node still had the three in its outbox: it sends them
  // again, EU answers with the original receipts and stores nothing new.
  for (int i = 0; i < 3; ++i) {
    REQUIRE(fed.WaitForState("BW", absl::StrCat("BW-B-", i), v1::DELIVERED));
  }
  CHECK(fed.server("BW").node().ledger().OutboxSize() == 0);
  CHECK(fed.server("EU").node().ledger().head().sequence == eu_head);
  CHECK(fed.server("BW").node().ledger().Verify().ok);
}

// Calls Backup into `directory` as BW's operator; returns the code and
// sets `message`.
grpc::StatusCode BackupInto(GrpcFederation& fed, const std::string& directory,
                            std::string* message) {
  grpc::ClientContext ctx;
  v1::BackupRequest req;
  req.set_directory(directory);
  v1::BackupResponse resp;
  grpc::Status s = fed.Authority("BW", "operator")->Backup(&ctx, req, &resp);
  *message = s.error_message();
  return s.error_code();
}

TEST_CASE("backup folders are checked before anything is written", "[ops][backup]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartInProcess("BW");
  const std::string data = fed.Config("BW").data_dir();
  std::filesystem::create_directory_symlink(data, fed.dir() + "/data-link");
  struct Case {
    const char* what;
    std::string directory;
    grpc::StatusCode code;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"relative", "backups/one", grpc::StatusCode::INVALID_ARGUMENT, "absolute path"},
      {"newline", fed.dir() + "/bad\nname", grpc::StatusCode::INVALID_ARGUMENT,
       "control character"},
      {"escape", fed.dir() + "/bad\x1b[2Jname", grpc::StatusCode::INVALID_ARGUMENT,
       "control character"},
      {"5,000 bytes", fed.dir() + "/" + std::string(5000, 'a'), grpc::StatusCode::INVALID_ARGUMENT,
       "at most 1024 are allowed"},
      {"inside the data folder", data + "/backup", grpc::StatusCode::INVALID_ARGUMENT,
       "inside the node's data folder"},
      {"inside it by ..", fed.dir() + "/elsewhere/../BW/data/ledger/backup",
       grpc::StatusCode::INVALID_ARGUMENT, "inside the node's data folder"},
      {"inside it by a symbolic link", fed.dir() + "/data-link/backup",
       grpc::StatusCode::INVALID_ARGUMENT, "inside the node's data folder"},
      {"existing folder", fed.dir() + "/EU", grpc::StatusCode::ALREADY_EXISTS, "already exists"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    std::string message;
    CHECK(BackupInto(fed, c.directory, &message) == c.code);
    CHECK(message.find(c.says) != std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
    CHECK(message.size() < 400);
  }
  // Nothing was written for any of them; a good folder still works.
  CHECK_FALSE(std::filesystem::exists(fed.dir() + "/bad\nname"));
  CHECK_FALSE(std::filesystem::exists(data + "/backup"));
  CHECK_FALSE(std::filesystem::exists(data + "/ledger/backup"));
  CHECK_FALSE(std::filesystem::exists(fed.dir() + "/elsewhere"));
  std::string message;
  CHECK(BackupInto(fed, fed.dir() + "/backup-ok", &message) == grpc::StatusCode::OK);
  CHECK(std::filesystem::exists(fed.dir() + "/backup-ok/CURRENT"));
}

// The largest file named *.sst in `dir`.
std::filesystem::path LargestSst(const std::string& dir) {
  std::filesystem::path best;
  uintmax_t size = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".sst" && e.file_size() > size) {
      best = e.path();
      size = e.file_size();
    }
  }
  REQUIRE(!best.empty());
  return best;
}

TEST_CASE("a failed restore leaves nothing behind and a retry works", "[ops][backup]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartInProcess("BW");
  for (int i = 0; i < 3; ++i) {
    REQUIRE(Submit(fed, "BW", ValidCertificate(absl::StrCat("BW-R-", i), "BW", "EU")).ok());
  }
  const std::string backup = fed.dir() + "/backup";
  std::string message;
  REQUIRE(BackupInto(fed, backup, &message) == grpc::StatusCode::OK);
  fed.StopInProcess("BW");
  // Damaged copies (a checkpoint hard-links the live files: copy first).
  const std::string truncated = fed.dir() + "/truncated";
  const std::string flipped = fed.dir() + "/flipped";
  std::filesystem::copy(backup, truncated, std::filesystem::copy_options::recursive);
  std::filesystem::copy(backup, flipped, std::filesystem::copy_options::recursive);
  const std::filesystem::path sst = LargestSst(truncated);
  std::filesystem::resize_file(sst, std::filesystem::file_size(sst) / 2);
  {
    const std::filesystem::path f = LargestSst(flipped);
    std::string bytes = testing::Must(crypto::ReadFile(f.string()));
    for (size_t i = 0; i < bytes.size() / 2; ++i) bytes[i] ^= 0x5a;
    std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes;
  }
  const std::string kpxd = testing::KpxdPath();
  const std::string target = fed.dir() + "/restored";
  for (const std::string& damaged : {truncated, flipped}) {
    INFO(damaged);
    testing::Output o = testing::Capture(kpxd + " restore " + damaged + " " + target);
    CHECK(o.exit_code == 1);
    CHECK(o.out.rfind("kpxd: restore: backup does not ", 0) == 0);
    CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 1);
    CHECK_FALSE(std::filesystem::exists(target));  // not even DATA_DIR
  }
  // Into an existing, empty DATA_DIR: it stays, empty.
  std::filesystem::create_directory(target);
  CHECK(testing::Run(kpxd + " restore " + truncated + " " + target + " 2>/dev/null") == 1);
  CHECK(std::filesystem::is_empty(target));
  // The retry with the good backup, into the same folder, works.
  testing::Output o = testing::Capture(kpxd + " restore " + backup + " " + target);
  INFO(o.out);
  CHECK(o.exit_code == 0);
  CHECK(o.out.rfind(
            "restored into " + target + absl::StrCat(": ledger OK: ", kBootEntries + 3, " entries"),
            0) == 0);
}

TEST_CASE("key rotation and a suspension on a running federation", "[ops][rotation]") {
  GrpcFederation fed({"BW", "AE", "EU"});
  for (const char* c : {"BW", "AE", "EU"}) {
    fed.AppendConfig(c, "delivery { initial_backoff_ms: 100 max_backoff_ms: 300 }");
  }
  // BW's next key, listed in its config before its window opens.
  crypto::PrivateKey next =
      kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519));
  std::ofstream(fed.dir() + "/BW/signing-2.key") << next.ToPem();
  fed.AppendConfig("BW", "additional_signing_key_files: \"signing-2.key\"");
  for (const char* c : {"BW", "AE", "EU"}) fed.StartInProcess(c);
  const std::string old_key = *fed.server("BW").node().CurrentKeyId();

  // The federation publishes trust list version 2: BW's old key retires at
  // T, the new one starts at T. Every node reloads without a restart.
  const absl::Time t = absl::Now() + absl::Seconds(3);
  const std::string path = fed.Config("BW").trust_list_file();
  v1::TrustList list = ReadTrustList(path);
  list.set_version(2);
  v1::Participant* bw = FindParticipant(list, "BW");
  *bw->mutable_signing_keys(0)->mutable_not_after() = node::ToTimestamp(t);
  *testing::ListSigningKey(*bw, next)->mutable_not_before() = node::ToTimestamp(t);
  // A malformed file is refused first, and the node keeps what it had.
  std::ofstream(path, std::ios::trunc) << "participants { code: \"BW\" status: BANANA }";
  CHECK(fed.server("EU").Reload().status().code() == absl::StatusCode::kFailedPrecondition);
  WriteTrustList(path, list);
  for (const char* c : {"BW", "AE", "EU"}) {
    absl::StatusOr<v1::ReloadResponse> r = fed.server(c).Reload();
    REQUIRE(r.ok());
    CHECK(r->trust_list_version() == 2);
  }

  // In flight across the rotation: signed with the old key, delivered
  // after it retired. It was valid when signed, so it is accepted.
  fed.StopInProcess("EU");
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-ROT-1", "BW", "EU")).ok());
  while (absl::Now() < t + absl::Milliseconds(300)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(*fed.server("BW").node().CurrentKeyId() == next.key_id());
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-ROT-2", "BW", "EU")).ok());
  fed.StartInProcess("EU");
  REQUIRE(fed.WaitForState("EU", "BW-ROT-1", v1::RECEIVED));
  REQUIRE(fed.WaitForState("EU", "BW-ROT-2", v1::RECEIVED));
  std::map<std::string, std::string> key_of;
  const std::vector<v1::LedgerEntry> eu_entries =
      *fed.server("EU").node().ledger().ReadEntries(1, 10);
  for (const v1::LedgerEntry& e : eu_entries) {
    key_of[e.certificate_number()] = e.message().key_id();
  }
  CHECK(key_of["BW-ROT-1"] == old_key);
  CHECK(key_of["BW-ROT-2"] == next.key_id());

  // AE is suspended from S on (version 3). Before S its messages count;
  // from S nothing is accepted from it or sent to it.
  const absl::Time s = absl::Now() + absl::Seconds(2);
  list.set_version(3);
  FindParticipant(list, "AE")->set_status(v1::SUSPENDED);
  *FindParticipant(list, "AE")->mutable_suspended_from() = node::ToTimestamp(s);
  WriteTrustList(path, list);
  for (const char* c : {"BW", "AE", "EU"}) REQUIRE(fed.server(c).Reload().ok());
  REQUIRE(Submit(fed, "AE", ValidCertificate("AE-S-1", "AE", "EU")).ok());
  REQUIRE(fed.WaitForState("EU", "AE-S-1", v1::RECEIVED));
  while (absl::Now() < s + absl::Milliseconds(200)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(Submit(fed, "BW", ValidCertificate("BW-S-2", "BW", "AE")).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
  // AE's own node still queues (its operator may not have reloaded), but
  // EU refuses what arrives from it.
  REQUIRE(Submit(fed, "AE", ValidCertificate("AE-S-2", "AE", "EU")).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  CHECK_FALSE(fed.server("EU").node().Get("AE-S-2").ok());
  CHECK(fed.server("AE").node().ledger().OutboxSize() == 1);
  // Valid traffic between active Participants is untouched.
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-S-3", "BW", "EU")).ok());
  CHECK(fed.WaitForState("EU", "BW-S-3", v1::RECEIVED));
  for (const char* c : {"BW", "AE", "EU"}) CHECK(fed.server(c).node().ledger().Verify().ok);
}

// Polls `command` until its output contains `needle` (or 20 s pass).
testing::Output WaitForOutput(const std::string& command, const std::string& needle) {
  testing::Output o = testing::Capture(command);
  for (int i = 0; i < 400 && o.out.find(needle) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    o = testing::Capture(command);
  }
  return o;
}

TEST_CASE("kpxctl outbox list shows what waits for a stopped peer", "[ops][outbox]") {
  GrpcFederation fed({"BW", "EU"});
  fed.AppendConfig("BW", "delivery { initial_backoff_ms: 100 max_backoff_ms: 300 }");
  fed.StartInProcess("BW");  // EU is down
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-O-1", "BW", "EU")).ok());
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-O-2", "BW", "EU")).ok());
  const std::string kpxctl = " " + testing::KpxctlPath();
  const std::string op = fed.KpxctlEnv("BW", "operator") + kpxctl;

  // Text: one line per message, with the error of the last attempt.
  testing::Output o = WaitForOutput(op + " outbox list", "last error: ");
  INFO(o.out);
  CHECK(o.exit_code == 0);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 2);
  CHECK(o.out.find("to EU  CERTIFICATE") != std::string::npos);
  CHECK(o.out.find("BW-O-1") != std::string::npos);
  CHECK(o.out.find("STUCK") == std::string::npos);

  // JSON: one OutboxSummary per line.
  o = testing::Capture(op + " -o json outbox list");
  REQUIRE(o.exit_code == 0);
  const std::string first = o.out.substr(0, o.out.find('\n'));
  v1::OutboxSummary m;
  REQUIRE(google::protobuf::util::JsonStringToMessage(first, &m).ok());
  CHECK(m.recipient() == "EU");
  CHECK(m.kind() == v1::CERTIFICATE);
  CHECK(m.message_id().size() == 32);
  CHECK(absl::Now() - node::FromTimestamp(m.queued_at()) < absl::Minutes(5));
  CHECK_FALSE(m.stuck());

  // Nothing has waited for delivery.stuck_after_hours (default 7 days).
  o = testing::Capture(op + " outbox list --stuck");
  CHECK(o.exit_code == 0);
  CHECK(o.out.empty());

  // Pages: the token is the last message id of the page.
  auto auditor = fed.Authority("BW", "auditor");
  v1::ListOutboxRequest req;
  req.set_page_size(1);
  std::vector<std::string> seen;
  do {
    grpc::ClientContext ctx;
    v1::ListOutboxResponse resp;
    REQUIRE(auditor->ListOutbox(&ctx, req, &resp).ok());
    for (const v1::OutboxSummary& s : resp.messages()) seen.push_back(s.certificate_number());
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty() && seen.size() < 10);
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<std::string>{"BW-O-1", "BW-O-2"});

  // Roles: operator and auditor only.
  CHECK(testing::Capture(fed.KpxctlEnv("BW", "auditor") + kpxctl + " outbox list").exit_code == 0);
  for (const char* role : {"exporter", "importer"}) {
    o = testing::Capture(fed.KpxctlEnv("BW", role) + kpxctl + " outbox list");
    CHECK(o.exit_code == 1);
    CHECK(o.out.find("PERMISSION_DENIED") != std::string::npos);
    CHECK(o.out.find("ListOutbox") != std::string::npos);
  }

  // EU comes up: the outbox empties.
  fed.StartInProcess("EU");
  REQUIRE(fed.WaitForState("BW", "BW-O-2", v1::DELIVERED));
  REQUIRE(fed.WaitForState("BW", "BW-O-1", v1::DELIVERED));
  o = testing::Capture(op + " outbox list");
  CHECK(o.exit_code == 0);
  CHECK(o.out.empty());
}

}  // namespace
}  // namespace kpx

namespace kpx {
namespace {

TEST_CASE("a node whose ledger is rewritten is caught by its peer, which kpxctl shows",
          "[ops][evidence]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/true);
  fed.AppendConfig("BW", "delivery { initial_backoff_ms: 100 max_backoff_ms: 500 }");
  fed.StartInProcess("BW");
  fed.StartInProcess("EU");
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-RW-1", "BW", "EU")).ok());
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-RW-2", "BW", "EU")).ok());
  REQUIRE(fed.WaitForState("BW", "BW-RW-2", v1::DELIVERED));
  REQUIRE(fed.WaitForState("BW", "BW-RW-1", v1::DELIVERED));
  const std::string bw_auditor = fed.KpxctlEnv("BW", "auditor") + " " + testing::KpxctlPath();
  testing::Output o = testing::Capture(bw_auditor + " peer list");
  CHECK(o.exit_code == 0);
  CHECK(
      absl::StrContains(o.out, absl::StrCat("EU   ACTIVE    log ", kBootEntries + 2, " entries")));
  CHECK(absl::StrContains(o.out, "consistent"));

  // With the node stopped, its history is rewritten so that it verifies.
  const std::string ledger_dir = fed.Config("EU").data_dir() + "/ledger";
  fed.StopInProcess("EU");
  absl::StatusOr<int> changed = testing::RewriteLedger(ledger_dir, [](v1::LedgerEntry& e) {
    if (e.kind() != v1::RECEIVED_MESSAGE || e.certificate_number() != "BW-RW-1") return false;
    e.set_detail("never arrived");
    return true;
  });
  REQUIRE(changed.ok());
  REQUIRE(*changed == 1);
  fed.StartInProcess("EU");
  o = testing::Capture(fed.KpxctlEnv("EU", "auditor") + " " + testing::KpxctlPath() +
                       " ledger verify");
  CHECK(o.exit_code == 0);  // on its own, the rewritten ledger is fine

  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-RW-3", "BW", "EU")).ok());
  bool caught = false;
  for (int i = 0; i < 400 && !caught; ++i) {
    caught = absl::StrContains(testing::Capture(bw_auditor + " peer list").out, "INCONSISTENT");
    if (!caught) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(caught);
  o = testing::Capture(bw_auditor + " peer list");
  CHECK(absl::StrContains(
      o.out, absl::StrCat("does not extend the one of ", kBootEntries + 2, " it showed before")));
  CHECK(Sample(HttpGet(fed.MetricsPort("BW"), "/metrics"),
               "kpx_peer_log_inconsistent{partner=\"EU\"}") == 1);
  // Never silently accepted: the new certificate waits, not DELIVERED.
  auto auditor = fed.Authority("BW", "auditor");
  grpc::ClientContext ctx;
  v1::GetCertificateRequest req;
  req.set_number("BW-RW-3");
  v1::CertificateRecord rec;
  REQUIRE(auditor->GetCertificate(&ctx, req, &rec).ok());
  CHECK(rec.state() == v1::ISSUED);
  // BW's operator clears the mark once it is settled: BW-RW-3 goes through.
  const std::string bw_operator = fed.KpxctlEnv("BW", "operator") + " " + testing::KpxctlPath();
  o = testing::Capture(bw_operator + " peer reset EU");
  CHECK(o.exit_code == 2);  // --reason is required
  o = testing::Capture(bw_operator + " peer reset EU --reason 'settled with EU'");
  CHECK(o.exit_code == 0);
  REQUIRE(fed.WaitForState("BW", "BW-RW-3", v1::DELIVERED));
  o = testing::Capture(bw_auditor + " peer list");
  CHECK(absl::StrContains(o.out, "consistent"));
  CHECK_FALSE(absl::StrContains(o.out, "INCONSISTENT"));

  o = testing::Capture(bw_auditor + " ledger verify");
  CHECK(o.exit_code == 0);
  CHECK(absl::StrContains(o.out, "no tree head signed yet"));  // BW has only sent
  o = testing::Capture(fed.KpxctlEnv("EU", "auditor") + " " + testing::KpxctlPath() +
                       " ledger verify");
  CHECK(o.exit_code == 0);
  CHECK(absl::StrContains(o.out, "matches and verifies"));
}

}  // namespace
}  // namespace kpx

namespace kpx {
namespace {

TEST_CASE("kpxctl exports evidence on both sides and verifies it offline", "[ops][evidence]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartInProcess("BW");
  fed.StartInProcess("EU");
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-EV-1", "BW", "EU")).ok());
  REQUIRE(fed.WaitForState("EU", "BW-EV-1", v1::RECEIVED));
  const std::string kpxctl = testing::KpxctlPath();
  testing::Output o = testing::Capture(fed.KpxctlEnv("EU", "importer") + " " + kpxctl +
                                       " cert confirm BW-EV-1 --as-declared");
  REQUIRE(o.exit_code == 0);
  REQUIRE(fed.WaitForState("BW", "BW-EV-1", v1::CONFIRMED));

  for (const auto& [code, role] : {std::pair{"BW", "exporter"}, std::pair{"EU", "importer"}}) {
    INFO(code);
    const std::string file = fed.dir() + "/" + code + "-evidence.kpx";
    o = testing::Capture(fed.KpxctlEnv(code, role) + " " + kpxctl + " evidence export BW-EV-1 " +
                         file);
    INFO(o.out);
    REQUIRE(o.exit_code == 0);
    // Offline: no node address, no client certificate.
    o = testing::Capture(kpxctl + " evidence verify " + file);
    INFO(o.out);
    CHECK(o.exit_code == 0);
    CHECK(absl::StrContains(o.out, "OK    the bundle is signed by " + std::string(code)));
    CHECK_FALSE(absl::StrContains(o.out, "FAIL"));
    // One byte changed in the middle of the file.
    std::string bytes = kpx::testing::Must(crypto::ReadFile(file));
    bytes[bytes.size() / 2] ^= 0x04;
    std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes;
    o = testing::Capture(kpxctl + " evidence verify " + file);
    CHECK(o.exit_code == 1);
    CHECK(absl::StrContains(o.out, "FAIL  "));
    CHECK(absl::StrContains(o.out, "evidence does not verify"));
  }
}

}  // namespace
}  // namespace kpx

namespace kpx {
namespace {

// Three publisher keys on trust-list version 1 (2 of 3 sign the next),
// written to <dir>/publisher-N.pem; returns the text of version 1.
v1::TrustList GovernedTrustList(testing::GrpcFederation& fed) {
  const std::string path = fed.dir() + "/trust-list.textpb";
  v1::TrustList list;
  REQUIRE(node::ParseTextProto(kpx::testing::Must(crypto::ReadFile(path)), path, &list).ok());
  list.set_version(1);
  const char* names[] = {"KP Chair", "KP Secretariat", "KP Vice-Chair"};
  for (int i = 0; i < 3; ++i) {
    crypto::PrivateKey key = kpx::testing::Must(crypto::PrivateKey::Generate(
        i == 1 ? crypto::Algorithm::kEcdsaP256 : crypto::Algorithm::kEd25519));
    std::ofstream(absl::StrCat(fed.dir(), "/publisher-", i + 1, ".pem")) << key.ToPem();
    v1::TrustListPublisher* p = list.add_publishers();
    p->set_name(names[i]);
    p->set_key_id(key.key_id());
    p->set_algorithm(i == 1 ? v1::ECDSA_P256_SHA256 : v1::ED25519);
    p->set_public_key_pem(key.public_key().ToPem());
  }
  list.set_threshold(2);
  std::string text;
  google::protobuf::TextFormat::PrintToString(list, &text);
  std::ofstream(path, std::ios::trunc) << text;
  return list;
}

TEST_CASE("a trust-list version signed by 2 of 3 publishers reaches every node with no operator",
          "[ops][trust]") {
  testing::GrpcFederation fed({"BW", "EU", "AE"});
  v1::TrustList v2 = GovernedTrustList(fed);
  for (const char* code : {"BW", "EU", "AE"}) {
    fed.AppendConfig(code, "trust_poll_seconds: 1");
    fed.StartInProcess(code);
  }
  // Version 2 suspends AE.
  v2.set_version(2);
  for (v1::Participant& p : *v2.mutable_participants()) {
    if (p.code() == "AE") p.set_status(v1::SUSPENDED);
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(v2, &text);
  const std::string draft = fed.dir() + "/v2.textpb";
  const std::string signed_file = fed.dir() + "/v2.signed.textpb";
  std::ofstream(draft) << text;
  const std::string kpxctl = testing::KpxctlPath();
  const std::string bw_operator = fed.KpxctlEnv("BW", "operator") + " " + kpxctl;

  testing::Output o =
      testing::Capture(kpxctl + " trust diff " + fed.dir() + "/trust-list.textpb " + draft);
  INFO(o.out);
  CHECK(o.exit_code == 0);
  CHECK(absl::StrContains(o.out, "version: 1 -> 2"));
  CHECK(absl::StrContains(o.out, "AE status: ACTIVE -> SUSPENDED"));

  // One publisher's signature is not enough: refused, nothing changes.
  o = testing::Capture(kpxctl + " trust sign " + draft + " --key " + fed.dir() +
                       "/publisher-1.pem --out " + signed_file);
  INFO(o.out);
  REQUIRE(o.exit_code == 0);
  o = testing::Capture(kpxctl + " trust show " + signed_file + " --previous " + fed.dir() +
                       "/trust-list.textpb");
  CHECK(absl::StrContains(o.out, "signatures valid under version 1: KP Chair"));
  CHECK(absl::StrContains(o.out, "may NOT follow version 1"));
  o = testing::Capture(bw_operator + " trust publish " + signed_file);
  CHECK(o.exit_code != 0);
  CHECK(absl::StrContains(o.out, "FAILED_PRECONDITION"));
  CHECK(absl::StrContains(o.out, "signed by 1 of the 2 publishers of version 1 required"));
  CHECK(fed.server("BW").node().trust_list()->version() == 1);

  // A second publisher signs (an ECDSA key); the operator of one node
  // publishes it.
  o = testing::Capture(kpxctl + " trust sign " + signed_file + " --key " + fed.dir() +
                       "/publisher-2.pem --out " + signed_file);
  REQUIRE(o.exit_code == 0);
  CHECK(absl::StrContains(o.out, "holds 2 signature(s)"));
  o = testing::Capture(bw_operator + " trust publish " + signed_file);
  INFO(o.out);
  REQUIRE(o.exit_code == 0);
  CHECK(absl::StrContains(o.out, "trust-list version 2 in force here"));

  // Every other node fetches it from a peer and applies it by itself.
  for (const char* code : {"EU", "AE"}) {
    INFO(code);
    REQUIRE(
        testing::WaitFor([&] { return fed.server(code).node().trust_list()->version() == 2; }, 30));
    CHECK(fed.server(code).node().trust_list()->CheckActive("AE", absl::Now()).code() ==
          absl::StatusCode::kPermissionDenied);
  }
  o = testing::Capture(fed.KpxctlEnv("EU", "auditor") + " " + kpxctl + " trust show");
  INFO(o.out);
  CHECK(absl::StrContains(o.out, "version 1 in force from"));
  CHECK(absl::StrContains(o.out, "version 2 in force from"));
  CHECK(absl::StrContains(o.out, "(peer "));
  CHECK(absl::StrContains(o.out, "AE  SUSPENDED"));
  // The suspension holds: EU refuses a certificate for AE at submit.
  CHECK(Submit(fed, "EU", ValidCertificate("EU-T-1", "EU", "AE")).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  // A restart with the old file keeps the version the node fetched.
  fed.StopInProcess("EU");
  fed.StartInProcess("EU");
  CHECK(fed.server("EU").node().trust_list()->version() == 2);
  std::vector<v1::TrustListRecord> stored =
      kpx::testing::Must(fed.server("EU").node().ledger().ListTrustLists(0, 10));
  REQUIRE(stored.size() == 2);
  CHECK(stored[1].source().rfind("peer ", 0) == 0);
}

TEST_CASE(
    "a key revoked by a signed trust-list version strands nothing: queued messages are "
    "signed again and delivered",
    "[ops][trust][keys]") {
  testing::GrpcFederation fed({"BW", "EU", "AE"});
  v1::TrustList v2 = GovernedTrustList(fed);
  // BW's node holds its next key, not yet on the list.
  const crypto::PrivateKey next =
      kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519));
  const std::string next_file = fed.dir() + "/BW-next.key";
  std::ofstream(next_file) << next.ToPem();
  std::filesystem::permissions(
      next_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  fed.AppendConfig("BW", absl::StrCat("additional_signing_key_files: \"", next_file, "\"\n",
                                      "delivery { initial_backoff_ms: 200 max_backoff_ms: 1000 }"));
  for (const char* code : {"BW", "EU", "AE"}) {
    fed.AppendConfig(code, "trust_poll_seconds: 1");
    fed.StartInProcess(code);
  }
  const std::string old_key = kpx::testing::Must(fed.server("BW").node().CurrentKeyId());
  REQUIRE(old_key != next.key_id());

  // EU is down while BW issues a certificate to it: it waits, signed with
  // the old key.
  fed.StopInProcess("EU");
  REQUIRE(Submit(fed, "BW", ValidCertificate("BW-RV-1", "BW", "EU")).ok());
  const std::string kpxctl = testing::KpxctlPath();
  testing::Output o =
      testing::Capture(fed.KpxctlEnv("BW", "operator") + " " + kpxctl + " outbox list");
  INFO(o.out);
  CHECK(absl::StrContains(o.out, "BW-RV-1"));

  // Version 2 revokes that key from a minute ago and lists the next one;
  // two publishers sign it and AE's operator publishes it.
  v2.set_version(2);
  for (v1::Participant& p : *v2.mutable_participants()) {
    if (p.code() != "BW") continue;
    for (v1::SigningKey& k : *p.mutable_signing_keys()) {
      if (k.key_id() == old_key) {
        *k.mutable_revoked_at() = node::ToTimestamp(absl::Now() - absl::Minutes(1));
      }
    }
    testing::ListSigningKey(p, next);
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(v2, &text);
  const std::string draft = fed.dir() + "/v2.textpb";
  std::ofstream(draft) << text;
  o = testing::Capture(kpxctl + " trust diff " + fed.dir() + "/trust-list.textpb " + draft);
  INFO(o.out);
  CHECK(absl::StrContains(o.out, "BW signing_keys: "));
  CHECK(absl::StrContains(o.out, " REVOKED from "));
  for (const char* pub : {"publisher-1.pem", "publisher-3.pem"}) {
    o = testing::Capture(kpxctl + " trust sign " + draft + " --key " + fed.dir() + "/" + pub +
                         " --out " + draft);
    INFO(o.out);
    REQUIRE(o.exit_code == 0);
  }
  o = testing::Capture(fed.KpxctlEnv("AE", "operator") + " " + kpxctl + " trust publish " + draft);
  INFO(o.out);
  REQUIRE(o.exit_code == 0);

  // BW fetches it from AE and signs its queued message again by itself.
  node::Node& bw = fed.server("BW").node();
  REQUIRE(testing::WaitFor([&] { return bw.MessagesResigned() == 1; }, 30));
  CHECK(kpx::testing::Must(bw.CurrentKeyId()) == next.key_id());
  // EU comes back, fetches version 2 from a peer, and receives it.
  fed.StartInProcess("EU");
  REQUIRE(fed.WaitForState("EU", "BW-RV-1", v1::RECEIVED));
  REQUIRE(fed.WaitForState("BW", "BW-RV-1", v1::DELIVERED));
  for (const char* code : {"BW", "EU", "AE"}) {
    CHECK(fed.server(code).node().trust_list()->version() == 2);
  }
  bool resigned_entry = false;
  for (const v1::LedgerEntry& e :
       kpx::testing::Must(bw.ledger().ReadEntries(1, bw.ledger().head().sequence))) {
    if (e.kind() != v1::RESIGNED) continue;
    resigned_entry = true;
    CHECK(e.certificate_number() == "BW-RV-1");
    CHECK(e.message().key_id() == next.key_id());
    CHECK(absl::StrContains(e.detail(), "is revoked from"));
  }
  CHECK(resigned_entry);

  // Offline evidence from BW shows the message signed again, unchanged.
  const std::string file = fed.dir() + "/BW-RV-1.kpx";
  o = testing::Capture(fed.KpxctlEnv("BW", "exporter") + " " + kpxctl +
                       " evidence export BW-RV-1 " + file);
  REQUIRE(o.exit_code == 0);
  o = testing::Capture(kpxctl + " evidence verify " + file);
  INFO(o.out);
  CHECK(o.exit_code == 0);
  CHECK(absl::StrContains(o.out, "signed again, unchanged"));
}

}  // namespace
}  // namespace kpx
