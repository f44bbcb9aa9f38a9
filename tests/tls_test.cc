// TLS at a node's edges, over real sockets on 127.0.0.1: TLS 1.3 only on
// both gRPC listeners, the HTTPS console and outgoing deliveries
// (gateway/tls_policy.h),
// and client certificates whose name is ambiguous get no identity
// (gateway/tls.h PeerCommonName). The TLS 1.2 side is played by OpenSSL
// in this process, with TLS 1.2 explicitly allowed again on its own
// contexts (the node's policy applies process-wide).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "federation.h"
#include "gateway/tls_policy.h"

namespace kpx {
namespace {

using testing::GrpcFederation;
using testing::ValidCertificate;

using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;
using SslPtr = std::unique_ptr<SSL, decltype(&SSL_free)>;

// How one TLS handshake ended.
struct Outcome {
  bool ok = false;
  int version = 0;    // negotiated (TLS1_2_VERSION, TLS1_3_VERSION) when ok
  int reason = 0;     // OpenSSL reason code of the first error when not ok
  std::string error;  // its text
};

Outcome Finish(SSL* ssl, int rc) {
  Outcome o;
  o.ok = rc == 1;
  if (o.ok) {
    o.version = SSL_version(ssl);
  } else {
    const unsigned long e = ERR_peek_error();
    o.reason = ERR_GET_REASON(e);
    char buf[256] = "connection closed by the other side";
    if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
    o.error = buf;
  }
  ERR_clear_error();
  return o;
}

// A TLS context allowing TLS 1.2 up to `max_version`, whatever the
// process-wide policy says, with `cert`/`key` loaded if given.
CtxPtr Context(const SSL_METHOD* method, int max_version, const std::string& cert,
               const std::string& key) {
  CtxPtr ctx(SSL_CTX_new(method), &SSL_CTX_free);
  REQUIRE(ctx != nullptr);
  SSL_CTX_clear_options(ctx.get(), SSL_OP_NO_TLSv1_2);
  REQUIRE(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) == 1);
  REQUIRE(SSL_CTX_set_max_proto_version(ctx.get(), max_version) == 1);
  if (!cert.empty()) {
    REQUIRE(SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) == 1);
  }
  return ctx;
}

void SetTimeouts(int fd) {
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// A TLS client handshake to 127.0.0.1:`port` offering TLS 1.2 up to
// `max_version` (ALPN h2, as gRPC clients), presenting `cert`/`key`.
Outcome Handshake(int port, int max_version, const std::string& cert, const std::string& key) {
  CtxPtr ctx = Context(TLS_client_method(), max_version, cert, key);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  REQUIRE(SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof(kAlpn)) == 0);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  SetTimeouts(fd);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  SslPtr ssl(SSL_new(ctx.get()), &SSL_free);
  REQUIRE(ssl != nullptr);
  SSL_set_fd(ssl.get(), fd);
  Outcome o = Finish(ssl.get(), SSL_connect(ssl.get()));
  if (o.ok) SSL_shutdown(ssl.get());
  ::close(fd);
  return o;
}

// A TLS server on 127.0.0.1 (any free port) that speaks at most TLS 1.2,
// with the given certificate, recording how each handshake ended. One
// thread accepts and handshakes; Wait reads from any thread.
class Tls12Server {
 public:
  Tls12Server(const std::string& cert, const std::string& key)
      : ctx_(Context(TLS_server_method(), TLS1_2_VERSION, cert, key)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    REQUIRE(fd_ >= 0);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Tls12Server() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }

  // The outcomes once there are at least `n` (or all so far after 20 s).
  std::vector<Outcome> Wait(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::seconds(20), [&] { return outcomes_.size() >= n; });
    return outcomes_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;  // wakes to check stop_
      const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) continue;
      SetTimeouts(conn);
      SslPtr ssl(SSL_new(ctx_.get()), &SSL_free);
      SSL_set_fd(ssl.get(), conn);
      Outcome o = Finish(ssl.get(), SSL_accept(ssl.get()));
      if (o.ok) SSL_shutdown(ssl.get());
      ::close(conn);
      std::lock_guard<std::mutex> l(mu_);
      outcomes_.push_back(o);
      cv_.notify_all();
    }
  }

  CtxPtr ctx_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Outcome> outcomes_;
  std::thread thread_;
};

