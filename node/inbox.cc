#include "node/inbox.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "node/batch_records.h"
#include "node/envelope.h"
#include "node/log.h"
#include "node/messages.h"
#include "node/transitions.h"

namespace kpx::node {

Inbox::Inbox(const NodeContext& ctx, uint64_t partner_bytes_per_hour)
    : ctx_(ctx), quota_(partner_bytes_per_hour, absl::Hours(1)) {}

std::vector<DeliveryOutcome> Inbox::Receive(const std::string& peer,
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
  std::vector<DeliveryOutcome> out;
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
      s.copy_of = it->second;
      continue;
    }
    absl::StatusOr<std::optional<std::string>> seen = ctx_.ledger->GetSeen(id);
    if (!seen.ok()) {
      s.outcome.status = seen.status();
      continue;
    }
    if (seen->has_value()) {  // redelivery: the original receipt, nothing stored
      if (!s.outcome.receipt.ParseFromString(**seen)) {
        s.outcome.status = absl::DataLossError("stored receipt does not parse");
      }
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
    SignReceiptWhenSequenced(peer, now, s, *t);
    s.planned = true;
    transitions.push_back(*std::move(t));
  }
  return transitions;
}

void Inbox::SignReceiptWhenSequenced(const std::string& peer, absl::Time now, Slot& slot,
                                     storage::Transition& t) const {
  const std::string id = slot.body->header().message_id();
  const std::string digest = MessageDigest(*slot.message);
  DeliveryOutcome* outcome = &slot.outcome;
  const Keyring* keyring = ctx_.keyring;
  t.on_sequenced = [keyring, outcome, id, digest, peer, now](const storage::Head& head,
                                                             storage::Transition& tr) {
    if (absl::Status s = StampHistory(head, tr); !s.ok()) return s;
    absl::StatusOr<Sealed> receipt = Seal(*keyring, ReceiptBody(id, digest, head, now), peer, now);
    if (!receipt.ok()) return receipt.status();
    tr.seen_value = receipt->message.SerializeAsString();
    outcome->receipt = std::move(receipt->message);
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
    s.outcome.receipt.Clear();
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
