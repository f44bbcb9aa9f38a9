// kpx::node::Inbox: checks and records what a peer delivers.
//
// Receive runs four steps over a batch:
//   verify  signature, signer = TLS identity, key valid, addressed to us,
//           within the partner's quota (no lock: the expensive part);
//   plan    under the certificates' locks, per message: a redelivery gets
//           its original receipt; otherwise PlanIncoming (transitions.h)
//           against the record as this batch leaves it, so that two
//           messages about one certificate in one batch see each other;
//   commit  every planned transition in one synced batch, each receipt
//           signed once its entry's sequence is known;
//   report  log and observer events, after the write.
// One outcome per message: OK with our signed receipt, or why it was
// refused; a refused message changes nothing. If the write fails, every
// planned message fails with UNAVAILABLE (the sender retries).
//
// Thread safety: Receive may be called from any thread.
#ifndef KPX_NODE_INBOX_H_
#define KPX_NODE_INBOX_H_

#include <optional>
#include <string>
#include <vector>

#include "kpx/v1/message.pb.h"
#include "node/context.h"
#include "node/partner_quota.h"
#include "node/transport.h"

namespace kpx::node {

class Inbox {
 public:
  // Each partner may make it store `partner_bytes_per_hour` (PartnerQuota).
  Inbox(const NodeContext& ctx, uint64_t partner_bytes_per_hour);

  std::vector<DeliveryOutcome> Receive(const std::string& peer,
                                       const std::vector<v1::SignedMessage>& messages);

 private:
  // One received message on its way through the steps.
  struct Slot {
    const v1::SignedMessage* message = nullptr;
    std::optional<v1::MessageBody> body;  // set once verified
    DeliveryOutcome outcome;
    std::optional<size_t> copy_of;  // an earlier slot with the same message id
    bool planned = false;           // a transition for it is in the batch
  };

  // The numbers of the certificates the verified messages are about, and
  // of the certificates linked to them (LinkedNumbers), sorted.
  std::vector<std::string> LockSet(const std::vector<Slot>& slots) const;
  void Verify(const std::string& peer, const TrustList& trust, absl::Time now,
              std::vector<Slot>& slots) const;
  std::vector<storage::Transition> Plan(const std::string& peer, const TrustList& trust,
                                        absl::Time now, std::vector<Slot>& slots)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  // Signs slot's receipt once its entry is sequenced.
  void SignReceiptWhenSequenced(const std::string& peer, absl::Time now, Slot& slot,
                                storage::Transition& t) const;
  void Commit(const std::string& peer, std::vector<storage::Transition> transitions,
              std::vector<Slot>& slots) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  void Report(const std::string& peer, const std::vector<Slot>& slots) const;

  const NodeContext& ctx_;
  mutable PartnerQuota quota_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_INBOX_H_
