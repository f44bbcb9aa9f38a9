#include "gateway/http_api.h"

#include <httplib.h>

#include <functional>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gateway/http_guard.h"
#include "gateway/http_server.h"
#include "gateway/http_session.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "node/log.h"
#include "node/problem_field.h"
#include "node/text.h"

namespace kpx::gateway {
namespace {

namespace pb = google::protobuf;
using Runner =
    std::function<absl::StatusOr<std::string>(const Authority&, const Caller&, const pb::Message&)>;

struct Entry {
  ApiRoute route;
  const pb::Message* prototype;
  Runner run;
};

template <typename Req, typename Resp>
Entry Route(const char* method, const char* path, const char* verb,
            absl::StatusOr<Resp> (Authority::*fn)(const Caller&, const Req&) const) {
  return Entry{{method, path, verb},
               &Req::default_instance(),
               [fn](const Authority& a, const Caller& c,
                    const pb::Message& m) -> absl::StatusOr<std::string> {
                 absl::StatusOr<Resp> r = (a.*fn)(c, static_cast<const Req&>(m));
                 if (!r.ok()) return r.status();
                 return ToJson(*r);
               }};
}

// A route served by a handler of its own, parsed here alike.
template <typename Req>
Entry Served(const char* method, const char* path, const char* verb) {
  return Entry{{method, path, verb}, &Req::default_instance(), nullptr};
}

const std::vector<Entry>& Entries() {
  static const auto* entries = new std::vector<Entry>{
      Route("POST", "/api/v1/certificates", "SubmitCertificate", &Authority::Submit),
      Route("POST", "/api/v1/certificates:check", "CheckCertificate", &Authority::CheckCertificate),
      Route("GET", "/api/v1/certificates", "ListCertificates", &Authority::List),
      Route("GET", "/api/v1/certificates/{number}", "GetCertificate", &Authority::Get),
      Route("GET", "/api/v1/certificates/{number}:trace", "TraceCertificate", &Authority::Trace),
      Route("GET", "/api/v1/certificates/{number}:evidence", "ExportEvidence",
            &Authority::ExportEvidence),
      Route("GET", "/api/v1/certificates/{number}:attestation", "GetAttestation",
            &Authority::GetAttestation),
      Route("POST", "/api/v1/certificates/{number}:confirm", "ConfirmReceipt", &Authority::Confirm),
      Route("POST", "/api/v1/certificates/{number}:reject", "RejectShipment", &Authority::Reject),
      Route("POST", "/api/v1/certificates/{number}:cancel", "CancelCertificate",
            &Authority::Cancel),
      Route("POST", "/api/v1/certificates/{number}:void", "VoidCertificate", &Authority::Void),
      Route("POST", "/api/v1/certificates/{number}:amend", "AmendCertificate", &Authority::Amend),
      Route("POST", "/api/v1/certificates/{number}:resend", "ResendCertificate",
            &Authority::Resend),
      Route("GET", "/api/v1/trust-lists", "ListTrustLists", &Authority::ListTrustLists),
      Route("GET", "/api/v1/peers", "ListPeers", &Authority::ListPeers),
      Route("GET", "/api/v1/outbox", "ListOutbox", &Authority::ListOutbox),
      Route("POST", "/api/v1/ledger:verify", "VerifyLedger", &Authority::VerifyLedger),
      Route("POST", "/api/v1/officers", "AddOfficer", &Authority::AddOfficer),
      Route("GET", "/api/v1/officers", "ListOfficers", &Authority::ListOfficers),
      Route("POST", "/api/v1/officers/{name}:setDisabled", "SetOfficerDisabled",
            &Authority::SetOfficerDisabled),
      Route("POST", "/api/v1/officers/{name}:reset", "ResetOfficer", &Authority::ResetOfficer),
      // Served by ConsoleSessions (http_session.h) and ConsoleEvents
      // (console_events.h).
      Served<v1::SignInRequest>("POST", "/api/v1/session", "SignIn"),
      Served<v1::GetSessionRequest>("GET", "/api/v1/session", "GetSession"),
      Served<v1::SignOutRequest>("DELETE", "/api/v1/session", "SignOut"),
      Served<v1::WatchRequest>("GET", "/api/v1/events", "Watch"),
  };
  return *entries;
}

// The parameter `path` fills in `templ` ("" for a template without one);
// nullopt if it does not match. *field is the parameter's name.
std::optional<std::string> Match(const std::string& templ, const std::string& path,
                                 std::string* field) {
  const size_t open = templ.find('{');
  if (open == std::string::npos) {
    if (path == templ) return std::string();
    return std::nullopt;
  }
  const size_t close = templ.find('}', open);
  *field = templ.substr(open + 1, close - open - 1);
  const std::string prefix = templ.substr(0, open);
  const std::string suffix = templ.substr(close + 1);
  if (path.size() <= prefix.size() + suffix.size() || !absl::StartsWith(path, prefix) ||
      !absl::EndsWith(path, suffix)) {
    return std::nullopt;
  }
  std::string value = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
  if (value.find(':') != std::string::npos) return std::nullopt;
  return value;
}

// The query parameters as a JSON object of `type`'s fields: booleans as
// true/false, everything else as a string (which the JSON mapping reads
// for numbers, enums and timestamps alike).
absl::StatusOr<std::string> QueryJson(const pb::Descriptor& type,
                                      const std::multimap<std::string, std::string>& query) {
  std::string json = "{";
  for (const auto& [key, value] : query) {
    const pb::FieldDescriptor* f = type.FindFieldByName(key);
    if (f == nullptr) f = type.FindFieldByCamelcaseName(key);
    if (f == nullptr || f->is_repeated()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown query parameter '", node::Printable(key, 64), "'"));
    }
    if (json.size() > 1) json += ",";
    json += JsonString(f->name()) + ":";
    if (f->type() == pb::FieldDescriptor::TYPE_BOOL) {
      if (value != "true" && value != "false") {
        return absl::InvalidArgumentError(absl::StrCat(key, " must be true or false"));
      }
      json += value;
    } else {
      json += JsonString(value);
    }
  }
  return json + "}";
}

// The path's parameter goes into the request's field of that name; a body
// naming another value is refused.
absl::Status SetParameter(const std::string& field, const std::string& value, pb::Message* m) {
  const pb::FieldDescriptor* f = m->GetDescriptor()->FindFieldByName(field);
  if (f == nullptr || f->type() != pb::FieldDescriptor::TYPE_STRING) {
    return absl::InternalError("a route's parameter is no string field of its request");
  }
  const pb::Reflection* r = m->GetReflection();
  const std::string given = r->GetString(*m, f);
  if (!given.empty() && given != value) {
    return absl::InvalidArgumentError(absl::StrCat("the body names ", field, " '",
                                                   node::Printable(given, 64), "', the path '",
                                                   node::Printable(value, 64), "'"));
  }
  r->SetString(m, f, value);
  return absl::OkStatus();
}

const Entry* Find(const ApiCall& call) {
  for (const Entry& e : Entries()) {
    if (&e.route == call.route) return &e;
  }
  return nullptr;
}

void Reply(httplib::Response& res, int status, const std::string& json) {
  res.status = status;
  res.set_content(json, "application/json");
}

}  // namespace

const std::vector<ApiRoute>& Routes() {
  static const auto* routes = [] {
    auto* r = new std::vector<ApiRoute>;
    for (const Entry& e : Entries()) r->push_back(e.route);
    return r;
  }();
  return *routes;
}

absl::StatusOr<ApiCall> ParseCall(const ApiRequest& req) {
  const Entry* found = nullptr;
  std::string field;
  std::string value;
  bool path_known = false;
  for (const Entry& e : Entries()) {
    std::optional<std::string> v = Match(e.route.path, req.path, &field);
    if (!v.has_value()) continue;
    path_known = true;
    if (req.method != e.route.method) continue;
    found = &e;
    value = *std::move(v);
    break;
  }
  if (found == nullptr) {
    if (path_known) {
      return absl::UnimplementedError(
          absl::StrCat("method ", node::Printable(req.method, 16), " is not served here"));
    }
    return absl::NotFoundError(absl::StrCat("no API at ", node::Printable(req.path, 128)));
  }
  ApiCall call;
  call.route = &found->route;
  call.request.reset(found->prototype->New());
  if (found->route.method == std::string("GET")) {
    if (!req.body.empty()) return absl::InvalidArgumentError("a GET takes no body");
    absl::StatusOr<std::string> json = QueryJson(*found->prototype->GetDescriptor(), req.query);
    if (!json.ok()) return json.status();
    if (absl::Status s = FromJson(*json, call.request.get()); !s.ok()) return s;
  } else {
    if (!req.query.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a ", node::Printable(req.method, 16), " takes no query parameters"));
    }
    if (absl::Status s = FromJson(req.body.empty() ? "{}" : req.body, call.request.get());
        !s.ok()) {
      return s;
    }
  }
  if (!value.empty()) {
    if (absl::Status s = SetParameter(field, value, call.request.get()); !s.ok()) return s;
  }
  return call;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ErrorJson(const absl::Status& status) {
  std::string json = absl::StrCat(
      "{\"code\":", JsonString(absl::StatusCodeToString(status.code())),
      ",\"message\":", JsonString(node::Printable(std::string(status.message()), 1024)));
  if (const std::string field = node::ProblemField(status); !field.empty()) {
    absl::StrAppend(&json, ",\"field\":", JsonString(node::Printable(field, 256)));
  }
  return json + "}";
}

absl::Status FromJson(const std::string& json, pb::Message* m) {
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto s = pb::util::JsonStringToMessage(json, m, options);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not a ", m->GetDescriptor()->name(),
                     " in JSON: ", node::Printable(std::string(s.message()), 256)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ToJson(const pb::Message& m) {
  std::string out;
  if (!pb::util::MessageToJsonString(m, &out).ok()) {
    return absl::InternalError("cannot write the answer as JSON");
  }
  return out;
}

void ReplyMessage(httplib::Response& res, const pb::Message& m) {
  absl::StatusOr<std::string> json = ToJson(m);
  if (!json.ok()) return ReplyError(res, json.status());
  Reply(res, 200, *json);
}

void ReplyError(httplib::Response& res, const absl::Status& status) {
  Reply(res, HttpStatus(status.code()), ErrorJson(status));
}

absl::Status CheckSameOrigin(const httplib::Request& req) {
  if (!req.has_header("Origin")) return absl::OkStatus();
  const std::string origin = req.get_header_value("Origin");
  if (origin == absl::StrCat("https://", req.get_header_value("Host"))) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("requests from origin '", node::Printable(origin, 128), "' are refused"));
}

absl::Status CheckJsonBody(const httplib::Request& req) {
  if (req.body.empty() && req.method == "GET") return absl::OkStatus();
  const std::string type = req.get_header_value("Content-Type");
  if (type == "application/json" || absl::StartsWith(type, "application/json;")) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("a request body must be Content-Type application/json");
}

absl::StatusOr<std::string> HttpApi::Answer(const Caller& caller, const ApiCall& call) const {
  const Entry* e = Find(call);
  if (e == nullptr || call.request == nullptr || !e->run) {
    return absl::InternalError("no verb for this route");
  }
  return e->run(*authority_, caller, *call.request);
}

void HttpApi::Register(httplib::Server* server) const {
  sessions_->Register(server);  // before the catch-all below
  auto handle = [this](const httplib::Request& req, httplib::Response& res) {
    absl::StatusOr<std::string> answer = [&]() -> absl::StatusOr<std::string> {
      if (absl::Status s = CheckSameOrigin(req); !s.ok()) return s;
      if (absl::Status s = CheckJsonBody(req); !s.ok()) return s;
      ApiRequest r{req.method, req.path, {req.params.begin(), req.params.end()}, req.body};
      absl::StatusOr<ApiCall> call = ParseCall(r);
      if (!call.ok()) return call.status();
      absl::StatusOr<Caller> caller = sessions_->Identify(req);
      if (!caller.ok()) return caller.status();
      return Answer(*caller, *call);
    }();
    if (answer.ok()) return Reply(res, 200, *answer);
    static log::Budget* budget = new log::Budget("http_refused", 20, absl::Seconds(10));
    if (budget->Take()) {
      log::Warn("http_refused",
                {{"method", node::Printable(req.method, 16)},
                 {"path", node::Printable(req.path, 128)},
                 {"from", req.remote_addr},
                 {"code", absl::StatusCodeToString(answer.status().code())},
                 {"reason", node::Printable(std::string(answer.status().message()), 256)}});
    }
    ReplyError(res, answer.status());
  };
  server->Get("/api/v1/.*", handle);
  server->Post("/api/v1/.*", handle);
  server->Put("/api/v1/.*", handle);
  server->Delete("/api/v1/.*", handle);
  server->Patch("/api/v1/.*", handle);
}

}  // namespace kpx::gateway
