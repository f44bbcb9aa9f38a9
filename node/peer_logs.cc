#include "node/peer_logs.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "node/envelope.h"
#include "node/log.h"
#include "node/util.h"
#include "storage/log_leaf.h"
#include "storage/merkle.h"

namespace kpx::node {

absl::StatusOr<SignedTree> CheckTreeHead(const v1::SignedMessage& message,
                                         const std::string& signer, const TrustList& trust,
                                         absl::Time now) {
  // Only queued messages are ever signed again (resigner.h); a tree head
  // claiming it was would vouch for a log at another time than it says.
  if (!message.resigning().empty()) {
    return absl::InvalidArgumentError("a tree head is never signed again");
  }
  absl::StatusOr<v1::MessageBody> body = VerifyMessage(message, signer, trust, now);
  if (!body.ok()) return body.status();
  if (!body->has_tree_head() || !body->header().recipient().empty()) {
    return absl::InvalidArgumentError("not a tree head");
  }
  if (body->tree_head().root_hash().size() != storage::merkle::kHashSize) {
    return absl::InvalidArgumentError("tree head root is not 32 bytes");
  }
  return SignedTree{message, body->tree_head().tree_size(), body->tree_head().root_hash()};
}

absl::StatusOr<uint64_t> CheckReceivedLeaf(
    const std::string& leaf, const google::protobuf::RepeatedPtrField<std::string>& inclusion_path,
    const std::string& message_digest, const SignedTree& head) {
  absl::StatusOr<storage::LogLeaf> decoded = storage::DecodeLogLeaf(leaf);
  if (!decoded.ok()) return decoded.status();
  if (decoded->kind != v1::RECEIVED_MESSAGE || decoded->message_digest != message_digest) {
    return absl::InvalidArgumentError("its leaf is not about this message");
  }
  if (inclusion_path.size() > 64) return absl::InvalidArgumentError("inclusion path too long");
  const std::vector<std::string> path(inclusion_path.begin(), inclusion_path.end());
  if (absl::Status s = storage::merkle::VerifyInclusion(
          storage::merkle::LeafHash(leaf), decoded->sequence - 1, head.size, path, head.root);
      !s.ok()) {
    return s;
  }
  return decoded->sequence;
}

absl::Mutex* PeerLogs::PeerMutex(const std::string& peer) const {
  absl::MutexLock l(&mu_);
  std::unique_ptr<absl::Mutex>& m = peer_mu_[peer];
  if (m == nullptr) m = std::make_unique<absl::Mutex>();
  return m.get();
}

std::unique_ptr<PeerLogs::Hold> PeerLogs::HoldPeer(const std::string& peer) {
  return std::unique_ptr<Hold>(new Hold(PeerMutex(peer)));
}

absl::StatusOr<std::optional<v1::PeerLog>> PeerLogs::Stored(const std::string& peer) const {
  return ctx_.ledger->GetPeerLog(peer);
}

absl::StatusOr<uint64_t> PeerLogs::KnownSize(const std::string& peer) const {
  absl::StatusOr<std::optional<v1::PeerLog>> stored = Stored(peer);
  if (!stored.ok()) return stored.status();
  return stored->has_value() ? (*stored)->tree_size() : 0;
}

namespace {

absl::Status Inconsistent(const std::string& peer, const v1::PeerLog& log) {
  return absl::FailedPreconditionError(
      absl::StrCat(peer, "'s log is inconsistent (", log.problem(),
                   "): its receipts are refused until an operator has looked"));
}

}  // namespace

std::string PeerLogs::Inconsistency(const v1::PeerLog& log, const SignedTree& next,
                                    std::span<const std::string> proof) {
  if (log.tree_size() == 0) return std::string();  // nothing held (after a reset)
  if (next.size < log.tree_size()) {
    return absl::StrCat("it showed a log of ", next.size, " entries after one of ",
                        log.tree_size());
  }
  absl::Status s = storage::merkle::VerifyConsistency(log.tree_size(), next.size, log.root_hash(),
                                                      next.root, proof);
  if (s.ok()) return std::string();
  return absl::StrCat("its log of ", next.size, " entries does not extend the one of ",
                      log.tree_size(), " it showed before: ", s.message());
}

absl::StatusOr<SignedTree> PeerLogs::CheckExchange(const std::string& peer, uint64_t asked_from,
                                                   const v1::SignedMessage& tree_head,
                                                   std::span<const std::string> consistency_path,
                                                   absl::Time now) {
  absl::StatusOr<SignedTree> head = CheckTreeHead(tree_head, peer, *ctx_.keyring->trust(), now);
  if (!head.ok()) {
    return absl::UnavailableError(absl::StrCat("tree head refused: ", head.status().message()));
  }
  absl::StatusOr<std::optional<v1::PeerLog>> stored = Stored(peer);
  if (!stored.ok()) return absl::UnavailableError(stored.status().message());
  if (!stored->has_value()) {
    if (asked_from != 0) return absl::UnavailableError("peer log changed during the exchange");
    return head;
  }
  const v1::PeerLog& log = **stored;
  if (log.inconsistent()) return Inconsistent(peer, log);
  if (log.tree_size() != asked_from) {
    return absl::UnavailableError("peer log changed during the exchange");
  }
  if (std::string problem = Inconsistency(log, *head, consistency_path); !problem.empty()) {
    RecordFork(peer, log.tree_head(), tree_head, problem, "", now);
    v1::PeerLog recorded = log;
    recorded.set_problem(problem);
    return Inconsistent(peer, recorded);
  }
  return head;
}

absl::StatusOr<std::optional<v1::PeerLog>> PeerLogs::Advance(const std::string& peer,
                                                             const SignedTree& head,
                                                             absl::Time now) {
  absl::StatusOr<std::optional<v1::PeerLog>> stored = Stored(peer);
  if (!stored.ok()) return absl::UnavailableError(stored.status().message());
  if (stored->has_value()) {
    if ((*stored)->inconsistent()) return Inconsistent(peer, **stored);
    if ((*stored)->tree_size() >= head.size) return std::nullopt;
  }
  v1::PeerLog log;
  log.set_participant(peer);
  *log.mutable_tree_head() = head.message;
  log.set_tree_size(head.size);
  log.set_root_hash(head.root);
  *log.mutable_seen_at() = ToTimestamp(now);
  return log;
}

void PeerLogs::RecordFork(const std::string& peer, const v1::SignedMessage& earlier,
                          const v1::SignedMessage& conflicting, const std::string& problem,
                          const std::string& reported_by, absl::Time now) {
  std::unique_ptr<Hold> hold = HoldPeer(peer);
  absl::StatusOr<std::optional<v1::PeerLog>> stored = Stored(peer);
  if (!stored.ok()) {  // not recorded now; the next check finds it again
    if (Observer* obs = ctx_.observer->get(); obs != nullptr) obs->LedgerWriteFailed("peer_log");
    log::Error("peer_log_unreadable",
               {{"partner", peer}, {"problem", problem}, {"reason", stored.status().message()}});
    return;
  }
  if (stored->has_value() && (*stored)->inconsistent()) return;  // recorded before
  v1::PeerLog log = stored->value_or(v1::PeerLog());
  log.set_participant(peer);
  log.set_inconsistent(true);
  log.set_problem(problem);
  *log.mutable_conflicting_tree_head() = conflicting;
  *log.mutable_inconsistent_since() = ToTimestamp(now);

  storage::Transition t;
  t.entry.set_kind(v1::PEER_LOG_INCONSISTENT);
  *t.entry.mutable_recorded_at() = ToTimestamp(now);
  t.entry.set_partner(peer);
  t.entry.set_detail(
      reported_by.empty() ? problem : absl::StrCat(problem, " (passed on by ", reported_by, ")"));
  // The two signed heads that cannot both be true.
  if (earlier.ByteSizeLong() > 0) *t.entry.add_tree_heads() = earlier;
  *t.entry.add_tree_heads() = conflicting;
  t.peer_logs.push_back(log);
  log::Error("peer_log_inconsistent",
             {{"partner", peer}, {"problem", problem}, {"reported_by", reported_by}});
  if (absl::StatusOr<storage::Head> h = ctx_.ledger->Append(std::move(t)); !h.ok()) {
    if (Observer* obs = ctx_.observer->get(); obs != nullptr) obs->LedgerWriteFailed("peer_log");
    log::Error("ledger_write_failed",
               {{"step", "peer_log"}, {"partner", peer}, {"reason", h.status().message()}});
  }
}

absl::StatusOr<v1::PeerLog> PeerLogs::Reset(const std::string& peer, const std::string& reason,
                                            absl::Time now) {
  std::unique_ptr<Hold> hold = HoldPeer(peer);
  absl::StatusOr<std::optional<v1::PeerLog>> stored = Stored(peer);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value() || !(*stored)->inconsistent()) {
    return absl::FailedPreconditionError(
        absl::StrCat(peer, "'s log is not marked inconsistent: nothing to reset"));
  }
  v1::PeerLog fresh;
  fresh.set_participant(peer);
  *fresh.mutable_seen_at() = ToTimestamp(now);
  storage::Transition t;
  t.entry.set_kind(v1::PEER_LOG_RESET);
  *t.entry.mutable_recorded_at() = ToTimestamp(now);
  t.entry.set_partner(peer);
  t.entry.set_detail(reason);
  if ((*stored)->has_tree_head()) *t.entry.add_tree_heads() = (*stored)->tree_head();
  *t.entry.add_tree_heads() = (*stored)->conflicting_tree_head();
  t.peer_logs.push_back(fresh);
  if (absl::StatusOr<storage::Head> h = ctx_.ledger->Append(std::move(t)); !h.ok()) {
    return h.status();
  }
  log::Warn("peer_log_reset", {{"partner", peer}, {"reason", reason}});
  return fresh;
}

