// How node/ reaches other Participants' nodes. gateway/ provides the gRPC
// implementation; MemoryTransport connects nodes in one process for tests.
#ifndef KPX_NODE_TRANSPORT_H_
#define KPX_NODE_TRANSPORT_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "kpx/v1/message.pb.h"

namespace kpx::node {

// The outcome of delivering one message: OK with the receiver's signed
// receipt, or the receiver's (or the network's) error.
struct DeliveryOutcome {
  absl::Status status;
  v1::SignedMessage receipt;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Delivers `messages` (all to `recipient`) in one exchange. Returns one
  // outcome per message, in order; on a transport failure every outcome
  // carries that failure. Called from the delivery thread(s); must be
  // thread-safe for different recipients.
  virtual std::vector<DeliveryOutcome> Deliver(const std::string& recipient,
                                               const std::vector<v1::SignedMessage>& messages) = 0;
};

// Something that accepts delivered messages: a Node, seen by a transport
// as the receiving end. `peer` is the sender's identity as the transport
// authenticated it.
class Receiver {
 public:
  virtual ~Receiver() = default;
  virtual std::vector<DeliveryOutcome> Receive(const std::string& peer,
                                               const std::vector<v1::SignedMessage>& messages) = 0;
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

  std::vector<DeliveryOutcome> Deliver(const std::string& recipient,
                                       const std::vector<v1::SignedMessage>& messages) override {
    Receiver* r = network_->Find(recipient);
    if (r == nullptr) {
      return std::vector<DeliveryOutcome>(
          messages.size(), {absl::UnavailableError(recipient + " is unreachable"), {}});
    }
    return r->Receive(self_, messages);
  }

 private:
  Network* network_;
  std::string self_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_TRANSPORT_H_
