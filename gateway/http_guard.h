// What one HTTPS client may hold of a node: the guard in front of
// cpp-httplib (Debian's libcpp-httplib-dev 0.11.4), whose server on its own
// queues every accepted connection without bound, keeps a connection as
// long as each read arrives within the read timeout (a client trickling a
// byte every few seconds holds a thread for hours), and reads request
// heads of any number of header lines into memory.
//
// The guard bounds all three:
//   - Threads: connections are served by a fixed pool of
//     `max_connections` threads, with as many more waiting; one beyond
//     that is closed as soon as its TLS handshake starts, before any byte
//     of it is read (reason "listener_full").
//   - Per client address (IPv4 address, IPv6 /64): at most
//     `max_connections_per_client` being served ("per_client"; one
//     waiting is counted once a thread takes it).
//   - Bytes and time per phase of a connection. The TLS handshake and the
//     request head may take `max_head_bytes` and `head_timeout`; once the
//     head is read (BeginBody), the body may take its Content-Length (at
//     most `max_body_bytes`) and the request `request_timeout`; once the
//     response is ready (EndRequest), writing it and reading the next head
//     get `max_head_bytes` and `request_timeout` again. A read past the
//     allowance fails, and a connection past its deadline is shut down by
//     the guard's watchdog thread; either way cpp-httplib then closes it
//     ("over_budget", "too_slow").
//   No connection lasts longer than `max_lifetime` after its handshake
//   started, however many requests it carries. A response that streams on
//   (live events) extends its own deadline with KeepAlive, up to that.
//
// The guard learns each connection's socket from OpenSSL's info callback
// at the start of its handshake (Install), on the thread serving it. It
// keeps a duplicate of the descriptor for the watchdog, so a shutdown
// never reaches a socket whose number was reused.
//
// Threads: NewPool's queue runs connections on its own threads; the
// watchdog is one more. BeginBody, EndRequest and KeepAlive must be called
// on the thread serving the request (cpp-httplib's handlers are); stats()
// from any thread.
#ifndef KPX_GATEWAY_HTTP_GUARD_H_
#define KPX_GATEWAY_HTTP_GUARD_H_

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace httplib {
class TaskQueue;
}

namespace kpx::gateway {

struct HttpLimits {
  int max_connections = 32;
  int max_connections_per_client = 8;
  size_t max_head_bytes = 64 * 1024;
  size_t max_body_bytes = 1024 * 1024;
  absl::Duration head_timeout = absl::Seconds(10);
  absl::Duration request_timeout = absl::Seconds(30);
  // However busy a connection keeps itself, it ends this long after its
  // handshake (a browser opens another): no client keeps a thread longer.
  absl::Duration max_lifetime = absl::Minutes(5);
};

class HttpGuard {
 public:
  struct Stats {
    int serving = 0;  // connections on a pool thread
    uint64_t refused_listener_full = 0;
    uint64_t refused_per_client = 0;
    uint64_t cut_over_budget = 0;
    uint64_t cut_too_slow = 0;
  };
  // One connection, on the thread serving it.
  struct Connection;

  explicit HttpGuard(const HttpLimits& limits);
  ~HttpGuard();  // stops the watchdog; the pool must be gone
  HttpGuard(const HttpGuard&) = delete;
  HttpGuard& operator=(const HttpGuard&) = delete;

  // The queue for httplib::Server::new_task_queue (the server owns it).
  httplib::TaskQueue* NewPool();
  // Sets the info callback on `ctx`, which the guard must outlive.
  void Install(SSL_CTX* ctx);

  // The request head is read; its body is `content_length` bytes (the
  // caller has refused one over max_body_bytes).
  void BeginBody(size_t content_length);
  // The response is ready to be written.
  void EndRequest();
  // Nothing more is read from this connection: it ends after the response.
  void CloseAfterResponse();
  // The response goes on streaming: the connection may stay `more` longer.
  void KeepAlive(absl::Duration more);

  Stats stats() const;
  const HttpLimits& limits() const { return limits_; }

 private:
  class Pool;
  friend class Pool;
  static void OnInfo(const SSL* ssl, int where, int ret);
  // Registers the connection being served on this thread; false if it is
  // one too many.
  bool Admit(Connection* c, int fd);
  void Leave(Connection* c);
  void SetDeadline(Connection* c, absl::Duration from_now);
  void Watch();

  const HttpLimits limits_;
  mutable absl::Mutex mu_;
  std::set<Connection*> live_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> per_client_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread watchdog_;
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_HTTP_GUARD_H_
