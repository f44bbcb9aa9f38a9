// The HTTP/JSON API under /api/v1: the authority verbs (authority.h) for
// systems such as a customs single window, documented in
// docs/openapi.json (a test checks that file against Routes()).
//
// Requests and responses are the protobuf JSON mapping of the gRPC
// messages (lowerCamelCase names; either spelling accepted; an unknown
// field is refused). A certificate is named in the path, in AIP-136 style
// for its verbs: GET /api/v1/certificates/{number},
// POST /api/v1/certificates/{number}:confirm. A number holding '/' is
// percent-encoded (%2F). Query parameters of a GET are the request's
// fields.
//
// Errors are JSON {"code": "<gRPC code name>", "message": "..."} with the
// HTTP status of that code (HttpStatus).
//
// Who calls (http_session.h): the TLS client certificate's Common Name,
// mapped to roles by authority_clients, as on the gRPC listener; else a
// signed-in officer's session; else UNAUTHENTICATED. To keep a web page
// from using a browser's client certificate or an officer's session, a
// request with a body must be Content-Type application/json, and a
// request whose Origin header names another origin is refused.
//
// ParseCall and Answer do not touch the network, so they can be tested and
// fuzzed directly. Thread-safe.
#ifndef KPX_GATEWAY_HTTP_API_H_
#define KPX_GATEWAY_HTTP_API_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/authority.h"
#include "google/protobuf/message.h"

namespace httplib {
struct Request;
struct Response;
class Server;
}  // namespace httplib

namespace kpx::gateway {

class HttpGuard;

// One route: a method and an OpenAPI path template with at most one
// parameter ("{number}", "{name}"), which fills the request's field of
// that name.
struct ApiRoute {
  const char* method;
  const char* path;
  const char* verb;  // the gRPC method it mirrors, or the session step
};
const std::vector<ApiRoute>& Routes();

// A request, as received.
struct ApiRequest {
  std::string method;
  std::string path;  // percent-decoded
  std::multimap<std::string, std::string> query;
  std::string body;
};

// A request matched to its route and parsed into the verb's message.
struct ApiCall {
  const ApiRoute* route = nullptr;
  std::unique_ptr<google::protobuf::Message> request;
};

// NOT_FOUND for no route (UNIMPLEMENTED for a known path with another
// method); INVALID_ARGUMENT naming what does not parse.
absl::StatusOr<ApiCall> ParseCall(const ApiRequest& req);

// A JSON string literal holding `s` (UTF-8): quotes, backslashes and
// control characters escaped.
std::string JsonString(const std::string& s);

// The HTTP status a gRPC code travels as.
int HttpStatus(absl::StatusCode code);
// The protobuf JSON mapping, reading strictly (an unknown field is
// INVALID_ARGUMENT) and writing lowerCamelCase.
absl::Status FromJson(const std::string& json, google::protobuf::Message* m);
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& m);
// An answer: `m` as JSON with 200, or the error's JSON with its status.
void ReplyMessage(httplib::Response& res, const google::protobuf::Message& m);
void ReplyError(httplib::Response& res, const absl::Status& status);
// PERMISSION_DENIED if the request's Origin header names another origin.
absl::Status CheckSameOrigin(const httplib::Request& req);
// INVALID_ARGUMENT unless a request with a body says application/json.
absl::Status CheckJsonBody(const httplib::Request& req);
// {"code": ..., "message": ...}: valid UTF-8 JSON whatever the message
// holds (node::Printable escapes it, at most 1 KiB of it).
std::string ErrorJson(const absl::Status& status);

class ConsoleSessions;

class HttpApi {
 public:
  // Both must outlive this.
  HttpApi(const Authority* authority, ConsoleSessions* sessions)
      : authority_(authority), sessions_(sessions) {}

  // Runs a parsed call as `caller`; the response message as JSON.
  absl::StatusOr<std::string> Answer(const Caller& caller, const ApiCall& call) const;

  // Serves /api/v1/ on `server` (the session's routes too).
  void Register(httplib::Server* server) const;

 private:
  const Authority* const authority_;
  ConsoleSessions* const sessions_;
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_HTTP_API_H_
