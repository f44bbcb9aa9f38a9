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
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/certificate.pb.h"
#include "kpx/v1/ledger.pb.h"
#include "node/context.h"

namespace kpx::node {

// Longest reason a cancellation or rejection may give.
inline constexpr size_t kMaxReasonBytes = 2048;

class AuthorityDesk {
 public:
  // `authority_name` names us in import confirmations; `queued` is called
  // after each append that queued a message (it wakes the courier).
  AuthorityDesk(const NodeContext& ctx, std::string authority_name, std::function<void()> queued);

  // Exporter: validates `cert` against the KP rules, signs it, and records
  // it ISSUED with its delivery queued. AlreadyExists if the number is used.
  absl::StatusOr<v1::CertificateRecord> Submit(v1::Certificate cert);
  // Exporter: voids an ISSUED or DELIVERED certificate and tells the importer.
  absl::StatusOr<v1::CertificateRecord> Cancel(const std::string& number,
                                               const std::string& reason);
  // Importer: confirms receipt of a RECEIVED certificate's shipment at
  // `received_at` (InfinitePast: now; at most kMaxClockSkew ahead).
  absl::StatusOr<v1::CertificateRecord> Confirm(const std::string& number, absl::Time received_at);
  // Importer: refuses the shipment of a RECEIVED certificate.
  absl::StatusOr<v1::CertificateRecord> Reject(const std::string& number,
                                               const std::string& reason);

 private:
  using BodyFor = std::function<absl::StatusOr<v1::MessageBody>(const v1::CertificateRecord&)>;

  // A locally initiated change of `number` (ours on `side`) to `to`, whose
  // message `make_body` builds from the record as it stands.
  absl::StatusOr<v1::CertificateRecord> Change(const std::string& number, v1::Side side,
                                               v1::CertificateState to, const std::string& detail,
                                               const BodyFor& make_body);
  // The record of `number` on `side`, checked for a move to `to`.
  absl::StatusOr<v1::CertificateRecord> Changeable(const std::string& number, v1::Side side,
                                                   v1::CertificateState to, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);
  // Appends `t`, returning its record stamped with the entry's sequence.
  absl::StatusOr<v1::CertificateRecord> Append(storage::Transition t)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(*ctx_.locks);

  const NodeContext& ctx_;
  const std::string authority_name_;
  const std::function<void()> queued_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_AUTHORITY_DESK_H_
