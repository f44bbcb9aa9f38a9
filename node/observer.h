// Hooks through which a Node reports what happens, for metrics. The node
// calls them from its own threads: Received and Refused after the batch is
// decided and written, Delivered and DeliveryRefused once the peer's answer
// is checked, just before it is recorded. An Observer must be thread-safe
// and quick (no I/O).
#ifndef KPX_NODE_OBSERVER_H_
#define KPX_NODE_OBSERVER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace kpx::node {

class Observer {
 public:
  virtual ~Observer() = default;
  // A message we sent was acknowledged with a valid signed receipt;
  // `latency` runs from queueing to the receipt.
  virtual void Delivered(const std::string& partner, const std::string& kind,
                         absl::Duration latency) = 0;
  // A peer refused a message of ours for good.
  virtual void DeliveryRefused(const std::string& partner, absl::StatusCode code) = 0;
  // We accepted (stored) a message from a peer.
  virtual void Received(const std::string& partner, const std::string& kind) = 0;
  // We refused a message from a peer.
  virtual void Refused(const std::string& partner, absl::StatusCode code) = 0;
};

}  // namespace kpx::node

#endif  // KPX_NODE_OBSERVER_H_
