// A running kpx node: the ledger, the node logic, the gRPC transport to
// peers, the two gRPC listeners and the HTTPS console and API
// (http_server.h, http_api.h), built from a NodeConfig. kpxd is a thin
// main() around this; the multi-node tests run several in one process.
//
// Files under config.data_dir:
//   ledger/              the RocksDB ledger
//   tls/peer-roots.pem   every Participant's TLS CA from the trust list in
//                        force (the peer listener reads it; rewritten on
//                        reload)
//
// Both listeners serve grpc.health.v1 (SERVING while Node::Health() is OK;
// kpx.v1.Capacity NOT_SERVING while a listener sheds load) and gRPC server
// reflection. Each listener is a ConnectionGate (connection_gate.h) in
// front of a gRPC server, both limited by config.limits. TLS files are watched: a replaced node
// certificate or CA file is picked up within seconds, without a restart.
//
// Thread safety: Reload, Backup and Shutdown may be called from any thread.
#ifndef KPX_GATEWAY_SERVER_H_
#define KPX_GATEWAY_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gateway/grpc_transport.h"
#include "gateway/services.h"
#include "grpcpp/grpcpp.h"
#include "kpx/v1/config.pb.h"
#include "node/node.h"
#include "storage/ledger.h"

namespace kpx::gateway {

class ConnectionGate;
class ConsoleEvents;
class ConsolePages;
class ConsoleSessions;
class HttpApi;
class HttpServer;
class Metrics;
struct Material;

class NodeServer {
 public:
  // Reads every file the config names, opens the ledger, starts both
  // listeners, the metrics endpoint and the delivery thread. Any problem
  // fails with one line.
  // `config_path`, when given, is where `config` came from: Reload then
  // re-reads the key file names (signing_key_file,
  // additional_signing_key_files) and trust_list_file from it too.
  static absl::StatusOr<std::unique_ptr<NodeServer>> Start(const v1::NodeConfig& config,
                                                           const std::string& config_path = "");
  // Stops listening (letting calls in flight finish for up to 5 s), stops
  // delivery and closes the ledger. Idempotent; the destructor calls it.
  void Shutdown();
  ~NodeServer();

  // Re-reads the trust list, the signing keys and the TLS files named by
  // the config. If anything is malformed, nothing changes and the error
  // says what; the node keeps running with what it had. Which trust-list
  // version ends in force is node::TrustBook::Install's decision.
  absl::StatusOr<v1::ReloadResponse> Reload();
  // A consistent online backup of the ledger into `directory` (absolute,
  // must not exist).
  absl::StatusOr<v1::BackupResponse> Backup(const std::string& directory);

  node::Node& node() { return *node_; }
  int peer_port() const { return peer_port_; }
  int authority_port() const { return authority_port_; }
  // 0 when metrics are off.
  int metrics_port() const;
  // The HTTPS console and API (console_listen); 0 when off.
  int console_port() const;

 private:
  NodeServer() = default;
  // Start's steps, in order; each fails with one line.
  absl::Status OpenData(const Material& material);   // tls/peer-roots.pem, the ledger
  absl::Status BuildNode(const Material& material);  // transport, node, metrics
  absl::Status StartListeners();                     // services and both gRPC servers
  absl::Status StartConsole();                       // the HTTPS listener, unless off
  void WatchHealth();
  // tls/peer-roots.pem: the CAs of `trust` (logged if it cannot be written).
  absl::Status WritePeerRoots(const node::TrustList& trust);

  v1::NodeConfig config_;
  std::string config_path_;
  std::string peer_roots_file_;
  std::unique_ptr<storage::Ledger> ledger_;
  std::unique_ptr<GrpcTransport> transport_;
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<PeerServiceImpl> peer_service_;
  std::unique_ptr<Authority> authority_;
  std::unique_ptr<AuthorityServiceImpl> authority_service_;
  // Own the listening sockets and the accept loops; shared with metrics.
  std::shared_ptr<ConnectionGate> peer_gate_;
  std::shared_ptr<ConnectionGate> authority_gate_;
  std::unique_ptr<grpc::Server> peer_server_;
  std::unique_ptr<grpc::Server> authority_server_;
  std::unique_ptr<HttpServer> https_;
  std::unique_ptr<ConsoleSessions> sessions_;
  std::unique_ptr<HttpApi> http_api_;
  std::unique_ptr<ConsolePages> pages_;
  std::unique_ptr<ConsoleEvents> events_;
  int peer_port_ = 0;
  int authority_port_ = 0;

  absl::Mutex reload_mu_;  // one reload at a time

  absl::Mutex health_mu_;
  bool stopping_ ABSL_GUARDED_BY(health_mu_) = false;
  std::thread health_thread_;
  bool shut_down_ = false;
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_SERVER_H_
