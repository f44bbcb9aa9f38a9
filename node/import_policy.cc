#include "node/import_policy.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/problem_field.h"
#include "node/util.h"

namespace kpx::node {
namespace {

// The refusal names `field`, the certificate field to change
// (node/problem_field.h).
absl::Status Refused(const v1::Participant& importer, absl::string_view rule,
                     absl::string_view field, absl::string_view why) {
  return WithField(absl::FailedPreconditionError(
                       absl::StrCat(importer.code(), " import policy ", rule, ": ", why)),
                   field);
}

absl::Status CheckOrigins(const v1::Certificate& cert, const v1::Participant& importer) {
  const v1::ImportPolicy& policy = importer.import_policy();
  for (int i = 0; i < cert.lines_size(); ++i) {
    const v1::Origin& o = cert.lines(i).origin();
    if (policy.refuse_mixed_undisclosed() && o.mixed_undisclosed()) {
      return Refused(importer, "refuse_mixed_undisclosed", absl::StrCat("lines.", i, ".origin"),
                     absl::StrCat("line ", i + 1, " has mixed, undisclosed origin"));
    }
    if (policy.require_origin_shares() && o.countries_size() > 1) {
      for (const v1::OriginShare& c : o.countries()) {
        if (c.carats_hundredths() == 0 && c.share_basis_points() == 0) {
          return Refused(importer, "require_origin_shares",
                         absl::StrCat("lines.", i, ".origin.countries"),
                         absl::StrCat("line ", i + 1, " lists ", o.countries_size(),
                                      " countries of origin without their quantities"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckImportPolicy(const v1::Certificate& cert, const v1::Participant& importer) {
  const v1::ImportPolicy& policy = importer.import_policy();
  if (absl::Status s = CheckOrigins(cert, importer); !s.ok()) return s;
  if (policy.max_validity_days() > 0) {
    const absl::Duration validity =
        FromTimestamp(cert.expires_at()) - FromTimestamp(cert.issued_at());
    if (validity > absl::Hours(24) * static_cast<int64_t>(policy.max_validity_days())) {
      return Refused(importer, "max_validity_days", "expiresAt",
                     absl::StrCat("valid for ", absl::ToInt64Hours(validity) / 24,
                                  " days, more than ", policy.max_validity_days()));
    }
  }
  if (!policy.accepted_statements().empty()) {
    for (int w : policy.accepted_statements()) {
      if (w == cert.statement()) return absl::OkStatus();
    }
    return Refused(importer, "accepted_statements", "statement",
                   absl::StrCat("statement wording ", v1::StatementWording_Name(cert.statement()),
                                " is not accepted (accepted: ",
                                absl::StrJoin(policy.accepted_statements(), ", ",
                                              [](std::string* out, int w) {
                                                out->append(v1::StatementWording_Name(w));
                                              }),
                                ")"));
  }
  return absl::OkStatus();
}

}  // namespace kpx::node
