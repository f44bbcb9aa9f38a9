// How many long-lived streams (gRPC Watch, the console's live events) a
// listener serves at once: at most `in_all`, and `per_caller` per caller
// name. Each stream holds a thread, so the limits bound the threads.
//
// Thread-safe.
#ifndef KPX_GATEWAY_STREAM_SLOTS_H_
#define KPX_GATEWAY_STREAM_SLOTS_H_

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"

namespace kpx::gateway {

class StreamSlots {
 public:
  enum class Refusal { kNone, kPerCaller, kInAll };

  StreamSlots(int in_all, int per_caller) : in_all_(in_all), per_caller_(per_caller) {}

  // Takes a slot for `caller` (kNone), or says which limit is reached;
  // *held is then how many that limit counts open.
  Refusal Take(const std::string& caller, int* held);
  // Gives back a slot Take gave; true if none is open any more.
  bool Give(const std::string& caller);

 private:
  const int in_all_;
  const int per_caller_;
  absl::Mutex mu_;
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, int> by_caller_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_STREAM_SLOTS_H_
