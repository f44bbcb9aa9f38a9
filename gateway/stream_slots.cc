#include "gateway/stream_slots.h"

namespace kpx::gateway {

StreamSlots::Refusal StreamSlots::Take(const std::string& caller, int* held) {
  absl::MutexLock l(&mu_);
  auto it = by_caller_.find(caller);
  const int mine = it == by_caller_.end() ? 0 : it->second;
  if (mine >= per_caller_) {
    *held = mine;
    return Refusal::kPerCaller;
  }
  if (open_ >= in_all_) {
    *held = open_;
    return Refusal::kInAll;
  }
  ++by_caller_[caller];
  ++open_;
  return Refusal::kNone;
}

bool StreamSlots::Give(const std::string& caller) {
  absl::MutexLock l(&mu_);
  if (--by_caller_[caller] == 0) by_caller_.erase(caller);
  return --open_ == 0;
}

}  // namespace kpx::gateway
