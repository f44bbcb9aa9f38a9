#include "node/transitions.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/amendments.h"
#include "node/envelope.h"
#include "node/findings.h"
#include "node/rules.h"
#include "node/state.h"
#include "node/text.h"
#include "node/util.h"

namespace kpx::node {
namespace {

constexpr size_t kMaxRefusalBytes = 512;

constexpr char kExpiredDetail[] = "validity ran out without a decision of the importing authority";

v1::LedgerEntry MakeEntry(v1::EntryKind kind, const std::string& number, const std::string& partner,
                          v1::CertificateState state, const std::string& message_id,
                          absl::Time now) {
  v1::LedgerEntry e;
  e.set_kind(kind);
  e.set_certificate_number(number);
  e.set_partner(partner);
  e.set_state(state);
  e.set_message_id(message_id);
  *e.mutable_recorded_at() = ToTimestamp(now);
  return e;
}

v1::OutboxItem MakeOutboxItem(const v1::SignedMessage& msg, const std::string& id,
                              const std::string& recipient, const std::string& number,
                              absl::Time now) {
  v1::OutboxItem item;
  item.set_message_id(id);
  item.set_recipient(recipient);
  item.set_certificate_number(number);
  *item.mutable_message() = msg;
  *item.mutable_due_at() = ToTimestamp(now);
  *item.mutable_queued_at() = ToTimestamp(now);
  return item;
}

// Queues `msg` (id `id`) for `rec`'s partner behind any message about
// `rec` still queued, so the partner receives them in order.
void Enqueue(v1::CertificateRecord& rec, const v1::SignedMessage& msg, const std::string& id,
             absl::Time now, storage::Transition& t) {
  v1::OutboxItem item = MakeOutboxItem(msg, id, rec.partner(), rec.certificate().number(), now);
  if (rec.queued_message_ids_size() > 0) {
    item.set_held(true);
    item.set_waits_for(*rec.queued_message_ids().rbegin());
  }
  rec.add_queued_message_ids(id);
  t.outbox_put.push_back(std::move(item));
}

// A peer's reason code as we record it: unspecified is OTHER.
v1::ReasonCode KnownCode(v1::ReasonCode code) {
  return code == v1::REASON_CODE_UNSPECIFIED ? v1::OTHER : code;
}

// Removes `id` from `rec`'s queue; false if it was not there.
bool Dequeue(v1::CertificateRecord& rec, const std::string& id) {
  auto* q = rec.mutable_queued_message_ids();
  for (int i = 0; i < q->size(); ++i) {
    if (q->Get(i) != id) continue;
    q->erase(q->begin() + i);
    return true;
  }
  return false;
}

// Records `msg` (id `id`) as received and `rec` moved to `to`.
storage::Transition Received(const IncomingContext& ctx, const std::string& id,
                             const v1::SignedMessage& msg, v1::CertificateRecord rec,
                             v1::CertificateState to, const std::string& number,
                             const std::string& detail) {
  storage::Transition t;
  t.seen_message_id = id;
  t.entry = MakeEntry(v1::RECEIVED_MESSAGE, number, ctx.peer, to, id, ctx.now);
  t.entry.set_detail(detail);
  *t.entry.mutable_message() = msg;
  AddHistory(rec, to, ctx.now, id, detail);
  t.record = std::move(rec);
  return t;
}

// Records `msg` as received, noted in the ledger without changing the
// record: a message that crossed a decision already made here.
storage::Transition Noted(const IncomingContext& ctx, const std::string& id,
                          const v1::SignedMessage& msg, const std::string& number,
                          const std::string& detail) {
  storage::Transition t;
  t.seen_message_id = id;
  t.entry = MakeEntry(v1::RECEIVED_MESSAGE, number, ctx.peer, v1::CERTIFICATE_STATE_UNSPECIFIED, id,
                      ctx.now);
  t.entry.set_detail(detail);
  *t.entry.mutable_message() = msg;
  return t;
}

absl::StatusOr<storage::Transition> PlanReplacement(const IncomingContext& ctx,
                                                    const std::string& id,
                                                    const v1::SignedMessage& msg,
                                                    v1::CertificateRecord rec);

absl::StatusOr<storage::Transition> PlanCertificate(const IncomingContext& ctx,
                                                    const std::string& id,
                                                    const v1::Certificate& cert,
                                                    const v1::SignedMessage& msg,
                                                    const v1::CertificateRecord* current) {
  if (cert.importing_participant() != ctx.self) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate is for ", cert.importing_participant(), ", not ", ctx.self));
  }
  if (absl::Status s = ValidateCertificate(cert, ctx.peer, ctx.trust, ctx.now); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  if (current != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("certificate number ", cert.number(), " was already received"));
  }
  v1::CertificateRecord rec;
  *rec.mutable_certificate() = cert;
  rec.set_side(v1::IMPORTING);
  rec.set_partner(ctx.peer);
  rec.set_paper_in_parallel(ctx.trust.PaperInParallel(ctx.peer, ctx.self));
  rec.set_certificate_message_id(id);
  rec.set_certificate_digest(MessageDigest(msg));
  *rec.mutable_delivered_at() = ToTimestamp(ctx.now);
  if (cert.replaces().empty()) {
    return Received(ctx, id, msg, std::move(rec), v1::RECEIVED, cert.number(), "");
  }
  return PlanReplacement(ctx, id, msg, std::move(rec));
}

// A replacement: its predecessor, received from the same exporter and
// still open, becomes REPLACED with it; one we decided on already stands,
// and the replacement, which crossed that decision, is DISPUTED.
absl::StatusOr<storage::Transition> PlanReplacement(const IncomingContext& ctx,
                                                    const std::string& id,
                                                    const v1::SignedMessage& msg,
                                                    v1::CertificateRecord rec) {
  const std::string number = rec.certificate().number();
  const std::string& old_number = rec.certificate().replaces();
  absl::StatusOr<const v1::CertificateRecord*> old =
      ctx.lookup != nullptr ? (*ctx.lookup)(old_number) : nullptr;
  if (!old.ok()) return old.status();
  const v1::CertificateRecord* o = *old;
  if (o == nullptr || o->side() != v1::IMPORTING || o->partner() != ctx.peer) {
    return Received(ctx, id, msg, std::move(rec), v1::RECEIVED, number,
                    absl::StrCat("replaces ", old_number, ", which was never received here"));
  }
  if (CheckTransition(v1::IMPORTING, o->state(), v1::REPLACED).ok()) {
    storage::Transition t = Received(ctx, id, msg, std::move(rec), v1::RECEIVED, number,
                                     absl::StrCat("replaces ", old_number));
    v1::CertificateRecord predecessor = *o;
    predecessor.set_replaced_by(number);
    AddHistory(predecessor, v1::REPLACED, ctx.now, id, absl::StrCat("replaced by ", number));
    t.linked_records.push_back(std::move(predecessor));
    return t;
  }
  return Received(
      ctx, id, msg, std::move(rec), v1::DISPUTED, number,
      absl::StrCat("replaces ", old_number, ", which is ", v1::CertificateState_Name(o->state()),
                   " here: the replacement crossed that decision, which stands"));
}

// The exporter's record of `number` issued to the peer, or NotFound.
absl::Status CheckIssuedTo(const IncomingContext& ctx, const std::string& number,
                           const v1::CertificateRecord* current) {
  if (current == nullptr || current->side() != v1::EXPORTING || current->partner() != ctx.peer) {
    return absl::NotFoundError(
        absl::StrCat(ctx.self, " issued no certificate ", number, " to ", ctx.peer));
  }
  return absl::OkStatus();
}

absl::Status DisputeSuccessor(const IncomingContext& ctx, const std::string& id,
                              const v1::CertificateRecord& replaced, storage::Transition& t);

// The importer decided on version `v`, which our amendment corrected: the
// decision crossed the amendment. Neither stands alone, so the certificate
// is DISPUTED (the importer's node makes it so when the amendment arrives)
// until the importer decides on the current version or we cancel.
absl::StatusOr<storage::Transition> PlanOutdatedDecision(
    const IncomingContext& ctx, const std::string& id, const v1::CertificateRecord& current,
    const v1::CertificateVersion& v, v1::CertificateState decided, const v1::SignedMessage& msg) {
  const std::string& number = current.certificate().number();
  const std::string detail =
      absl::StrCat("the importing side's ", v1::CertificateState_Name(decided), " names version ",
                   v.version(), ", which our amendment corrected");
  // Moved on since (disputed, replaced, cancelled): the importer receives
  // our amendment, then what followed it, and ends where we are.
  if (current.state() == v1::DISPUTED || current.state() == v1::REPLACED ||
      current.state() == v1::CANCELLED) {
    return Noted(ctx, id, msg, number, absl::StrCat(detail, "; kept, not applied"));
  }
  if (absl::Status s = CheckTransition(v1::EXPORTING, current.state(), v1::DISPUTED); !s.ok()) {
    return s;
  }
  return Received(ctx, id, msg, current, v1::DISPUTED, number, detail);
}

// The importer's record of `number` received from the peer, or NotFound.
absl::Status CheckReceivedFrom(const IncomingContext& ctx, const std::string& number,
                               const v1::CertificateRecord* current) {
  if (current == nullptr || current->side() != v1::IMPORTING || current->partner() != ctx.peer) {
    return absl::NotFoundError(
        absl::StrCat(ctx.self, " received no certificate ", number, " from ", ctx.peer));
  }
  return absl::OkStatus();
}

// A decision of the importer's (confirmation, rejection, expiry) about a
// certificate we issued. One that finds our certificate CANCELLED crossed
// our cancellation: the importer cannot decide on a certificate after it
// has received the cancellation (messages arrive in order), so it decided
// first, and its decision stands (docs/protocol.md, "Convergence").
absl::StatusOr<storage::Transition> PlanDecision(const IncomingContext& ctx, const std::string& id,
                                                 const std::string& number,
                                                 const std::string& digest, v1::CertificateState to,
                                                 std::string detail, const v1::SignedMessage& msg,
                                                 const v1::CertificateRecord* current) {
  if (absl::Status s = CheckIssuedTo(ctx, number, current); !s.ok()) return s;
  const std::string what = absl::AsciiStrToLower(v1::CertificateState_Name(to));
  if (digest != current->certificate_digest()) {
    if (const v1::CertificateVersion* v = EarlierVersion(*current, digest); v != nullptr) {
      return PlanOutdatedDecision(ctx, id, *current, *v, to, msg);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("the ", what, " message names a different certificate digest"));
  }
  const std::string sep = detail.empty() ? "" : "; ";
  if (current->state() == v1::CANCELLED) {
    detail =
        absl::StrCat(detail, sep, "crossed our cancellation: the importing side's decision stands");
  } else if (current->state() == v1::REPLACED) {
    detail = absl::StrCat(detail, sep, "crossed our replacement by ", current->replaced_by(),
                          ": the importing side's decision stands");
  } else if (absl::Status s = CheckTransition(v1::EXPORTING, current->state(), to); !s.ok()) {
    return s;
  }
  storage::Transition t = Received(ctx, id, msg, *current, to, number, detail);
  if (current->state() == v1::REPLACED) {
    // The replacement did not take place: the successor, DISPUTED, still
    // names this one in `replaces`; this one no longer names a successor
    // (nor does the importer's, which was never REPLACED).
    t.record->clear_replaced_by();
    absl::Status s = DisputeSuccessor(ctx, id, *current, t);
    if (!s.ok()) return s;
  }
  return t;
}

// Our replacement of `replaced` crossed the importer's decision on it: the
// replacement, still open here, is DISPUTED (the importer's node makes it
// DISPUTED on arrival by the same rule).
absl::Status DisputeSuccessor(const IncomingContext& ctx, const std::string& id,
                              const v1::CertificateRecord& replaced, storage::Transition& t) {
  absl::StatusOr<const v1::CertificateRecord*> next =
      ctx.lookup != nullptr ? (*ctx.lookup)(replaced.replaced_by()) : nullptr;
  if (!next.ok()) return next.status();
  const v1::CertificateRecord* n = *next;
  if (n == nullptr || n->side() != v1::EXPORTING ||
      !CheckTransition(v1::EXPORTING, n->state(), v1::DISPUTED).ok()) {
    return absl::OkStatus();  // decided meanwhile: that decision holds
  }
  v1::CertificateRecord successor = *n;
  AddHistory(successor, v1::DISPUTED, ctx.now, id,
             absl::StrCat("replaces ", replaced.certificate().number(),
                          ", on which the importing side decided first"));
  t.linked_records.push_back(std::move(successor));
  return absl::OkStatus();
}

absl::StatusOr<storage::Transition> PlanConfirmation(const IncomingContext& ctx,
                                                     const std::string& id,
                                                     const v1::ImportConfirmation& c,
                                                     const v1::SignedMessage& msg,
                                                     const v1::CertificateRecord* current) {
  if (absl::Status s = CheckIssuedTo(ctx, c.certificate_number(), current); !s.ok()) return s;
  const v1::Participant* importer = ctx.trust.Find(ctx.peer);
  if (importer == nullptr) return absl::PermissionDeniedError("sender is not on the trust list");
  if (absl::Status s = CheckConfirmation(c, *importer); !s.ok()) return s;
  if (FromTimestamp(c.arrived_at()) >= FromTimestamp(current->certificate().expires_at())) {
    return absl::InvalidArgumentError(
        "confirmation: the shipment arrived after the certificate expired");
  }
  if (FromTimestamp(c.arrived_at()) <
      FromTimestamp(current->certificate().issued_at()) - kMaxClockSkew) {
    return absl::InvalidArgumentError(
        "confirmation: the shipment arrived before the certificate was issued");
  }
  absl::StatusOr<storage::Transition> t = PlanDecision(
      ctx, id, c.certificate_number(), c.certificate_digest(), v1::CONFIRMED, "", msg, current);
  if (t.ok() && t->record.has_value() && t->record->state() == v1::CONFIRMED) {
    RecordConfirmation(*t->record, c);
  }
  return t;
}

// The exporter's correction of a certificate we received. Applied while
// we have not decided; one that finds our decision made crossed it: the
// certificate is DISPUTED (the exporter's node makes it so when our
// decision arrives), now as amended.
absl::StatusOr<storage::Transition> PlanAmendment(const IncomingContext& ctx, const std::string& id,
                                                  const v1::Amendment& a,
                                                  const v1::SignedMessage& msg,
                                                  const v1::CertificateRecord* current) {
  const std::string& number = a.certificate_number();
  if (absl::Status s = CheckReceivedFrom(ctx, number, current); !s.ok()) return s;
  if (a.amends_digest() != current->certificate_digest()) {
    return absl::InvalidArgumentError("the amendment names a different certificate digest");
  }
  if (a.reason_code() == v1::REASON_CODE_UNSPECIFIED || a.reason().empty()) {
    return absl::InvalidArgumentError("an amendment needs a reason code and a reason");
  }
  if (absl::Status s = ValidateCertificate(a.certificate(), ctx.peer, ctx.trust, ctx.now);
      !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  if (absl::Status s = CheckAmendable(current->certificate(), a.certificate()); !s.ok()) return s;
  const v1::CertificateState was = current->state();
  v1::CertificateState to = was;
  if (CheckTransition(v1::IMPORTING, was, v1::DISPUTED).ok()) {
    to = v1::DISPUTED;
  } else if (was != v1::RECEIVED && was != v1::DISPUTED) {
    return CheckTransition(v1::IMPORTING, was, v1::DISPUTED);
  }
  v1::CertificateRecord rec = *current;
  if (to != was) {  // our decision was on the version this corrects
    rec.clear_confirmation();
    rec.clear_discrepancies();
  }
  ApplyAmendment(rec, a, MessageDigest(msg), ctx.now);
  std::string detail = AmendedDetail(rec);
  if (to != was) {
    absl::StrAppend(&detail, "; it crossed our ", v1::CertificateState_Name(was), " of version ",
                    rec.version() - 1);
  }
  storage::Transition t = Received(ctx, id, msg, std::move(rec), to, number, detail);
  t.record->mutable_history()->rbegin()->set_reason_code(a.reason_code());
  return t;
}

absl::StatusOr<storage::Transition> PlanVoid(const IncomingContext& ctx, const std::string& id,
                                             const v1::Void& v, const v1::SignedMessage& msg,
                                             const v1::CertificateRecord* current) {
  const std::string& number = v.certificate_number();
  if (absl::Status s = CheckReceivedFrom(ctx, number, current); !s.ok()) return s;
  if (v.certificate_digest() != current->certificate_digest()) {
    return absl::InvalidArgumentError("the void names a different certificate digest");
  }
  if (v.reason_code() == v1::REASON_CODE_UNSPECIFIED) {
    return absl::InvalidArgumentError("a void needs a reason code");
  }
  if (absl::Status s = CheckTransition(v1::IMPORTING, current->state(), v1::VOIDED); !s.ok()) {
    return s;
  }
  storage::Transition t = Received(ctx, id, msg, *current, v1::VOIDED, number, v.reason());
  t.record->mutable_history()->rbegin()->set_reason_code(v.reason_code());
  return t;
}

absl::StatusOr<storage::Transition> PlanCancellation(const IncomingContext& ctx,
                                                     const std::string& id,
                                                     const v1::Cancellation& c,
                                                     const v1::SignedMessage& msg,
                                                     const v1::CertificateRecord* current) {
  const std::string& number = c.certificate_number();
  if (absl::Status s = CheckReceivedFrom(ctx, number, current); !s.ok()) return s;
  const v1::CertificateState state = current->state();
  if (state == v1::CONFIRMED || state == v1::REJECTED || state == v1::EXPIRED) {
    // We decided before the cancellation arrived; the exporter learns our
    // decision from our message, which crossed this one. Kept, not applied.
    return Noted(
        ctx, id, msg, number,
        absl::StrCat("cancellation crossed our decision: ", v1::CertificateState_Name(state),
                     " stands; reason given: ", c.reason()));
  }
  if (absl::Status s = CheckTransition(v1::IMPORTING, state, v1::CANCELLED); !s.ok()) return s;
  storage::Transition t = Received(ctx, id, msg, *current, v1::CANCELLED, number, c.reason());
  t.record->mutable_history()->rbegin()->set_reason_code(KnownCode(c.reason_code()));
  return t;
}

}  // namespace

std::string AmendedDetail(const v1::CertificateRecord& rec) {
  const v1::CertificateVersion& v = *rec.earlier_versions().rbegin();
  return absl::StrCat("amended to version ", rec.version(), " (",
                      absl::StrJoin(v.changed_fields(), ", "), "): ", v.reason());
}

void RecordConfirmation(v1::CertificateRecord& rec, const v1::ImportConfirmation& c) {
  *rec.mutable_confirmation() = c;
  rec.clear_discrepancies();
  for (v1::Discrepancy& d : CompareFindings(rec.certificate(), c)) {
    *rec.add_discrepancies() = std::move(d);
  }
  if (rec.discrepancies_size() > 0 && !rec.history().empty()) {
    v1::StateChange& last = *rec.mutable_history()->rbegin();
    const std::string note =
        absl::StrCat(rec.discrepancies_size(), " discrepancies between certificate and findings");
    last.set_detail(last.detail().empty() ? note : absl::StrCat(last.detail(), "; ", note));
  }
}

void AddHistory(v1::CertificateRecord& rec, v1::CertificateState state, absl::Time at,
                const std::string& message_id, const std::string& detail) {
  rec.set_state(state);
  v1::StateChange* h = rec.add_history();
  h->set_state(state);
  *h->mutable_at() = ToTimestamp(at);
  h->set_message_id(message_id);
  h->set_detail(detail);
}

absl::Status StampHistory(const storage::Head& head, storage::Transition& t) {
  if (t.record.has_value() && t.record->history_size() > 0) {
    t.record->mutable_history()->rbegin()->set_sequence(head.sequence);
  }
  for (v1::CertificateRecord& r : t.linked_records) {
    if (r.history_size() > 0) r.mutable_history()->rbegin()->set_sequence(head.sequence);
  }
  return absl::OkStatus();
}

std::vector<std::string> LinkedNumbers(const v1::MessageBody& body,
                                       const v1::CertificateRecord* current) {
  std::vector<std::string> out;
  if (body.has_certificate() && !body.certificate().replaces().empty()) {
    out.push_back(body.certificate().replaces());
  }
  if (current != nullptr && !current->replaced_by().empty()) out.push_back(current->replaced_by());
  return out;
}

storage::Transition IssueTransition(const v1::Certificate& cert, const std::string& message_id,
                                    const v1::SignedMessage& msg, absl::Time now) {
  const std::string& importer = cert.importing_participant();
  storage::Transition t;
  t.entry = MakeEntry(v1::SENT, cert.number(), importer, v1::ISSUED, message_id, now);
  *t.entry.mutable_message() = msg;
  v1::CertificateRecord rec;
  *rec.mutable_certificate() = cert;
  rec.set_side(v1::EXPORTING);
  rec.set_partner(importer);
  rec.set_certificate_message_id(message_id);
  rec.set_certificate_digest(MessageDigest(msg));
  AddHistory(rec, v1::ISSUED, now, message_id, "");
  Enqueue(rec, msg, message_id, now, t);
  t.record = std::move(rec);
  return t;
}

storage::Transition SendTransition(v1::CertificateRecord rec, v1::CertificateState to,
                                   const std::string& detail, const std::string& message_id,
                                   const v1::SignedMessage& msg, absl::Time now) {
  const std::string number = rec.certificate().number();
  storage::Transition t;
  t.entry = MakeEntry(v1::SENT, number, rec.partner(), to, message_id, now);
  t.entry.set_detail(detail);
  *t.entry.mutable_message() = msg;
  Enqueue(rec, msg, message_id, now, t);
  AddHistory(rec, to, now, message_id, detail);
  t.record = std::move(rec);
  return t;
}

absl::StatusOr<storage::Transition> PlanIncoming(const IncomingContext& ctx,
                                                 const v1::MessageBody& body,
                                                 const v1::SignedMessage& msg,
                                                 const v1::CertificateRecord* current) {
  const std::string& id = body.header().message_id();
  switch (body.payload_case()) {
    case v1::MessageBody::kCertificate:
      return PlanCertificate(ctx, id, body.certificate(), msg, current);
    case v1::MessageBody::kConfirmation:
      return PlanConfirmation(ctx, id, body.confirmation(), msg, current);
    case v1::MessageBody::kRejection: {
      const v1::Rejection& r = body.rejection();
      absl::StatusOr<storage::Transition> t =
          PlanDecision(ctx, id, r.certificate_number(), r.certificate_digest(), v1::REJECTED,
                       r.reason(), msg, current);
      if (t.ok() && t->record.has_value() && t->record->state() == v1::REJECTED) {
        t->record->mutable_history()->rbegin()->set_reason_code(KnownCode(r.reason_code()));
      }
      return t;
    }
    case v1::MessageBody::kExpiry: {
      const v1::Expiry& e = body.expiry();
      return PlanDecision(ctx, id, e.certificate_number(), e.certificate_digest(), v1::EXPIRED,
                          kExpiredDetail, msg, current);
    }
    case v1::MessageBody::kCancellation:
      return PlanCancellation(ctx, id, body.cancellation(), msg, current);
    case v1::MessageBody::kVoiding:
      return PlanVoid(ctx, id, body.voiding(), msg, current);
    case v1::MessageBody::kAmendment:
      return PlanAmendment(ctx, id, body.amendment(), msg, current);
    case v1::MessageBody::kReceipt:
    case v1::MessageBody::kTreeHead:
      return absl::InvalidArgumentError("receipts and tree heads travel only in Deliver responses");
    default:
      return absl::InvalidArgumentError("message has no payload");
  }
}

const std::string* QueuedAfter(const v1::CertificateRecord& rec, const std::string& message_id) {
  const auto& q = rec.queued_message_ids();
  for (int i = 0; i + 1 < q.size(); ++i) {
    if (q.Get(i) == message_id) return &q.Get(i + 1);
  }
  return nullptr;
}

storage::Transition DeliveryTransition(const v1::OutboxItem& item, const absl::Status& status,
                                       const v1::DeliveryProof& proof,
                                       std::optional<v1::CertificateRecord> current,
                                       std::optional<v1::OutboxItem> next, absl::Time now) {
  const std::string& number = item.certificate_number();
  storage::Transition t;
  t.outbox_delete.push_back(item.message_id());
  if (status.ok()) {
    t.entry = MakeEntry(v1::RECEIPT, number, item.recipient(), v1::CERTIFICATE_STATE_UNSPECIFIED,
                        item.message_id(), now);
    *t.entry.mutable_proof() = proof;
  } else {
    t.entry = MakeEntry(v1::DELIVERY_FAILED, number, item.recipient(),
                        v1::CERTIFICATE_STATE_UNSPECIFIED, item.message_id(), now);
    // The partner wrote the reason: stored bounded and escaped.
    t.entry.set_detail(absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                                    Printable(std::string(status.message()), kMaxRefusalBytes)));
  }
  if (next.has_value()) {  // the next message about this certificate may go now
    next->set_held(false);
    next->clear_waits_for();
    *next->mutable_due_at() = ToTimestamp(now);
    t.outbox_put.push_back(*std::move(next));
  }
  if (!current.has_value()) return t;
  bool changed = Dequeue(*current, item.message_id());
  if (current->certificate_message_id() == item.message_id() && current->state() == v1::ISSUED) {
    if (status.ok()) {
      AddHistory(*current, v1::DELIVERED, now, item.message_id(), "");
      *current->mutable_delivered_at() = ToTimestamp(now);
      t.entry.set_state(v1::DELIVERED);
    } else {  // the importer holds nothing: the authority must see it
      AddHistory(*current, v1::REFUSED, now, item.message_id(), t.entry.detail());
      t.entry.set_state(v1::REFUSED);
    }
    t.on_sequenced = StampHistory;
    changed = true;
  }
  if (changed) t.record = std::move(current);
  return t;
}

bool IsExpirable(const v1::CertificateRecord& r, absl::Time now, absl::Duration grace) {
  return r.side() == v1::IMPORTING && (r.state() == v1::RECEIVED || r.state() == v1::DISPUTED) &&
         now >= FromTimestamp(r.certificate().expires_at()) + grace;
}

const char* ExpiredDetail() { return kExpiredDetail; }

}  // namespace kpx::node
