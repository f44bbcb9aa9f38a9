#include "node/authority_desk.h"

#include "absl/strings/str_cat.h"
#include "node/envelope.h"
#include "node/messages.h"
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

}  // namespace

AuthorityDesk::AuthorityDesk(const NodeContext& ctx, std::string authority_name,
                             std::function<void()> queued)
    : ctx_(ctx), authority_name_(std::move(authority_name)), queued_(std::move(queued)) {}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Submit(v1::Certificate cert) {
  const absl::Time now = ctx_.Now();
  // Canonical form first; ValidateCertificate includes the importer's policy.
  if (absl::Status s = NormalizeCertificate(&cert); !s.ok()) return s;
  if (absl::Status s = ValidateCertificate(cert, ctx_.participant, *ctx_.keyring->trust(), now);
      !s.ok()) {
    return s;
  }
  if (FromTimestamp(cert.expires_at()) <= now) {
    return absl::InvalidArgumentError("certificate: expires_at is already past");
  }
  CertificateLock lock(*ctx_.locks, cert.number());
  absl::StatusOr<std::optional<v1::CertificateRecord>> existing =
      ctx_.ledger->GetCertificate(cert.number());
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return absl::AlreadyExistsError(
        absl::StrCat("certificate number ", cert.number(), " is already used"));
  }
  absl::StatusOr<Sealed> sealed =
      Seal(*ctx_.keyring, CertificateBody(cert), cert.importing_participant(), now);
  if (!sealed.ok()) return sealed.status();
  return Append(IssueTransition(cert, sealed->message_id, sealed->message, now));
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Cancel(const std::string& number,
                                                            const std::string& reason) {
  if (absl::Status s = CheckReason(reason, "a cancellation"); !s.ok()) return s;
  return Change(number, v1::EXPORTING, v1::CANCELLED, reason,
                [&](const v1::CertificateRecord&) -> absl::StatusOr<v1::MessageBody> {
                  return CancellationBody(number, reason);
                });
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Confirm(const std::string& number,
                                                             absl::Time received_at) {
  const absl::Time now = ctx_.Now();
  if (received_at == absl::InfinitePast()) received_at = now;
  return Change(number, v1::IMPORTING, v1::CONFIRMED, "",
                [&](const v1::CertificateRecord& rec) -> absl::StatusOr<v1::MessageBody> {
                  if (received_at > now + kMaxClockSkew) {
                    return absl::InvalidArgumentError("received_at is in the future");
                  }
                  return ConfirmationBody(rec, received_at, authority_name_);
                });
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Reject(const std::string& number,
                                                            const std::string& reason) {
  if (absl::Status s = CheckReason(reason, "a rejection"); !s.ok()) return s;
  return Change(number, v1::IMPORTING, v1::REJECTED, reason,
                [&](const v1::CertificateRecord& rec) -> absl::StatusOr<v1::MessageBody> {
                  return RejectionBody(rec, reason);
                });
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Change(const std::string& number,
                                                            v1::Side side, v1::CertificateState to,
                                                            const std::string& detail,
                                                            const BodyFor& make_body) {
  const absl::Time now = ctx_.Now();
  CertificateLock lock(*ctx_.locks, number);
  absl::StatusOr<v1::CertificateRecord> rec = Changeable(number, side, to, now);
  if (!rec.ok()) return rec.status();
  absl::StatusOr<v1::MessageBody> body = make_body(*rec);
  if (!body.ok()) return body.status();
  absl::StatusOr<Sealed> sealed = Seal(*ctx_.keyring, *std::move(body), rec->partner(), now);
  if (!sealed.ok()) return sealed.status();
  return Append(
      SendTransition(*std::move(rec), to, detail, sealed->message_id, sealed->message, now));
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Changeable(const std::string& number,
                                                                v1::Side side,
                                                                v1::CertificateState to,
                                                                absl::Time now) {
  absl::StatusOr<std::optional<v1::CertificateRecord>> current =
      ctx_.ledger->GetCertificate(number);
  if (!current.ok()) return current.status();
  if (!current->has_value() || (*current)->side() != side) {
    return absl::NotFoundError(
        absl::StrCat(side == v1::IMPORTING ? "no received certificate " : "no issued certificate ",
                     number, " at ", ctx_.participant));
  }
  v1::CertificateRecord rec = **std::move(current);
  if (absl::Status s = CheckTransition(side, rec.state(), to); !s.ok()) return s;
  const absl::Time expires = FromTimestamp(rec.certificate().expires_at());
  if (to != v1::CANCELLED && now >= expires) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate ", number, " expired at ", FormatRfc3339(expires)));
  }
  if (absl::Status s = ctx_.keyring->trust()->CheckActive(rec.partner(), now); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  return rec;
}

absl::StatusOr<v1::CertificateRecord> AuthorityDesk::Append(storage::Transition t) {
  v1::CertificateRecord result;
  t.on_sequenced = [&result](const storage::Head& head, storage::Transition& tr) {
    absl::Status s = StampHistory(head, tr);
    result = *tr.record;
    return s;
  };
  absl::StatusOr<storage::Head> head = ctx_.ledger->Append(std::move(t));
  if (!head.ok()) return head.status();
  queued_();
  return result;
}

}  // namespace kpx::node
