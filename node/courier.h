// kpx::node::Courier: delivers what the outbox holds.
//
// One pass (DeliverDue) takes the due messages, at most one batch per
// recipient, and handles each recipient on its own thread, so that a slow
// peer does not hold up the others. Per recipient:
//   send     one Deliver exchange (none if the recipient is suspended: the
//            KP forbids it; the messages wait and go out on readmission);
//   check    every receipt: signed by the recipient, about this message
//            (CheckReceipt; a bad receipt counts as UNAVAILABLE);
//   record   under the certificates' locks, in one synced batch: a receipt
//            or a permanent refusal (retry_policy.h) leaves the outbox as a
//            RECEIPT / DELIVERY_FAILED entry, and the first receipt for a
//            certificate moves it ISSUED -> DELIVERED; then, in one more
//            batch, every retryable failure is rescheduled with backoff.
// Logs and observer events follow the writes they report. A failed write
// is logged with the message id and counted (Observer::LedgerWriteFailed);
// the items stay queued and go again.
//
// A message still queued stuck_after its queueing is "stuck": it keeps
// being retried, is logged once as delivery_stuck and counted by stuck().
//
// Thread safety: DeliverDue is called by one thread at a time (the
// background loop, or a test); stuck() from any thread.
#ifndef KPX_NODE_COURIER_H_
#define KPX_NODE_COURIER_H_

#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kpx/v1/config.pb.h"
#include "kpx/v1/ledger.pb.h"
#include "node/context.h"
#include "node/retry_policy.h"
#include "node/transport.h"

namespace kpx::node {

// OK if `receipt` is `recipient`'s valid signed receipt for `item`'s
// message; UNAVAILABLE saying what is wrong otherwise (the message is sent
// again, and an honest peer answers with its original receipt).
absl::Status CheckReceipt(const v1::SignedMessage& receipt, const v1::OutboxItem& item,
                          const std::string& recipient, const TrustList& trust, absl::Time now);

// True if `item` has been queued longer than `stuck_after` at `now`: the
// one definition of a stuck message (the courier's count and log, and
// `kpxctl outbox list`).
bool IsStuck(const v1::OutboxItem& item, absl::Time now, absl::Duration stuck_after);

class Courier {
 public:
  // `delivery` has its defaults applied (node/config.h); `seed` seeds the
  // backoff jitter. `transport` is not owned and must outlive the courier.
  Courier(const NodeContext& ctx, Transport* transport, const v1::DeliveryConfig& delivery,
          uint64_t seed);

  // One pass over the due outbox. Returns the number of messages attempted.
  size_t DeliverDue();

  // Messages seen stuck (queued longer than stuck_after) and not yet gone.
  size_t stuck() const;

 private:
  struct Attempt;  // one item with its outcome

  void DeliverTo(const std::string& recipient, std::vector<v1::OutboxItem> items);
  std::vector<DeliveryOutcome> Send(const std::string& recipient,
                                    const std::vector<v1::OutboxItem>& items,
                                    const TrustList& trust, absl::Time now);
  void Record(const std::string& recipient, std::vector<Attempt>& attempts, absl::Time now);
  // The transitions of the finished attempts; the retryable ones (and those
  // whose record could not be read) go to `retries`.
  std::vector<storage::Transition> Plan(std::vector<Attempt>& attempts, absl::Time now,
                                        std::vector<v1::OutboxItem>& retries)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  v1::OutboxItem Retry(const v1::OutboxItem& item, const absl::Status& why, absl::Time now);
  void Reschedule(const std::string& recipient, const std::vector<v1::OutboxItem>& retries);
  void Report(const std::string& recipient, const std::vector<Attempt>& attempts, absl::Time now);
  void NoteStuck(const v1::OutboxItem& item, absl::Time now);
  void NoteGone(const std::string& message_id);

  const NodeContext& ctx_;
  Transport* const transport_;
  const v1::DeliveryConfig delivery_;
  const absl::Duration stuck_after_;
  RetryPolicy retry_;

  mutable absl::Mutex stuck_mu_;
  std::set<std::string> stuck_ ABSL_GUARDED_BY(stuck_mu_);
};

}  // namespace kpx::node

#endif  // KPX_NODE_COURIER_H_
