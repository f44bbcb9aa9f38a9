#include "node/partner_quota.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace kpx::node {

PartnerQuota::PartnerQuota(uint64_t bytes_per_interval, absl::Duration interval)
    : capacity_(static_cast<double>(bytes_per_interval)),
      per_second_(static_cast<double>(bytes_per_interval) / absl::ToDoubleSeconds(interval)),
      interval_(interval) {}

absl::Status PartnerQuota::Take(const std::string& partner, uint64_t bytes, absl::Time now) {
  absl::MutexLock l(&mu_);
  auto [it, fresh] = buckets_.try_emplace(partner);
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = capacity_;
  } else if (now > b.updated) {
    b.tokens = std::min(capacity_, b.tokens + absl::ToDoubleSeconds(now - b.updated) * per_second_);
  }
  b.updated = std::max(b.updated, now);
  if (static_cast<double>(bytes) > b.tokens) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "partner ", partner, " has sent more than its allowance of ",
        static_cast<uint64_t>(capacity_) >> 20, " MiB per ", absl::FormatDuration(interval_),
        " (limits.partner_mib_per_hour); try again later"));
  }
  b.tokens -= static_cast<double>(bytes);
  return absl::OkStatus();
}

}  // namespace kpx::node
