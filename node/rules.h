// The Kimberley Process rules a certificate must meet (../shared/KP.md):
// checked by the exporting node on submit and again by the importing node
// on receipt, so a faulty or hostile exporter cannot plant a bad record.
#ifndef KPX_NODE_RULES_H_
#define KPX_NODE_RULES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "kpx/v1/certificate.pb.h"
#include "node/trust_list.h"

namespace kpx::node {

inline constexpr char kKpTitle[] = "Kimberley Process Certificate";
inline constexpr char kKpStatement[] =
    "The rough diamonds in this shipment have been handled in accordance with "
    "the provisions of the Kimberley Process International Certification "
    "Scheme for rough diamonds.";

// Sets title and statement to the fixed KP texts where they are empty.
void FillFixedTexts(v1::Certificate& cert);

// OK if `cert` meets every rule; InvalidArgument naming the first field at
// fault otherwise (FailedPrecondition / PermissionDenied for trust-list
// problems: importer unknown or suspended). `exporter` is the Participant
// that issues it, `now` the time of the check.
//
// Rules: at most 256 KiB serialized; fixed title and statement; number prefixed by the exporter's
// code and made of [A-Z0-9-/.] (at most 64); exporting_participant == exporter;
// importing_participant an active Participant other than the exporter;
// origin given (one country, or mixed_origin with any number of them);
// issue and expiry set, expiry after issue; issuing authority, exporter and
// importer names and addresses present; at least one parcel, each with HS
// code 7102.10, 7102.21 or 7102.31 and positive carats and value; the
// number of parcels and both totals equal to the parcels' sums.
absl::Status ValidateCertificate(const v1::Certificate& cert, const std::string& exporter,
                                 const TrustList& trust, absl::Time now);

bool IsRoughDiamondHsCode(const std::string& hs_code);

}  // namespace kpx::node

#endif  // KPX_NODE_RULES_H_
