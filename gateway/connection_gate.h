// The door in front of one gRPC listener: kpx owns the listening sockets
// and the accept loop, and hands each connection it lets in to gRPC
// (grpc::ServerBuilder::experimental().AddExternalConnectionAcceptor), so
// that no stranger can make gRPC's own accept loop fail for want of a
// descriptor ("Failed accept4: Too many open files") or starve the ledger.
//
// A connection is refused (accepted, then closed at once with a reset)
// when taking it would
//   - leave fewer than `descriptor_headroom` descriptors free below the
//     process' open-files limit (RLIMIT_NOFILE), reason "descriptors";
//   - exceed `max_connections` open on this listener, reason "listener_full";
//   - exceed `max_connections_per_client` from one client address (IPv4
//     address; IPv6 /64 prefix), reason "per_client".
// Even at the limit (EMFILE) the loop keeps one spare descriptor so it can
// still accept and close what it cannot keep.
//
// gRPC closes the connections it was handed and says nothing; the gate
// learns it by checking each handed-off descriptor (its number and the
// socket's inode, which a reused number does not keep) every 250 ms and
// before refusing for a cap.
//
// While it has refused anything within the last 5 s the gate is shedding
// load (Stats::shedding); it logs `connections_refused` at most every 10 s
// with the counts since the last line, and `connections_accepted_again`
// when the flood stops.
//
// Threads: one accept thread per gate, started by Start and joined by Stop;
// stats() may be called from any thread.
#ifndef KPX_GATEWAY_CONNECTION_GATE_H_
#define KPX_GATEWAY_CONNECTION_GATE_H_

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/server_builder.h"

namespace kpx::gateway {

// The client a connection counts against: its IPv4 address (also when
// mapped into IPv6), or the /64 prefix of an IPv6 address, which one
// customer usually holds whole.
std::string ClientKey(const sockaddr_storage& addr);

struct GateLimits {
  int max_connections = 1024;
  int max_connections_per_client = 64;
  int descriptor_headroom = 256;
};

class ConnectionGate {
 public:
  struct Stats {
    int open = 0;  // connections handed to gRPC and not yet closed by it
    uint64_t refused_descriptors = 0;
    uint64_t refused_listener_full = 0;
    uint64_t refused_per_client = 0;
    bool shedding = false;  // refused something within the last 5 s
  };

  // Binds and listens on `address` ("host:port", "[v6]:port"; port 0: any
  // free port, the same one for every address the host resolves to).
  // `name` ("peer", "authority") labels its log lines and metrics. Nothing
  // is accepted before Start.
  static absl::StatusOr<std::unique_ptr<ConnectionGate>> Bind(const std::string& name,
                                                              const std::string& address,
                                                              const GateLimits& limits);
  ~ConnectionGate();  // Stop()
  ConnectionGate(const ConnectionGate&) = delete;
  ConnectionGate& operator=(const ConnectionGate&) = delete;

  int port() const { return port_; }
  const std::string& name() const { return name_; }

  // Starts the accept thread, handing each connection let in to
  // `acceptor`, whose gRPC server must have started (and must not be shut
  // down before Stop returns).
  void Start(std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor);
  // Stops accepting, joins the thread and closes the listening sockets.
  // Connections already handed off stay gRPC's. Idempotent.
  void Stop();

  Stats stats() const;

  // Descriptors this process has open now (/proc/self/fd), -1 if unknown.
  static int OpenDescriptors();
  // Raises the soft open-files limit to the hard one; returns the limit in
  // force.
  static uint64_t RaiseDescriptorLimit();

 private:
  enum Reason { kDescriptors = 0, kListenerFull = 1, kPerClient = 2 };
  struct Tracked {
    ino_t inode;
    std::string client;
  };

  ConnectionGate(std::string name, GateLimits limits) : name_(std::move(name)), limits_(limits) {}
  void Loop();
  void AcceptFrom(int listen_fd);
  void AcceptUnderEmfile(int listen_fd);
  // Lets `fd` (accepted from `client`) in, or refuses it.
  void Admit(int listen_fd, int fd, const std::string& client);
  void Refuse(int fd, Reason why);
  // Forgets connections gRPC has closed; at most every 250 ms unless forced.
  void Sweep(bool force);
  bool DescriptorsLeft();
  void MaybeLog();

  const std::string name_;
  const GateLimits limits_;
  int port_ = 0;
  std::vector<int> listen_fds_;
  int wake_fd_ = -1;   // eventfd: Stop wakes the loop
  int spare_fd_ = -1;  // kept for accepting under EMFILE
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;

  // Accept thread only.
  std::unordered_map<int, Tracked> open_;  // by descriptor number
  std::map<std::string, int> per_client_;
  absl::Time swept_at_ = absl::InfinitePast();
  int counted_fds_ = 0;  // /proc/self/fd at counted_at_, plus connections let in since
  absl::Time counted_at_ = absl::InfinitePast();
  absl::Time logged_at_ = absl::InfinitePast();
  uint64_t logged_[3] = {0, 0, 0};
  bool logged_shedding_ = false;

  std::atomic<int> open_count_{0};
  std::atomic<uint64_t> refused_[3] = {0, 0, 0};
  std::atomic<int64_t> last_refusal_ns_{0};  // absl::ToUnixNanos; 0: never
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_CONNECTION_GATE_H_
