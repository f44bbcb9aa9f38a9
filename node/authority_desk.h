// kpx::node::AuthorityDesk: the verbs of this Participant's authorities
// (roles are checked by gateway/). Each verb checks its input, locks the
// certificate, reads its record, signs the message for the partner and
// appends one transition (record, entry and outbox item in one synced
// batch), then wakes the courier.
//
// Thread safety: every method may be called from any thread; changes to
// one certificate are serialized by its CertificateLock.
#ifndef KPX_NODE_AUTHORITY_DESK_H_
#define KPX_NODE_AUTHORITY_DESK_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/certificate.pb.h"
#include "kpx/v1/ledger.pb.h"
#include "node/context.h"
#include "node/messages.h"

namespace kpx::node {

// Longest reason a cancellation or rejection may give.
inline constexpr size_t kMaxReasonBytes = 2048;
// Longest client request id.
inline constexpr size_t kMaxRequestIdBytes = 64;

class AuthorityDesk {
 public:
  // `authority_name` names us in import confirmations; `queued` is called
  // with the recipient after each append that queued a message for it (it
  // wakes that partner's delivery lane).
  AuthorityDesk(const NodeContext& ctx, std::string authority_name,
                std::function<void(const std::string& recipient)> queued);

  // Every verb takes an optional client `request_id` (at most 64 of
  // [A-Za-z0-9-_]; InvalidArgument otherwise), stored with the change it
  // makes. Verbs are idempotent: a verb whose result already holds (a
  // repeated confirm of a CONFIRMED certificate), or a retry with the
  // request id of a change made before, returns the record as it stands
  // and changes nothing.

  // Exporter: validates `cert` against the KP rules, signs it, and records
  // it ISSUED with its delivery queued. A replacement (type REPLACEMENT,
  // `replaces` set) needs its predecessor ours, DELIVERED or DISPUTED, to
  // the same importer: that one becomes REPLACED in the same step. Every
  // provenance reference must be an import certificate CONFIRMED here.
  // If the number is used: the existing
  // record when it is the same certificate (or the same request id),
  // AlreadyExists naming when the other one was recorded otherwise.
  absl::StatusOr<v1::CertificateRecord> Submit(v1::Certificate cert,
                                               const std::string& request_id = "",
                                               const v1::Actor& by = {});
  // Exporter: what Submit would refuse about `cert`, every problem at once
  // (node/rules.h CertificateProblems, then what the ledger says: the number
  // already used, provenance, the certificate replaced), each naming its
  // field (node/problem_field.h). Signs, stores and sends nothing; `cert`
  // is left in canonical form. Empty: Submit would accept it now.
  std::vector<absl::Status> CheckCertificate(v1::Certificate* cert) const;
  // Exporter: cancels an ISSUED, DELIVERED or DISPUTED certificate and
  // tells the importer.
  absl::StatusOr<v1::CertificateRecord> Cancel(const std::string& number, const Reason& reason,
                                               const std::string& request_id = "",
                                               const v1::Actor& by = {});
  // Exporter: corrects an ISSUED or DELIVERED certificate to `amended`
  // (same number, exporter, importer; checked as on submit) and sends the
  // signed correction; both sides keep the earlier version with what
  // changed. The reason code is required. A certificate the importer has
  // decided on is not amended (cancel, replace or void it instead).
  absl::StatusOr<v1::CertificateRecord> Amend(v1::Certificate amended, const Reason& reason,
                                              const std::string& request_id = "",
                                              const v1::Actor& by = {});
  // Exporter: signs and sends again a certificate the importer's node
  // REFUSED, as recorded or as `corrected` (same number and importer,
  // checked as on submit); it becomes ISSUED with the new message queued.
  // A retry with the same request id returns the record.
  absl::StatusOr<v1::CertificateRecord> Resend(const std::string& number,
                                               std::optional<v1::Certificate> corrected,
                                               const std::string& request_id = "",
                                               const v1::Actor& by = {});
  // Exporter: voids a CONFIRMED certificate (after confirmation) and tells
  // the importer, whose node records VOIDED. The reason code is required.
  absl::StatusOr<v1::CertificateRecord> Void(const std::string& number, const Reason& reason,
                                             const std::string& request_id = "",
                                             const v1::Actor& by = {});
  // Importer: confirms receipt of a RECEIVED certificate's shipment, which
  // arrived at `received_at` (InfinitePast: now; at most kMaxClockSkew
  // ahead). The arrival must be before the certificate's expires_at; the
  // confirmation may come later, until the node expires the certificate
  // (confirm_grace_days after expires_at).
  // `findings` is what the authority found (findings.h); the record keeps
  // the confirmation and its discrepancies with the certificate.
  absl::StatusOr<v1::CertificateRecord> Confirm(const std::string& number,
                                                const v1::ImportFindings& findings,
                                                absl::Time received_at,
                                                const std::string& request_id = "",
                                                const v1::Actor& by = {});
  // Importer: refuses the shipment of a RECEIVED certificate.
  absl::StatusOr<v1::CertificateRecord> Reject(const std::string& number, const Reason& reason,
                                               const std::string& request_id = "",
                                               const v1::Actor& by = {});

