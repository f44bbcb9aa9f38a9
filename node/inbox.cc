#include "node/inbox.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "node/batch_records.h"
#include "node/envelope.h"
#include "node/log.h"
#include "node/messages.h"
#include "node/transitions.h"
#include "storage/log_leaf.h"

namespace kpx::node {
namespace {

// A seen message's value: the sequence of the entry that recorded it,
// 8 bytes big-endian.
std::string SeenValue(uint64_t sequence) {
  std::string v(8, '\0');
  for (int i = 7; i >= 0; --i, sequence >>= 8) v[i] = static_cast<char>(sequence & 0xff);
  return v;
}

absl::Status ReusedId(const std::string& id) {
  return absl::AlreadyExistsError(
      absl::StrCat("message id ", id, " was already used for another message"));
}

absl::Status ReusedId(uint64_t sequence) {
  return absl::AlreadyExistsError(absl::StrCat(
      "this message id was already used for another message (ledger entry ", sequence, ")"));
}

uint64_t SeenSequence(const std::string& v) {
  uint64_t sequence = 0;
  for (char c : v) sequence = (sequence << 8) | static_cast<unsigned char>(c);
  return sequence;
}

}  // namespace

Inbox::Inbox(const NodeContext& ctx, TreeSigner* signer, PeerLogs* peer_logs,
             uint64_t partner_bytes_per_hour)
    : ctx_(ctx),
      signer_(signer),
      peer_logs_(peer_logs),
      quota_(partner_bytes_per_hour, absl::Hours(1)) {}

v1::DeliverResponse Inbox::Exchange(const std::string& peer, const v1::DeliverRequest& request) {
  const std::vector<v1::SignedMessage> messages(request.messages().begin(),
                                                request.messages().end());
  v1::DeliverResponse resp = Answer(Receive(peer, messages), request.known_tree_size());
  peer_logs_->NoteGossip(peer, request.tree_heads(), ctx_.Now());
  for (v1::SignedMessage& h : peer_logs_->GossipFor(peer)) *resp.add_tree_heads() = std::move(h);
  return resp;
}

v1::DeliverResponse Inbox::Answer(const std::vector<ReceiveOutcome>& outcomes,
                                  uint64_t known_tree_size) {
  v1::DeliverResponse resp;
  bool stored = false;
  for (const ReceiveOutcome& o : outcomes) stored = stored || o.status.ok();
  absl::StatusOr<SignedTree> tree = absl::UnavailableError("no tree head needed");
  std::vector<std::string> consistency;
  if (stored) {
    tree = signer_->Current();
    if (tree.ok() && known_tree_size > 0 && known_tree_size <= tree->size) {
      absl::StatusOr<std::vector<std::string>> c =
          ctx_.ledger->ConsistencyProof(known_tree_size, tree->size);
      // A head without the proof asked for would look like a fork.
      if (c.ok())
        consistency = *std::move(c);
      else
        tree = c.status();
    }
    if (!tree.ok()) {
      log::Error("tree_head_failed", {{"reason", tree.status().message()}});
    } else {
      *resp.mutable_tree_head() = tree->message;
      for (std::string& h : consistency) resp.add_consistency_path(std::move(h));
    }
  }
  for (const ReceiveOutcome& o : outcomes) {
    v1::DeliveryResult* r = resp.add_results();
    absl::Status status = o.status;
    absl::StatusOr<std::vector<std::string>> path;
    if (status.ok() && !tree.ok()) {
      status = absl::UnavailableError(
          absl::StrCat("stored, but no tree head to prove it: ", tree.status().message()));
    }
    if (status.ok()) {
      path = ctx_.ledger->InclusionProof(o.sequence, tree->size);
      if (!path.ok()) status = absl::UnavailableError(path.status().message());
    }
    r->set_code(static_cast<int>(status.code()));
    if (!status.ok()) {
      r->set_error(std::string(status.message()));
      continue;
    }
    r->set_leaf(o.leaf);
    for (std::string& h : *path) r->add_inclusion_path(std::move(h));
  }
  return resp;
}

absl::StatusOr<v1::ConsistencyResponse> Inbox::Consistency(const v1::ConsistencyRequest& request) {
  absl::StatusOr<SignedTree> tree = signer_->Current();
  if (!tree.ok()) return tree.status();
  if (request.old_size() > request.new_size()) {
    return absl::InvalidArgumentError("a consistency proof needs old_size <= new_size");
  }
  v1::ConsistencyResponse resp;
  *resp.mutable_tree_head() = tree->message;
  // Beyond our log: the head alone shows the caller how far it goes.
  if (request.new_size() > tree->size) return resp;
  absl::StatusOr<std::vector<std::string>> proof =
      ctx_.ledger->ConsistencyProof(request.old_size(), request.new_size());
  if (!proof.ok()) return proof.status();
  for (std::string& h : *proof) resp.add_consistency_path(std::move(h));
  return resp;
}

std::vector<ReceiveOutcome> Inbox::Receive(const std::string& peer,
                                           const std::vector<v1::SignedMessage>& messages) {
  const absl::Time now = ctx_.Now();
  std::shared_ptr<const TrustList> trust = ctx_.keyring->trust();
  std::vector<Slot> slots(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) slots[i].message = &messages[i];

  Verify(peer, *trust, now, slots);
  // The certificates' locks, with those of linked certificates (a
  // replacement's predecessor and successor). Links are read before the
  // lock is held, so they are read again under it; should a replacement
  // have been made meanwhile, the lock is taken again with it.
  std::vector<std::string> numbers = LockSet(slots);
  while (true) {
    CertificateLock lock(*ctx_.locks, numbers);
    std::vector<std::string> now_linked = LockSet(slots);
    if (now_linked != numbers) {
      numbers = std::move(now_linked);
      continue;
    }
    Commit(peer, Plan(peer, *trust, now, slots), slots);
    break;
  }
  // In-batch duplicates get the first copy's outcome.
  for (Slot& s : slots) {
    if (s.copy_of.has_value()) s.outcome = slots[*s.copy_of].outcome;
  }
  Report(peer, slots);
  std::vector<ReceiveOutcome> out;
  out.reserve(slots.size());
  for (Slot& s : slots) out.push_back(std::move(s.outcome));
  return out;
}

std::vector<std::string> Inbox::LockSet(const std::vector<Slot>& slots) const {
  std::set<std::string> numbers;
  for (const Slot& s : slots) {
    if (!s.body.has_value()) continue;
    const std::string& number = CertificateNumberOf(*s.body);
    numbers.insert(number);
    absl::StatusOr<std::optional<v1::CertificateRecord>> rec = ctx_.ledger->GetCertificate(number);
    const v1::CertificateRecord* current = rec.ok() && rec->has_value() ? &**rec : nullptr;
    for (std::string& n : LinkedNumbers(*s.body, current)) numbers.insert(std::move(n));
  }
  return std::vector<std::string>(numbers.begin(), numbers.end());
}

void Inbox::Verify(const std::string& peer, const TrustList& trust, absl::Time now,
                   std::vector<Slot>& slots) const {
  for (Slot& s : slots) {
    absl::StatusOr<v1::MessageBody> body = VerifyMessage(*s.message, peer, trust, now);
    if (!body.ok()) {
      s.outcome.status = body.status();
    } else if (body->header().recipient() != ctx_.participant) {
      s.outcome.status = absl::PermissionDeniedError(
          absl::StrCat("message is addressed to '", body->header().recipient(), "', this node is ",
                       ctx_.participant));
    } else if (absl::Status q = quota_.Take(peer, s.message->ByteSizeLong(), now); !q.ok()) {
      s.outcome.status = q;
    } else {
      s.body = *std::move(body);
    }
  }
}

std::vector<storage::Transition> Inbox::Plan(const std::string& peer, const TrustList& trust,
                                             absl::Time now, std::vector<Slot>& slots) {
  BatchRecords records(ctx_.ledger);
  std::map<std::string, size_t> first_with_id;
  std::vector<storage::Transition> transitions;
  const RecordLookup lookup = [&records](const std::string& n) { return records.Get(n); };
  const IncomingContext ictx{ctx_.participant, peer, trust, now, &lookup};
  for (size_t i = 0; i < slots.size(); ++i) {
    Slot& s = slots[i];
    if (!s.body.has_value()) continue;
    const std::string& id = s.body->header().message_id();
    if (auto it = first_with_id.find(id); it != first_with_id.end()) {
      if (MessageDigest(*s.message) == MessageDigest(*slots[it->second].message)) {
        s.copy_of = it->second;
      } else {
        s.outcome.status = ReusedId(id);
      }
      continue;
    }
    absl::StatusOr<std::optional<std::string>> seen = ctx_.ledger->GetSeen(id);
    if (!seen.ok()) {  // our trouble, not the message's: the sender retries
      s.outcome.status = absl::UnavailableError(seen.status().message());
      continue;
    }
    if (seen->has_value()) {  // redelivery: the original entry, nothing stored
      s.outcome.status = Recall(**seen, MessageDigest(*s.message), s.outcome);
      continue;
    }
    const std::string& number = CertificateNumberOf(*s.body);
    absl::StatusOr<const v1::CertificateRecord*> current = records.Get(number);
    if (!current.ok()) {
      s.outcome.status = current.status();
      continue;
    }
    absl::StatusOr<storage::Transition> t = PlanIncoming(ictx, *s.body, *s.message, *current);
    if (!t.ok()) {
      s.outcome.status = t.status();
      continue;
    }
    if (t->record.has_value()) records.Set(number, *t->record);
    for (const v1::CertificateRecord& r : t->linked_records)
      records.Set(r.certificate().number(), r);
    first_with_id[id] = i;
    NoteWhenSequenced(s, *t);
    s.planned = true;
    transitions.push_back(*std::move(t));
  }
  return transitions;
}

absl::Status Inbox::Recall(const std::string& seen_value, const std::string& digest,
                           ReceiveOutcome& outcome) const {
  uint64_t sequence = 0;
  if (seen_value.size() == 8) {
    sequence = SeenSequence(seen_value);
  } else {
    // Written before tree heads: the signed receipt, naming the entry.
    v1::SignedMessage receipt;
    v1::MessageBody body;
    if (!receipt.ParseFromString(seen_value) || !body.ParseFromString(receipt.body()) ||
        !body.has_receipt()) {
      return absl::UnavailableError("the stored record of this message does not parse");
    }
    sequence = body.receipt().ledger_sequence();
  }
  // A read failure is ours, not the message's: UNAVAILABLE, so the sender
  // retries instead of taking it for a refusal.
  absl::StatusOr<std::string> leaf = ctx_.ledger->Leaf(sequence);
  if (!leaf.ok()) return absl::UnavailableError(leaf.status().message());
  absl::StatusOr<storage::LogLeaf> decoded = storage::DecodeLogLeaf(*leaf);
  if (!decoded.ok()) return absl::UnavailableError(decoded.status().message());
  // The same id on other bytes is not a redelivery: answering with the
  // first message's leaf would acknowledge what was not stored.
  if (decoded->message_digest != digest) return ReusedId(decoded->sequence);
  outcome.sequence = sequence;
  outcome.leaf = *std::move(leaf);
  return absl::OkStatus();
}

void Inbox::NoteWhenSequenced(Slot& slot, storage::Transition& t) {
  ReceiveOutcome* outcome = &slot.outcome;
  t.on_sequenced = [outcome](const storage::Head& head, storage::Transition& tr) {
    if (absl::Status s = StampHistory(head, tr); !s.ok()) return s;
    tr.seen_value = SeenValue(head.sequence);
    outcome->sequence = head.sequence;
    outcome->leaf = head.leaf;
    return absl::OkStatus();
  };
}

void Inbox::Commit(const std::string& peer, std::vector<storage::Transition> transitions,
                   std::vector<Slot>& slots) {
  if (transitions.empty()) return;
  absl::StatusOr<std::vector<storage::Head>> heads = ctx_.ledger->AppendAll(std::move(transitions));
  if (heads.ok()) return;
  if (Observer* obs = ctx_.observer->get(); obs != nullptr) obs->LedgerWriteFailed("receive");
  for (Slot& s : slots) {
    if (!s.planned) continue;
    log::Error("ledger_write_failed", {{"step", "receive"},
                                       {"message", s.body->header().message_id()},
                                       {"partner", peer},
                                       {"reason", heads.status().message()}});
    s.planned = false;
    s.outcome.status =
        absl::UnavailableError(absl::StrCat("ledger write failed: ", heads.status().message()));
    s.outcome.sequence = 0;
    s.outcome.leaf.clear();
  }
}

void Inbox::Report(const std::string& peer, const std::vector<Slot>& slots) const {
  Observer* obs = ctx_.observer->get();
  for (const Slot& s : slots) {
    if (s.planned) {
      const std::string kind = v1::MessageKind_Name(s.body->header().kind());
      if (obs != nullptr) obs->Received(peer, kind);
      log::Info("received", {{"message", s.body->header().message_id()},
                             {"certificate", CertificateNumberOf(*s.body)},
                             {"partner", peer},
                             {"kind", kind}});
    } else if (!s.outcome.status.ok() && obs != nullptr) {
      obs->Refused(peer, s.outcome.status.code());
    }
  }
}

}  // namespace kpx::node
