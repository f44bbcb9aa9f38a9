// kpx::node::Inbox: checks and records what a peer delivers, and answers
// the exchange.
//
// Receive runs four steps over a batch:
//   verify  signature, signer = TLS identity, key valid, addressed to us,
//           within the partner's quota (no lock: the expensive part);
//   plan    under the certificates' locks, per message: a redelivery is
//           answered with the entry that recorded it the first time;
//           otherwise PlanIncoming (transitions.h) against the record as
//           this batch leaves it, so that two messages about one
//           certificate in one batch see each other;
//   commit  every planned transition in one synced batch;
//   report  log and observer events, after the write.
// Exchange then answers: one signed tree head covering every stored
// message (TreeSigner: one signature per exchange, after the write and
// outside every lock), each message's leaf and inclusion path in it, the
// consistency path from the tree head the sender last held of us, and the
// newest tree heads we hold of others (PeerLogs gossip, both ways).
// One outcome per message: OK with its proof, or why it was refused; a
// refused message changes nothing. If the write fails, every planned
// message fails with UNAVAILABLE (the sender retries).
//
// Thread safety: every method may be called from any thread.
#ifndef KPX_NODE_INBOX_H_
#define KPX_NODE_INBOX_H_

#include <optional>
#include <string>
#include <vector>

#include "kpx/v1/message.pb.h"
#include "kpx/v1/service.pb.h"
#include "node/context.h"
#include "node/partner_quota.h"
#include "node/peer_logs.h"
#include "node/transport.h"
#include "node/tree_signer.h"

namespace kpx::node {

// What one received message came to: OK with the ledger entry that
// recorded it (the first time, for a redelivery), or why it was refused.
struct ReceiveOutcome {
  absl::Status status;
  uint64_t sequence = 0;
  std::string leaf;  // the entry's encoded LogLeaf (storage/log_leaf.h)
};

class Inbox {
 public:
  // Each partner may make it store `partner_bytes_per_hour` (PartnerQuota).
  // `signer` and `peer_logs` are not owned and must outlive the inbox.
  Inbox(const NodeContext& ctx, TreeSigner* signer, PeerLogs* peer_logs,
        uint64_t partner_bytes_per_hour);

  // One Deliver exchange from `peer` (at most kMaxDeliveryBatchSize
  // messages: the caller checks).
  v1::DeliverResponse Exchange(const std::string& peer, const v1::DeliverRequest& request);
  // GetConsistency: our newest signed tree head and the proof that our log
  // of old_size entries is a prefix of the one of new_size; no proof if
  // new_size is beyond that head (InvalidArgument if old_size > new_size).
  absl::StatusOr<v1::ConsistencyResponse> Consistency(const v1::ConsistencyRequest& request);

  // The receive steps alone, without the answer (Exchange; tests).
  std::vector<ReceiveOutcome> Receive(const std::string& peer,
                                      const std::vector<v1::SignedMessage>& messages);

 private:
  // One received message on its way through the steps.
  struct Slot {
    const v1::SignedMessage* message = nullptr;
    std::optional<v1::MessageBody> body;  // set once verified
    ReceiveOutcome outcome;
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
  // A redelivery: the entry that recorded it, from its seen value;
  // AlreadyExists if that entry holds other bytes than `digest` names.
  absl::Status Recall(const std::string& seen_value, const std::string& digest,
                      ReceiveOutcome& outcome) const;
  // Notes slot's entry (sequence, leaf, seen value) once it is sequenced.
  static void NoteWhenSequenced(Slot& slot, storage::Transition& t);
  void Commit(const std::string& peer, std::vector<storage::Transition> transitions,
              std::vector<Slot>& slots) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  void Report(const std::string& peer, const std::vector<Slot>& slots) const;
  // The answer for `outcomes`: tree head, proofs, consistency path.
  v1::DeliverResponse Answer(const std::vector<ReceiveOutcome>& outcomes, uint64_t known_tree_size);

  const NodeContext& ctx_;
  TreeSigner* const signer_;
  PeerLogs* const peer_logs_;
  mutable PartnerQuota quota_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_INBOX_H_
