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
#include <sstream>
#include <stdexcept>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "node/config.h"

namespace kpx::testing {

std::string KpxdPath() { return KPX_KPXD_PATH; }
std::string KpxctlPath() { return KPX_KPXCTL_PATH; }
std::string SourceDir() { return KPX_SOURCE_DIR; }

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a loopback port");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

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

GrpcFederation::GrpcFederation(const std::vector<std::string>& codes, bool metrics) {
  std::string specs;
  for (const std::string& c : codes) {
    ports_[c] = {FreePort(), FreePort()};
    absl::StrAppend(&specs, " ", c, ":", ports_[c].first, ":", ports_[c].second);
  }
  const std::string cmd =
      absl::StrCat("bash ", SourceDir(), "/deploy/pki.sh ", tmp_.path(), specs, " >/dev/null");
  if (Run(cmd) != 0) throw std::runtime_error("pki.sh failed: " + cmd);
  // Several nodes share this machine: each gets its own metrics port.
  for (const std::string& c : codes) {
    const std::string text = *crypto::ReadFile(ConfigPath(c));
    if (text.find("\nmetrics_listen") != std::string::npos) continue;
    if (!metrics) {
      AppendConfig(c, "metrics_listen: \"off\"");
      continue;
    }
    metrics_ports_[c] = FreePort();
    AppendConfig(c, absl::StrCat("metrics_listen: \"127.0.0.1:", metrics_ports_[c], "\""));
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

v1::NodeConfig GrpcFederation::Config(const std::string& code) const {
  absl::StatusOr<v1::NodeConfig> c = node::LoadConfig(ConfigPath(code));
  if (!c.ok()) throw std::runtime_error(std::string(c.status().message()));
  return *c;
}

gateway::NodeServer& GrpcFederation::StartInProcess(const std::string& code) {
  absl::StatusOr<std::unique_ptr<gateway::NodeServer>> s =
      gateway::NodeServer::Start(Config(code), ConfigPath(code));
  if (!s.ok()) throw std::runtime_error(std::string(s.status().message()));
  servers_[code] = *std::move(s);
  return *servers_[code];
}

gateway::NodeServer& GrpcFederation::StartInProcess(const std::string& code,
                                                    const v1::NodeConfig& config) {
  absl::StatusOr<std::unique_ptr<gateway::NodeServer>> s = gateway::NodeServer::Start(config);
  if (!s.ok()) throw std::runtime_error(std::string(s.status().message()));
  servers_[code] = *std::move(s);
  return *servers_[code];
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
    if (text.str().find("listening", skip) != std::string::npos) return;
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
  const std::string base = absl::StrCat(tmp_.path(), "/", code, "/");
  absl::StatusOr<gateway::TlsIdentity> id =
      gateway::LoadTlsIdentity(base + role + ".pem", base + role + ".key");
  if (!id.ok()) throw std::runtime_error(std::string(id.status().message()));
  const std::string ca = *crypto::ReadFile(base + "ca.pem");
  return v1::AuthorityService::NewStub(
      gateway::MutualTlsChannel(absl::StrCat("127.0.0.1:", AuthorityPort(code)), *id, ca,
                                absl::StrCat("node.", absl::AsciiStrToLower(code), ".kpx")));
}

std::unique_ptr<v1::PeerService::Stub> GrpcFederation::Peer(const std::string& from,
                                                            const std::string& to) {
  const std::string mine = absl::StrCat(tmp_.path(), "/", from, "/");
  absl::StatusOr<gateway::TlsIdentity> id =
      gateway::LoadTlsIdentity(mine + "node.pem", mine + "node.key");
  if (!id.ok()) throw std::runtime_error(std::string(id.status().message()));
  const std::string ca = *crypto::ReadFile(absl::StrCat(tmp_.path(), "/", to, "/ca.pem"));
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
  return absl::StrCat("KPX_NODE=127.0.0.1:", ports_.at(code).second, " KPX_CERT=", base, role,
                      ".pem KPX_KEY=", base, role, ".key KPX_CA=", base,
                      "ca.pem KPX_SERVER_NAME=node.", absl::AsciiStrToLower(code), ".kpx");
}

}  // namespace kpx::testing