TEST_CASE("the policy is in force and the same for every caller", "[tls][policy]") {
  REQUIRE(gateway::EnforceTls13Only().ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] { ok += gateway::EnforceTls13Only().ok() ? 1 : 0; });
  }
  for (std::thread& t : threads) t.join();
  CHECK(ok == 4);
  // A context made now refuses TLS 1.2 unless told otherwise.
  CtxPtr ctx(SSL_CTX_new(TLS_method()), &SSL_CTX_free);
  CHECK((SSL_CTX_get_options(ctx.get()) & SSL_OP_NO_TLSv1_2) != 0);
}

TEST_CASE("every listener refuses TLS 1.2 and accepts TLS 1.3", "[tls][version]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/false, /*console=*/true);
  fed.StartInProcess("BW");
  const std::string eu = fed.dir() + "/EU/";
  const std::string bw = fed.dir() + "/BW/";
  // The TLS 1.2 client works: a TLS 1.2 server completes its handshake.
  Tls12Server control(eu + "node.pem", eu + "node.key");
  Outcome c = Handshake(control.port(), TLS1_2_VERSION, "", "");
  INFO(c.error);
  REQUIRE(c.ok);
  CHECK(c.version == TLS1_2_VERSION);

  struct Listener {
    const char* name;
    int port;
    std::string cert, key;  // a certificate the listener accepts
  };
  for (const Listener& l :
       {Listener{"peer", fed.PeerPort("BW"), eu + "node.pem", eu + "node.key"},
        Listener{"authority", fed.AuthorityPort("BW"), bw + "auditor.pem", bw + "auditor.key"},
        Listener{"console", fed.server("BW").console_port(), "", ""}}) {
    INFO(l.name << " listener");
    Outcome old = Handshake(l.port, TLS1_2_VERSION, l.cert, l.key);
    CHECK_FALSE(old.ok);
    Outcome now = Handshake(l.port, TLS1_3_VERSION, l.cert, l.key);
    INFO(now.error);
    CHECK(now.ok);
    CHECK(now.version == TLS1_3_VERSION);
  }
}

TEST_CASE("a node does not deliver to a TLS 1.2-only server", "[tls][version]") {
  GrpcFederation fed({"BW", "EU"});
  fed.AppendConfig("BW", "delivery { initial_backoff_ms: 100 max_backoff_ms: 300 }");
  const std::string eu = fed.dir() + "/EU/";
  // EU's own certificate and name, so that only the version stands in the
  // way: a TLS 1.2 client completes the handshake.
  Tls12Server server(eu + "node.pem", eu + "node.key");
  Outcome c = Handshake(server.port(), TLS1_2_VERSION, "", "");
  INFO(c.error);
  REQUIRE(c.ok);
  fed.SetPeerEndpoint("BW", "EU", absl::StrCat("127.0.0.1:", server.port()));
  fed.StartInProcess("BW");
  grpc::ClientContext ctx;
  v1::SubmitCertificateRequest req;
  *req.mutable_certificate() = ValidCertificate("BW-T-1", "BW", "EU");
  v1::CertificateRecord rec;
  REQUIRE(fed.Authority("BW", "exporter")->SubmitCertificate(&ctx, req, &rec).ok());

  // BW tries (and retries); every one of its handshakes fails on version.
  std::vector<Outcome> seen = server.Wait(3);
  REQUIRE(seen.size() >= 3);
  for (size_t i = 1; i < seen.size(); ++i) {
    INFO("handshake " << i << ": " << seen[i].error);
    CHECK_FALSE(seen[i].ok);
    CHECK(seen[i].reason == SSL_R_UNSUPPORTED_PROTOCOL);
  }
  grpc::ClientContext get_ctx;
  v1::GetCertificateRequest get;
  get.set_number("BW-T-1");
  REQUIRE(fed.Authority("BW", "auditor")->GetCertificate(&get_ctx, get, &rec).ok());
  CHECK(rec.state() == v1::ISSUED);
}