 private:
  using BodyFor = std::function<absl::StatusOr<v1::MessageBody>(const v1::CertificateRecord&)>;
  // A locally initiated change of `number` (ours on `side`) to `to`.
  struct Verb {
    const std::string& number;
    v1::Side side;
    v1::CertificateState to;
    const std::string& detail;
    const std::string& request_id;
    v1::ReasonCode code;
    const v1::Actor& by;
  };

  // The existing record of a resubmitted number, or AlreadyExists.
  absl::StatusOr<v1::CertificateRecord> Resubmitted(const v1::CertificateRecord& existing,
                                                    const v1::Certificate& cert,
                                                    const std::string& request_id) const;
  // Puts `cert` in canonical form and checks it as it will be signed: the
  // KP rules, the importer's policy, expiry still ahead of `now`.
  absl::Status ReadyToSign(v1::Certificate& cert, absl::Time now) const;
  // InvalidArgument (field expiresAt) if `cert` has expired by `now`.
  static absl::Status CheckNotExpired(const v1::Certificate& cert, absl::Time now);
  // FailedPrecondition unless every provenance reference of `cert` is an
  // import certificate CONFIRMED here.
  absl::Status CheckProvenance(const v1::Certificate& cert) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  // The record `cert` replaces, if it may be replaced by it (refusals name
  // the field replaces).
  absl::StatusOr<v1::CertificateRecord> Replaceable(const v1::Certificate& cert) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  absl::StatusOr<v1::CertificateRecord> Predecessor(const v1::Certificate& cert) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  // Applies `verb`, whose message `make_body` builds from the record as it
  // stands.
  absl::StatusOr<v1::CertificateRecord> Change(const Verb& verb, const BodyFor& make_body);
  // True if `verb` needs nothing done (see the idempotence rule above).
  static bool AlreadyDone(const v1::CertificateRecord& rec, const Verb& verb);
  // The record of `number` on `side`, or NotFound.
  absl::StatusOr<v1::CertificateRecord> Current(const std::string& number, v1::Side side) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  // OK if `rec` may move to `to` now (state machine, partner active).
  absl::Status Changeable(const v1::CertificateRecord& rec, v1::CertificateState to,
                          absl::Time now) const;
  // Appends `t`, returning its record stamped with the entry's sequence.
  absl::StatusOr<v1::CertificateRecord> Append(storage::Transition t, const v1::Actor& by)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);

  const NodeContext& ctx_;
  const std::string authority_name_;
  const std::function<void(const std::string& recipient)> queued_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_AUTHORITY_DESK_H_
