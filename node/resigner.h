// kpx::node::Resigner: no message stays queued under a withdrawn key.
//
// A key of ours is withdrawn once it may no longer sign: retired (now is at
// or past its not_after), revoked (at or past its revoked_at), or gone from
// the trust list in force. A message still in the outbox under such a key
// would be refused by its recipient for ever once the recipient's list
// says so, so the node signs it again with its current key
// (Signer::Resign: the same body and digest, a new signature over a
// Resigning) and, in one synced batch per page of the outbox, replaces the
// queued item and appends a RESIGNED entry holding the new signed message.
// The certificate's record is unchanged: every digest that refers to the
// message stays what it was, and a recipient that already stored the
// message answers the re-signed one as a redelivery.
//
// Pass walks the outbox only when something may have withdrawn a key: the
// trust list in force changed (pointer), one of our keys' not_after or
// revoked_at came due, or the pass before did not finish. Each such event
// is followed by one more pass (a message signed just before the change
// may be queued just after the walk). Signing happens outside every lock;
// the write re-reads each item under its certificate's lock and skips one
// that left the outbox or changed meanwhile.
//
// A failure (no current key, a ledger read or write) is logged, counted in
// failures(), and the next Pass tries again.
//
// Thread safety: every method may be called from any thread; passes are
// serialized by one mutex, held across the walk.
#ifndef KPX_NODE_RESIGNER_H_
#define KPX_NODE_RESIGNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"
#include "node/context.h"

namespace kpx::node {

class Resigner {
 public:
  // `kick` is called with each recipient whose messages were re-signed
  // (the node wakes its delivery lane).
  Resigner(const NodeContext& ctx, std::function<void(const std::string&)> kick);

  // Walks the outbox if something may have withdrawn a key (see above);
  // returns the number of messages re-signed.
  size_t Pass();
  // Walks the outbox now; returns the number re-signed or the first error.
  absl::StatusOr<size_t> ResignWithdrawn();

  uint64_t resigned() const { return resigned_.load(); }
  uint64_t failures() const { return failures_.load(); }

 private:
  // True if Pass should walk the outbox at `now`.
  bool Due(const std::shared_ptr<const TrustList>& trust, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<size_t> Walk() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A queued item under a withdrawn key, signed again.
  struct Resigned {
    v1::OutboxItem queued;
    v1::SignedMessage message;
    std::string why;  // why its key may no longer sign
  };
  // One page of the outbox: the items under withdrawn keys, re-signed and
  // written. `after` advances past the page; `done` is set at the end.
  absl::StatusOr<size_t> ResignPage(std::string& after, bool& done);
  // Writes `items` in one batch, under their certificates' locks.
  absl::StatusOr<size_t> Write(const std::vector<Resigned>& items, absl::Time now);
  // The RESIGNED entry and the replaced outbox item for `r`; `current` is
  // the item as queued now.
  static storage::Transition MakeTransition(v1::OutboxItem current, const Resigned& r,
                                            absl::Time now);

  const NodeContext& ctx_;
  const std::function<void(const std::string&)> kick_;
  absl::Mutex mu_;
  std::shared_ptr<const TrustList> seen_trust_ ABSL_GUARDED_BY(mu_);
  absl::Time next_withdrawal_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int passes_owed_ ABSL_GUARDED_BY(mu_) = 1;
  std::atomic<uint64_t> resigned_{0};
  std::atomic<uint64_t> failures_{0};
};

}  // namespace kpx::node

#endif  // KPX_NODE_RESIGNER_H_
