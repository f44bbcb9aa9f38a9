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
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/password.h"
#include "federation.h"
#include "gateway/console_pages.h"
#include "gateway/console_text.h"
#include "gateway/http_api.h"
#include "gateway/http_server.h"
#include "gateway/http_session.h"
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
  Reply Delete(const std::string& path, httplib::Headers headers = {}) {
    return Done(client_.Delete(path.c_str(), headers));
  }
  // The status, headers and the start of a streamed answer (live events)
  // up to `until`, then the connection is dropped.
  Reply FirstChunk(const std::string& path, const std::string& until = ": connected") {
    Reply out;
    client_.Get(
        path.c_str(), httplib::Headers{},
        [&](const httplib::Response& r) {
          out.status = r.status;
          out.headers = r.headers;
          return true;
        },
        [&](const char* data, size_t n) {
          out.body.append(data, n);
          return out.body.find(until) == std::string::npos;
        });
    return out;
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

  // Live events: each step of the certificate, resuming where asked.
  Reply live = bw.FirstChunk("/api/v1/events?from_sequence=1", "\"state\":\"CONFIRMED\"");
  CHECK(live.status == 200);
  CHECK(live.headers.find("Content-Type")->second.rfind("text/event-stream", 0) == 0);
  CHECK(live.body.find("event: entry\ndata: {") != std::string::npos);
  CHECK(live.body.find(number) != std::string::npos);

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
      {"a compressed body",
       exporter.Post("/api/v1/certificates", body, "application/json",
                     {{"Content-Encoding", "gzip"}}),
       415, "INVALID_ARGUMENT"},
      {"byte ranges", exporter.Get("/api/v1/certificates", {{"Range", "bytes=0-1,2-3"}}), 416,
       "INVALID_ARGUMENT"},
      {"outside the API and the console", exporter.Get("/nothing"), 404, "NOT_FOUND"},
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

TEST_CASE("certificates:check names every problem's field; a refused submit names the first",
          "[http][api][form]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/false, /*console=*/true);
  fed.StartInProcess("BW");
  Api exporter(fed, "BW", "exporter");
  v1::CheckCertificateRequest check;
  v1::Certificate& c = *check.mutable_certificate() = ValidCertificate("bw 77", "BW", "EU");

  // A good certificate: no problems, and it comes back in canonical form.
  Reply good = exporter.Post("/api/v1/certificates:check", Json(check));
  REQUIRE(good.status == 200);
  auto answer = Parse<v1::CheckCertificateResponse>(good.body);
  CHECK(answer.problems_size() == 0);
  CHECK(answer.certificate().number() == "BW77");

  c.mutable_lines(0)->set_hs_code("7102.39");
  c.mutable_lines(1)->mutable_origin()->clear_countries();
  c.mutable_lines(1)->mutable_origin()->set_mixed_undisclosed(true);  // EU refuses it
  c.mutable_importer()->clear_address();
  Reply bad = exporter.Post("/api/v1/certificates:check", Json(check));
  REQUIRE(bad.status == 200);
  answer = Parse<v1::CheckCertificateResponse>(bad.body);
  std::vector<std::pair<std::string, std::string>> found;
  for (const v1::CertificateProblem& p : answer.problems()) found.push_back({p.field(), p.code()});
  CHECK(found == std::vector<std::pair<std::string, std::string>>{
                     {"lines.0.hsCode", "INVALID_ARGUMENT"},
                     {"importer.address", "INVALID_ARGUMENT"},
                     {"lines.1.origin", "FAILED_PRECONDITION"}});

  // Submitting it is refused with the first problem, naming its field in
  // the request; nothing is stored.
  v1::SubmitCertificateRequest submit;
  *submit.mutable_certificate() = c;
  Reply refused = exporter.Post("/api/v1/certificates", Json(submit));
  CHECK(refused.status == 400);
  auto error = Parse<google::protobuf::Struct>(refused.body);
  CHECK(error.fields().at("field").string_value() == "certificate.lines.0.hsCode");
  CHECK(Parse<v1::ListCertificatesResponse>(exporter.Get("/api/v1/certificates").body)
            .certificates_size() == 0);

  // Once issued, the same number is a problem of the number field.
  *submit.mutable_certificate() = ValidCertificate("BW-78", "BW", "EU");
  REQUIRE(exporter.Post("/api/v1/certificates", Json(submit)).status == 200);
  *check.mutable_certificate() = submit.certificate();
  answer = Parse<v1::CheckCertificateResponse>(
      exporter.Post("/api/v1/certificates:check", Json(check)).body);
  REQUIRE(answer.problems_size() == 1);
  CHECK(answer.problems(0).field() == "number");
  CHECK(answer.problems(0).code() == "ALREADY_EXISTS");
  // Only exporters check.
  Api importer(fed, "BW", "importer");
  CHECK(importer.Post("/api/v1/certificates:check", Json(check)).status == 403);
}

// ---------------------------------------------------------------- OpenAPI

google::protobuf::Struct OpenApi() {
  std::ifstream in(absl::StrCat(testing::SourceDir(), "/docs/openapi.json"));
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return Parse<google::protobuf::Struct>(text.str());
}

// A path of `templ` with its parameter filled in.
std::string Sample(std::string templ) {
  if (size_t at = templ.find("{number}"); at != std::string::npos) templ.replace(at, 8, "BW-1");
  if (size_t at = templ.find("{name}"); at != std::string::npos) templ.replace(at, 6, "nobody");
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
    const std::string method = r.method;
    Reply reply = r.verb == std::string("Watch") ? auditor.FirstChunk(path + "?from_sequence=1")
                  : method == "GET"              ? auditor.Get(path)
                  : method == "DELETE"           ? auditor.Delete(path)
                                                 : auditor.Post(path, "{}");
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

// ---------------------------------------------------------------- officers

// An officer's browser: no client certificate, the session cookie and
// CSRF token it was given at sign-in.
struct Browser {
  Browser(GrpcFederation& fed, const std::string& code)
      : api(fed, code, ""),
        origin(absl::StrCat("https://127.0.0.1:", fed.server(code).console_port())) {}

  Reply SignIn(const std::string& name, const std::string& password, const std::string& code) {
    v1::SignInRequest in;
    in.set_name(name);
    in.set_password(password);
    in.set_code(code);
    Reply r = api.Post("/api/v1/session", Json(in));
    auto it = r.headers.find("Set-Cookie");
    if (r.status == 200 && it != r.headers.end()) {
      set_cookie = it->second;
      const size_t eq = set_cookie.find('='), semi = set_cookie.find(';');
      cookie = set_cookie.substr(eq + 1, semi - eq - 1);
      csrf = Parse<v1::SessionInfo>(r.body).csrf_token();
    }
    return r;
  }
  httplib::Headers Headers(bool with_csrf = true) const {
    httplib::Headers h = {{"Cookie", std::string(gateway::kSessionCookie) + "=" + cookie}};
    if (with_csrf) h.emplace("X-CSRF-Token", csrf);
    return h;
  }
  Reply Get(const std::string& path) { return api.Get(path, Headers(false)); }
  Reply Post(const std::string& path, const std::string& body, bool with_csrf = true) {
    return api.Post(path, body, "application/json", Headers(with_csrf));
  }

  Api api;
  std::string origin;
  std::string set_cookie, cookie, csrf;
};

// Adds an officer as BW's operator system; its credentials.
v1::OfficerCredentials AddOfficer(Api& operator_api, const std::string& name,
                                  const std::vector<v1::Role>& roles,
                                  const std::string& full_name = "K. Mokgosi") {
  v1::AddOfficerRequest req;
  req.mutable_officer()->set_name(name);
  req.mutable_officer()->set_full_name(full_name);
  req.mutable_officer()->set_office("HQ");
  for (v1::Role r : roles) req.mutable_officer()->add_roles(r);
  Reply r = operator_api.Post("/api/v1/officers", Json(req));
  INFO(r.body);
  REQUIRE(r.status == 200);
  return Parse<v1::OfficerCredentials>(r.body);
}

// BW and EU running with their consoles, their operators' systems, an
// exporting officer at BW (k.mokgosi) and an importing one at EU
// (a.peeters).
struct Consoles {
  GrpcFederation fed{{"BW", "EU"}, /*metrics=*/false, /*console=*/true};
  bool started = [this] {
    fed.StartInProcess("BW");
    fed.StartInProcess("EU");
    return true;
  }();
  Api bw_ops{fed, "BW", "operator"};
  Api eu_ops{fed, "EU", "operator"};
  v1::OfficerCredentials exporter = AddOfficer(bw_ops, "k.mokgosi", {v1::EXPORTER});
  v1::OfficerCredentials importer = AddOfficer(eu_ops, "a.peeters", {v1::IMPORTER}, "A. Peeters");
};

// The current code, and one a step later (each code signs in once).
std::string Code(const v1::OfficerCredentials& c, absl::Duration later = absl::ZeroDuration()) {
  return crypto::TotpCode(crypto::TotpSecretFromBase32(c.totp_secret()), absl::Now() + later);
}

TEST_CASE("an officer signs in with password and code, and acts under their own name",
          "[http][officers]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/true, /*console=*/true);
  fed.StartInProcess("BW");
  Api ops(fed, "BW", "operator");
  const v1::OfficerCredentials cred = AddOfficer(ops, "k.mokgosi", {v1::EXPORTER});
  CHECK(cred.password().size() == 16);
  CHECK(cred.officer().password_hash().empty());  // secrets never leave but once
  CHECK(cred.totp_uri().rfind("otpauth://totp/", 0) == 0);

  Browser b(fed, "BW");
  Reply in = b.SignIn("k.mokgosi", cred.password(), Code(cred));
  INFO(in.body);
  REQUIRE(in.status == 200);
  CHECK(b.set_cookie.find("__Host-kpx-session=") == 0);
  for (const char* attribute : {"; Path=/", "; Secure", "; HttpOnly", "; SameSite=Strict"}) {
    CHECK(b.set_cookie.find(attribute) != std::string::npos);
  }
  CHECK(b.Get("/api/v1/session").status == 200);
  httplib::Client metrics("127.0.0.1", fed.MetricsPort("BW"));
  auto scrape = metrics.Get("/metrics");
  REQUIRE(scrape);
  CHECK(scrape->body.find("\nkpx_console_sessions 1") != std::string::npos);
  CHECK(scrape->body.find("kpx_http_connections_refused_total{reason=\"per_client\"} 0") !=
        std::string::npos);

  v1::SubmitCertificateRequest submit;
  *submit.mutable_certificate() = ValidCertificate("BW-77", "BW", "EU");
  submit.mutable_certificate()->clear_validating_official();
  // A change without the CSRF token, or from another site, is refused.
  CHECK(b.Post("/api/v1/certificates", Json(submit), /*with_csrf=*/false).status == 403);
  httplib::Headers evil = b.Headers();
  evil.emplace("Origin", "https://evil.example");
  CHECK(b.api.Post("/api/v1/certificates", Json(submit), "application/json", evil).status == 403);
  httplib::Headers cross = b.Headers();
  cross.emplace("Sec-Fetch-Site", "cross-site");
  CHECK(b.api.Post("/api/v1/certificates", Json(submit), "application/json", cross).status == 403);
  httplib::Headers own = b.Headers();
  own.emplace("Origin", b.origin);
  Reply r = b.api.Post("/api/v1/certificates", Json(submit), "application/json", own);
  INFO(r.body);
  REQUIRE(r.status == 200);
  const v1::CertificateRecord rec = Parse<v1::CertificateRecord>(r.body);
  // The officer is the validating official, and the ledger says who did it.
  CHECK(rec.certificate().validating_official() == "K. Mokgosi");
  bool attributed = false;
  for (const v1::LedgerEntry& e :
       testing::Must(fed.server("BW").node().ledger().ReadEntries(1, 1000))) {
    if (e.kind() == v1::SENT && e.certificate_number() == "BW-77") {
      attributed = e.actor().name() == "k.mokgosi" && e.actor().office() == "HQ" &&
                   e.actor().full_name() == "K. Mokgosi";
    }
  }
  CHECK(attributed);

  // An exporter may not confirm.
  CHECK(
      b.Post("/api/v1/certificates/BW-77:confirm", R"({"findings":{"asDeclared":true}})").status ==
      403);

  // Signing out ends the session; the cookie is cleared.
  Reply out = b.api.Delete("/api/v1/session", b.Headers());
  REQUIRE(out.status == 200);
  CHECK(out.headers.find("Set-Cookie")->second.find("Max-Age=0") != std::string::npos);
  CHECK(b.Get("/api/v1/session").status == 401);
}

TEST_CASE("sign-in refuses planted sessions, reused codes, guessing and disabled officers",
          "[http][officers][security]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/false, /*console=*/true);
  fed.StartInProcess("BW");
  Api ops(fed, "BW", "operator");
  const v1::OfficerCredentials cred = AddOfficer(ops, "a.officer", {v1::IMPORTER});

  // A session token the browser was given by someone else is no session.
  Browser b(fed, "BW");
  b.cookie = std::string(64, 'a');
  CHECK(b.Get("/api/v1/certificates").status == 401);
  const std::string used = Code(cred);
  REQUIRE(b.SignIn("a.officer", cred.password(), used).status == 200);
  CHECK(b.cookie != std::string(64, 'a'));
  CHECK(b.Get("/api/v1/certificates").status == 200);

  // The same code twice: the second is refused, even with the password,
  // and counts as a wrong try.
  Browser again(fed, "BW");
  Reply second = again.SignIn("a.officer", cred.password(), used);
  CHECK(second.status == 401);
  const int tries_left = node::OfficerBook::kMaxFailures - 1;

  // Guessing: five wrong passwords lock the account, the right one then fails too.
  std::string wrong_body;
  for (int i = 0; i < tries_left; ++i) {
    Reply wrong = again.SignIn("a.officer", "wrong", Code(cred, absl::Seconds(30)));
    CHECK(wrong.code() == "UNAUTHENTICATED");
    wrong_body = wrong.body;
  }
  // Locked: the right password is refused too, in the same words.
  Reply locked = again.SignIn("a.officer", cred.password(), Code(cred, absl::Seconds(30)));
  CHECK(locked.status == 401);
  CHECK(locked.body == wrong_body);
  // An unknown name reads exactly like a wrong password.
  CHECK(again.SignIn("no.one", "x", "123456").body == wrong_body);

  // A reset lifts the lock; disabling ends the session at once.
  const v1::OfficerCredentials fresh =
      Parse<v1::OfficerCredentials>(ops.Post("/api/v1/officers/a.officer:reset", "{}").body);
  CHECK(b.Get("/api/v1/certificates").status == 401);  // the reset ended the old session
  Browser c(fed, "BW");
  REQUIRE(c.SignIn("a.officer", fresh.password(), Code(fresh, absl::Seconds(30))).status == 200);
  REQUIRE(ops.Post("/api/v1/officers/a.officer:setDisabled", R"({"disabled":true})").status == 200);
  CHECK(c.Get("/api/v1/certificates").status == 401);

  // Many tries from one address: refused for the rest of the minute.
  bool limited = false;
  for (int i = 0; i < 25 && !limited; ++i) {
    limited = again.SignIn("a.officer", "wrong", "000000").status == 429;
  }
  CHECK(limited);

  // The ledger records who changed the accounts, and no secret.
  int changes = 0;
  for (const v1::LedgerEntry& e :
       testing::Must(fed.server("BW").node().ledger().ReadEntries(1, 1000))) {
    if (e.kind() != v1::OFFICER_CHANGED) continue;
    ++changes;
    CHECK(e.actor().name() == "BW-operator");
    CHECK(e.detail().find(fresh.password()) == std::string::npos);
    CHECK(e.SerializeAsString().find(crypto::TotpSecretFromBase32(fresh.totp_secret())) ==
          std::string::npos);
  }
  CHECK(changes == 3);  // added, reset, disabled
}

TEST_CASE("kpxctl officer add, list, code, disable, enable and reset", "[http][officers][kpxctl]") {
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/false, /*console=*/true);
  fed.StartInProcess("BW");
  const std::string op = fed.KpxctlEnv("BW", "operator") + " " + testing::KpxctlPath();
  testing::Output o = testing::Capture(
      op + " -o json officer add k.mokgosi --name 'K. Mokgosi' --office HQ --roles EXPORTER");
  INFO(o.out);
  REQUIRE(o.exit_code == 0);
  const v1::OfficerCredentials cred = Parse<v1::OfficerCredentials>(o.out);
  CHECK(cred.officer().full_name() == "K. Mokgosi");
  // The offline code is the one sign-in takes.
  o = testing::Capture(testing::KpxctlPath() + " officer code " + cred.totp_secret());
  REQUIRE(o.exit_code == 0);
  std::string code = o.out.substr(0, 6);
  Browser b(fed, "BW");
  CHECK(b.SignIn("k.mokgosi", cred.password(), code).status == 200);

  o = testing::Capture(op + " officer list");
  CHECK(o.out.find("k.mokgosi") != std::string::npos);
  CHECK(o.out.find("active") != std::string::npos);
  CHECK(o.out.find(cred.password()) == std::string::npos);  // never shown again
  CHECK(testing::Capture(op + " officer disable k.mokgosi").out.find("DISABLED") !=
        std::string::npos);
  CHECK(b.Get("/api/v1/session").status == 401);
  CHECK(testing::Capture(op + " officer enable k.mokgosi").exit_code == 0);
  o = testing::Capture(op + " officer reset k.mokgosi");
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("password:") != std::string::npos);
  // Only operators manage officers; bad input is a usage error.
  const std::string exporter = fed.KpxctlEnv("BW", "exporter") + " " + testing::KpxctlPath();
  CHECK(testing::Capture(exporter + " officer list").exit_code != 0);
  CHECK(testing::Capture(op + " officer add x.y --name X --office HQ --roles KING").exit_code == 2);
  CHECK(testing::Capture(op + " officer add BAD --name X --office HQ --roles EXPORTER")
            .out.find("officer name") != std::string::npos);
  CHECK(testing::Capture(op + " officer add x.y --name X --office NOPE --roles EXPORTER")
            .out.find("offices on the trust list") != std::string::npos);
}

