// The HTTPS listener and the HTTP API (gateway/http_server.h,
// gateway/http_api.h, gateway/http_guard.h) over real sockets on
// 127.0.0.1: the API against nodes running in this process, with the
// client certificates deploy/pki.sh made, and the guard against clients
// that are slow, greedy or many, played by OpenSSL in this process.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "federation.h"
#include "gateway/http_api.h"
#include "gateway/http_server.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "test_util.h"

namespace kpx {
namespace {

using testing::GrpcFederation;
using testing::ValidCertificate;
using testing::WaitFor;

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  REQUIRE(google::protobuf::util::MessageToJsonString(m, &out).ok());
  return out;
}

template <typename M>
M Parse(const std::string& json) {
  M m;
  INFO(json);
  REQUIRE(google::protobuf::util::JsonStringToMessage(json, &m).ok());
  return m;
}

// What an HTTPS request got back: the status (0: no response) and body.
struct Reply {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  // The error's gRPC code name, for an error body.
  std::string code() const {
    google::protobuf::Struct s = Parse<google::protobuf::Struct>(body);
    return s.fields().at("code").string_value();
  }
};

// An API client of `code`'s node as its authority `role` (pki.sh's client
// certificate), or with no certificate when `role` is empty.
class Api {
 public:
  Api(GrpcFederation& fed, const std::string& code, const std::string& role)
      : client_(role.empty()
                    ? httplib::SSLClient("127.0.0.1", fed.server(code).console_port())
                    : httplib::SSLClient("127.0.0.1", fed.server(code).console_port(),
                                         absl::StrCat(fed.dir(), "/", code, "/", role, ".pem"),
                                         absl::StrCat(fed.dir(), "/", code, "/", role, ".key"))) {
    client_.set_ca_cert_path(absl::StrCat(fed.dir(), "/", code, "/ca.pem").c_str());
    client_.enable_server_certificate_verification(true);
  }

  Reply Get(const std::string& path, httplib::Headers headers = {}) {
    return Done(client_.Get(path.c_str(), headers));
  }
  Reply Post(const std::string& path, const std::string& body,
             const std::string& type = "application/json", httplib::Headers headers = {}) {
    return Done(client_.Post(path.c_str(), headers, body, type.c_str()));
  }

