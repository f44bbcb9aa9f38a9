#include "node/authority_desk.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "node/amendments.h"
#include "node/envelope.h"
#include "node/findings.h"
#include "node/messages.h"
#include "node/problem_field.h"
#include "node/rules.h"
#include "node/state.h"
#include "node/transitions.h"
#include "node/util.h"

namespace kpx::node {
namespace {

absl::Status CheckReason(const std::string& reason, const char* what) {
  if (reason.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " needs a reason"));
  if (reason.size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " reason is longer than ", kMaxReasonBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CheckRequestId(const std::string& id) {
  if (id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id is longer than ", kMaxRequestIdBytes, " characters"));
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_') {
      return absl::InvalidArgumentError("request_id may only contain A-Z, a-z, 0-9, '-', '_'");
    }
  }
  return absl::OkStatus();
}

// True if a change of `rec` carries `request_id` (non-empty): a retry of
// a verb that was done.
bool HasRequest(const v1::CertificateRecord& rec, const std::string& request_id) {
  if (request_id.empty()) return false;
  for (const v1::StateChange& h : rec.history()) {
    if (h.request_id() == request_id) return true;
  }
  return false;
}

}  // namespace

AuthorityDesk::AuthorityDesk(const NodeContext& ctx, std::string authority_name,
                             std::function<void(const std::string& recipient)> queued)
    : ctx_(ctx), authority_name_(std::move(authority_name)), queued_(std::move(queued)) {}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Submit(v1::Certificate cert,
                                                            const std::string& request_id,
                                                            const v1::Actor& by) {
  const absl::Time now = ctx_.Now();
  if (absl::Status s = CheckRequestId(request_id); !s.ok()) return s;
  if (absl::Status s = ReadyToSign(cert, now); !s.ok()) return s;
  std::vector<std::string> numbers = {cert.number()};
  if (!cert.replaces().empty()) numbers.push_back(cert.replaces());
  CertificateLock lock(*ctx_.locks, numbers);
  absl::StatusOr<std::optional<v1::CertificateRecord>> existing =
      ctx_.ledger->GetCertificate(cert.number());
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return Resubmitted(**existing, cert, request_id);
  if (absl::Status s = CheckProvenance(cert); !s.ok()) return s;
  std::optional<v1::CertificateRecord> replaced;
  if (!cert.replaces().empty()) {
    absl::StatusOr<v1::CertificateRecord> old = Replaceable(cert);
    if (!old.ok()) return old.status();
    replaced = *std::move(old);
  }
  absl::StatusOr<Sealed> sealed =
      Seal(*ctx_.keyring, CertificateBody(cert), cert.importing_participant(), now);
  if (!sealed.ok()) return sealed.status();
  storage::Transition t = IssueTransition(cert, sealed->message_id, sealed->message, now);
  t.record->mutable_history()->rbegin()->set_request_id(request_id);
  t.record->set_paper_in_parallel(
      ctx_.keyring->trust()->PaperInParallel(ctx_.participant, cert.importing_participant()));
  if (replaced.has_value()) {
    replaced->set_replaced_by(cert.number());
    AddHistory(*replaced, v1::REPLACED, now, sealed->message_id,
               absl::StrCat("replaced by ", cert.number()));
    t.record->mutable_history()->rbegin()->set_detail(absl::StrCat("replaces ", cert.replaces()));
    t.linked_records.push_back(*std::move(replaced));
  }
  return Append(std::move(t), by);
}

absl::Status AuthorityDesk::ReadyToSign(v1::Certificate& cert, absl::Time now) const {
  // Canonical form first; ValidateCertificate includes the importer's policy.
  if (absl::Status s = NormalizeCertificate(&cert); !s.ok()) return s;
  if (absl::Status s = ValidateCertificate(cert, ctx_.participant, *ctx_.keyring->trust(), now);
      !s.ok()) {
    return s;
  }
  return CheckNotExpired(cert, now);
}

absl::Status AuthorityDesk::CheckNotExpired(const v1::Certificate& cert, absl::Time now) {
  if (IsSet(cert.expires_at()) && FromTimestamp(cert.expires_at()) <= now) {
    return WithField(absl::InvalidArgumentError("certificate: expires_at is already past"),
                     "expiresAt");
  }
  return absl::OkStatus();
}

std::vector<absl::Status> AuthorityDesk::CheckCertificate(v1::Certificate* cert) const {
  const absl::Time now = ctx_.Now();
  std::vector<absl::Status> problems = NormalizeAll(cert);
  std::set<std::string> fields;  // one problem per field: a bad HS code once
  for (const absl::Status& s : problems) fields.insert(ProblemField(s));
  auto add = [&](absl::Status s) {
    if (!s.ok() && fields.insert(ProblemField(s)).second) problems.push_back(std::move(s));
  };
  for (absl::Status& s :
       CertificateProblems(*cert, ctx_.participant, *ctx_.keyring->trust(), now)) {
    add(std::move(s));
  }
  add(CheckNotExpired(*cert, now));
  // What the ledger holds: the number, the provenance, the replaced one.
  std::vector<std::string> numbers = {cert->number()};
  if (!cert->replaces().empty()) numbers.push_back(cert->replaces());
  CertificateLock lock(*ctx_.locks, numbers);
  absl::StatusOr<std::optional<v1::CertificateRecord>> existing =
      ctx_.ledger->GetCertificate(cert->number());
  if (!existing.ok()) return {existing.status()};
  if (existing->has_value()) {
    add(WithField(absl::AlreadyExistsError(absl::StrCat(
                      "certificate ", cert->number(), " is already recorded here (",
                      v1::CertificateState_Name((*existing)->state()), "): choose another number")),
                  "number"));
  }
  add(CheckProvenance(*cert));
  if (cert->type() == v1::REPLACEMENT && !cert->replaces().empty()) {
    add(Replaceable(*cert).status());
  }
  return problems;
}

absl::Status AuthorityDesk::CheckProvenance(const v1::Certificate& cert) const {
  for (int i = 0; i < cert.provenance_size(); ++i) {
    const v1::CertificateReference& ref = cert.provenance(i);
    const std::string field = absl::StrCat("provenance.", i, ".number");
    absl::StatusOr<std::optional<v1::CertificateRecord>> r =
        ctx_.ledger->GetCertificate(ref.number());
    if (!r.ok()) return r.status();
    if (!r->has_value() || (*r)->side() != v1::IMPORTING || (*r)->partner() != ref.participant()) {
      return WithField(absl::FailedPreconditionError(
                           absl::StrCat("certificate: provenance: ", ref.participant(),
                                        " certificate ", ref.number(), " was not imported here")),
                       field);
    }
    if ((*r)->state() != v1::CONFIRMED) {
      return WithField(absl::FailedPreconditionError(absl::StrCat(
                           "certificate: provenance: import certificate ", ref.number(), " is ",
                           v1::CertificateState_Name((*r)->state()),
                           ", not CONFIRMED: its goods have not arrived")),
                       field);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Replaceable(
    const v1::Certificate& cert) const {
  absl::StatusOr<v1::CertificateRecord> old = Predecessor(cert);
  if (!old.ok()) return WithField(old.status(), "replaces");
  return old;
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Predecessor(
    const v1::Certificate& cert) const {
  absl::StatusOr<v1::CertificateRecord> old = Current(cert.replaces(), v1::EXPORTING);
  if (!old.ok()) return old.status();
  if (old->partner() != cert.importing_participant()) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate ", cert.replaces(), " was issued to ", old->partner(),
                     "; a replacement must go to the same importer"));
  }
  if (!old->queued_message_ids().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("a message about certificate ", cert.replaces(),
                     " is still being delivered: replace it once the importer has it"));
  }
  if (!IsSet(old->delivered_at())) {  // ISSUED, or DISPUTED before its receipt came
    return absl::FailedPreconditionError(absl::StrCat(
        "certificate ", cert.replaces(),
        " is not delivered yet: wait for its delivery, or cancel it and issue a new one"));
  }
  if (absl::Status s = CheckTransition(v1::EXPORTING, old->state(), v1::REPLACED); !s.ok()) {
    return s;
  }
  return old;
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Resubmitted(
    const v1::CertificateRecord& existing, const v1::Certificate& cert,
    const std::string& request_id) const {
  const bool ours = existing.side() == v1::EXPORTING;
  const bool same_request = !request_id.empty() && existing.history_size() > 0 &&
                            existing.history(0).request_id() == request_id;
  if (ours && (same_request ||
               google::protobuf::util::MessageDifferencer::Equals(existing.certificate(), cert))) {
    return existing;  // a retry of a submit that succeeded: its record
  }
  return absl::AlreadyExistsError(absl::StrCat(
      "certificate number ", cert.number(), " is already used by a different certificate (",
      ours ? "issued here at " : "received here at ",
      existing.history_size() > 0 ? FormatRfc3339(FromTimestamp(existing.history(0).at())) : "?",
      ")"));
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Cancel(const std::string& number,
                                                            const Reason& reason,
                                                            const std::string& request_id,
                                                            const v1::Actor& by) {
  if (absl::Status s = CheckReason(reason.text, "a cancellation"); !s.ok()) return s;
  return Change({number, v1::EXPORTING, v1::CANCELLED, reason.text, request_id, reason.code, by},
                [&](const v1::CertificateRecord&) -> absl::StatusOr<v1::MessageBody> {
                  return CancellationBody(number, reason);
                });
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Amend(v1::Certificate amended,
                                                           const Reason& reason,
                                                           const std::string& request_id,
                                                           const v1::Actor& by) {
  const absl::Time now = ctx_.Now();
  if (absl::Status s = CheckReason(reason.text, "an amendment"); !s.ok()) return s;
  if (reason.code == v1::REASON_CODE_UNSPECIFIED) {
    return absl::InvalidArgumentError("an amendment needs a reason code");
  }
  if (absl::Status s = CheckRequestId(request_id); !s.ok()) return s;
  if (absl::Status s = ReadyToSign(amended, now); !s.ok()) return s;
  const std::string number = amended.number();
  CertificateLock lock(*ctx_.locks, number);
  if (absl::Status s = CheckProvenance(amended); !s.ok()) return s;
  absl::StatusOr<v1::CertificateRecord> rec = Current(number, v1::EXPORTING);
  if (!rec.ok()) return rec.status();
  if (HasRequest(*rec, request_id)) return *std::move(rec);  // a retry
  if (rec->state() != v1::ISSUED && rec->state() != v1::DELIVERED) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate ", number, " is ", v1::CertificateState_Name(rec->state()),
                     ": only an ISSUED or DELIVERED certificate can be amended"));
  }
  if (absl::Status s = CheckAmendable(rec->certificate(), amended); !s.ok()) return s;
  absl::StatusOr<Sealed> sealed =
      Seal(*ctx_.keyring, AmendmentBody(*rec, amended, reason), rec->partner(), now);
  if (!sealed.ok()) return sealed.status();
  v1::MessageBody body;
  if (!body.ParseFromString(sealed->message.body())) {
    return absl::InternalError("cannot read back the amendment just signed");
  }
  const v1::CertificateState state = rec->state();
  ApplyAmendment(*rec, body.amendment(), MessageDigest(sealed->message), now);
  const std::string detail = AmendedDetail(*rec);
  storage::Transition t =
      SendTransition(*std::move(rec), state, detail, sealed->message_id, sealed->message, now);
  v1::StateChange* change = &*t.record->mutable_history()->rbegin();
  change->set_request_id(request_id);
  change->set_reason_code(reason.code);
  return Append(std::move(t), by);
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Resend(
    const std::string& number, std::optional<v1::Certificate> corrected,
    const std::string& request_id, const v1::Actor& by) {
  const absl::Time now = ctx_.Now();
  if (absl::Status s = CheckRequestId(request_id); !s.ok()) return s;
  CertificateLock lock(*ctx_.locks, number);
  absl::StatusOr<v1::CertificateRecord> rec = Current(number, v1::EXPORTING);
  if (!rec.ok()) return rec.status();
  const std::string detail = "re-sent after the importer's node refused it";
  if (HasRequest(*rec, request_id)) return *std::move(rec);  // a retry
  if (rec->state() != v1::REFUSED) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate ", number, " is ", v1::CertificateState_Name(rec->state()),
                     ": only a certificate the importer's node REFUSED can be re-sent"));
  }
  v1::Certificate cert = corrected.has_value() ? *std::move(corrected) : rec->certificate();
  if (cert.number() != number || cert.importing_participant() != rec->partner()) {
    return absl::InvalidArgumentError(absl::StrCat("a re-sent certificate keeps its number ",
                                                   number, " and importer ", rec->partner()));
  }
  if (absl::Status s = ReadyToSign(cert, now); !s.ok()) return s;
  if (absl::Status s = CheckProvenance(cert); !s.ok()) return s;
  absl::StatusOr<Sealed> sealed = Seal(*ctx_.keyring, CertificateBody(cert), rec->partner(), now);
  if (!sealed.ok()) return sealed.status();
  *rec->mutable_certificate() = std::move(cert);
  rec->set_certificate_message_id(sealed->message_id);
  rec->set_certificate_digest(MessageDigest(sealed->message));
  storage::Transition t =
      SendTransition(*std::move(rec), v1::ISSUED, detail, sealed->message_id, sealed->message, now);
  t.record->mutable_history()->rbegin()->set_request_id(request_id);
  return Append(std::move(t), by);
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Void(const std::string& number,
                                                          const Reason& reason,
                                                          const std::string& request_id,
                                                          const v1::Actor& by) {
  if (absl::Status s = CheckReason(reason.text, "a void"); !s.ok()) return s;
  if (reason.code == v1::REASON_CODE_UNSPECIFIED) {
    return absl::InvalidArgumentError("a void needs a reason code");
  }
  return Change({number, v1::EXPORTING, v1::VOIDED, reason.text, request_id, reason.code, by},
                [&](const v1::CertificateRecord& rec) -> absl::StatusOr<v1::MessageBody> {
                  return VoidBody(rec, reason);
                });
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Confirm(const std::string& number,
                                                             const v1::ImportFindings& findings,
                                                             absl::Time received_at,
                                                             const std::string& request_id,
                                                             const v1::Actor& by) {
  const absl::Time now = ctx_.Now();
  if (received_at == absl::InfinitePast()) received_at = now;
  return Change(
      {number, v1::IMPORTING, v1::CONFIRMED, "", request_id, v1::REASON_CODE_UNSPECIFIED, by},
      [&](const v1::CertificateRecord& rec) -> absl::StatusOr<v1::MessageBody> {
        if (received_at > now + kMaxClockSkew) {
          return absl::InvalidArgumentError("received_at is in the future");
        }
        const absl::Time issued = FromTimestamp(rec.certificate().issued_at());
        // Clocks differ: as much skew as a message may have.
        if (received_at < issued - kMaxClockSkew) {
          return absl::InvalidArgumentError(
              absl::StrCat("received_at ", FormatRfc3339(received_at), " is before certificate ",
                           number, " was issued (", FormatRfc3339(issued), ")"));
        }
        // Validity governs arrival, not the officer's click.
        const absl::Time expires = FromTimestamp(rec.certificate().expires_at());
        if (received_at >= expires) {
          return absl::FailedPreconditionError(
              absl::StrCat("the shipment arrived at ", FormatRfc3339(received_at),
                           ", not before certificate ", number, " expired at ",
                           FormatRfc3339(expires), ": it cannot be confirmed (reject it instead)"));
        }
        const v1::Participant* self = ctx_.keyring->trust()->Find(ctx_.participant);
        if (self == nullptr) {
          return absl::FailedPreconditionError("this node is not on the trust list");
        }
        absl::StatusOr<v1::ImportConfirmation> c =
            BuildConfirmation(rec, findings, received_at, *self, authority_name_);
        if (!c.ok()) return c.status();
        return ConfirmationBody(*std::move(c));
      });
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Reject(const std::string& number,
                                                            const Reason& reason,
                                                            const std::string& request_id,
                                                            const v1::Actor& by) {
  if (absl::Status s = CheckReason(reason.text, "a rejection"); !s.ok()) return s;
  return Change({number, v1::IMPORTING, v1::REJECTED, reason.text, request_id, reason.code, by},
                [&](const v1::CertificateRecord& rec) -> absl::StatusOr<v1::MessageBody> {
                  return RejectionBody(rec, reason);
                });
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Change(const Verb& verb,
                                                            const BodyFor& make_body) {
  const absl::Time now = ctx_.Now();
  if (absl::Status s = CheckRequestId(verb.request_id); !s.ok()) return s;
  CertificateLock lock(*ctx_.locks, verb.number);
  absl::StatusOr<v1::CertificateRecord> rec = Current(verb.number, verb.side);
  if (!rec.ok()) return rec.status();
  if (AlreadyDone(*rec, verb)) return *std::move(rec);
  if (absl::Status s = Changeable(*rec, verb.to, now); !s.ok()) return s;
  absl::StatusOr<v1::MessageBody> body = make_body(*rec);
  if (!body.ok()) return body.status();
  std::optional<v1::ImportConfirmation> confirmation;
  if (body->has_confirmation()) confirmation = body->confirmation();
  absl::StatusOr<Sealed> sealed = Seal(*ctx_.keyring, *std::move(body), rec->partner(), now);
  if (!sealed.ok()) return sealed.status();
  storage::Transition t = SendTransition(*std::move(rec), verb.to, verb.detail, sealed->message_id,
                                         sealed->message, now);
  if (confirmation.has_value()) RecordConfirmation(*t.record, *confirmation);
  v1::StateChange* change = &*t.record->mutable_history()->rbegin();
  change->set_request_id(verb.request_id);
  if (verb.to != v1::CONFIRMED) {
    change->set_reason_code(verb.code == v1::REASON_CODE_UNSPECIFIED ? v1::OTHER : verb.code);
  }
  return Append(std::move(t), verb.by);
}

bool AuthorityDesk::AlreadyDone(const v1::CertificateRecord& rec, const Verb& verb) {
  if (rec.state() == verb.to) return true;  // what was asked for holds
  if (verb.request_id.empty()) return false;
  for (const v1::StateChange& h : rec.history()) {
    // This very verb was done, and the certificate has moved on since.
    if (h.request_id() == verb.request_id && h.state() == verb.to) return true;
  }
  return false;
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Current(const std::string& number,
                                                             v1::Side side) const {
  absl::StatusOr<std::optional<v1::CertificateRecord>> current =
      ctx_.ledger->GetCertificate(number);
  if (!current.ok()) return current.status();
  if (!current->has_value() || (*current)->side() != side) {
    return absl::NotFoundError(
        absl::StrCat(side == v1::IMPORTING ? "no received certificate " : "no issued certificate ",
                     number, " at ", ctx_.participant));
  }
  return **std::move(current);
}

absl::Status AuthorityDesk::Changeable(const v1::CertificateRecord& rec, v1::CertificateState to,
                                       absl::Time now) const {
  if (absl::Status s = CheckTransition(rec.side(), rec.state(), to); !s.ok()) return s;
  if (absl::Status s = ctx_.keyring->trust()->CheckActive(rec.partner(), now); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Append(storage::Transition t,
                                                            const v1::Actor& by) {
  *t.entry.mutable_actor() = by;
  if (t.record.has_value() && t.record->history_size() > 0) {
    *t.record->mutable_history()->rbegin()->mutable_actor() = by;
  }
  v1::CertificateRecord result;
  t.on_sequenced = [&result](const storage::Head& head, storage::Transition& tr) {
    absl::Status s = StampHistory(head, tr);
    result = *tr.record;
    return s;
  };
  std::set<std::string> recipients;
  for (const v1::OutboxItem& item : t.outbox_put) recipients.insert(item.recipient());
  absl::StatusOr<storage::Head> head = ctx_.ledger->Append(std::move(t));
  if (!head.ok()) return head.status();
  for (const std::string& r : recipients) queued_(r);
  return result;
}

}  // namespace kpx::node