// ---------------------------------------------------------------- pages

TEST_CASE("every console text is in French, Portuguese and Arabic", "[http][console]") {
  for (const char* lang : {"fr", "pt", "ar"}) {
    for (const std::string& key : gateway::TextKeys()) {
      INFO(lang << " " << key);
      CHECK(gateway::HasText(lang, key));
    }
  }
  CHECK(gateway::FindLanguage("ar").right_to_left);
  CHECK(std::string(gateway::FindLanguage("xx").code) == "en");
  CHECK(gateway::HtmlEscape("<a href=\"x\">'&'</a>") ==
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
}

TEST_CASE("console pages: sign-in, languages, the journey with who did each step, actions by role",
          "[http][console]") {
  Consoles two;
  GrpcFederation& fed = two.fed;
  Api& bw_ops = two.bw_ops;
  const v1::OfficerCredentials& exporter = two.exporter;
  const v1::OfficerCredentials& importer = two.importer;

  Browser bw(fed, "BW");
  // No session: to the sign-in page, which speaks the language asked for.
  Reply away = bw.api.Get("/console/certificates");
  CHECK(away.status == 303);
  CHECK(away.headers.find("Location")->second == "/console/sign-in");
  Reply ar = bw.api.Get("/console/sign-in?lang=ar");
  REQUIRE(ar.status == 200);
  CHECK(ar.body.find("<html lang=\"ar\" dir=\"rtl\">") != std::string::npos);
  CHECK(ar.body.find(gateway::Text("ar", "signin.title")) != std::string::npos);
  CHECK(ar.headers.find("Set-Cookie")->second.rfind("kpx-lang=ar;", 0) == 0);
  Reply fr = bw.api.Get("/console/sign-in", {{"Cookie", "kpx-lang=fr"}});
  CHECK(fr.body.find("<html lang=\"fr\" dir=\"ltr\">") != std::string::npos);
  // No inline script or style anywhere: the CSP forbids them.
  for (const std::string& page : {ar.body, fr.body}) {
    CHECK(page.find("<script>") == std::string::npos);
    CHECK(page.find(" style=") == std::string::npos);
    CHECK(page.find(" onclick") == std::string::npos);
  }
  // The first page load, script and style included, stays small.
  const size_t first_load = ar.body.size() + bw.api.Get("/console/app.js").body.size() +
                            bw.api.Get("/console/style.css").body.size();
  CHECK(first_load < 200 * 1024);

  REQUIRE(bw.SignIn("k.mokgosi", exporter.password(), Code(exporter)).status == 200);
  v1::SubmitCertificateRequest submit;
  *submit.mutable_certificate() = ValidCertificate("BW/2026/0042", "BW", "EU");
  submit.mutable_certificate()->set_validating_official("<b>K. Mokgosi</b>");
  REQUIRE(bw.Post("/api/v1/certificates", Json(submit)).status == 200);

  Reply dash = bw.Get("/console/");
  REQUIRE(dash.status == 200);
  CHECK(dash.body.find("<meta name=\"csrf-token\" content=\"" + bw.csrf + "\">") !=
        std::string::npos);
  Reply page = bw.Get("/console/certificates/BW%2F2026%2F0042");
  INFO(page.body);
  REQUIRE(page.status == 200);
  CHECK(page.body.find("by K. Mokgosi (HQ)") != std::string::npos);
  CHECK(page.body.find("&lt;b&gt;K. Mokgosi&lt;/b&gt;") != std::string::npos);
  CHECK(page.body.find("<b>K. Mokgosi</b>") == std::string::npos);
  CHECK(page.body.find(":evidence\" download") != std::string::npos);
  CHECK(bw.Get("/api/v1/certificates/BW%2F2026%2F0042:evidence").status == 200);
  CHECK(page.body.find(":cancel") != std::string::npos);   // the exporter may cancel
  CHECK(page.body.find(":confirm") == std::string::npos);  // but not confirm
  CHECK(page.body.find("/console/issue?amend=BW%2F2026%2F0042") != std::string::npos);
  // The issue form, and the same form filled in to amend.
  Reply form = bw.Get("/console/issue");
  REQUIRE(form.status == 200);
  CHECK(form.body.find("data-check=\"/api/v1/certificates:check\"") != std::string::npos);
  CHECK(form.body.find("name=\"certificate.lines.0.origin\"") != std::string::npos);
  CHECK(form.body.find("<option>EU</option>") != std::string::npos);
  Reply amend = bw.Get("/console/issue?amend=BW%2F2026%2F0042");
  REQUIRE(amend.status == 200);
  CHECK(amend.body.find("/api/v1/certificates/BW%2F2026%2F0042:amend") != std::string::npos);
  CHECK(amend.body.find("value=\"BW 75.00%, NA 25.00%\"") != std::string::npos);
  CHECK(amend.body.find("&lt;b&gt;K. Mokgosi&lt;/b&gt;") != std::string::npos);
  CHECK(bw.Get("/console/certificates/BW-404").status == 404);
  // The partners page: the trust list in force, as officers need it.
  Reply partners = bw.Get("/console/partners?lang=en");
  REQUIRE(partners.status == 200);
  CHECK(partners.body.find("<strong>EU</strong>") != std::string::npos);
  CHECK(partners.body.find("(this node)") != std::string::npos);
  CHECK(partners.body.find("Trust list version 1") != std::string::npos);

  // The list's filters, as its form sends them.
  Reply all = bw.Get("/console/certificates?state=&partner=&overdue=1");
  CHECK(all.status == 200);
  CHECK(all.body.find("BW/2026/0042") == std::string::npos);  // not overdue
  Reply to_eu = bw.Get("/console/certificates?state=&partner=EU");
  CHECK(to_eu.body.find("BW/2026/0042") != std::string::npos);
  CHECK(bw.Get("/console/certificates?partner=AE").body.find("BW/2026/0042") == std::string::npos);
  CHECK(bw.Get("/console/certificates?state=LOST").status == 400);

  // At EU the importing officer sees it arrive, with the confirm form.
  Browser eu(fed, "EU");
  REQUIRE(eu.SignIn("a.peeters", importer.password(), Code(importer)).status == 200);
  REQUIRE(WaitFor([&] {
    return eu.Get("/console/certificates?state=RECEIVED").body.find("BW/2026/0042") !=
           std::string::npos;
  }));
  Reply received = eu.Get("/console/certificates/BW%2F2026%2F0042?lang=pt");
  CHECK(received.body.find(":confirm") != std::string::npos);
  CHECK(received.body.find(gateway::Text("pt", "act.confirm")) != std::string::npos);
  CHECK(received.body.find(":cancel") == std::string::npos);
  // An importing officer does not issue.
  CHECK(eu.Get("/console/issue").status == 403);
  CHECK(eu.Get("/console/").body.find("/console/issue") == std::string::npos);
}

TEST_CASE("the printed certificate: a reproducible PDF whose QR code verifies on /verify",
          "[http][console][print]") {
  Consoles two;
  Browser bw(two.fed, "BW");
  REQUIRE(bw.SignIn("k.mokgosi", two.exporter.password(), Code(two.exporter)).status == 200);
  v1::SubmitCertificateRequest submit;
  *submit.mutable_certificate() = ValidCertificate("BW-2026-0500", "BW", "EU");
  REQUIRE(bw.Post("/api/v1/certificates", Json(submit)).status == 200);
  Reply attestation = bw.Get("/api/v1/certificates/BW-2026-0500:attestation");
  REQUIRE(attestation.status == 200);
  auto a = Parse<v1::AttestationResponse>(attestation.body);
  CHECK(a.payload().rfind("KPX1.", 0) == 0);
  CHECK(a.attestation().total_carats_hundredths() == 165050);

  // The same record prints the same bytes, dated by the certificate.
  Reply pdf = bw.Get("/console/print/BW-2026-0500?lang=ar");
  REQUIRE(pdf.status == 200);
  CHECK(pdf.body.rfind("%PDF-", 0) == 0);
  CHECK(bw.Get("/console/print/BW-2026-0500?lang=ar").body == pdf.body);
  CHECK(bw.Get("/console/print/BW-2026-0500?lang=fr").body != pdf.body);
  // Its QR code, read back from the rendered page, is the attestation.
  const std::string file = two.fed.dir() + "/printed.pdf";
  std::ofstream(file, std::ios::binary) << pdf.body;
  testing::Output qr = testing::Capture(absl::StrCat("pdftoppm -r 200 -png -singlefile ", file, " ",
                                                     two.fed.dir(), "/printed && zbarimg -q --raw ",
                                                     two.fed.dir(), "/printed.png"));
  INFO(qr.out);
  REQUIRE(qr.exit_code == 0);
  CHECK(qr.out.find(a.payload()) != std::string::npos);

  // The public page: no session, the QR text or the number and short code.
  Api stranger(two.fed, "EU", "");
  auto escape = [](const std::string& s) { return httplib::detail::encode_query_param(s); };
  Reply at_eu = stranger.Get("/verify?qr=" + escape(a.payload()));
  REQUIRE(at_eu.status == 200);
  CHECK(at_eu.body.find("signature holds") != std::string::npos);
  CHECK(at_eu.body.find("1650.50") != std::string::npos);
  Reply by_code =
      Api(two.fed, "BW", "").Get("/verify?number=BW-2026-0500&code=" + escape(a.short_code()));
  CHECK(by_code.body.find("match a certificate recorded here") != std::string::npos);
  std::string forged = a.payload();
  forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
  CHECK(stranger.Get("/verify?qr=" + escape(forged)).body.find("NOT authentic") !=
        std::string::npos);
  CHECK(Api(two.fed, "BW", "")
            .Get("/verify?number=BW-2026-0500&code=AAAAA-AAAAA")
            .body.find("NOT authentic") != std::string::npos);
  // EU received it: it cannot sign the paper.
  Browser eu(two.fed, "EU");
  REQUIRE(eu.SignIn("a.peeters", two.importer.password(), Code(two.importer)).status == 200);
  REQUIRE(WaitFor([&] { return eu.Get("/api/v1/certificates/BW-2026-0500").status == 200; }));
  CHECK(eu.Get("/api/v1/certificates/BW-2026-0500:attestation").status == 400);
}

// ---------------------------------------------------------------- a real browser

TEST_CASE("in Chromium: sign in, issue at BW, confirm at EU, see it at BW, French and Arabic",
          "[http][console][browser]") {
  const std::string script = testing::SourceDir() + "/tests/browser/console.mjs";
  const std::string modules = testing::SourceDir() + "/tests/browser/node_modules/playwright-core";
  INFO("needs Debian's chromium and playwright-core: bash deploy/install-deps.sh");
  REQUIRE(std::filesystem::exists(modules));
  REQUIRE(std::filesystem::exists("/usr/bin/chromium"));

  Consoles two;
  GrpcFederation& fed = two.fed;
  Api& bw_ops = two.bw_ops;
  const v1::OfficerCredentials& exporter = two.exporter;
  const v1::OfficerCredentials& importer = two.importer;
  const v1::OfficerCredentials operator_ =
      AddOfficer(bw_ops, "o.operator", {v1::OPERATOR}, "O. Operator");

  v1::Certificate cert = ValidCertificate("BW/2026/0100", "BW", "EU");
  cert.clear_validating_official();  // the officer who issues it
  const char* shots = std::getenv("KPX_SCREENSHOTS");
  const std::string screenshots = shots != nullptr ? shots : fed.dir();
  auto who = [](const v1::OfficerCredentials& c) {
    return absl::StrCat("{\"name\":\"", c.officer().name(), "\",\"password\":\"", c.password(),
                        "\",\"secret\":\"", c.totp_secret(), "\"}");
  };
  const std::string config =
      absl::StrCat("{\"bw\":\"https://127.0.0.1:", fed.server("BW").console_port(),
                   "\",\"eu\":\"https://127.0.0.1:", fed.server("EU").console_port(),
                   "\",\"exporter\":", who(exporter), ",\"importer\":", who(importer),
                   ",\"operator\":", who(operator_), ",\"certificate\":", Json(cert),
                   ",\"screenshots\":\"", screenshots, "\"}");
  const std::string config_path = fed.dir() + "/browser.json";
  std::ofstream(config_path) << config;

  testing::Output o = testing::Capture(absl::StrCat("node ", script, " ", config_path));
  INFO(o.out);
  CHECK(o.exit_code == 0);
  for (const char* step :
       {"ok signed in as k.mokgosi", "ok the session cookie is HttpOnly",
        "ok the form adds up the lines as they are typed",
        "ok the form shows origin shares that do not add up beside their input",
        "ok and at the same time EU's policy refusing mixed origin beside line 2",
        "ok nothing is issued while the form has problems",
        "ok BW's officer issues the certificate", "ok BW's journey names the officer who issued it",
        "ok the certificate arrives live on EU's dashboard", "ok the certificate arrives at EU",
        "ok EU's officer confirms it with what was found", "ok BW sees the difference EU found",
        "ok BW sees it confirmed", "ok the French page",
        "ok in Arabic the header runs from the right",
        "ok the officers page shows a new officer's credentials once",
        "ok the operator disables the officer", "ok a disabled officer's session has ended",
        "ok after signing out the console asks to sign in"}) {
    CHECK(o.out.find(step) != std::string::npos);
  }
  // And the ledgers agree on who did what.
  REQUIRE(StateAt(bw_ops, "BW/2026/0100") == v1::CONFIRMED);
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
