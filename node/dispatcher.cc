#include "node/dispatcher.h"

#include <algorithm>
#include <vector>

#include "node/log.h"

namespace kpx::node {

Dispatcher::Dispatcher(const NodeContext& ctx, Courier* courier) : ctx_(ctx), courier_(courier) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Start() {
  {
    absl::MutexLock l(&mu_);
    if (running_) return;
    running_ = true;
  }
  Kick();
}

void Dispatcher::Stop() {
  std::map<std::string, std::unique_ptr<Lane>> lanes;
  {
    absl::MutexLock l(&mu_);
    if (!running_) return;
    running_ = false;
    lanes.swap(lanes_);
  }
  for (auto& [recipient, lane] : lanes) lane->thread.join();
}

void Dispatcher::Kick() {
  absl::StatusOr<std::vector<std::string>> recipients = ctx_.ledger->OutboxRecipients();
  if (!recipients.ok()) {
    log::Error("outbox_read_failed", {{"reason", recipients.status().message()}});
  }
  absl::MutexLock l(&mu_);
  if (!running_) return;
  if (recipients.ok()) {
    for (const std::string& r : *recipients) {
      std::unique_ptr<Lane>& lane = lanes_[r];
      if (lane != nullptr) continue;
      lane = std::make_unique<Lane>();
      lane->thread = std::thread([this, r, p = lane.get()] { Run(r, p); });
    }
  }
  for (auto& [recipient, lane] : lanes_) lane->kicked = true;
}

void Dispatcher::Kick(const std::string& recipient) {
  absl::MutexLock l(&mu_);
  if (!running_) return;
  std::unique_ptr<Lane>& lane = lanes_[recipient];
  if (lane == nullptr) {
    lane = std::make_unique<Lane>();
    lane->thread = std::thread([this, recipient, p = lane.get()] { Run(recipient, p); });
  }
  lane->kicked = true;
}

void Dispatcher::Run(const std::string& recipient, Lane* lane) {
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (!running_) return;
      lane->kicked = false;
    }
    absl::Time wake = absl::Now() + absl::Seconds(1);
    if (ctx_.ledger->WriteStatus().ok()) {
      if (courier_->DeliverDueTo(recipient) > 0) continue;  // more may be due at once
      wake = std::min(wake, NextWake(recipient));
    }
    absl::MutexLock l(&mu_);
    auto woken = [this, lane]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !running_ || lane->kicked; };
    mu_.AwaitWithDeadline(absl::Condition(&woken), wake);
  }
}

absl::Time Dispatcher::NextWake(const std::string& recipient) const {
  absl::StatusOr<std::optional<absl::Time>> next = ctx_.ledger->NextDueFor(recipient);
  if (!next.ok()) {
    log::Error("ledger_read_failed",
               {{"step", "next_due"}, {"partner", recipient}, {"reason", next.status().message()}});
    return absl::InfiniteFuture();
  }
  if (!next->has_value()) return absl::InfiniteFuture();
  // Wall-clock deadline: the condition variable waits in real time.
  return absl::Now() + (**next - ctx_.Now());
}

}  // namespace kpx::node