std::vector<v1::SignedMessage> PeerLogs::GossipFor(const std::string& peer) const {
  std::vector<v1::SignedMessage> heads;
  absl::StatusOr<std::vector<v1::PeerLog>> logs = ctx_.ledger->ListPeerLogs();
  if (!logs.ok()) {
    log::Error("peer_logs_unreadable", {{"reason", logs.status().message()}});
    return heads;
  }
  for (const v1::PeerLog& log : *logs) {
    if (heads.size() == kMaxGossipHeads) break;
    if (log.participant() != peer && log.has_tree_head()) heads.push_back(log.tree_head());
  }
  return heads;
}

void PeerLogs::NoteGossip(const std::string& from,
                          const google::protobuf::RepeatedPtrField<v1::SignedMessage>& heads,
                          absl::Time now) {
  const int n = std::min<int>(heads.size(), kMaxGossipHeads);
  for (int i = 0; i < n; ++i) NoteOneGossip(from, heads[i], now);
}

void PeerLogs::NoteOneGossip(const std::string& from, const v1::SignedMessage& message,
                             absl::Time now) {
  const std::string& signer = message.signer();
  if (signer == ctx_.participant || signer == from) return;
  std::shared_ptr<const TrustList> trust = ctx_.keyring->trust();
  if (trust->Find(signer) == nullptr) return;  // not a Participant: nothing to compare
  absl::StatusOr<SignedTree> head = CheckTreeHead(message, signer, *trust, now);
  if (!head.ok()) {
    log::Warn("gossip_refused",
              {{"partner", from}, {"signer", signer}, {"reason", head.status().message()}});
    return;
  }
  absl::StatusOr<std::optional<v1::PeerLog>> stored = Stored(signer);
  if (!stored.ok()) {
    log::Error("peer_logs_unreadable",
               {{"partner", signer}, {"reason", stored.status().message()}});
    return;
  }
  // Nothing held (never, or since a reset) or already a fork: nothing to compare.
  if (!stored->has_value() || (*stored)->tree_size() == 0 || (*stored)->inconsistent()) return;
  const v1::PeerLog& log = **stored;
  if (head->size == log.tree_size()) {
    if (head->root != log.root_hash()) {
      RecordFork(signer, log.tree_head(), message,
                 absl::StrCat("it signed two different logs of ", head->size, " entries"), from,
                 now);
    }
    return;
  }
  Remember(signer, Pending{*std::move(head), from});
}

