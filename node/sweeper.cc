#include "node/sweeper.h"

#include "node/log.h"
#include "node/messages.h"
#include "node/state.h"
#include "node/transitions.h"
#include "node/util.h"

namespace kpx::node {

Sweeper::Sweeper(const NodeContext& ctx, uint32_t overdue_days, uint32_t confirm_grace_days,
                 std::function<void(const std::string& recipient)> queued)
    : ctx_(ctx),
      overdue_days_(overdue_days),
      grace_(absl::Hours(24) * confirm_grace_days),
      queued_(std::move(queued)) {}

size_t Sweeper::ExpireDue() {
  const absl::Time now = ctx_.Now();
  absl::StatusOr<std::vector<v1::CertificateRecord>> found = ctx_.ledger->ListCertificates(
      "", SIZE_MAX, [&](const v1::CertificateRecord& r) { return IsExpirable(r, now, grace_); });
  if (!found.ok()) {
    log::Error("ledger_read_failed", {{"step", "expire"}, {"reason", found.status().message()}});
    return 0;
  }
  size_t n = 0;
  for (const v1::CertificateRecord& r : *found) {
    if (Expire(r.certificate().number(), now)) ++n;
  }
  return n;
}

bool Sweeper::Expire(const std::string& number, absl::Time now) {
  CertificateLock lock(*ctx_.locks, number);
  absl::StatusOr<std::optional<v1::CertificateRecord>> cur = ctx_.ledger->GetCertificate(number);
  if (!cur.ok()) {
    log::Error("ledger_read_failed",
               {{"step", "expire"}, {"certificate", number}, {"reason", cur.status().message()}});
    return false;
  }
  if (!cur->has_value() || !IsExpirable(**cur, now, grace_)) return false;  // changed meanwhile
  const v1::CertificateRecord& rec = **cur;
  absl::StatusOr<Sealed> sealed = Seal(*ctx_.keyring, ExpiryBody(rec, now), rec.partner(), now);
  absl::Status s = sealed.status();
  if (s.ok()) {
    s = ctx_.ledger
            ->Append(SendTransition(rec, v1::EXPIRED, ExpiredDetail(), sealed->message_id,
                                    sealed->message, now))
            .status();
  }
  if (!s.ok()) {
    if (Observer* obs = ctx_.observer->get(); obs != nullptr) obs->LedgerWriteFailed("expire");
    log::Error("ledger_write_failed",
               {{"step", "expire"}, {"certificate", number}, {"reason", s.message()}});
    return false;
  }
  queued_(rec.partner());
  return true;
}

size_t Sweeper::LogOverdue() {
  const absl::Time now = ctx_.Now();
  const absl::Duration after = absl::Hours(24) * overdue_days_;
  size_t n = 0;
  absl::StatusOr<std::vector<v1::CertificateRecord>> none =
      ctx_.ledger->ListCertificates("", SIZE_MAX, [&](const v1::CertificateRecord& r) {
        if (!IsOverdue(r, now, after)) return false;
        ++n;
        const int64_t days = (now - FromTimestamp(r.delivered_at())) / absl::Hours(24);
        log::Warn("overdue", {{"certificate", r.certificate().number()},
                              {"partner", r.partner()},
                              {"state", v1::CertificateState_Name(r.state())},
                              {"waiting_days", std::to_string(days)}});
        return false;  // logged; nothing to keep
      });
  if (!none.ok()) {
    log::Error("ledger_read_failed", {{"step", "overdue"}, {"reason", none.status().message()}});
  }
  return n;
}

}  // namespace kpx::node
