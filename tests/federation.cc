#include "federation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "google/protobuf/text_format.h"
#include "kpx/v1/config.pb.h"
#include "node/config.h"

namespace kpx::testing {

std::string KpxdPath() { return KPX_KPXD_PATH; }
std::string KpxctlPath() { return KPX_KPXCTL_PATH; }
std::string SourceDir() { return KPX_SOURCE_DIR; }

ReservedPort::ReservedPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd_ < 0 || ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd_ >= 0) ::close(fd_);
    throw std::runtime_error("cannot reserve a loopback port");
  }
  port_ = ntohs(addr.sin_port);
}

ReservedPort::~ReservedPort() { ::close(fd_); }

namespace {

// The port a kpxd process logged for `listener` ("authority", "metrics")
// in its "listening" line, text or JSON (authority="127.0.0.1:0 port 41235",
// "metrics":"port 9464"); 0 if none (metrics off).
int LoggedPort(const std::string& line, const std::string& listener) {
  const std::regex re(listener + "\"?[=:]\"?[^\" ]*( port |port )([0-9]+)");
  std::smatch m;
  return std::regex_search(line, m, re) ? std::stoi(m[2].str()) : 0;
}

}  // namespace

int Run(const std::string& command) {
  int rc = std::system(command.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

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

GrpcFederation::GrpcFederation(const std::vector<std::string>& codes, bool metrics, bool console) {
  // Peer ports go on the trust list before any node starts, so they are
  // reserved for the federation's lifetime; authority and metrics
  // listeners bind port 0 and the bound port is read back after start.
  std::string specs;
  for (const std::string& c : codes) {
    peer_ports_[c] = std::make_unique<ReservedPort>();
    absl::StrAppend(&specs, " ", c, ":", peer_ports_[c]->port(), ":0");
  }
  const std::string cmd =
      absl::StrCat("bash ", SourceDir(), "/deploy/pki.sh ", tmp_.path(), specs, " >/dev/null");
  if (Run(cmd) != 0) throw std::runtime_error("pki.sh failed: " + cmd);
  // Several nodes share this machine: each gets its own metrics port.
  for (const std::string& c : codes) {
    AppendConfig(c, console ? "console_listen: \"127.0.0.1:0\"" : "console_listen: \"off\"");
    const std::string text = kpx::testing::Must(crypto::ReadFile(ConfigPath(c)));
    if (text.find("\nmetrics_listen") != std::string::npos) continue;
    if (!metrics) {
      AppendConfig(c, "metrics_listen: \"off\"");
      continue;
    }
    AppendConfig(c, "metrics_listen: \"127.0.0.1:0\"");
  }
}

GrpcFederation::~GrpcFederation() {
  for (auto& [code, pid] : pids_) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  }
  servers_.clear();
}

void GrpcFederation::AppendConfig(const std::string& code, const std::string& text) {
  std::ofstream(ConfigPath(code), std::ios::app) << "\n" << text << "\n";
}

std::string GrpcFederation::ConfigPath(const std::string& code) const {
  return absl::StrCat(tmp_.path(), "/", code, "/node.textpb");
}

void GrpcFederation::SetPeerEndpoint(const std::string& code, const std::string& peer,
                                     const std::string& endpoint) {
  const std::string own = absl::StrCat(tmp_.path(), "/", code, "/trust-list.textpb");
  if (!std::filesystem::exists(own)) {
    std::filesystem::copy_file(absl::StrCat(tmp_.path(), "/trust-list.textpb"), own);
    std::string config = kpx::testing::Must(crypto::ReadFile(ConfigPath(code)));
    const std::string shared = "trust_list_file: \"../trust-list.textpb\"";
    const size_t at = config.find(shared);
    if (at == std::string::npos) throw std::runtime_error("no shared trust list in " + code);
    config.replace(at, shared.size(), "trust_list_file: \"trust-list.textpb\"");
    std::ofstream(ConfigPath(code), std::ios::trunc) << config;
  }
  v1::TrustList list;
  if (!google::protobuf::TextFormat::ParseFromString(kpx::testing::Must(crypto::ReadFile(own)),
                                                     &list)) {
    throw std::runtime_error("cannot parse " + own);
  }
  bool found = false;
  for (v1::Participant& p : *list.mutable_participants()) {
    if (p.code() != peer) continue;
    p.set_endpoint(endpoint);
    found = true;
  }
  if (!found) throw std::runtime_error(peer + " is not on the trust list");
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(list, &text)) {
    throw std::runtime_error("cannot print " + own);
  }
  std::ofstream(own, std::ios::trunc) << "# kpx.v1.TrustList, " << code << "'s copy\n" << text;
}

v1::NodeConfig GrpcFederation::Config(const std::string& code) const {
  absl::StatusOr<v1::NodeConfig> c = node::LoadConfig(ConfigPath(code));
  if (!c.ok()) throw std::runtime_error(std::string(c.status().message()));
  return *c;
}

gateway::NodeServer& GrpcFederation::StartInProcess(const std::string& code) {
  absl::StatusOr<std::unique_ptr<gateway::NodeServer>> s =
      gateway::NodeServer::Start(Config(code), ConfigPath(code));
  if (!s.ok()) throw std::runtime_error(std::string(s.status().message()));
  return Started(code, *std::move(s));
}

gateway::NodeServer& GrpcFederation::StartInProcess(const std::string& code,
                                                    const v1::NodeConfig& config) {
  absl::StatusOr<std::unique_ptr<gateway::NodeServer>> s = gateway::NodeServer::Start(config);
  if (!s.ok()) throw std::runtime_error(std::string(s.status().message()));
  return Started(code, *std::move(s));
}

