#include "gateway/connection_gate.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "node/log.h"

namespace kpx::gateway {
namespace {

constexpr absl::Duration kSweepEvery = absl::Milliseconds(250);
constexpr absl::Duration kCountFdsEvery = absl::Milliseconds(100);
constexpr absl::Duration kSheddingFor = absl::Seconds(5);
constexpr absl::Duration kLogEvery = absl::Seconds(10);
constexpr int kAcceptsPerWake = 64;
constexpr const char* kReasons[] = {"descriptors", "listener_full", "per_client"};

// Closes `fd` with a reset: a refused connection leaves no TIME_WAIT.
void CloseNow(int fd) {
  struct linger lg = {1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

// Splits "host:port" / "[v6]:port"; an empty host means every address.
absl::Status SplitAddress(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  uint32_t p = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &p) || p > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", address, ": not host:port with a port 0-65535"));
  }
  *host = address.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  *port = std::to_string(p);
  return absl::OkStatus();
}

// A listening socket on `ai` at `port` (0: any), or -1 with errno set.
int ListenOn(const addrinfo* ai, int port) {
  const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1, zero = 0;
  sockaddr_storage addr{};
  std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
  if (ai->ai_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port = htons(port);
    // "[::]" takes IPv4 too, as gRPC's own listener does.
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  } else {
    reinterpret_cast<sockaddr_in*>(&addr)->sin_port = htons(port);
  }
  // As gRPC's listener: SO_REUSEPORT (a test may hold the port reserved),
  // SO_REUSEADDR, no Nagle (accepted sockets inherit it).
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&addr), ai->ai_addrlen) != 0 ||
      ::listen(fd, SOMAXCONN) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

}  // namespace

std::string ClientKey(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    return buf;
  }
  if (addr.ss_family != AF_INET6) return "other";
  in6_addr a = reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&a)) {
    ::inet_ntop(AF_INET, &a.s6_addr[12], buf, sizeof(buf));
    return buf;
  }
  std::memset(&a.s6_addr[8], 0, 8);
  ::inet_ntop(AF_INET6, &a, buf, sizeof(buf));
  return absl::StrCat(buf, "/64");
}

absl::StatusOr<std::unique_ptr<ConnectionGate>> ConnectionGate::Bind(const std::string& name,
                                                                     const std::string& address,
                                                                     const GateLimits& limits) {
  std::string host, port;
  if (absl::Status s = SplitAddress(address, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, ": ", ::gai_strerror(rc)));
  }
  std::unique_ptr<ConnectionGate> g(new ConnectionGate(name, limits));
  int bound_port = std::stoi(port);
  std::string error;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    const int fd = ListenOn(ai, bound_port);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    g->listen_fds_.push_back(fd);
    bound_port = BoundPort(fd);  // the first one fixes port 0 for the others
  }
  ::freeaddrinfo(found);
  if (g->listen_fds_.empty() || bound_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, ": ", error));
  }
  g->port_ = bound_port;
  g->wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  g->spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (g->wake_fd_ < 0 || g->spare_fd_ < 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot listen on ", address, ": ", std::strerror(errno)));
  }
  return g;
}

ConnectionGate::~ConnectionGate() {
  Stop();
  for (int fd : listen_fds_) ::close(fd);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

void ConnectionGate::Start(
    std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor) {
  acceptor_ = std::move(acceptor);
  thread_ = std::thread([this] { Loop(); });
}

void ConnectionGate::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_ = true;
  const uint64_t one = 1;
  if (wake_fd_ >= 0 && ::write(wake_fd_, &one, sizeof(one)) < 0 && errno != EAGAIN) {
    log::Error("connection_gate", {{"listener", name_}, {"reason", std::strerror(errno)}});
  }
  if (thread_.joinable()) thread_.join();
  // Whatever waits in the backlog is refused by the kernel from now on.
  for (int fd : listen_fds_) ::shutdown(fd, SHUT_RDWR);
}

ConnectionGate::Stats ConnectionGate::stats() const {
  Stats s;
  s.open = open_count_.load();
  s.refused_descriptors = refused_[kDescriptors].load();
  s.refused_listener_full = refused_[kListenerFull].load();
  s.refused_per_client = refused_[kPerClient].load();
  const int64_t last = last_refusal_ns_.load();
  s.shedding = last != 0 && absl::Now() - absl::FromUnixNanos(last) < kSheddingFor;
  return s;
}

void ConnectionGate::Loop() {
  std::vector<pollfd> fds;
  for (int fd : listen_fds_) fds.push_back({fd, POLLIN, 0});
  fds.push_back({wake_fd_, POLLIN, 0});
  while (!stopping_) {
    const int n = ::poll(fds.data(), fds.size(), 250);
    if (n < 0 && errno != EINTR) {
      log::Error("connection_gate", {{"listener", name_}, {"reason", std::strerror(errno)}});
      absl::SleepFor(absl::Milliseconds(100));
    }
    if (stopping_) return;
    for (size_t i = 0; n > 0 && i + 1 < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) AcceptFrom(fds[i].fd);
    }
    Sweep(false);
    MaybeLog();
  }
}

