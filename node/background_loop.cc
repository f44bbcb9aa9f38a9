#include "node/background_loop.h"

#include <algorithm>

namespace kpx::node {

BackgroundLoop::BackgroundLoop(const NodeContext& ctx, Sweeper* sweeper,
                               std::function<void()> monitor, absl::Duration monitor_every)
    : ctx_(ctx),
      sweeper_(sweeper),
      monitor_(std::move(monitor)),
      monitor_every_(std::min(monitor_every, absl::Seconds(30))) {}

BackgroundLoop::~BackgroundLoop() { Stop(); }

void BackgroundLoop::Start() {
  absl::MutexLock l(&mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void BackgroundLoop::Stop() {
  std::thread t;
  {
    absl::MutexLock l(&mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
    t = std::move(thread_);
  }
  t.join();
}

void BackgroundLoop::Run() {
  absl::Time next_expiry = absl::InfinitePast();
  absl::Time next_overdue = absl::InfinitePast();
  absl::Time next_monitor = absl::InfinitePast();
  while (true) {
    const absl::Time wake = Round(next_expiry, next_overdue, next_monitor);
    absl::MutexLock l(&mu_);
    auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
    if (mu_.AwaitWithDeadline(absl::Condition(&stopped), wake)) return;
  }
}

absl::Time BackgroundLoop::Round(absl::Time& next_expiry, absl::Time& next_overdue,
                                 absl::Time& next_monitor) {
  if (ctx_.Now() >= next_expiry && ctx_.ledger->WriteStatus().ok()) {
    sweeper_->ExpireDue();
    next_expiry = ctx_.Now() + absl::Minutes(1);
  }
  if (ctx_.Now() >= next_overdue) {
    sweeper_->LogOverdue();
    next_overdue = ctx_.Now() + absl::Hours(24);
  }
  if (ctx_.Now() >= next_monitor) {
    monitor_();
    next_monitor = ctx_.Now() + monitor_every_;
  }
  // Wall-clock deadline: the condition variable waits in real time.
  return absl::Now() + absl::Seconds(1);
}

}  // namespace kpx::node
