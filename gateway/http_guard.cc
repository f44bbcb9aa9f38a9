#include "gateway/http_guard.h"

#include <httplib.h>
#include <openssl/bio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include "gateway/connection_gate.h"
#include "node/log.h"

namespace kpx::gateway {

struct HttpGuard::Connection {
  HttpGuard* guard = nullptr;
  bool refuse = false;  // one too many: closed as its handshake starts
  int fd = -1;          // our duplicate of the socket, once admitted
  std::string client;
  // This thread only.
  uint64_t read = 0;
  uint64_t allowance = 0;
  bool over = false;     // a read was refused
  bool closing = false;  // no reads after this request
  // Under guard->mu_.
  absl::Time deadline = absl::InfiniteFuture();
  absl::Time ends = absl::InfiniteFuture();  // max_lifetime after admission
  bool cut = false;
};

namespace {

// The connection the current thread serves (null when none).
thread_local HttpGuard::Connection* t_connection = nullptr;

// Fails a read once the connection has read its allowance.
long CountReads(BIO* bio, int oper, const char* /*argp*/, size_t /*len*/, int /*argi*/,
                long /*argl*/, int ret, size_t* processed) {
  auto* c = reinterpret_cast<HttpGuard::Connection*>(BIO_get_callback_arg(bio));
  if (c == nullptr) return ret;
  if (oper == BIO_CB_READ && c->read >= c->allowance) {
    c->over = !c->closing;
    return -1;
  }
  if (oper == (BIO_CB_READ | BIO_CB_RETURN) && ret > 0 && processed != nullptr) {
    c->read += *processed;
  }
  return ret;
}

}  // namespace

// A fixed set of threads serving connections, with a bounded wait.
class HttpGuard::Pool final : public httplib::TaskQueue {
 public:
  explicit Pool(HttpGuard* guard) : guard_(guard) {
    for (int i = 0; i < guard->limits_.max_connections; ++i) {
      threads_.emplace_back([this] { Work(); });
    }
  }
  ~Pool() override { shutdown(); }

  // On cpp-httplib's accept thread, once per connection.
  void enqueue(std::function<void()> fn) override {
    {
      absl::MutexLock l(&mu_);
      if (!stopping_ && waiting_.size() < static_cast<size_t>(guard_->limits_.max_connections)) {
        waiting_.push_back(std::move(fn));
        return;
      }
    }
    // Run here, refused: OnInfo shuts the socket as the handshake starts,
    // so this returns at once and the socket is closed.
    Connection c;
    c.guard = guard_;
    c.refuse = true;
    t_connection = &c;
    fn();
    t_connection = nullptr;
  }

  void shutdown() override {
    {
      absl::MutexLock l(&mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        absl::MutexLock l(&mu_);
        mu_.Await(absl::Condition(
            +[](Pool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
              return p->stopping_ || !p->waiting_.empty();
            },
            this));
        if (waiting_.empty()) return;  // stopping, nothing left
        fn = std::move(waiting_.front());
        waiting_.pop_front();
      }
      Connection c;
      c.guard = guard_;
      t_connection = &c;
      fn();  // cpp-httplib serves the connection and closes its socket
      t_connection = nullptr;
      guard_->Leave(&c);
    }
  }

