// kpx::node::Dispatcher: one delivery lane per partner.
//
// Each lane is a thread that runs Courier::DeliverDueTo for its partner
// while anything is due, then sleeps until the partner's next message is
// due, the lane is kicked, or a second passes. Partners are served
// independently: a partner that accepts connections but never answers
// holds up its own lane only. While the ledger refuses writes, lanes do
// not deliver (every write would fail) and check again each second.
//
// Lanes are made on demand: Kick() looks up which partners have messages
// queued and starts a lane for any that has none; there is at most one
// lane per Participant on the trust list, and lanes live until Stop().
//
// Thread safety: Start, Stop and Kick may be called from any thread. Stop
// is idempotent and waits for the exchanges in progress.
#ifndef KPX_NODE_DISPATCHER_H_
#define KPX_NODE_DISPATCHER_H_

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "node/context.h"
#include "node/courier.h"

namespace kpx::node {

class Dispatcher {
 public:
  // `courier` is not owned and must outlive the dispatcher.
  Dispatcher(const NodeContext& ctx, Courier* courier);
  ~Dispatcher();

  void Start();
  void Stop();
  // Looks up every partner with messages queued (a scan of the outbox's
  // recipients): wakes their lanes and starts missing ones. Start calls it.
  void Kick();
  // A message for `recipient` was queued: wakes its lane, or starts it. No
  // outbox scan, so a verb costs the same however many messages wait.
  void Kick(const std::string& recipient);

 private:
  struct Lane {
    std::thread thread;
    bool kicked = false;
  };
  void Run(const std::string& recipient, Lane* lane);
  // When the lane of `recipient` should look again (nothing due now).
  absl::Time NextWake(const std::string& recipient) const;

  const NodeContext& ctx_;
  Courier* const courier_;

  absl::Mutex mu_;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::unique_ptr<Lane>> lanes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::node

#endif  // KPX_NODE_DISPATCHER_H_
