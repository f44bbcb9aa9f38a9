// kpx::testing::FaultProxy: a TCP proxy on 127.0.0.1 that forwards to one
// target port on 127.0.0.1 and injects network faults on command, for the
// fault-injection harness (tests/chaos.h).
//
// Modes (set at any time, from any thread):
//   Pass()        forward bytes both ways (the start mode).
//   Refuse()      cut every open connection; new ones are closed at once.
//   Blackhole()   accept and read, never forward nor answer; bytes already
//                 queued are dropped. Open connections stay open, silent,
//                 until the mode changes again, which cuts them.
//   Delay(d)      forward, each chunk held for d after it was read.
//   CutAll()      close every open connection now (mid-call); the mode stays.
// A mode change applies to open connections as well as new ones.
//
// Threads and ownership: the proxy owns its listening socket, every
// accepted and outgoing socket and one poll() thread, which does all the
// I/O. The control methods and counters are thread-safe; Refuse and CutAll
// return once the poll thread has closed the connections; bytes sent after
// any control call returns are handled in the new mode. The destructor
// stops the thread and closes every socket.
#ifndef KPX_TESTS_FAULT_PROXY_H_
#define KPX_TESTS_FAULT_PROXY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kpx::testing {

class FaultProxy {
 public:
  enum class Mode { kPass, kRefuse, kBlackhole, kDelay };

  // Listens on 127.0.0.1:0 and forwards to 127.0.0.1:`target_port`.
  // Throws std::runtime_error if it cannot listen.
  explicit FaultProxy(int target_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }

  void Pass();
  void Refuse();
  void Blackhole();
  void Delay(absl::Duration delay);
  void CutAll();
  Mode mode() const;

  // Connections accepted, and bytes forwarded towards the target and back
  // (written to the far side), since construction.
  uint64_t connections() const { return connections_.load(); }
  uint64_t bytes_to_target() const { return bytes_to_target_.load(); }
  uint64_t bytes_from_target() const { return bytes_from_target_.load(); }
  // Connections open now.
  int open_connections() const { return open_.load(); }

 private:
  struct Loop;  // the poll thread's state (fault_proxy.cc)
  struct Conn;  // one proxied connection

  // Sets the mode (unless nullopt); with `cut`, waits until the poll
  // thread has closed every connection open at the call.
  void Set(std::optional<Mode> mode, absl::Duration delay, bool cut);
  void Wake();
  void Run();
  // One round of the poll thread: poll, then under mu_ apply the mode
  // (Settle), read, write, accept. False once stopped.
  bool Step(Loop& loop);
  void Settle(Loop& loop) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Accept(Loop& loop) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Transfer(Conn& conn, int side, short revents, Loop& loop) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};  // pipe: control calls wake the poll thread
  int port_ = 0;
  const int target_port_;

  mutable absl::Mutex mu_;
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kPass;
  absl::Duration delay_ ABSL_GUARDED_BY(mu_);
  uint64_t cut_requested_ ABSL_GUARDED_BY(mu_) = 0;  // CutAll generations
  uint64_t cut_done_ ABSL_GUARDED_BY(mu_) = 0;
  absl::CondVar cut_cv_;  // signalled when cut_done_ advances
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  std::atomic<uint64_t> connections_{0};
  std::atomic<uint64_t> bytes_to_target_{0};
  std::atomic<uint64_t> bytes_from_target_{0};
  std::atomic<int> open_{0};
  std::unique_ptr<Loop> loop_;
  std::thread thread_;
};

}  // namespace kpx::testing

#endif  // KPX_TESTS_FAULT_PROXY_H_
