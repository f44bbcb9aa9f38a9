// A test federation over real gRPC on 127.0.0.1: PKI made by deploy/pki.sh
// at test time, ports chosen at run time, nodes run either in this process
// (gateway::NodeServer) or as real kpxd processes.
#ifndef KPX_TESTS_FEDERATION_H_
#define KPX_TESTS_FEDERATION_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gateway/server.h"
#include "gateway/tls.h"
#include "kpx/v1/service.grpc.pb.h"
#include "test_util.h"

namespace kpx::testing {

// A loopback TCP port held (bound, not listening, with SO_REUSEPORT) for
// the object's lifetime: no other process can take it, while a gRPC
// server (which sets SO_REUSEPORT too) can listen on it.
class ReservedPort {
 public:
  ReservedPort();
  ~ReservedPort();
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Runs a shell command; returns its exit status.
int Run(const std::string& command);

struct Output {
  int exit_code;
  std::string out;  // stdout and stderr together
};
// Runs a shell command; returns its exit status and everything it printed.
Output Capture(const std::string& command);

class GrpcFederation {
 public:
  // Generates PKI and configs for `codes` with fresh ports.
  // Without `metrics` the nodes' metrics endpoints are off (stopping one
  // costs about a second: its HTTP server polls for shutdown). Without
  // `console` their HTTPS consoles are off; with it each binds a free port.
  explicit GrpcFederation(const std::vector<std::string>& codes, bool metrics = false,
                          bool console = false);
  ~GrpcFederation();

  const std::string& dir() const { return tmp_.path(); }
  // Appends text-format fields to `code`'s node.textpb.
  void AppendConfig(const std::string& code, const std::string& text);
  std::string ConfigPath(const std::string& code) const;
  // Points `code`'s node at `endpoint` ("host:port") for reaching `peer`,
  // e.g. a FaultProxy in front of `peer`'s peer port. From the first call
  // on `code` reads its own copy of the trust list,
  // <dir>/<code>/trust-list.textpb (node.textpb is rewritten to name it);
  // the node sees the change when it next starts or reloads. TLS still
  // checks `peer`'s tls_server_name, so any port works.
  void SetPeerEndpoint(const std::string& code, const std::string& peer,
                       const std::string& endpoint);
  v1::NodeConfig Config(const std::string& code) const;
  // The peer port is reserved up front (it is on the trust list); the
  // authority and metrics ports are the ones the node bound (port 0), known
  // once it has started.
  int PeerPort(const std::string& code) const;
  int AuthorityPort(const std::string& code) const;
  int MetricsPort(const std::string& code) const;

  // In-process node.
  // In-process node, from its config file (so Reload re-reads it).
  gateway::NodeServer& StartInProcess(const std::string& code);
  gateway::NodeServer& StartInProcess(const std::string& code, const v1::NodeConfig& config);
  void StopInProcess(const std::string& code);
  gateway::NodeServer& server(const std::string& code) { return *servers_.at(code); }

  // kpxd process; waits until it listens.
  void StartProcess(const std::string& code, const std::vector<std::string>& extra_args = {});
  // The process id of `code`'s kpxd process (started by StartProcess).
  int Pid(const std::string& code) const { return pids_.at(code); }
  // Sends `signal` to `code`'s kpxd process.
  void SignalProcess(const std::string& code, int signal);
  std::string LogPath(const std::string& code) const;
  // SIGKILL (crash) or SIGTERM (clean stop), then waits for the process.
  void KillProcess(const std::string& code, bool crash);

  // An AuthorityService client for `code`'s authority `role` ("exporter",
  // "importer", "auditor").
  std::unique_ptr<v1::AuthorityService::Stub> Authority(const std::string& code,
                                                        const std::string& role);
  // The channel Authority() makes its stub on (for health checks).
  std::shared_ptr<grpc::Channel> AuthorityChannel(const std::string& code, const std::string& role);
  // A PeerService client to `to`'s node presenting `from`'s node identity.
  std::unique_ptr<v1::PeerService::Stub> Peer(const std::string& from, const std::string& to);

  // Polls `code` until certificate `number` is in `state` (or 20 s pass).
  bool WaitForState(const std::string& code, const std::string& number, v1::CertificateState state);

  // Environment prefix for running kpxctl as `code`'s `role`.
  std::string KpxctlEnv(const std::string& code, const std::string& role) const;

 private:
  gateway::NodeServer& Started(const std::string& code,
                               std::unique_ptr<gateway::NodeServer> server);

  TempDir tmp_;
  std::map<std::string, std::unique_ptr<ReservedPort>> peer_ports_;
  std::map<std::string, int> authority_ports_;
  std::map<std::string, int> metrics_ports_;
  std::map<std::string, std::unique_ptr<gateway::NodeServer>> servers_;
  std::map<std::string, int> pids_;
};

// Paths to the programs under test (set by tests/CMakeLists.txt).
std::string KpxdPath();
std::string KpxctlPath();
std::string SourceDir();

}  // namespace kpx::testing

#endif  // KPX_TESTS_FEDERATION_H_