 private:
  static Reply Done(const httplib::Result& r) {
    Reply out;
    if (!r) return out;
    out.status = r->status;
    out.body = r->body;
    out.headers = r->headers;
    return out;
  }
  httplib::SSLClient client_;
};

std::string CertificatePath(const std::string& number, const std::string& verb = "") {
  std::string encoded;
  for (char c : number) encoded += c == '/' ? std::string("%2F") : std::string(1, c);
  return absl::StrCat("/api/v1/certificates/", encoded, verb.empty() ? "" : ":", verb);
}

v1::CertificateState StateAt(Api& api, const std::string& number) {
  Reply r = api.Get(CertificatePath(number));
  if (r.status != 200) return v1::CERTIFICATE_STATE_UNSPECIFIED;
  return Parse<v1::CertificateRecord>(r.body).state();
}

TEST_CASE("a certificate goes from BW to EU and is confirmed, all through the HTTP API",
          "[http][api]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/false, /*console=*/true);
  fed.StartInProcess("BW");
  fed.StartInProcess("EU");
  Api bw(fed, "BW", "exporter");
  Api eu(fed, "EU", "importer");
  const std::string number = "BW/2026/0001";

  v1::SubmitCertificateRequest submit;
  *submit.mutable_certificate() = ValidCertificate(number, "BW", "EU");
  submit.set_request_id("http-1");
  Reply r = bw.Post("/api/v1/certificates", Json(submit));
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(Parse<v1::CertificateRecord>(r.body).certificate().number() == number);
  CHECK(r.headers.count("Content-Security-Policy") == 1);
  CHECK(r.headers.find("Cache-Control")->second == "no-store");

  // The same request id again answers the record, not a second certificate.
  CHECK(bw.Post("/api/v1/certificates", Json(submit)).status == 200);

  REQUIRE(WaitFor([&] { return StateAt(eu, number) == v1::RECEIVED; }));
  Reply list = eu.Get("/api/v1/certificates?state=RECEIVED&pageSize=10");
  REQUIRE(list.status == 200);
  CHECK(Parse<v1::ListCertificatesResponse>(list.body).certificates_size() == 1);

  v1::ConfirmReceiptRequest confirm;
  confirm.mutable_findings()->set_as_declared(true);
  confirm.mutable_findings()->set_official("Inspector A. Peeters");
  r = eu.Post(CertificatePath(number, "confirm"), Json(confirm));
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(Parse<v1::CertificateRecord>(r.body).state() == v1::CONFIRMED);
  REQUIRE(WaitFor([&] { return StateAt(bw, number) == v1::CONFIRMED; }));

  Reply trace = bw.Get(CertificatePath(number, "trace"));
  REQUIRE(trace.status == 200);
  CHECK(Parse<v1::TraceCertificateResponse>(trace.body).steps_size() >= 1);
  Reply evidence = bw.Get(CertificatePath(number, "evidence"));
  REQUIRE(evidence.status == 200);
  CHECK(!Parse<v1::EvidenceBundle>(evidence.body).content().empty());
}

TEST_CASE("the HTTP API refuses with the gRPC code as JSON and changes nothing", "[http][api]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/false, /*console=*/true);
  fed.StartInProcess("BW");
  Api exporter(fed, "BW", "exporter");
  Api importer(fed, "BW", "importer");
  Api nobody(fed, "BW", "");
  v1::SubmitCertificateRequest submit;
  *submit.mutable_certificate() = ValidCertificate("BW-9", "BW", "EU");
  const std::string body = Json(submit);

  struct Case {
    const char* what;
    Reply reply;
    int status;
    const char* code;
  };
  const Case cases[] = {
      {"no client certificate", nobody.Post("/api/v1/certificates", body), 401, "UNAUTHENTICATED"},
      {"the importer submits", importer.Post("/api/v1/certificates", body), 403,
       "PERMISSION_DENIED"},
      {"not JSON", exporter.Post("/api/v1/certificates", "{certificate:"), 400, "INVALID_ARGUMENT"},
      {"an unknown field", exporter.Post("/api/v1/certificates", R"({"certficate":{}})"), 400,
       "INVALID_ARGUMENT"},
      {"a form post", exporter.Post("/api/v1/certificates", "a=b", "text/plain"), 400,
       "INVALID_ARGUMENT"},
      {"another origin",
       exporter.Post("/api/v1/certificates", body, "application/json",
                     {{"Origin", "https://evil.example"}}),
       403, "PERMISSION_DENIED"},
      {"an unknown query parameter", exporter.Get("/api/v1/certificates?color=red"), 400,
       "INVALID_ARGUMENT"},
      {"a bad state", exporter.Get("/api/v1/certificates?state=LOST"), 400, "INVALID_ARGUMENT"},
      {"no such path", exporter.Get("/api/v1/nothing"), 404, "NOT_FOUND"},
      {"no such method", exporter.Post("/api/v1/peers", "{}"), 501, "UNIMPLEMENTED"},
      {"no such certificate", exporter.Get(CertificatePath("BW-404")), 404, "NOT_FOUND"},
      {"path and body disagree",
       importer.Post(CertificatePath("BW-1", "reject"), R"({"number":"BW-2","reason":"x"})"), 400,
       "INVALID_ARGUMENT"},
  };
  for (const Case& c : cases) {
    INFO(c.what << ": " << c.reply.body);
    CHECK(c.reply.status == c.status);
    CHECK(c.reply.code() == c.code);
  }

  Reply list = exporter.Get("/api/v1/certificates");
  REQUIRE(list.status == 200);
  CHECK(Parse<v1::ListCertificatesResponse>(list.body).certificates_size() == 0);
}

// ---------------------------------------------------------------- OpenAPI

google::protobuf::Struct OpenApi() {
  std::ifstream in(absl::StrCat(testing::SourceDir(), "/docs/openapi.json"));
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return Parse<google::protobuf::Struct>(text.str());
}

// A path of `templ` with a number in it.
std::string Sample(std::string templ) {
  const size_t at = templ.find("{number}");
  if (at != std::string::npos) templ.replace(at, 8, "BW-1");
  return templ;
}

TEST_CASE("docs/openapi.json documents exactly the routes the API serves", "[http][openapi]") {
  const google::protobuf::Struct doc = OpenApi();
  CHECK(doc.fields().at("openapi").string_value().rfind("3.", 0) == 0);
  std::set<std::pair<std::string, std::string>> documented;
  for (const auto& [path, item] : doc.fields().at("paths").struct_value().fields()) {
    for (const auto& [method, op] : item.struct_value().fields()) {
      std::string upper = method;
      for (char& c : upper) c = static_cast<char>(std::toupper(c));
      documented.insert({upper, path});
      // What the server does with that path and method.
      gateway::ApiRequest req{upper, Sample(path), {}, ""};
      absl::StatusOr<gateway::ApiCall> call = gateway::ParseCall(req);
      INFO(upper << " " << path);
      REQUIRE(call.ok());
      const auto& fields = op.struct_value().fields();
      CHECK(fields.at("operationId").string_value() == call->route->verb);
      CHECK(fields.at("x-kpx-request").string_value() ==
            call->request->GetDescriptor()->full_name());
    }
  }
  std::set<std::pair<std::string, std::string>> served;
  for (const gateway::ApiRoute& r : gateway::Routes()) served.insert({r.method, r.path});
  CHECK(documented == served);
}

TEST_CASE("every documented route is served by a running node", "[http][openapi]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/false, /*console=*/true);
  fed.StartInProcess("BW");
  Api auditor(fed, "BW", "auditor");
  for (const gateway::ApiRoute& r : gateway::Routes()) {
    const std::string path = Sample(r.path);
    Reply reply = r.method == std::string("GET") ? auditor.Get(path) : auditor.Post(path, "{}");
    INFO(r.method << " " << path << ": " << reply.body);
    REQUIRE(reply.status != 0);
    // Refused or answered by the verb, never "no such route".
    CHECK(reply.status != 501);
    CHECK(reply.body.find("no API at") == std::string::npos);
  }
}

TEST_CASE("ParseCall reads paths, query parameters and bodies", "[http][api]") {
  using gateway::ApiRequest;
  using gateway::ParseCall;
  absl::StatusOr<gateway::ApiCall> c =
      ParseCall(ApiRequest{"GET",
                           "/api/v1/certificates",
                           {{"state", "DELIVERED"}, {"page_size", "5"}, {"overdue", "true"}},
                           ""});
  REQUIRE(c.ok());
  const auto& list = static_cast<const v1::ListCertificatesRequest&>(*c->request);
  CHECK(list.state() == v1::DELIVERED);
  CHECK(list.page_size() == 5);
  CHECK(list.overdue());

  c = ParseCall(ApiRequest{"POST", "/api/v1/certificates/BW/1:cancel", {}, R"({"reason":"x"})"});
  REQUIRE(c.ok());
  CHECK(static_cast<const v1::CancelCertificateRequest&>(*c->request).number() == "BW/1");

  CHECK(ParseCall(ApiRequest{"GET", "/api/v1/certificates", {{"overdue", "yes"}}, ""})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseCall(ApiRequest{"GET", "/api/v1/certificates/a:b:trace", {}, ""}).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(ParseCall(ApiRequest{"GET", "/api/v1/certificates", {}, "{}"}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(gateway::ErrorJson(absl::NotFoundError("a \"b\"\n")) ==
        R"({"code":"NOT_FOUND","message":"a \"b\"\\n"})");
}

// ---------------------------------------------------------------- the guard

// An HTTPS server with one route and small limits, on BW's node
// certificate from pki.sh.
struct SmallServer {
  explicit SmallServer(gateway::HttpLimits limits) : fed({"BW"}) {
    gateway::HttpsOptions o;
    o.address = "127.0.0.1:0";
    o.cert_file = fed.dir() + "/BW/node.pem";
    o.key_file = fed.dir() + "/BW/node.key";
    o.limits = limits;
    server = testing::Must(gateway::HttpServer::Bind(o));
    server->server().Get("/hello", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("hi", "text/plain");
    });
    server->Start();
  }
  bool Hello() {
    httplib::SSLClient c("127.0.0.1", server->port());
    c.enable_server_certificate_verification(false);
    auto r = c.Get("/hello");
    return r && r->status == 200 && r->body == "hi";
  }
  gateway::HttpGuard::Stats stats() { return server->guard().stats(); }

  GrpcFederation fed;
  std::unique_ptr<gateway::HttpServer> server;
};

// A TCP connection to 127.0.0.1:`port`; optionally TLS on top.
struct Conn {
  explicit Conn(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  }
  ~Conn() {
    if (ssl != nullptr) SSL_free(ssl);
    if (ctx != nullptr) SSL_CTX_free(ctx);
    ::close(fd);
  }
  bool StartTls() {
    ctx = SSL_CTX_new(TLS_client_method());
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    return SSL_connect(ssl) == 1;
  }
  // Everything the server sends until it closes the connection; *closed
  // tells whether it did (rather than going silent for 10 s).
  std::string ReadToEnd(bool* closed) {
    std::string out;
    char buf[4096];
    for (;;) {
      const int n = SSL_read(ssl, buf, sizeof(buf));
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      const int e = SSL_get_error(ssl, n);
      *closed = e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno != EAGAIN);
      return out;
    }
  }
  bool Write(const std::string& s) {
    return SSL_write(ssl, s.data(), static_cast<int>(s.size())) == static_cast<int>(s.size());
  }
  // True once the server has closed the connection: reading gives EOF or
  // a reset (false if it gives data, or nothing within 10 s).
  bool Closed() {
    char c;
    const ssize_t n = ::recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
};

TEST_CASE("the HTTPS guard bounds threads: one connection too many is closed at once",
          "[http][guard]") {
  gateway::HttpLimits limits;
  limits.max_connections = 2;
  limits.max_connections_per_client = 10;
  limits.head_timeout = absl::Seconds(2);
  SmallServer s(limits);
  // Two served, then two waiting for them, all silent.
  std::vector<std::unique_ptr<Conn>> idle;
  for (int i = 0; i < 2; ++i) idle.push_back(std::make_unique<Conn>(s.server->port()));
  REQUIRE(WaitFor([&] { return s.stats().serving == 2; }));
  for (int i = 0; i < 2; ++i) idle.push_back(std::make_unique<Conn>(s.server->port()));
  Conn fifth(s.server->port());
  CHECK(fifth.Closed());
  CHECK(s.stats().refused_listener_full == 1);
  // The silent ones are cut at head_timeout; then the server serves again.
  REQUIRE(WaitFor([&] { return s.stats().cut_too_slow == 4; }));
  for (auto& c : idle) CHECK(c->Closed());
  CHECK(s.Hello());
}

TEST_CASE("the HTTPS guard bounds connections per client address", "[http][guard]") {
  gateway::HttpLimits limits;
  limits.max_connections = 4;
  limits.max_connections_per_client = 1;
  SmallServer s(limits);
  Conn first(s.server->port());
  REQUIRE(WaitFor([&] { return s.stats().serving == 1; }));
  Conn second(s.server->port());
  CHECK(second.Closed());
  CHECK(s.stats().refused_per_client == 1);
}

TEST_CASE("the HTTPS guard cuts a request head without end and a client trickling one",
          "[http][guard]") {
  ::signal(SIGPIPE, SIG_IGN);  // writes to a closed connection fail instead
  gateway::HttpLimits limits;
  limits.head_timeout = absl::Seconds(2);
  SmallServer s(limits);

  Conn greedy(s.server->port());
  REQUIRE(greedy.StartTls());
  REQUIRE(greedy.Write("GET /hello HTTP/1.1\r\nHost: x\r\n"));
  const std::string header = "X-Padding: " + std::string(1000, 'a') + "\r\n";
  size_t sent = 0;
  while (sent < (64u << 20) && greedy.Write(header)) sent += header.size();
  // The server stopped reading after max_head_bytes (64 KiB); what the
  // client got rid of beyond that sits in socket buffers.
  CHECK(sent < (16u << 20));
  REQUIRE(WaitFor([&] { return s.stats().cut_over_budget == 1; }));

  Conn slow(s.server->port());
  REQUIRE(slow.StartTls());
  REQUIRE(slow.Write("GET /hello HTTP/1.1\r\n"));
  bool cut = false;
  for (int i = 0; i < 100 && !cut; ++i) {  // 10 s at most
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cut = !slow.Write("X: y\r\n") || s.stats().cut_too_slow == 1;
  }
  CHECK(cut);
  REQUIRE(WaitFor([&] { return s.stats().cut_too_slow == 1; }));
  CHECK(s.Hello());
}

TEST_CASE("the HTTPS server refuses a body over the maximum before reading it", "[http][guard]") {
  ::signal(SIGPIPE, SIG_IGN);
  SmallServer s(gateway::HttpLimits{});  // max_body_bytes 1 MiB
  Conn c(s.server->port());
  REQUIRE(c.StartTls());
  REQUIRE(
      c.Write("POST /hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Content-Length: 2097152\r\n\r\n"));
  bool closed = false;
  const std::string answer = c.ReadToEnd(&closed);
  INFO(answer);
  CHECK(answer.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(answer.find("RESOURCE_EXHAUSTED") != std::string::npos);
  CHECK(closed);
  CHECK(s.stats().cut_over_budget == 0);
}

}  // namespace
}  // namespace kpx
