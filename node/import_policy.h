// An importing Participant's own rules beyond the KP minimum
// (kpx.v1.ImportPolicy on the trust list): e.g. the EU refuses mixed,
// undisclosed origin since 1 March 2025 while the US allows it. Checked by
// ValidateCertificate (node/rules.h), so the exporter's node refuses at
// submit and the importer's node again on receipt. Pure; any thread.
#ifndef KPX_NODE_IMPORT_POLICY_H_
#define KPX_NODE_IMPORT_POLICY_H_

#include "absl/status/status.h"
#include "kpx/v1/certificate.pb.h"
#include "kpx/v1/config.pb.h"

namespace kpx::node {

// OK if `importer`'s import_policy accepts `cert`; FailedPrecondition
// naming the importer and the rule otherwise, e.g. "EU import policy
// refuse_mixed_undisclosed: line 2 has mixed, undisclosed origin".
absl::Status CheckImportPolicy(const v1::Certificate& cert, const v1::Participant& importer);

}  // namespace kpx::node

#endif  // KPX_NODE_IMPORT_POLICY_H_
