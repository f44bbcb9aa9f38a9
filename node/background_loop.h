// kpx::node::BackgroundLoop: the node's housekeeping thread.
//
// It runs the expiry sweep once a minute and the overdue log once a day
// (Sweeper), and `monitor` (the check of gossiped tree heads, PeerLogs;
// the trust-list poll, TrustBook) every 30 seconds or more often; delivery runs on the Dispatcher's
// lanes, one per partner. While the ledger refuses writes it skips the expiry sweep (its writes
// would fail).
//
// Thread safety: Start and Stop may be called from any thread. Stop is
// idempotent and waits for the sweep in progress.
#ifndef KPX_NODE_BACKGROUND_LOOP_H_
#define KPX_NODE_BACKGROUND_LOOP_H_

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "node/context.h"
#include "node/sweeper.h"

namespace kpx::node {

class BackgroundLoop {
 public:
  // `sweeper` is not owned and must outlive the loop.
  // `monitor` runs every `monitor_every` (at most 30 s).
  BackgroundLoop(const NodeContext& ctx, Sweeper* sweeper, std::function<void()> monitor,
                 absl::Duration monitor_every);
  ~BackgroundLoop();

  void Start();
  void Stop();

 private:
  void Run();
  // One round; returns when the loop should sleep until.
  absl::Time Round(absl::Time& next_expiry, absl::Time& next_overdue, absl::Time& next_monitor);

  const NodeContext& ctx_;
  Sweeper* const sweeper_;
  const std::function<void()> monitor_;
  const absl::Duration monitor_every_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::node

#endif  // KPX_NODE_BACKGROUND_LOOP_H_
