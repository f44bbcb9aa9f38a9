#include "gateway/http_server.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "gateway/tls_policy.h"
#include "node/log.h"

namespace kpx::gateway {
namespace {

// Headers on every response: no framing, no sniffing, no referrer, no
// caching of what an officer saw, and only this origin's own scripts and
// styles.
void SecurityHeaders(httplib::Response& res) {
  res.set_header("Strict-Transport-Security", "max-age=31536000");
  res.set_header("Content-Security-Policy",
                 "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                 "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                 "base-uri 'none'");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("Cross-Origin-Opener-Policy", "same-origin");
  res.set_header("Cross-Origin-Resource-Policy", "same-origin");
  res.set_header("Permissions-Policy", "camera=(), microphone=(), geolocation=()");
  if (!res.has_header("Cache-Control")) res.set_header("Cache-Control", "no-store");
}

// Refuses, unread, what the guard's byte counts cannot bound: a body over
// the maximum (413), a compressed body (415: cpp-httplib would inflate it
// in memory without limit), several byte ranges (416: each part built in
// memory). The connection closes after such an answer. Otherwise the body
// may take its Content-Length, or the maximum when it has none.
httplib::Server::HandlerResponse Screen(const httplib::Request& req, httplib::Response& res,
                                        HttpGuard* guard) {
  const size_t max = guard->limits().max_body_bytes;
  uint64_t length = max;
  if (req.has_header("Content-Length") &&
      !absl::SimpleAtoi(req.get_header_value("Content-Length"), &length)) {
    length = max;
  }
  const std::string encoding = req.get_header_value("Content-Encoding");
  auto refuse = [&](int status, const char* code, const std::string& why) {
    guard->CloseAfterResponse();
    res.status = status;
    res.set_header("Connection", "close");
    res.set_content(absl::StrCat("{\"code\":\"", code, "\",\"message\":\"", why, "\"}"),
                    "application/json");
    return httplib::Server::HandlerResponse::Handled;
  };
  if (length > max) {
    return refuse(413, "RESOURCE_EXHAUSTED",
                  absl::StrCat("the request body is larger than ", max, " bytes"));
  }
  if (!encoding.empty() && encoding != "identity") {
    return refuse(415, "INVALID_ARGUMENT", "compressed request bodies are not accepted");
  }
  if (req.has_header("Range")) {
    // cpp-httplib cuts every answer to the ranges it parsed, this refusal
    // too; its Request is not const, only the handler's view of it.
    const_cast<httplib::Request&>(req).ranges.clear();
    return refuse(416, "INVALID_ARGUMENT", "byte ranges are not served");
  }
  guard->BeginBody(static_cast<size_t>(length));
  return httplib::Server::HandlerResponse::Unhandled;
}

// "host:port" or "[v6]:port" into its parts.
absl::Status SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 || *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("console_listen '", address, "' is not host:port"));
  }
  *host = address.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return absl::OkStatus();
}

