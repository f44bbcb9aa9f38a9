// The certificate state machine (docs/protocol.md, "State machines").
//
// Exporter: ISSUED -> DELIVERED (receipt); ISSUED | DELIVERED | DISPUTED ->
//           CONFIRMED | REJECTED | EXPIRED (the importer's messages; they
//           may overtake our receipt) | CANCELLED (our verb);
//           ISSUED | DELIVERED -> DISPUTED (a replacement crossed the
//           importer's decision on its predecessor); DELIVERED | DISPUTED ->
//           REPLACED (our replacement); CONFIRMED -> VOIDED (our verb);
//           ISSUED -> REFUSED (the importer's node refused the certificate
//           message for good) -> ISSUED (re-sent) | CANCELLED.
// Importer: RECEIVED | DISPUTED -> CONFIRMED | REJECTED (our verbs) |
//           CANCELLED (the exporter's) | EXPIRED (our sweep); RECEIVED | DISPUTED
//           -> REPLACED (the exporter's replacement); CONFIRMED -> VOIDED.
// REJECTED, CANCELLED, EXPIRED, REPLACED and VOIDED are final; CONFIRMED
// is final but for a void.
#ifndef KPX_NODE_STATE_H_
#define KPX_NODE_STATE_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"

namespace kpx::node {

bool IsFinal(v1::CertificateState s);

// True while `r` waits for a decision: ISSUED, DELIVERED, DISPUTED or
// REFUSED at the exporter, RECEIVED or DISPUTED at the importer.
bool IsOpen(const v1::CertificateRecord& r);

// True if `r` waits for the importing authority (DELIVERED at the exporter,
// RECEIVED at the importer) for longer than `after` at `now`.
bool IsOverdue(const v1::CertificateRecord& r, absl::Time now, absl::Duration after);

// OK if a certificate on `side` may go from `from` to `to`;
// FailedPrecondition naming both states otherwise.
absl::Status CheckTransition(v1::Side side, v1::CertificateState from, v1::CertificateState to);

}  // namespace kpx::node

#endif  // KPX_NODE_STATE_H_
