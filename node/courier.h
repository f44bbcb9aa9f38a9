// kpx::node::Courier: delivers what the outbox holds, partner by partner.
//
// DeliverDueTo(recipient) takes one batch of the messages due for that
// recipient and:
//   send     one Deliver exchange (none if the recipient is suspended: the
//            KP forbids it; the messages wait and go out on readmission),
//            with the size of the recipient's newest tree head held and
//            the newest heads held of others (PeerLogs);
//   check    the recipient's one signed tree head and that it extends the
//            newest held (PeerLogs::CheckExchange: a fork is recorded),
//            then each message's proof (CheckProof); a bad head or proof
//            counts as UNAVAILABLE;
//   record   under the certificates' locks, in one synced batch: a receipt
//            or a permanent refusal (retry_policy.h) leaves the outbox as a
//            RECEIPT (with its proof) / DELIVERY_FAILED entry, the
//            recipient's newest tree head advances, releases the next message
//            held behind it for the same certificate (messages about one
//            certificate go in the order they were made), and the first
//            receipt for a certificate moves it ISSUED -> DELIVERED; then,
//            in one more batch, every retryable failure is rescheduled.
// Backoff is per partner: an exchange the partner did not answer at all
// (every message failed retryably) counts one more consecutive failure and
// its messages wait Backoff(failures); the first exchange it answers again
// resets the count and makes every message waiting for it due at once, so
// a healed link drains without waiting out old delays. A partner going
// unreachable is logged once (partner_unreachable), and once again when it
// answers (partner_reachable, with the count of failed exchanges), not
// once per attempt. Each partner is delivered to by one thread at a time
// (a Dispatcher lane, or DeliverDue), so a slow or silent partner holds up
// only its own messages.
//
// Logs and observer events follow the writes they report. A failed write
// is logged with the message id and counted (Observer::LedgerWriteFailed);
// the items stay queued and go again.
//
// A message still queued stuck_after its queueing is "stuck": it keeps
// being retried, is logged once as delivery_stuck and counted by stuck().
//
// Thread safety: DeliverDueTo may be called from any thread, but for one
// recipient by one thread at a time; DeliverDue and stuck() from any thread
// (DeliverDue not together with a running Dispatcher).
#ifndef KPX_NODE_COURIER_H_
#define KPX_NODE_COURIER_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kpx/v1/config.pb.h"
#include "kpx/v1/ledger.pb.h"
#include "node/batch_records.h"
#include "node/context.h"
#include "node/peer_logs.h"
#include "node/retry_policy.h"
#include "node/transport.h"
#include "node/tree_signer.h"

namespace kpx::node {

// What a delivered message's outcome is on the sending side: OK with the
// receiver's checked proof, or why not.
struct DeliveryOutcome {
  absl::Status status;
  v1::DeliveryProof proof;
};

// The proof of `result` (OK) for `item`'s message, checked against the
// receiver's verified tree head `head`: the leaf names a RECEIVED_MESSAGE
// entry holding this message, and its inclusion path leads to head's root.
// UNAVAILABLE saying what is wrong otherwise (the message is sent again,
// and an honest peer answers with the leaf it stored the first time).
absl::StatusOr<v1::DeliveryProof> CheckProof(const v1::DeliveryResult& result,
                                             const v1::OutboxItem& item, const SignedTree& head);

// True if `item` has been queued longer than `stuck_after` at `now`: the
// one definition of a stuck message (the courier's count and log, and
// `kpxctl outbox list`).
bool IsStuck(const v1::OutboxItem& item, absl::Time now, absl::Duration stuck_after);

class Courier {
 public:
  // `delivery` has its defaults applied (node/config.h); `seed` seeds the
  // backoff jitter. `transport` and `peer_logs` are not owned and must
  // outlive the courier.
  Courier(const NodeContext& ctx, Transport* transport, PeerLogs* peer_logs,
          const v1::DeliveryConfig& delivery, uint64_t seed);

  // One batch for `recipient`. Returns the number of messages attempted.
  size_t DeliverDueTo(const std::string& recipient);
  // One batch for every recipient with messages due, each on its own
  // thread; returns when all are done, with the number attempted.
  size_t DeliverDue();

  // Messages seen stuck (queued longer than stuck_after) and not yet gone.
  size_t stuck() const;

 private:
  struct Attempt;  // one item with its outcome
  // What the courier remembers of one partner between exchanges.
  struct Partner {
    uint32_t failures = 0;  // consecutive exchanges it did not answer
    std::string last_error;
  };

  void DeliverBatch(const std::string& recipient, std::vector<v1::OutboxItem> items);
  // One exchange; `head` is set to the recipient's checked tree head when
  // it stored any message.
  std::vector<DeliveryOutcome> Send(const std::string& recipient,
                                    const std::vector<v1::OutboxItem>& items,
                                    const TrustList& trust, absl::Time now,
                                    std::optional<SignedTree>& head);
  // Updates the partner's failure count after an exchange; returns the
  // backoff attempt number for its retryable failures (0: each message's
  // own count), and releases waiting messages when it answers again.
  uint32_t NoteExchange(const std::string& recipient, const std::vector<Attempt>& attempts,
                        absl::Time now);
  void ReleaseWaiting(const std::string& recipient, absl::Time now);
  void Record(const std::string& recipient, std::vector<Attempt>& attempts,
              const std::optional<SignedTree>& head, uint32_t backoff_at, absl::Time now);
  // Under the recipient's PeerLogs::Hold: its PeerLog advanced to `head`,
  // to write with the receipts; if it was found inconsistent meanwhile,
  // the receipts become retries instead.
  std::optional<v1::PeerLog> AdvancePeerLog(const std::string& recipient, const SignedTree& head,
                                            std::vector<Attempt>& attempts, absl::Time now);
  // The transitions of the finished attempts; the retryable ones (and those
  // whose record could not be read) go to `retries`.
  std::vector<storage::Transition> Plan(std::vector<Attempt>& attempts, uint32_t backoff_at,
                                        absl::Time now, std::vector<v1::OutboxItem>& retries)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  // The DeliveryTransition of a finished attempt; Unavailable if the
  // record or the next held message cannot be read.
  absl::StatusOr<storage::Transition> Finish(const Attempt& a, BatchRecords& records,
                                             absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  v1::OutboxItem Retry(const v1::OutboxItem& item, const absl::Status& why, uint32_t backoff_at,
                       absl::Time now);
  void Reschedule(const std::string& recipient, const std::vector<v1::OutboxItem>& retries);
  void Report(const std::string& recipient, const std::vector<Attempt>& attempts, absl::Time now);
  void NoteStuck(const v1::OutboxItem& item, absl::Time now);
  void NoteGone(const std::string& message_id);

  const NodeContext& ctx_;
  Transport* const transport_;
  PeerLogs* const peer_logs_;
  const v1::DeliveryConfig delivery_;
  const absl::Duration stuck_after_;
  RetryPolicy retry_;

  mutable absl::Mutex mu_;
  std::set<std::string> stuck_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Partner> partners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::node

#endif  // KPX_NODE_COURIER_H_