// TLS 1.3 only, our certificate, client certificates asked for and, if
// presented, verified against the CA file.
bool SetUpTls(SSL_CTX& ctx, const HttpsOptions& o, HttpGuard* guard, std::string* error) {
  auto fail = [&](const std::string& what) {
    *error = what;
    return false;
  };
  if (SSL_CTX_set_min_proto_version(&ctx, TLS1_3_VERSION) != 1) return fail("TLS 1.3 refused");
  SSL_CTX_set_options(&ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, o.cert_file.c_str()) != 1) {
    return fail(absl::StrCat("cannot use the certificate in ", o.cert_file));
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, o.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(&ctx) != 1) {
    return fail(absl::StrCat("the key in ", o.key_file, " does not match ", o.cert_file));
  }
  if (!o.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(&ctx, o.client_ca_file.c_str(), nullptr) != 1) {
      return fail(absl::StrCat("cannot read the client CAs in ", o.client_ca_file));
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(o.client_ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(&ctx, names);
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
    // With client certificates asked for, OpenSSL refuses to resume a
    // session (as browsers do for their second connection) unless the
    // sessions are named as this server's.
    static const unsigned char kSessionContext[] = "kpx-console";
    SSL_CTX_set_session_id_context(&ctx, kSessionContext, sizeof(kSessionContext) - 1);
  }
  guard->Install(&ctx);
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Bind(const HttpsOptions& options) {
  if (absl::Status s = EnforceTls13Only(); !s.ok()) return s;
  std::string host;
  int port = 0;
  if (absl::Status s = SplitAddress(options.address, &host, &port); !s.ok()) return s;
  std::unique_ptr<HttpServer> h(new HttpServer());
  h->guard_ = std::make_shared<HttpGuard>(options.limits);
  std::string error;
  HttpGuard* guard = h->guard_.get();
  h->server_ = std::make_unique<httplib::SSLServer>(
      [&](SSL_CTX& ctx) { return SetUpTls(ctx, options, guard, &error); });
  if (!h->server_->is_valid()) {
    return absl::FailedPreconditionError(absl::StrCat("console TLS: ", error));
  }
  httplib::Server& s = *h->server_;
  s.new_task_queue = [guard] { return guard->NewPool(); };
  const HttpLimits& l = options.limits;
  s.set_payload_max_length(l.max_body_bytes);
  s.set_read_timeout(std::chrono::seconds(5));
  s.set_write_timeout(std::chrono::seconds(5));
  s.set_keep_alive_timeout(5);
  s.set_keep_alive_max_count(20);
  s.set_pre_routing_handler([guard](const httplib::Request& req, httplib::Response& res) {
    return Screen(req, res, guard);
  });
  // cpp-httplib's own refusals (400, 404, 414, ...) come with no body:
  // give them the API's JSON error.
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      res.set_content(
          absl::StrCat("{\"code\":\"", res.status == 404 ? "NOT_FOUND" : "INVALID_ARGUMENT",
                       "\",\"message\":\"the request was refused (HTTP ", res.status, ")\"}"),
          "application/json");
    }
  });
  s.set_post_routing_handler([guard](const httplib::Request&, httplib::Response& res) {
    SecurityHeaders(res);
    guard->EndRequest();
  });
  port = port == 0 ? s.bind_to_any_port(host) : (s.bind_to_port(host, port) ? port : -1);
  if (port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address));
  }
  h->port_ = port;
  return h;
}

void HttpServer::Start() {
  started_ = true;
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) log::Error("console_stopped", {{"reason", "accept failed"}});
    ended_ = true;
  });
  // cpp-httplib's stop() does nothing until its loop runs: wait for it, so
  // that Stop() right after Start() cannot wait for ever.
  while (!server_->is_running() && !ended_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void HttpServer::Stop() {
  if (!started_) return;
  started_ = false;
  server_->stop();
  thread_.join();
}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::optional<std::string>> ClientCommonName(const httplib::Request& req) {
  if (req.ssl == nullptr) return std::nullopt;
  X509* cert = SSL_get0_peer_certificate(req.ssl);
  if (cert == nullptr) return std::nullopt;
  // The handshake verified it (SSL_VERIFY_PEER); check again regardless.
  if (SSL_get_verify_result(req.ssl) != X509_V_OK) {
    return absl::UnauthenticatedError("the client certificate does not verify");
  }
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr || PEM_write_bio_X509(bio, cert) != 1) {
    BIO_free(bio);
    return absl::InternalError("cannot read the client certificate");
  }
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  absl::StatusOr<crypto::CertificateInfo> info = crypto::ParseCertificatePem(pem);
  if (!info.ok() || info->common_name.empty()) {
    return absl::UnauthenticatedError(
        "client certificate names no single identity: it needs exactly one subject CN");
  }
  return std::optional<std::string>(info->common_name);
}

}  // namespace kpx::gateway
