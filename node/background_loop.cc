#include "node/background_loop.h"

#include <algorithm>

#include "node/log.h"

namespace kpx::node {

BackgroundLoop::BackgroundLoop(const NodeContext& ctx, Courier* courier, Sweeper* sweeper)
    : ctx_(ctx), courier_(courier), sweeper_(sweeper) {}

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

void BackgroundLoop::Kick() {
  absl::MutexLock l(&mu_);
  kicked_ = true;
}

void BackgroundLoop::Run() {
  absl::Time next_expiry = absl::InfinitePast();
  absl::Time next_overdue = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (stop_) return;
      kicked_ = false;
    }
    const absl::Time wake = Round(next_expiry, next_overdue);
    absl::MutexLock l(&mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || kicked_; };
    mu_.AwaitWithDeadline(absl::Condition(&woken), wake);
  }
}

absl::Time BackgroundLoop::Round(absl::Time& next_expiry, absl::Time& next_overdue) {
  if (ctx_.Now() >= next_expiry) {
    sweeper_->ExpireDue();
    next_expiry = ctx_.Now() + absl::Minutes(1);
  }
  if (ctx_.Now() >= next_overdue) {
    sweeper_->LogOverdue();
    next_overdue = ctx_.Now() + absl::Hours(24);
  }
  // Wall-clock deadlines: the condition variable waits in real time.
  absl::Time wake = absl::Now() + absl::Seconds(1);
  if (!ctx_.ledger->WriteStatus().ok()) return wake;
  if (courier_->DeliverDue() > 0) return absl::InfinitePast();  // more may be due at once
  absl::StatusOr<std::optional<absl::Time>> next = ctx_.ledger->NextDue();
  if (!next.ok()) {
    log::Error("ledger_read_failed", {{"step", "next_due"}, {"reason", next.status().message()}});
  } else if (next->has_value()) {
    wake = std::min(wake, absl::Now() + (**next - ctx_.Now()));
  }
  return wake;
}

}  // namespace kpx::node
