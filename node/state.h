// The certificate state machine (docs/protocol.md).
//
// Exporter: ISSUED -> DELIVERED -> CONFIRMED | REJECTED; ISSUED|DELIVERED ->
//           CANCELLED | EXPIRED; ISSUED -> CONFIRMED | REJECTED too (the
//           importer's answer may overtake our receipt).
// Importer: RECEIVED -> CONFIRMED | REJECTED | CANCELLED | EXPIRED.
// CONFIRMED, REJECTED, CANCELLED and EXPIRED are final.
#ifndef KPX_NODE_STATE_H_
#define KPX_NODE_STATE_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"

namespace kpx::node {

bool IsFinal(v1::CertificateState s);

// True if `r` waits for the importing authority (DELIVERED at the exporter,
// RECEIVED at the importer) for longer than `after` at `now`.
bool IsOverdue(const v1::CertificateRecord& r, absl::Time now, absl::Duration after);

// OK if a certificate on `side` may go from `from` to `to`;
// FailedPrecondition naming both states otherwise.
absl::Status CheckTransition(v1::Side side, v1::CertificateState from, v1::CertificateState to);

}  // namespace kpx::node

#endif  // KPX_NODE_STATE_H_
