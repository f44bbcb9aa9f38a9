#include "fault_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <stdexcept>
#include <vector>

namespace kpx::testing {

namespace {

constexpr size_t kReadSize = 64 * 1024;
// Stop reading from a side while this much is queued towards the other.
constexpr size_t kMaxQueued = 4 * 1024 * 1024;

struct Chunk {
  absl::Time due;
  std::string data;
  size_t offset = 0;
};

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// A connected socket to 127.0.0.1:`port`, or -1 (loopback: connect is
// immediate, refused at once when nothing listens).
int ConnectTo(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr = Loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  SetNonBlocking(fd);
  return fd;
}

}  // namespace

// One proxied connection: fd[0] the accepted client, fd[1] the target
// (-1 when accepted in blackhole mode). out[i] is what waits to be
// written to fd[i].
struct FaultProxy::Conn {
  int fd[2] = {-1, -1};
  std::deque<Chunk> out[2];
  size_t queued[2] = {0, 0};
  bool dead = false;
  ~Conn() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
};

// Owned by the poll thread only.
struct FaultProxy::Loop {
  std::vector<std::unique_ptr<Conn>> conns;
  Mode last_mode = Mode::kPass;
  std::vector<char> buffer = std::vector<char>(kReadSize);
};

FaultProxy::FaultProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in addr = Loopback(0);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    throw std::runtime_error("FaultProxy: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
  loop_ = std::make_unique<Loop>();
  thread_ = std::thread([this] { Run(); });
}

FaultProxy::~FaultProxy() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    cut_cv_.SignalAll();
  }
  Wake();
  thread_.join();
  loop_.reset();  // closes every connection
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void FaultProxy::Pass() { Set(Mode::kPass, absl::ZeroDuration(), false); }
void FaultProxy::Refuse() { Set(Mode::kRefuse, absl::ZeroDuration(), true); }
void FaultProxy::Blackhole() { Set(Mode::kBlackhole, absl::ZeroDuration(), false); }
void FaultProxy::Delay(absl::Duration delay) { Set(Mode::kDelay, delay, false); }
void FaultProxy::CutAll() { Set(std::nullopt, absl::ZeroDuration(), true); }

FaultProxy::Mode FaultProxy::mode() const {
  absl::MutexLock lock(&mu_);
  return mode_;
}

void FaultProxy::Set(std::optional<Mode> mode, absl::Duration delay, bool cut) {
  absl::MutexLock lock(&mu_);
  if (mode.has_value()) {
    mode_ = *mode;
    delay_ = delay;
  }
  if (!cut) {
    Wake();
    return;
  }
  const uint64_t gen = ++cut_requested_;
  Wake();
  while (cut_done_ < gen && !stop_) cut_cv_.Wait(&mu_);
}

void FaultProxy::Wake() {
  const char b = 1;
  // A full pipe already guarantees a wake-up.
  [[maybe_unused]] ssize_t n = ::write(wake_[1], &b, 1);
}

void FaultProxy::Run() {
  while (Step(*loop_)) {
  }
}

void FaultProxy::Settle(Loop& loop) {
  // Leaving a blackhole cuts too: the bytes it swallowed broke every
  // stream, as a real outage times the connections out.
  const bool unhole = loop.last_mode == Mode::kBlackhole && mode_ != Mode::kBlackhole;
  if (cut_requested_ > cut_done_ || mode_ == Mode::kRefuse || unhole) loop.conns.clear();
  if (cut_done_ != cut_requested_) {
    cut_done_ = cut_requested_;
    cut_cv_.SignalAll();
  }
  if (mode_ == Mode::kBlackhole) {
    for (auto& c : loop.conns) {
      for (int side : {0, 1}) {
        c->out[side].clear();
        c->queued[side] = 0;
      }
    }
  }
  loop.last_mode = mode_;
}

bool FaultProxy::Step(Loop& loop) {
  std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
  absl::Time now = absl::Now();
  absl::Time next = absl::InfiniteFuture();
  for (auto& c : loop.conns) {
    for (int side : {0, 1}) {
      short events = 0;
      if (c->fd[side] >= 0 && c->queued[1 - side] < kMaxQueued) events |= POLLIN;
      if (!c->out[side].empty()) {
        if (c->out[side].front().due <= now) {
          events |= POLLOUT;
        } else {
          next = std::min(next, c->out[side].front().due);
        }
      }
      fds.push_back({c->fd[side], events, 0});  // poll() skips fd -1
    }
  }
  const int timeout = next == absl::InfiniteFuture()
                          ? -1
                          : static_cast<int>(std::ceil(absl::ToDoubleMilliseconds(next - now))) + 1;
  const int ready = ::poll(fds.data(), fds.size(), timeout);
  if (fds[0].revents != 0) {
    char drain[64];
    while (::read(wake_[0], drain, sizeof(drain)) > 0) {
    }
  }
  // The I/O of a round runs under mu_: bytes sent after a control call
  // returns are handled in the new mode.
  absl::MutexLock lock(&mu_);
  if (stop_) return false;
  const size_t polled = loop.conns.size();
  Settle(loop);
  if (ready > 0 && loop.conns.size() == polled) {
    for (size_t i = 0; i < polled; ++i) {
      for (int side : {0, 1}) {
        const short revents = fds[2 + 2 * i + side].revents;
        if (revents != 0 && !loop.conns[i]->dead) Transfer(*loop.conns[i], side, revents, loop);
      }
    }
  }
  std::erase_if(loop.conns, [](const std::unique_ptr<Conn>& c) { return c->dead; });
  if (fds[1].revents & POLLIN) Accept(loop);
  open_ = static_cast<int>(loop.conns.size());
  return true;
}

void FaultProxy::Accept(Loop& loop) {
  const Mode mode = mode_;
  while (true) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    ++connections_;
    auto c = std::make_unique<Conn>();
    c->fd[0] = fd;
    if (mode == Mode::kRefuse) continue;  // closed by ~Conn
    if (mode != Mode::kBlackhole) {
      c->fd[1] = ConnectTo(target_port_);
      if (c->fd[1] < 0) continue;  // target down: the client sees the close
    }
    loop.conns.push_back(std::move(c));
  }
}

void FaultProxy::Transfer(Conn& c, int side, short revents, Loop& loop) {
  const Mode mode = mode_;
  std::vector<char>& buffer = loop.buffer;
  const absl::Time now = absl::Now();
  std::deque<Chunk>& out = c.out[side];
  while ((revents & POLLOUT) && !out.empty() && out.front().due <= now) {
    Chunk& front = out.front();
    const ssize_t n = ::send(c.fd[side], front.data.data() + front.offset,
                             front.data.size() - front.offset, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      c.dead = true;
      return;
    }
    (side == 1 ? bytes_to_target_ : bytes_from_target_) += static_cast<uint64_t>(n);
    front.offset += static_cast<size_t>(n);
    if (front.offset == front.data.size()) {
      c.queued[side] -= front.data.size();
      out.pop_front();
    }
  }
  if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
  const ssize_t n = ::recv(c.fd[side], buffer.data(), buffer.size(), 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    c.dead = true;  // either side closing ends the connection
    return;
  }
  const int other = 1 - side;
  if (n < 0 || mode == Mode::kBlackhole || c.fd[other] < 0) return;  // swallowed
  const absl::Duration hold = mode == Mode::kDelay ? delay_ : absl::ZeroDuration();
  c.out[other].push_back({now + hold, std::string(buffer.data(), static_cast<size_t>(n)), 0});
  c.queued[other] += static_cast<size_t>(n);
}

}  // namespace kpx::testing