void PeerLogs::Remember(const std::string& signer, Pending p) {
  absl::MutexLock l(&mu_);
  std::vector<Pending>& heads = pending_[signer];
  for (const Pending& q : heads) {
    if (q.head.size == p.head.size && q.head.root == p.head.root) return;
  }
  // Full: the newcomer waits; passed-on heads come again with each
  // exchange, and each round empties the list.
  if (heads.size() < kMaxPendingPerSigner) heads.push_back(std::move(p));
}

size_t PeerLogs::pending_gossip() const {
  absl::MutexLock l(&mu_);
  size_t n = 0;
  for (const auto& [signer, heads] : pending_) n += heads.size();
  return n;
}

size_t PeerLogs::CheckGossip(Transport& transport, absl::Time now) {
  std::map<std::string, std::vector<Pending>> pending;
  {
    absl::MutexLock l(&mu_);
    pending.swap(pending_);
  }
  size_t settled = 0;
  for (auto& [signer, heads] : pending) {
    for (Pending& p : heads) {
      if (CheckOneGossip(transport, signer, p, now)) ++settled;
    }
  }
  return settled;
}

bool PeerLogs::CheckOneGossip(Transport& transport, const std::string& signer, Pending& p,
                              absl::Time now) {
  absl::StatusOr<std::optional<v1::PeerLog>> stored = Stored(signer);
  if (!stored.ok()) {  // try again next round
    Remember(signer, std::move(p));
    return false;
  }
  if (!stored->has_value() || (*stored)->tree_size() == 0 || (*stored)->inconsistent()) {
    return false;
  }
  const v1::PeerLog& log = **stored;
  const bool newer = p.head.size > log.tree_size();
  v1::ConsistencyRequest req;
  req.set_old_size(newer ? log.tree_size() : p.head.size);
  req.set_new_size(newer ? p.head.size : log.tree_size());
  absl::StatusOr<v1::ConsistencyResponse> resp = transport.GetConsistency(signer, req);
  if (!resp.ok()) {  // try again next round
    Remember(signer, std::move(p));
    return false;
  }
  const Fork fork = GossipInconsistency(signer, log, p.head, req, *resp, now);
  if (!fork.problem.empty()) {
    RecordFork(signer, fork.earlier, fork.conflicting, fork.problem, p.reported_by, now);
  }
  return true;
}