// Issues DIR/NAME.{key,pem} for subject `subject` (e.g. "/CN=a/CN=b"),
// signed by DIR/ca, as deploy/pki.sh issues authority clients.
void IssueCertificate(const std::string& dir, const std::string& name, const std::string& subject,
                      const std::string& eku) {
  const std::string cmd = absl::StrCat(
      "openssl req -config /dev/null -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -keyout ",
      dir, "/", name, ".key -out ", dir, "/", name, ".pem -CA ", dir, "/ca.pem -CAkey ", dir,
      "/ca.key -days 30 -subj '", subject,
      "' -addext basicConstraints=critical,CA:false -addext keyUsage=critical,digitalSignature",
      " -addext extendedKeyUsage=", eku, " 2>/dev/null");
  REQUIRE(testing::Run(cmd) == 0);
}

// The key and certificate DIR/NAME.{key,pem} as they are, unchecked
// (LoadTlsIdentity refuses a certificate with several CNs).
gateway::TlsIdentity RawIdentity(const std::string& dir, const std::string& name) {
  return gateway::TlsIdentity{testing::Must(crypto::ReadFile(dir + "/" + name + ".pem")),
                              testing::Must(crypto::ReadFile(dir + "/" + name + ".key"))};
}

grpc::StatusCode ListAs(GrpcFederation& fed, const std::string& name, std::string* message) {
  const std::string base = fed.dir() + "/BW";
  auto stub = v1::AuthorityService::NewStub(gateway::MutualTlsChannel(
      absl::StrCat("127.0.0.1:", fed.AuthorityPort("BW")), RawIdentity(base, name),
      testing::Must(crypto::ReadFile(base + "/ca.pem")), "node.bw.kpx"));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ListCertificatesResponse resp;
  grpc::Status s = stub->ListCertificates(&ctx, {}, &resp);
  *message = s.error_message();
  return s.error_code();
}

TEST_CASE("a client certificate without exactly one CN gets no identity", "[tls][names]") {
  GrpcFederation fed({"BW", "EU"});
  fed.StartInProcess("BW");
  const std::string bw = fed.dir() + "/BW";
  std::string message;
  SECTION("one CN, issued at test time: the auditor may list") {
    IssueCertificate(bw, "single", "/CN=BW-auditor", "clientAuth");
    CHECK(ListAs(fed, "single", &message) == grpc::StatusCode::OK);
  }
  SECTION("two CNs, the first one an auditor's") {
    IssueCertificate(bw, "two", "/CN=BW-auditor/CN=BW-operator", "clientAuth");
    CHECK(ListAs(fed, "two", &message) == grpc::StatusCode::UNAUTHENTICATED);
    CHECK(message.find("no single identity") != std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
  }
  SECTION("no CN") {
    IssueCertificate(bw, "none", "/O=BW-auditor", "clientAuth");
    CHECK(ListAs(fed, "none", &message) == grpc::StatusCode::UNAUTHENTICATED);
  }
  SECTION("two CNs on the peer listener, the first one BW's node") {
    IssueCertificate(bw, "node2", "/CN=node.bw.kpx/CN=node.eu.kpx", "clientAuth");
    fed.StartInProcess("EU");
    auto stub = v1::PeerService::NewStub(gateway::MutualTlsChannel(
        absl::StrCat("127.0.0.1:", fed.PeerPort("EU")), RawIdentity(bw, "node2"),
        testing::Must(crypto::ReadFile(fed.dir() + "/EU/ca.pem")), "node.eu.kpx"));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::DeliverResponse resp;
    CHECK(stub->Deliver(&ctx, {}, &resp).error_code() == grpc::StatusCode::PERMISSION_DENIED);
    // BW's real node certificate is accepted (the refusal is the name's).
    grpc::ClientContext ok_ctx;
    ok_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    CHECK(fed.Peer("BW", "EU")->Deliver(&ok_ctx, {}, &resp).ok());
  }
}

}  // namespace
}  // namespace kpx
