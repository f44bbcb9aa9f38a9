// kpx::node::PartnerQuota: how much a partner may make this node store.
//
// One token bucket per partner, in bytes: it holds at most one interval's
// worth (the burst) and refills at that rate. Inbox takes each verified
// message's size from its sender's bucket before planning it; a message
// that does not fit is refused with RESOURCE_EXHAUSTED, which the sender's
// node retries later, so a partner that floods only slows itself down and
// every other partner keeps its own allowance.
//
// Thread-safe.
#ifndef KPX_NODE_PARTNER_QUOTA_H_
#define KPX_NODE_PARTNER_QUOTA_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kpx::node {

class PartnerQuota {
 public:
  // `bytes_per_interval` (> 0) may be stored per `interval`.
  PartnerQuota(uint64_t bytes_per_interval, absl::Duration interval);

  // OK and `bytes` taken from `partner`'s allowance at `now`, or
  // ResourceExhausted (nothing taken) naming the allowance.
  absl::Status Take(const std::string& partner, uint64_t bytes, absl::Time now);

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };

  const double capacity_;
  const double per_second_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  std::map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::node

#endif  // KPX_NODE_PARTNER_QUOTA_H_
