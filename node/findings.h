// The import confirmation as the importing authority records it: what it
// found on arrival, and where that differs from the certificate.
//
// BuildConfirmation turns an officer's findings into the signed
// confirmation's payload (importer side); CheckConfirmation checks one that
// arrived (exporter side); CompareFindings lists the discrepancies, and
// both sides call it on the same two messages, so both list the same.
// Pure functions of their arguments; thread-safe.
#ifndef KPX_NODE_FINDINGS_H_
#define KPX_NODE_FINDINGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/config.pb.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/message.pb.h"

namespace kpx::node {

// The confirmation of `rec` (a RECEIVED record) from `findings`, for a
// shipment that arrived at `arrived_at`, by `importer` (our entry on the
// trust list: its offices) as `authority`. InvalidArgument naming the
// field when the findings are incomplete or out of bounds: neither
// as_declared nor figures, an HS code that is not a rough-diamond code or
// is given twice, negative or huge figures, an office not on the list, no
// official, over-long text.
absl::StatusOr<v1::ImportConfirmation> BuildConfirmation(const v1::CertificateRecord& rec,
                                                         const v1::ImportFindings& findings,
                                                         absl::Time arrived_at,
                                                         const v1::Participant& importer,
                                                         const std::string& authority);

// OK if a received confirmation is well formed and bounded as
// BuildConfirmation makes them, naming an office of `importer`.
absl::Status CheckConfirmation(const v1::ImportConfirmation& c, const v1::Participant& importer);

// Where `found` differs from `cert`: the number of parcels, carats and
// value per HS code (summed over the certificate's lines), HS codes found
// but not declared or declared but not found, broken seals. In that order;
// empty when everything was found as declared.
std::vector<v1::Discrepancy> CompareFindings(const v1::Certificate& cert,
                                             const v1::ImportConfirmation& found);

}  // namespace kpx::node

#endif  // KPX_NODE_FINDINGS_H_
