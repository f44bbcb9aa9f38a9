// kpx::gateway::AddressRateLimit: at most N tries a minute per client
// address (an IPv4 address or IPv6 /64), for what strangers can try over
// HTTPS: officers' sign-in (http_session.h) and the public certificate
// check (/verify, public_verify.h).
//
// Memory is bounded: beyond `max_tracked` addresses in one minute, the
// others share one allowance of ten times N, so a crowd of addresses cannot
// grow the table, nor try without limit.
//
// Thread-safe.
#ifndef KPX_GATEWAY_RATE_LIMIT_H_
#define KPX_GATEWAY_RATE_LIMIT_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kpx::gateway {

class AddressRateLimit {
 public:
  AddressRateLimit(int per_minute, size_t max_tracked)
      : per_minute_(per_minute), max_tracked_(max_tracked) {}

  // Counts a try from `remote_addr` (as httplib gives it) at `now`; false
  // once its allowance for this minute is spent.
  bool Allow(const std::string& remote_addr, absl::Time now);

 private:
  const int per_minute_;
  const size_t max_tracked_;
  absl::Mutex mu_;
  absl::Time minute_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<std::string, int> tries_ ABSL_GUARDED_BY(mu_);  // this minute, by address
  int shared_tries_ ABSL_GUARDED_BY(mu_) = 0;
};

// The client `address` counts as: its IPv4 address or IPv6 /64.
std::string AddressKey(const std::string& address);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_RATE_LIMIT_H_