gateway::NodeServer& GrpcFederation::Started(const std::string& code,
                                             std::unique_ptr<gateway::NodeServer> server) {
  authority_ports_[code] = server->authority_port();
  metrics_ports_[code] = server->metrics_port();
  servers_[code] = std::move(server);
  return *servers_[code];
}

int GrpcFederation::PeerPort(const std::string& code) const { return peer_ports_.at(code)->port(); }

int GrpcFederation::AuthorityPort(const std::string& code) const {
  auto it = authority_ports_.find(code);
  if (it == authority_ports_.end()) throw std::runtime_error(code + " has not started");
  return it->second;
}

int GrpcFederation::MetricsPort(const std::string& code) const {
  auto it = metrics_ports_.find(code);
  if (it == metrics_ports_.end() || it->second == 0) {
    throw std::runtime_error(code + " has not started with metrics on");
  }
  return it->second;
}

void GrpcFederation::StopInProcess(const std::string& code) { servers_.erase(code); }

std::string GrpcFederation::LogPath(const std::string& code) const {
  return absl::StrCat(tmp_.path(), "/", code, "/kpxd.log");
}

void GrpcFederation::SignalProcess(const std::string& code, int signal) {
  ::kill(pids_.at(code), signal);
}

void GrpcFederation::StartProcess(const std::string& code,
                                  const std::vector<std::string>& extra_args) {
  const std::string log = LogPath(code);
  const std::string config = ConfigPath(code);
  const std::string kpxd = KpxdPath();
  // A restarted node appends to the same log: look only at what is new.
  std::error_code ec;
  const auto log_start = std::filesystem::file_size(log, ec);
  const size_t skip = ec ? 0 : static_cast<size_t>(log_start);
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<const char*> argv = {"kpxd", "--config", config.c_str()};
    for (const std::string& a : extra_args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    ::execv(kpxd.c_str(), const_cast<char* const*>(argv.data()));
    ::_exit(127);
  }
  pids_[code] = pid;
  // Ready once it logs that both listeners are up.
  for (int i = 0; i < 400; ++i) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    if (const size_t at = text.str().find("listening", skip); at != std::string::npos) {
      const std::string line = text.str().substr(at, text.str().find('\n', at) - at);
      authority_ports_[code] = LoggedPort(line, "authority");
      metrics_ports_[code] = LoggedPort(line, "metrics");
      if (authority_ports_[code] == 0) throw std::runtime_error("no authority port in " + log);
      return;
    }
    int status;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      pids_.erase(code);
      throw std::runtime_error("kpxd " + code + " exited; see " + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  throw std::runtime_error("kpxd " + code + " did not start; see " + log);
}

void GrpcFederation::KillProcess(const std::string& code, bool crash) {
  auto it = pids_.find(code);
  if (it == pids_.end()) return;
  ::kill(it->second, crash ? SIGKILL : SIGTERM);
  ::waitpid(it->second, nullptr, 0);
  pids_.erase(it);
}

std::unique_ptr<v1::AuthorityService::Stub> GrpcFederation::Authority(const std::string& code,
                                                                      const std::string& role) {
  return v1::AuthorityService::NewStub(AuthorityChannel(code, role));
}

std::shared_ptr<grpc::Channel> GrpcFederation::AuthorityChannel(const std::string& code,
                                                                const std::string& role) {
  const std::string base = absl::StrCat(tmp_.path(), "/", code, "/");
  absl::StatusOr<gateway::TlsIdentity> id =
      gateway::LoadTlsIdentity(base + role + ".pem", base + role + ".key");
  if (!id.ok()) throw std::runtime_error(std::string(id.status().message()));
  const std::string ca = kpx::testing::Must(crypto::ReadFile(base + "ca.pem"));
  return gateway::MutualTlsChannel(absl::StrCat("127.0.0.1:", AuthorityPort(code)), *id, ca,
                                   absl::StrCat("node.", absl::AsciiStrToLower(code), ".kpx"));
}

std::unique_ptr<v1::PeerService::Stub> GrpcFederation::Peer(const std::string& from,
                                                            const std::string& to) {
  const std::string mine = absl::StrCat(tmp_.path(), "/", from, "/");
  absl::StatusOr<gateway::TlsIdentity> id =
      gateway::LoadTlsIdentity(mine + "node.pem", mine + "node.key");
  if (!id.ok()) throw std::runtime_error(std::string(id.status().message()));
  const std::string ca =
      kpx::testing::Must(crypto::ReadFile(absl::StrCat(tmp_.path(), "/", to, "/ca.pem")));
  return v1::PeerService::NewStub(
      gateway::MutualTlsChannel(absl::StrCat("127.0.0.1:", PeerPort(to)), *id, ca,
                                absl::StrCat("node.", absl::AsciiStrToLower(to), ".kpx")));
}

bool GrpcFederation::WaitForState(const std::string& code, const std::string& number,
                                  v1::CertificateState state) {
  auto stub = Authority(code, "auditor");
  for (int i = 0; i < 400; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    v1::GetCertificateRequest req;
    req.set_number(number);
    v1::CertificateRecord rec;
    if (stub->GetCertificate(&ctx, req, &rec).ok() && rec.state() == state) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string GrpcFederation::KpxctlEnv(const std::string& code, const std::string& role) const {
  const std::string base = absl::StrCat(tmp_.path(), "/", code, "/");
  return absl::StrCat("KPX_NODE=127.0.0.1:", AuthorityPort(code), " KPX_CERT=", base, role,
                      ".pem KPX_KEY=", base, role, ".key KPX_CA=", base,
                      "ca.pem KPX_SERVER_NAME=node.", absl::AsciiStrToLower(code), ".kpx");
}

}  // namespace kpx::testing
