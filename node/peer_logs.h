// kpx::node::PeerLogs: what each peer has shown of its own log, and the
// check that it only ever grows (RFC 9162 consistency; docs/protocol.md
// "Tree heads and forks").
//
// Every tree head a peer answers an exchange with must extend the newest
// one it showed before: the exchange carries the consistency proof from
// that one (DeliverRequest.known_tree_size). Tree heads of third parties
// that peers pass on (gossip) are compared with the newest this node holds
// of the same Participant: one of the same size with another root is a
// fork at once (two signatures disagree); one of another size is kept and
// later checked with a consistency proof fetched from its signer
// (CheckGossip, from the housekeeping thread).
//
// A peer whose log does not extend what it showed before is *inconsistent*:
// recorded once as a PEER_LOG_INCONSISTENT ledger entry holding both
// signed heads, logged (peer_log_inconsistent), shown in its PeerLog (for
// `kpxctl peer list` and kpx_peer_log_inconsistent) and never silently
// accepted: from then on its receipts are refused (the messages stay
// queued) until an operator has looked.
//
// Writes of one peer's PeerLog are serialized by a lock per peer (Hold):
// the courier advances the newest head in the same batch as the receipts
// that came with it; a fork is recorded by whoever finds it.
//
// Thread safety: every method may be called from any thread.
#ifndef KPX_NODE_PEER_LOGS_H_
#define KPX_NODE_PEER_LOGS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/message.pb.h"
#include "node/context.h"
#include "node/transport.h"
#include "node/tree_signer.h"

namespace kpx::node {

// At most this many third-party tree heads go with one exchange, and are
// read from one.
inline constexpr size_t kMaxGossipHeads = 64;
// Passed-on heads of one Participant waiting for a consistency check.
inline constexpr size_t kMaxPendingPerSigner = 16;

// The tree head a peer signed, checked: `message` verifies as `signer`'s.
absl::StatusOr<SignedTree> CheckTreeHead(const v1::SignedMessage& message,
                                         const std::string& signer, const TrustList& trust,
                                         absl::Time now);

// OK if `leaf` (an encoded LogLeaf, storage/log_leaf.h) records the
// receipt of the message with `message_digest` (a RECEIVED_MESSAGE leaf)
// and `inclusion_path` leads from it to `head`'s root; returns the leaf's
// sequence. InvalidArgument or FailedPrecondition saying what does not hold.
absl::StatusOr<uint64_t> CheckReceivedLeaf(
    const std::string& leaf, const google::protobuf::RepeatedPtrField<std::string>& inclusion_path,
    const std::string& message_digest, const SignedTree& head);

class PeerLogs {
 public:
  explicit PeerLogs(const NodeContext& ctx) : ctx_(ctx) {}

  // The size of the newest head held of `peer` (0: none), to ask an
  // exchange to prove consistency from.
  absl::StatusOr<uint64_t> KnownSize(const std::string& peer) const;

  // Checks the tree head `peer` answered an exchange with, and the proof
  // that it extends the newest one held, of `asked_from` entries (what
  // KnownSize said when the request was made). Unavailable if the head
  // itself is not valid or the newest one held changed meanwhile (the
  // exchange counts as failed and is retried); FailedPrecondition if the
  // peer's log is, or now proves to be, inconsistent (recorded as above).
  absl::StatusOr<SignedTree> CheckExchange(const std::string& peer, uint64_t asked_from,
                                           const v1::SignedMessage& tree_head,
                                           std::span<const std::string> consistency_path,
                                           absl::Time now);

  // Serializes the writes of one peer's PeerLog while it lives.
  class Hold {
   public:
    ~Hold() { mu_->Unlock(); }
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;

   private:
    friend class PeerLogs;
    explicit Hold(absl::Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
    absl::Mutex* mu_;
  };
  std::unique_ptr<Hold> HoldPeer(const std::string& peer);

  // Under `peer`'s Hold: the PeerLog to write with the receipts `head`
  // came with (nullopt: nothing newer to write), or FailedPrecondition if
  // the peer was found inconsistent meanwhile. The caller writes it in
  // the receipts' batch before it releases the Hold.
  absl::StatusOr<std::optional<v1::PeerLog>> Advance(const std::string& peer,
                                                     const SignedTree& head, absl::Time now);

  // Clears `peer`'s inconsistent mark after an operator looked into it:
  // one PEER_LOG_RESET entry (with `reason` and the two heads), and the
  // peer's next tree head is taken afresh. FailedPrecondition unless the
  // peer is marked inconsistent. Returns the PeerLog as it now stands.
  absl::StatusOr<v1::PeerLog> Reset(const std::string& peer, const std::string& reason,
                                    absl::Time now);

  // The newest heads held of Participants other than `peer`, at most
  // kMaxGossipHeads, to pass on to it.
  std::vector<v1::SignedMessage> GossipFor(const std::string& peer) const;
  // Checks the heads of third parties `from` passed on; each that is not
  // valid is ignored (logged), each that conflicts is recorded.
  void NoteGossip(const std::string& from,
                  const google::protobuf::RepeatedPtrField<v1::SignedMessage>& heads,
                  absl::Time now);
  // Fetches, through `transport`, a consistency proof for each gossiped
  // head of another size than the one held, and records those that fail.
  // Returns how many heads were settled (proved either way).
  size_t CheckGossip(Transport& transport, absl::Time now);
  // Gossiped heads waiting for CheckGossip.
  size_t pending_gossip() const;

 private:
  struct Pending {
    SignedTree head;
    std::string reported_by;
  };
  // Two signed heads of one Participant that cannot both be true, and how.
  struct Fork {
    v1::SignedMessage earlier;
    v1::SignedMessage conflicting;
    std::string problem;  // empty: no fork
  };
  absl::Mutex* PeerMutex(const std::string& peer) const;
  absl::StatusOr<std::optional<v1::PeerLog>> Stored(const std::string& peer) const;
  // Records that `peer` signed `conflicting`, which cannot follow `earlier`
  // (empty if none was held).
  void RecordFork(const std::string& peer, const v1::SignedMessage& earlier,
                  const v1::SignedMessage& conflicting, const std::string& problem,
                  const std::string& reported_by, absl::Time now);
  // What is wrong with `next` following `log`'s newest head given `proof`;
  // empty if it extends it.
  static std::string Inconsistency(const v1::PeerLog& log, const SignedTree& next,
                                   std::span<const std::string> proof);
  void NoteOneGossip(const std::string& from, const v1::SignedMessage& head, absl::Time now);
  // Keeps a passed-on head for CheckGossip (at most kMaxPendingPerSigner
  // distinct ones per signer).
  void Remember(const std::string& signer, Pending p);
  // Settles one passed-on head; false if it must wait (kept) or is moot.
  bool CheckOneGossip(Transport& transport, const std::string& signer, Pending& p, absl::Time now);
  // What `resp` (signer's answer to `req`) shows wrong with `gossiped`
  // beside `log`.
  Fork GossipInconsistency(const std::string& signer, const v1::PeerLog& log,
                           const SignedTree& gossiped, const v1::ConsistencyRequest& req,
                           const v1::ConsistencyResponse& resp, absl::Time now) const;

  const NodeContext& ctx_;
  mutable absl::Mutex mu_;
  mutable std::map<std::string, std::unique_ptr<absl::Mutex>> peer_mu_ ABSL_GUARDED_BY(mu_);
  // Passed-on heads to prove, per signer.
  std::map<std::string, std::vector<Pending>> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::node

#endif  // KPX_NODE_PEER_LOGS_H_