void ConnectionGate::AcceptFrom(int listen_fd) {
  for (int i = 0; i < kAcceptsPerWake && !stopping_; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      Admit(listen_fd, fd, ClientKey(addr));
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EMFILE || errno == ENFILE) {
      AcceptUnderEmfile(listen_fd);
      continue;
    }
    return;  // EAGAIN: nothing more waiting (or an error poll reports again)
  }
}

// Out of descriptors: give up the spare one for a moment to take the
// connection off the backlog and close it, so the loop neither spins nor
// leaves clients hanging.
void ConnectionGate::AcceptUnderEmfile(int listen_fd) {
  ::close(spare_fd_);
  const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) Refuse(fd, kDescriptors);
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || spare_fd_ < 0) absl::SleepFor(absl::Milliseconds(10));  // try again soon
}

void ConnectionGate::Admit(int listen_fd, int fd, const std::string& client) {
  if (!DescriptorsLeft()) return Refuse(fd, kDescriptors);
  auto over = [&] {
    if (static_cast<int>(open_.size()) >= limits_.max_connections) return kListenerFull;
    auto it = per_client_.find(client);
    if (it != per_client_.end() && it->second >= limits_.max_connections_per_client) {
      return kPerClient;
    }
    return kDescriptors;  // none
  };
  Reason why = over();
  if (why != kDescriptors) {
    Sweep(true);  // some may have closed since the last look
    why = over();
    if (why != kDescriptors) return Refuse(fd, why);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) return Refuse(fd, kDescriptors);
  if (auto old = open_.find(fd); old != open_.end()) {
    // gRPC closed the connection that had this number; this is a new one.
    if (--per_client_[old->second.client] == 0) per_client_.erase(old->second.client);
    open_.erase(old);
  }
  open_[fd] = Tracked{st.st_ino, client};
  ++per_client_[client];
  ++counted_fds_;
  open_count_ = static_cast<int>(open_.size());
  grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
  p.listener_fd = listen_fd;
  p.fd = fd;
  acceptor_->HandleNewConnection(&p);  // gRPC owns fd from here on
}

void ConnectionGate::Refuse(int fd, Reason why) {
  CloseNow(fd);
  ++refused_[why];
  last_refusal_ns_ = absl::ToUnixNanos(absl::Now());
}

void ConnectionGate::Sweep(bool force) {
  const absl::Time now = absl::Now();
  if (!force && now - swept_at_ < kSweepEvery) return;
  swept_at_ = now;
  for (auto it = open_.begin(); it != open_.end();) {
    struct stat st;
    const bool alive =
        ::fstat(it->first, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == it->second.inode;
    if (alive) {
      ++it;
      continue;
    }
    if (--per_client_[it->second.client] == 0) per_client_.erase(it->second.client);
    it = open_.erase(it);
  }
  open_count_ = static_cast<int>(open_.size());
}

bool ConnectionGate::DescriptorsLeft() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  const absl::Time now = absl::Now();
  if (now - counted_at_ >= kCountFdsEvery) {
    const int n = OpenDescriptors();
    if (n < 0) return false;  // cannot even open /proc/self/fd
    counted_fds_ = n;
    counted_at_ = now;
  }
  // +1: the connection being admitted is already open.
  return static_cast<uint64_t>(counted_fds_) + limits_.descriptor_headroom <= rl.rlim_cur;
}

void ConnectionGate::MaybeLog() {
  const absl::Time now = absl::Now();
  const bool shedding = stats().shedding;
  if (shedding && now - logged_at_ >= kLogEvery) {
    std::vector<std::string> counts;
    uint64_t since[3];
    for (int r = 0; r < 3; ++r) {
      const uint64_t total = refused_[r].load();
      since[r] = total - logged_[r];
      logged_[r] = total;
    }
    log::Warn("connections_refused", {{"listener", name_},
                                      {"open", std::to_string(open_.size())},
                                      {kReasons[0], std::to_string(since[0])},
                                      {kReasons[1], std::to_string(since[1])},
                                      {kReasons[2], std::to_string(since[2])}});
    logged_at_ = now;
    logged_shedding_ = true;
  } else if (!shedding && logged_shedding_) {
    log::Info("connections_accepted_again",
              {{"listener", name_}, {"open", std::to_string(open_.size())}});
    logged_shedding_ = false;
    logged_at_ = absl::InfinitePast();
  }
}

int ConnectionGate::OpenDescriptors() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n - 1;  // the directory's own descriptor
}

uint64_t ConnectionGate::RaiseDescriptorLimit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    struct rlimit raised = {rl.rlim_max, rl.rlim_max};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur;
}

}  // namespace kpx::gateway
