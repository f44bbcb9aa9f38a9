// A running kpx node: the ledger, the node logic, the gRPC transport to
// peers and the two listeners, built from a NodeConfig. kpxd is a thin
// main() around this; the multi-node tests run several in one process.
#ifndef KPX_GATEWAY_SERVER_H_
#define KPX_GATEWAY_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/grpc_transport.h"
#include "gateway/services.h"
#include "grpcpp/grpcpp.h"
#include "kpx/v1/config.pb.h"
#include "node/node.h"
#include "storage/ledger.h"

namespace kpx::gateway {

class NodeServer {
 public:
  // Reads every file the config names, opens the ledger, starts both
  // listeners and the delivery thread. Any problem fails with one line.
  static absl::StatusOr<std::unique_ptr<NodeServer>> Start(const v1::NodeConfig& config);
  // Stops listening (letting calls in flight finish for up to 5 s), stops
  // delivery and closes the ledger. Idempotent; the destructor calls it.
  void Shutdown();
  ~NodeServer();

  node::Node& node() { return *node_; }
  int peer_port() const { return peer_port_; }
  int authority_port() const { return authority_port_; }

 private:
  NodeServer() = default;

  std::unique_ptr<storage::Ledger> ledger_;
  std::unique_ptr<GrpcTransport> transport_;
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<PeerServiceImpl> peer_service_;
  std::unique_ptr<AuthorityServiceImpl> authority_service_;
  std::unique_ptr<grpc::Server> peer_server_;
  std::unique_ptr<grpc::Server> authority_server_;
  int peer_port_ = 0;
  int authority_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_SERVER_H_