  HttpGuard* const guard_;
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> waiting_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

HttpGuard::HttpGuard(const HttpLimits& limits) : limits_(limits) {
  watchdog_ = std::thread([this] { Watch(); });
}

HttpGuard::~HttpGuard() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  watchdog_.join();
}

httplib::TaskQueue* HttpGuard::NewPool() { return new Pool(this); }

void HttpGuard::Install(SSL_CTX* ctx) { SSL_CTX_set_info_callback(ctx, &HttpGuard::OnInfo); }

void HttpGuard::OnInfo(const SSL* ssl, int where, int /*ret*/) {
  Connection* c = t_connection;
  if ((where & SSL_CB_HANDSHAKE_START) == 0 || c == nullptr || c->fd >= 0) return;
  const int fd = SSL_get_fd(ssl);
  if (fd < 0) return;
  if (!c->guard->Admit(c, fd)) {
    ::shutdown(fd, SHUT_RDWR);  // the handshake fails on its first read
    return;
  }
  BIO* rbio = SSL_get_rbio(ssl);
  BIO_set_callback_arg(rbio, reinterpret_cast<char*>(c));
  BIO_set_callback_ex(rbio, &CountReads);
}

bool HttpGuard::Admit(Connection* c, int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  std::string client = ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0
                           ? ClientKey(addr)
                           : "unknown";
  absl::MutexLock l(&mu_);
  if (c->refuse) {
    ++stats_.refused_listener_full;
    return false;
  }
  auto it = per_client_.find(client);
  if (it != per_client_.end() && it->second >= limits_.max_connections_per_client) {
    ++stats_.refused_per_client;
    return false;
  }
  const int dup = ::dup(fd);
  if (dup < 0) {  // no descriptor to watch it with
    ++stats_.refused_listener_full;
    return false;
  }
  ++per_client_[client];
  ++stats_.serving;
  c->fd = dup;
  c->client = std::move(client);
  c->allowance = limits_.max_head_bytes;
  const absl::Time now = absl::Now();
  c->ends = now + limits_.max_lifetime;
  c->deadline = std::min(now + limits_.head_timeout, c->ends);
  live_.insert(c);
  return true;
}

void HttpGuard::Leave(Connection* c) {
  if (c->fd < 0) return;
  absl::MutexLock l(&mu_);
  live_.erase(c);
  --stats_.serving;
  if (c->over) {
    ++stats_.cut_over_budget;
    static log::Budget* budget = new log::Budget("http_connection_cut", 20, absl::Seconds(10));
    if (budget->Take()) {
      log::Warn("http_connection_cut", {{"client", c->client}, {"reason", "over_budget"}});
    }
  }
  if (--per_client_[c->client] == 0) per_client_.erase(c->client);
  ::close(c->fd);
  c->fd = -1;
}

void HttpGuard::SetDeadline(Connection* c, absl::Duration from_now) {
  absl::MutexLock l(&mu_);
  c->deadline = std::min(absl::Now() + from_now, c->ends);
}

void HttpGuard::BeginBody(size_t content_length) {
  Connection* c = t_connection;
  if (c == nullptr || c->fd < 0) return;
  // TLS framing adds a few bytes per 16 KiB record: allow a head's worth.
  c->allowance =
      c->read + std::min(content_length, limits_.max_body_bytes) + limits_.max_head_bytes;
  SetDeadline(c, limits_.request_timeout);
}

void HttpGuard::EndRequest() {
  Connection* c = t_connection;
  if (c == nullptr || c->fd < 0) return;
  c->allowance = c->closing ? c->read : c->read + limits_.max_head_bytes;
  SetDeadline(c, limits_.request_timeout);
}

void HttpGuard::CloseAfterResponse() {
  Connection* c = t_connection;
  if (c == nullptr || c->fd < 0) return;
  c->closing = true;
  c->allowance = c->read;
}

void HttpGuard::KeepAlive(absl::Duration more) {
  Connection* c = t_connection;
  if (c == nullptr || c->fd < 0) return;
  SetDeadline(c, more);
}

HttpGuard::Stats HttpGuard::stats() const {
  absl::MutexLock l(&mu_);
  return stats_;
}

void HttpGuard::Watch() {
  absl::MutexLock l(&mu_);
  while (!stopping_) {
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(250));
    const absl::Time now = absl::Now();
    for (Connection* c : live_) {
      if (c->cut || now < c->deadline) continue;
      c->cut = true;
      ++stats_.cut_too_slow;
      ::shutdown(c->fd, SHUT_RDWR);
      static log::Budget* budget = new log::Budget("http_connection_cut", 20, absl::Seconds(10));
      if (budget->Take()) {
        log::Warn("http_connection_cut",
                  {{"client", c->client}, {"reason", now >= c->ends ? "lifetime" : "too_slow"}});
      }
    }
  }
}

}  // namespace kpx::gateway
