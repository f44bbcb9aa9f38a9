// The Kimberley Process rules a certificate must meet (../shared/KP.md, and
// docs/protocol.md "The certificate"). The exporting node normalises a
// submitted certificate and checks it; the importing node checks it again
// on receipt, so a faulty or hostile exporter cannot plant a bad record.
// Pure functions of their arguments; safe from any thread.
#ifndef KPX_NODE_RULES_H_
#define KPX_NODE_RULES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "kpx/v1/certificate.pb.h"
#include "node/hs_code.h"
#include "node/statement_text.h"  // StatementText: the printed statement of a wording
#include "node/trust_list.h"

namespace kpx::node {

inline constexpr char kKpTitle[] = "Kimberley Process Certificate";

// Puts a submitted certificate in canonical form: fills the defaults (title,
// statement KPCS, type STANDARD); strips spaces from and upper-cases the
// number, `replaces` and provenance numbers; upper-cases country codes; and
// rewrites every line's hs_code to its KP code ("7102.31"), keeping a
// longer input's digits as national_code. InvalidArgument naming the line
// when an HS code is not a rough-diamond code or disagrees with an explicit
// national_code. Idempotent; checks nothing else (ValidateCertificate does).
absl::Status NormalizeCertificate(v1::Certificate* cert);

// NormalizeCertificate, but past a bad line: every line's problem, in
// order (none: `cert` is in canonical form).
std::vector<absl::Status> NormalizeAll(v1::Certificate* cert);

// OK if the normalised `cert` meets every rule; InvalidArgument naming the
// first field at fault otherwise ("certificate: line 2: HS code ..."), and
// a certificate not in canonical form is refused. FailedPrecondition for
// trust-list reasons: exporter or importer not an active Participant, or
// the importer's import_policy refusing it (CheckImportPolicy, message
// naming the importer and the rule), or either side not onboarded for it
// (TrustList::CheckOnboarded: live_from, directions, accepted types). `exporter` is the Participant
// that issues it, `now` the time of the check.
//
// Rules (bounds in rules.cc and docs/security.md): at most 256 KiB
// serialized, every string and repeated field bounded; fixed title; a
// statement wording and certificate type; number (see certificate.proto)
// matching the exporter's number_pattern or prefixed by its code and a
// non-letter; exporting_participant == exporter; importer active and not
// the exporter; issue and expiry set, expiry after issue; issuing_office
// one of the exporter's offices on the trust list; validating official;
// both parties with name, address and country; 1-100 lines with KP HS
// codes, positive bounded carats and value and a valid origin; totals equal
// to the lines' sums; number_of_parcels >= 1; replaces iff REPLACEMENT.
//
// Every refusal names the field at fault (node/problem_field.h: ProblemField),
// as a protobuf-JSON path in `cert` ("lines.1.hsCode"), or none when it is
// about the certificate as a whole.
absl::Status ValidateCertificate(const v1::Certificate& cert, const std::string& exporter,
                                 const TrustList& trust, absl::Time now);

// What ValidateCertificate would refuse, but every problem and not only the
// first: so an officer filling in the form sees all that is wrong at once.
// At most one problem per party, per line, and per other group of fields
// (the first in the order above); the importer's policy and onboarding only
// when the importer is an active Participant and nothing before them
// failed badly enough to stop. Empty iff ValidateCertificate is OK.
std::vector<absl::Status> CertificateProblems(const v1::Certificate& cert,
                                              const std::string& exporter, const TrustList& trust,
                                              absl::Time now);

}  // namespace kpx::node

#endif  // KPX_NODE_RULES_H_
