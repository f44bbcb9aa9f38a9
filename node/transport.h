// How node/ reaches other Participants' nodes. gateway/ provides the gRPC
// implementation; MemoryTransport connects nodes in one process for tests.
//
// An exchange is the PeerService messages themselves (kpx.v1.DeliverRequest
// and DeliverResponse, proto/kpx/v1/service.proto): what a transport
// carries is exactly what a peer signs and checks, whatever the wire.
#ifndef KPX_NODE_TRANSPORT_H_
#define KPX_NODE_TRANSPORT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kpx/v1/message.pb.h"
#include "kpx/v1/service.pb.h"

namespace kpx::node {

class Transport {
 public:
  virtual ~Transport() = default;
  // One Deliver exchange with `recipient`. An error means the exchange as
  // a whole failed (unreachable, refused our identity, timed out): always
  // UNAVAILABLE or DEADLINE_EXCEEDED, so the messages are sent again. The
  // response is the peer's as received, not yet checked. Called from the
  // delivery thread(s); must be thread-safe for different recipients.
  virtual absl::StatusOr<v1::DeliverResponse> Deliver(const std::string& recipient,
                                                      const v1::DeliverRequest& request) = 0;
  // Asks `recipient` to prove that its log of old_size entries is a prefix
  // of its log of new_size entries; errors as for Deliver.
  virtual absl::StatusOr<v1::ConsistencyResponse> GetConsistency(
      const std::string& recipient, const v1::ConsistencyRequest& request) = 0;
  // Asks `recipient` for the trust-list versions it holds after
  // request.after_version; errors as for Deliver.
  virtual absl::StatusOr<v1::GetTrustListsResponse> GetTrustLists(
      const std::string& recipient, const v1::GetTrustListsRequest& request) = 0;
};

// Something that answers exchanges: a Node, seen by a transport as the
// receiving end. `peer` is the sender's identity as the transport
// authenticated it.
class Receiver {
 public:
  virtual ~Receiver() = default;
  virtual v1::DeliverResponse Exchange(const std::string& peer,
                                       const v1::DeliverRequest& request) = 0;
  // The answer to GetConsistency; an error becomes the call's status.
  virtual absl::StatusOr<v1::ConsistencyResponse> Consistency(
      const std::string& peer, const v1::ConsistencyRequest& request) = 0;
  // The answer to GetTrustLists; an error becomes the call's status. By
  // default UNIMPLEMENTED (a receiver that holds no versions to share).
  virtual absl::StatusOr<v1::GetTrustListsResponse> TrustLists(
      const std::string& /*peer*/, const v1::GetTrustListsRequest& /*request*/) {
    return absl::UnimplementedError("this receiver serves no trust-list versions");
  }
};

// In-process transport: delivers straight into registered receivers, with
// the sending node's code as the authenticated identity. A receiver that is
// not registered (or was removed) is Unavailable, like a node that is down.
class MemoryTransport : public Transport {
 public:
  // One MemoryNetwork is shared by every node of a test.
  class Network {
   public:
    void Register(const std::string& code, Receiver* r) {
      absl::MutexLock l(&mu_);
      receivers_[code] = r;
    }
    void Unregister(const std::string& code) {
      absl::MutexLock l(&mu_);
      receivers_.erase(code);
    }
    Receiver* Find(const std::string& code) {
      absl::MutexLock l(&mu_);
      auto it = receivers_.find(code);
      return it == receivers_.end() ? nullptr : it->second;
    }

   private:
    absl::Mutex mu_;
    std::map<std::string, Receiver*> receivers_;
  };

  MemoryTransport(Network* network, std::string self) : network_(network), self_(std::move(self)) {}

  absl::StatusOr<v1::DeliverResponse> Deliver(const std::string& recipient,
                                              const v1::DeliverRequest& request) override {
    Receiver* r = network_->Find(recipient);
    if (r == nullptr) return absl::UnavailableError(recipient + " is unreachable");
    return r->Exchange(self_, request);
  }

  absl::StatusOr<v1::ConsistencyResponse> GetConsistency(
      const std::string& recipient, const v1::ConsistencyRequest& request) override {
    Receiver* r = network_->Find(recipient);
    if (r == nullptr) return absl::UnavailableError(recipient + " is unreachable");
    absl::StatusOr<v1::ConsistencyResponse> resp = r->Consistency(self_, request);
    if (!resp.ok()) return absl::UnavailableError(resp.status().ToString());
    return resp;
  }

  absl::StatusOr<v1::GetTrustListsResponse> GetTrustLists(
      const std::string& recipient, const v1::GetTrustListsRequest& request) override {
    Receiver* r = network_->Find(recipient);
    if (r == nullptr) return absl::UnavailableError(recipient + " is unreachable");
    absl::StatusOr<v1::GetTrustListsResponse> resp = r->TrustLists(self_, request);
    if (!resp.ok()) return absl::UnavailableError(resp.status().ToString());
    return resp;
  }

 private:
  Network* network_;
  std::string self_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_TRANSPORT_H_
