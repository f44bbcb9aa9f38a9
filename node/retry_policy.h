// kpx::node::RetryPolicy: which delivery failures are retried, and when.
//
// Retrying is an allow-list: a message is sent again only after a failure
// that can pass by itself —
//   UNAVAILABLE, DEADLINE_EXCEEDED  the peer or the network is down or slow
//   RESOURCE_EXHAUSTED              the peer is overloaded
//   OUT_OF_RANGE                    our clock runs ahead of the peer's
//   PERMISSION_DENIED               the recipient is suspended here, or the
//                                   peer does not (yet) list us as active
//   UNAUTHENTICATED                 the peer's trust list lags behind ours
//                                   (it does not know our new key yet)
// Every other refusal is permanent: the message is wrong or conflicts with
// the receiver's ledger, and sending the same bytes again cannot succeed.
//
// Backoff doubles from the initial delay per attempt up to the maximum,
// with +/- 20% jitter so that many nodes retrying after an outage spread
// out; never beyond the maximum.
//
// Thread safety: Backoff may be called from any thread.
#ifndef KPX_NODE_RETRY_POLICY_H_
#define KPX_NODE_RETRY_POLICY_H_

#include <cstdint>
#include <random>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kpx::node {

// True if a delivery that failed with `status` should be tried again.
bool IsRetryable(const absl::Status& status);

class RetryPolicy {
 public:
  // `seed` seeds the jitter (tests pass a fixed one; the node a random one).
  RetryPolicy(absl::Duration initial, absl::Duration max, uint64_t seed);

  // The delay before attempt number `attempts` + 1, given `attempts` >= 1
  // attempts so far.
  absl::Duration Backoff(uint32_t attempts);

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

// A seed from the operating system's random source, for production use.
uint64_t RandomSeed();

}  // namespace kpx::node

#endif  // KPX_NODE_RETRY_POLICY_H_
