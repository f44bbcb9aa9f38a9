// The console's issue form (docs/console.md, "Issuing a certificate"): the
// whole KP certificate on one page (parties, goods lines with origins and
// shares, parcels, seals, transit, provenance, remarks), as HTML made on
// the server. The console's script (console_assets.h) first sends it to
// POST /api/v1/certificates:check and shows every problem the node finds
// beside its input (the KP rules and the importer's published policy),
// and only then submits it.
//
// The same form, filled in from a certificate, issues its replacement or
// sends its amendment.
//
// Pure; thread-safe.
#ifndef KPX_GATEWAY_CONSOLE_ISSUE_H_
#define KPX_GATEWAY_CONSOLE_ISSUE_H_

#include <string>

#include "absl/time/time.h"
#include "kpx/v1/certificate.pb.h"
#include "kpx/v1/config.pb.h"

namespace kpx::gateway {

struct IssueFormInput {
  enum class Mode { kIssue, kReplace, kAmend };
  Mode mode = Mode::kIssue;
  std::string lang;
  std::string participant;  // this node's
  v1::TrustList trust;      // the list in force
  std::string official;     // the signed-in officer's name as printed
  std::string office;       // and office
  absl::Time today;         // the dates filled in
  // kReplace: the certificate replaced; kAmend: the one amended. Its fields
  // fill the form.
  v1::Certificate from;
};

// The form, as the body of a console page.
std::string IssueForm(const IssueFormInput& in);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_CONSOLE_ISSUE_H_
