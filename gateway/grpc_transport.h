// node::Transport over gRPC: one mutually authenticated channel per peer,
// created on first use from the trust list (endpoint, CA, server name), and
// one Deliver call per batch. A call that fails as a whole is reported as
// UNAVAILABLE or DEADLINE_EXCEEDED (node::Transport).
#ifndef KPX_GATEWAY_GRPC_TRANSPORT_H_
#define KPX_GATEWAY_GRPC_TRANSPORT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/tls.h"
#include "kpx/v1/service.grpc.pb.h"
#include "node/transport.h"
#include "node/trust_list.h"

namespace kpx::gateway {

class GrpcTransport : public node::Transport {
 public:
  // `trust` returns the trust list in force (it may be replaced at run time;
  // a peer whose endpoint or CA changed gets a new channel).
  GrpcTransport(TlsIdentity identity, std::function<std::shared_ptr<const node::TrustList>()> trust,
                absl::Duration rpc_timeout);

  // Presents `identity` from now on (a reload): channels are remade on
  // their next use; calls in flight finish on the old ones.
  void SetIdentity(TlsIdentity identity);

  absl::StatusOr<v1::DeliverResponse> Deliver(const std::string& recipient,
                                              const v1::DeliverRequest& request) override;
  absl::StatusOr<v1::ConsistencyResponse> GetConsistency(
      const std::string& recipient, const v1::ConsistencyRequest& request) override;
  absl::StatusOr<v1::GetTrustListsResponse> GetTrustLists(
      const std::string& recipient, const v1::GetTrustListsRequest& request) override;

 private:
  struct Peer {
    std::string endpoint, ca_pem, server_name;
    std::unique_ptr<v1::PeerService::Stub> stub;
  };
  // The channel to `recipient`, (re)made if its trust-list entry changed.
  absl::StatusOr<std::shared_ptr<Peer>> PeerFor(const std::string& recipient);
  // One unary call to `recipient`: `call(stub, context, response)`.
  template <typename Response, typename Call>
  absl::StatusOr<Response> Unary(const std::string& recipient, Call call);

  TlsIdentity identity_ ABSL_GUARDED_BY(mu_);
  const std::function<std::shared_ptr<const node::TrustList>()> trust_;
  const absl::Duration rpc_timeout_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_GRPC_TRANSPORT_H_
