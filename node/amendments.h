// Amendments: a signed correction of a certificate before the importer
// decides. Pure functions of their arguments; thread-safe.
//
// Both sides apply an amendment the same way (ApplyAmendment): the record
// keeps the corrected version as its certificate, with the digest of the
// amendment's signed message (which a confirmation must then name), and
// the version it replaced, with what changed, in earlier_versions.
#ifndef KPX_NODE_AMENDMENTS_H_
#define KPX_NODE_AMENDMENTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/message.pb.h"

namespace kpx::node {

// The top-level fields of Certificate whose values differ between `a` and
// `b` ("lines", "number_of_parcels", "shipment", ...), in field order.
std::vector<std::string> ChangedFields(const v1::Certificate& a, const v1::Certificate& b);

// OK if `amended` may take the place of `current`: same number, exporter
// and importer, same type and predecessor, and something changed.
// InvalidArgument naming what may not change otherwise.
absl::Status CheckAmendable(const v1::Certificate& current, const v1::Certificate& amended);

// `rec`'s certificate becomes `a.certificate()` (version + 1), signed in a
// message with digest `digest`; the version it replaces goes to
// earlier_versions with `at`, the reason and the changed fields.
void ApplyAmendment(v1::CertificateRecord& rec, const v1::Amendment& a, const std::string& digest,
                    absl::Time at);

// The earlier version of `rec` whose digest is `digest`, or null.
const v1::CertificateVersion* EarlierVersion(const v1::CertificateRecord& rec,
                                             const std::string& digest);

}  // namespace kpx::node

#endif  // KPX_NODE_AMENDMENTS_H_
