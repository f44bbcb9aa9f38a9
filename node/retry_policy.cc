#include "node/retry_policy.h"

#include <algorithm>

namespace kpx::node {

bool IsRetryable(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return true;
    default:
      return false;
  }
}

RetryPolicy::RetryPolicy(absl::Duration initial, absl::Duration max, uint64_t seed)
    : initial_(initial), max_(max), rng_(seed) {}

absl::Duration RetryPolicy::Backoff(uint32_t attempts) {
  absl::Duration d = initial_;
  for (uint32_t i = 1; i < attempts && d < max_; ++i) d *= 2;
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  absl::MutexLock l(&mu_);
  return std::min(d * jitter(rng_), max_);
}

uint64_t RandomSeed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace kpx::node