PeerLogs::Fork PeerLogs::GossipInconsistency(const std::string& signer, const v1::PeerLog& log,
                                             const SignedTree& gossiped,
                                             const v1::ConsistencyRequest& req,
                                             const v1::ConsistencyResponse& resp,
                                             absl::Time now) const {
  absl::StatusOr<SignedTree> current =
      CheckTreeHead(resp.tree_head(), signer, *ctx_.keyring->trust(), now);
  if (current.ok() && current->size < req.new_size()) {
    // Its own newest head is smaller than one it signed: a log that shrank.
    const v1::SignedMessage& larger =
        gossiped.size > log.tree_size() ? gossiped.message : log.tree_head();
    return Fork{larger, resp.tree_head(),
                absl::StrCat("it signed a log of ", req.new_size(),
                             " entries and now shows one of ", current->size)};
  }
  const bool newer = gossiped.size > log.tree_size();
  const std::vector<std::string> proof(resp.consistency_path().begin(),
                                       resp.consistency_path().end());
  const std::string& old_root = newer ? log.root_hash() : gossiped.root;
  const std::string& new_root = newer ? gossiped.root : log.root_hash();
  absl::Status s =
      storage::merkle::VerifyConsistency(req.old_size(), req.new_size(), old_root, new_root, proof);
  if (s.ok()) return Fork();
  return Fork{log.tree_head(), gossiped.message,
              absl::StrCat("its tree heads of ", req.old_size(), " and ", req.new_size(),
                           " entries are not consistent: ", s.message())};
}

}  // namespace kpx::node
