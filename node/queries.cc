#include "node/queries.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "node/state.h"
#include "node/util.h"

namespace kpx::node {

bool MatchesFilter(const v1::ListCertificatesRequest& req, const v1::CertificateRecord& r,
                   absl::Time now, uint32_t overdue_days) {
  if (req.state() != v1::CERTIFICATE_STATE_UNSPECIFIED && r.state() != req.state()) return false;
  if (!req.partner().empty() && r.partner() != req.partner()) return false;
  if (req.discrepancies() && r.discrepancies().empty()) return false;
  const absl::Time issued = FromTimestamp(r.certificate().issued_at());
  if (IsSet(req.issued_from()) && issued < FromTimestamp(req.issued_from())) return false;
  if (IsSet(req.issued_until()) && issued >= FromTimestamp(req.issued_until())) return false;
  const uint32_t days = req.overdue_days() > 0 ? req.overdue_days()
                        : req.overdue()        ? overdue_days
                                               : 0;
  return days == 0 || IsOverdue(r, now, absl::Hours(24) * days);
}

Queries::Queries(const NodeContext& ctx, uint32_t overdue_days)
    : ctx_(ctx), overdue_days_(overdue_days) {}

absl::StatusOr<v1::CertificateRecord> Queries::Get(const std::string& number) const {
  absl::StatusOr<std::optional<v1::CertificateRecord>> rec = ctx_.ledger->GetCertificate(number);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) {
    return absl::NotFoundError(absl::StrCat("no certificate ", number, " at ", ctx_.participant));
  }
  return **std::move(rec);
}

absl::StatusOr<v1::ListCertificatesResponse> Queries::List(
    const v1::ListCertificatesRequest& req) const {
  const size_t limit =
      req.page_size() == 0 ? kDefaultListPageSize : std::min(req.page_size(), kMaxListPageSize);
  const absl::Time now = ctx_.Now();
  absl::StatusOr<std::vector<v1::CertificateRecord>> recs = ctx_.ledger->ListCertificates(
      req.page_token(), limit + 1,
      [&](const v1::CertificateRecord& r) { return MatchesFilter(req, r, now, overdue_days_); });
  if (!recs.ok()) return recs.status();
  // A page ends early once it holds kMaxListPageBytes, so that no page
  // exceeds what a client can receive, however large the records.
  v1::ListCertificatesResponse resp;
  size_t bytes = 0;
  size_t i = 0;
  for (; i < recs->size() && i < limit; ++i) {
    const size_t size = (*recs)[i].ByteSizeLong();
    if (i > 0 && bytes + size > kMaxListPageBytes) break;
    bytes += size;
    *resp.add_certificates() = (*recs)[i];
  }
  if (i < recs->size()) resp.set_next_page_token((*recs)[i - 1].certificate().number());
  return resp;
}

absl::StatusOr<CertificateCounts> Queries::Count() const {
  const absl::Time now = ctx_.Now();
  const absl::Duration overdue = absl::Hours(24) * overdue_days_;
  CertificateCounts c;
  absl::StatusOr<std::vector<v1::CertificateRecord>> none =
      ctx_.ledger->ListCertificates("", SIZE_MAX, [&](const v1::CertificateRecord& r) {
        ++c.by_state[r.state()];
        if (IsOverdue(r, now, overdue)) ++c.overdue;
        if (r.state() == v1::CONFIRMED && r.discrepancies_size() > 0) ++c.discrepancies;
        return false;  // count only
      });
  if (!none.ok()) return none.status();
  return c;
}

absl::StatusOr<v1::TraceCertificateResponse> Queries::Trace(const std::string& number) const {
  absl::StatusOr<v1::CertificateRecord> first = Get(number);
  if (!first.ok()) return first.status();
  v1::TraceCertificateResponse out;
  std::set<std::string> seen = {number};
  v1::TraceStep* root = out.add_steps();
  root->set_number(number);
  root->set_issuer(first->certificate().exporting_participant());
  *root->mutable_record() = *std::move(first);
  // Steps are visited in order; each adds the certificates it links to.
  for (int i = 0; i < out.steps_size() && out.steps_size() < kMaxTraceSteps; ++i) {
    if (!out.steps(i).has_record()) continue;  // held elsewhere: its links are unknown here
    const v1::CertificateRecord rec = out.steps(i).record();
    const uint32_t depth = out.steps(i).depth() + 1;
    std::vector<std::pair<v1::CertificateReference, std::string>> links;
    v1::CertificateReference ref;
    ref.set_participant(rec.certificate().exporting_participant());
    if (!rec.certificate().replaces().empty()) {
      ref.set_number(rec.certificate().replaces());
      links.push_back({ref, "replaces"});
    }
    if (!rec.replaced_by().empty()) {
      ref.set_number(rec.replaced_by());
      links.push_back({ref, "replaced by"});
    }
    for (const v1::CertificateReference& p : rec.certificate().provenance()) {
      links.push_back({p, "arrived under"});
    }
    for (const auto& [link, relation] : links) {
      if (!seen.insert(link.number()).second || out.steps_size() >= kMaxTraceSteps) continue;
      v1::TraceStep* step = out.add_steps();
      step->set_number(link.number());
      step->set_issuer(link.participant());
      step->set_relation(relation);
      step->set_depth(depth);
      absl::StatusOr<std::optional<v1::CertificateRecord>> held =
          ctx_.ledger->GetCertificate(link.number());
      if (!held.ok()) return held.status();
      if (held->has_value()) *step->mutable_record() = **std::move(held);
    }
  }
  return out;
}

}  // namespace kpx::node
