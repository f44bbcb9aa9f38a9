// The node's HTTPS listener (console_listen): the console and the HTTP API.
//
// TLS 1.3 only. It presents its own certificate (console.tls_cert_file,
// by default the node's), and asks for, but does not require, a client
// certificate chaining to the authority client CA: systems (a customs
// single window) present one and get the roles authority_clients give its
// Common Name; browsers present none and sign in. A client certificate that
// does not verify fails the handshake.
//
// cpp-httplib (Debian's libcpp-httplib-dev) parses HTTP; HttpGuard
// (http_guard.h) bounds what each connection may hold. Every response
// carries the security headers in SecurityHeaders() below.
//
// Routes are registered on server() before Start; handlers run on the
// guard's pool threads, any number at once.
#ifndef KPX_GATEWAY_HTTP_SERVER_H_
#define KPX_GATEWAY_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "gateway/http_guard.h"

namespace kpx::gateway {

struct HttpsOptions {
  std::string address;  // "host:port"; port 0: any free port
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // client certificates accepted from these CAs
  HttpLimits limits;
};

class HttpServer {
 public:
  // Reads the TLS files and binds; serves nothing before Start. One line
  // on any problem.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Bind(const HttpsOptions& options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register routes here before Start.
  httplib::Server& server() { return *server_; }
  HttpGuard& guard() { return *guard_; }
  // For the metrics, which may outlive this server.
  std::shared_ptr<const HttpGuard> shared_guard() const { return guard_; }
  int port() const { return port_; }

  // Starts the accept thread.
  void Start();
  // Stops accepting, lets the requests in progress finish and joins every
  // thread. Idempotent.
  void Stop();

 private:
  HttpServer() = default;

  std::shared_ptr<HttpGuard> guard_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
  bool started_ = false;
  std::atomic<bool> ended_{false};  // the accept loop returned
};

// The Common Name of the verified client certificate the request's TLS
// connection presented, if any; UNAUTHENTICATED if it presented one that
// names no single identity (several CNs, none, a NUL byte).
absl::StatusOr<std::optional<std::string>> ClientCommonName(const httplib::Request& req);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_HTTP_SERVER_H_
