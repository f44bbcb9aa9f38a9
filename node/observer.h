// Hooks through which a Node reports what happens, for metrics.
//
// Every event fires after the ledger write it reports has succeeded:
// Received and Refused once a received batch is decided and written,
// Delivered and DeliveryRefused once the peer's answer is checked and
// recorded. LedgerWriteFailed fires when a write on a background path
// (receive, delivery, expiry) fails; the failure is also logged with the
// message id.
//
// An Observer must be thread-safe and quick (no I/O): the node calls it
// from its own threads.
#ifndef KPX_NODE_OBSERVER_H_
#define KPX_NODE_OBSERVER_H_

#include <atomic>
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
  // A ledger write on a background path failed; `step` is "receive",
  // "deliver", "reschedule", "expire" or "trust_list".
  virtual void LedgerWriteFailed(const std::string& step) = 0;
};

// Where a node's parts find the observer; it may be set or cleared at any
// time (the Observer must outlive the node, or be cleared first).
class ObserverSlot {
 public:
  void Set(Observer* o) { observer_.store(o); }
  // Null when none is set.
  Observer* get() const { return observer_.load(); }

 private:
  std::atomic<Observer*> observer_{nullptr};
};

}  // namespace kpx::node

#endif  // KPX_NODE_OBSERVER_H_
