// kpx::node::BackgroundLoop: the node's one background thread.
//
// It runs, in turn: the expiry sweep (once a minute), the overdue log
// (once a day), and delivery passes while anything is due; then sleeps
// until the next outbox item is due, Kick() is called, or a second
// passes. While the ledger refuses writes it does not deliver (every
// write would fail) and waits a second between checks.
//
// Thread safety: Start, Stop and Kick may be called from any thread.
// Stop is idempotent and waits for the pass in progress.
#ifndef KPX_NODE_BACKGROUND_LOOP_H_
#define KPX_NODE_BACKGROUND_LOOP_H_

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "node/context.h"
#include "node/courier.h"
#include "node/sweeper.h"

namespace kpx::node {

class BackgroundLoop {
 public:
  // None of the pointers is owned; all must outlive the loop.
  BackgroundLoop(const NodeContext& ctx, Courier* courier, Sweeper* sweeper);
  ~BackgroundLoop();

  void Start();
  void Stop();
  // New work is queued: run a delivery pass now.
  void Kick();

 private:
  void Run();
  // One round; returns when the loop should sleep until.
  absl::Time Round(absl::Time& next_expiry, absl::Time& next_overdue);

  const NodeContext& ctx_;
  Courier* const courier_;
  Sweeper* const sweeper_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::node

#endif  // KPX_NODE_BACKGROUND_LOOP_H_
