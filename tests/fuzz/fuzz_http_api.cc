// libFuzzer target: an HTTP API request as a client sends it, read as the
// node reads it (gateway::ParseCall: the route, the query parameters, the
// JSON body), and the error the client would get back.
//
// Input: the method on the first line, the percent-decoded path on the
// second, then query parameters "key=value", one per line, up to an empty
// line; the rest is the body.
//
// Invariants checked: a parsed call names one of the documented routes,
// and a route with a parameter ({number}, {name}) carries the path's value
// in the request's field of that name; every refusal's JSON (what
// the client reads) parses, and holds the refusal's code name.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/strings/str_split.h"
#include "fuzz_util.h"
#include "gateway/http_api.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace {

kpx::gateway::ApiRequest Read(const std::string& in) {
  kpx::gateway::ApiRequest r;
  size_t at = 0;
  auto line = [&]() {
    const size_t end = in.find('\n', at);
    std::string l = in.substr(at, end == std::string::npos ? std::string::npos : end - at);
    at = end == std::string::npos ? in.size() : end + 1;
    return l;
  };
  r.method = line();
  r.path = line();
  while (at < in.size()) {
    const std::string l = line();
    if (l.empty()) break;
    const size_t eq = l.find('=');
    r.query.emplace(l.substr(0, eq), eq == std::string::npos ? "" : l.substr(eq + 1));
  }
  r.body = in.substr(at);
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const kpx::gateway::ApiRequest req = Read(std::string(kpx::fuzz::AsView(data, size)));
  absl::StatusOr<kpx::gateway::ApiCall> call = kpx::gateway::ParseCall(req);
  if (!call.ok()) {
    google::protobuf::Struct error;
    kpx::fuzz::Require(
        google::protobuf::util::JsonStringToMessage(kpx::gateway::ErrorJson(call.status()), &error)
            .ok(),
        "an error's JSON parses");
    kpx::fuzz::Require(
        error.fields().at("code").string_value() == absl::StatusCodeToString(call.status().code()),
        "an error's JSON holds its code");
    return 0;
  }
  bool documented = false;
  for (const kpx::gateway::ApiRoute& r : kpx::gateway::Routes()) {
    documented |=
        std::string(r.method) == call->route->method && std::string(r.path) == call->route->path;
  }
  kpx::fuzz::Require(documented, "a call is on a documented route");
  kpx::fuzz::Require(call->route->method == req.method, "a call has the request's method");
  kpx::fuzz::Require(call->request != nullptr, "a call has a request");
  const std::string templ = call->route->path;
  const size_t open = templ.find('{');
  if (open != std::string::npos) {
    const size_t close = templ.find('}');
    const std::string field = templ.substr(open + 1, close - open - 1);
    const std::string value =
        req.path.substr(open, req.path.size() - (templ.size() - (close + 1 - open)));
    const auto* f = call->request->GetDescriptor()->FindFieldByName(field);
    kpx::fuzz::Require(
        f != nullptr && call->request->GetReflection()->GetString(*call->request, f) == value,
        "the request holds the path's parameter");
  }
  return 0;
}
