#include "gateway/http_session.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "gateway/connection_gate.h"
#include "gateway/http_api.h"
#include "gateway/http_server.h"
#include "node/bounds.h"
#include "node/log.h"
#include "node/text.h"
#include "node/util.h"

namespace kpx::gateway {
namespace {

std::string SetCookie(const std::string& token) {
  // No Max-Age: the browser forgets it when it closes; the node forgets
  // it sooner (Sessions).
  return absl::StrCat(kSessionCookie, "=", token, "; Path=/; Secure; HttpOnly; SameSite=Strict");
}

std::string ClearCookie() {
  return absl::StrCat(kSessionCookie, "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
}

bool SameToken(const std::string& a, const std::string& b) {
  return !a.empty() && crypto::ConstantTimeEquals(a, b);
}

v1::SessionInfo Info(const v1::Officer& officer, const Sessions::Session& s) {
  v1::SessionInfo info;
  *info.mutable_officer() = node::WithoutSecrets(officer);
  info.set_csrf_token(s.csrf_token);
  *info.mutable_expires_at() = node::ToTimestamp(s.expires);
  return info;
}

// A browser's request from another site: refused for state changes.
absl::Status CheckSameSite(const httplib::Request& req) {
  if (absl::Status s = CheckSameOrigin(req); !s.ok()) return s;
  const std::string site = req.get_header_value("Sec-Fetch-Site");
  if (!site.empty() && site != "same-origin" && site != "none") {
    return absl::PermissionDeniedError("requests from other sites are refused");
  }
  return absl::OkStatus();
}

}  // namespace

ConsoleSessions::ConsoleSessions(const Authority* authority, node::OfficerBook* officers,
                                 absl::Duration idle, absl::Duration lifetime)
    : authority_(authority), officers_(officers), sessions_(idle, lifetime, kMaxSessions) {}

absl::StatusOr<std::pair<v1::Officer, Sessions::Session>> ConsoleSessions::Officer(
    const httplib::Request& req) {
  const std::string token = CookieValue(req.get_header_value("Cookie"), kSessionCookie);
  if (token.empty()) {
    return absl::UnauthenticatedError(
        "sign in, or present a client certificate of this node's authorities");
  }
  std::optional<Sessions::Session> s = sessions_.Find(token, absl::Now());
  if (!s.has_value()) return absl::UnauthenticatedError("the session has ended: sign in again");
  absl::StatusOr<v1::Officer> officer = officers_->Get(s->officer);
  if (!officer.ok() || officer->disabled() || officer->generation() != s->generation) {
    sessions_.Close(token);
    return absl::UnauthenticatedError("the session has ended: sign in again");
  }
  return std::make_pair(*std::move(officer), *std::move(s));
}

absl::StatusOr<ConsoleSessions::Visitor> ConsoleSessions::Visit(const httplib::Request& req) {
  absl::StatusOr<std::optional<std::string>> cn = ClientCommonName(req);
  if (!cn.ok()) return cn.status();
  if (cn->has_value()) return Visitor{authority_->ClientCaller(**cn), ""};
  absl::StatusOr<std::pair<v1::Officer, Sessions::Session>> o = Officer(req);
  if (!o.ok()) return o.status();
  return Visitor{Authority::OfficerCaller(o->first), o->second.csrf_token};
}

absl::StatusOr<Caller> ConsoleSessions::Identify(const httplib::Request& req) {
  absl::StatusOr<Visitor> v = Visit(req);
  if (!v.ok()) return v.status();
  const bool session = !v->csrf_token.empty();  // a client certificate has none
  if (session && req.method != "GET") {
    if (absl::Status s = CheckSameSite(req); !s.ok()) return s;
    if (!SameToken(req.get_header_value("X-CSRF-Token"), v->csrf_token)) {
      return absl::PermissionDeniedError(
          "a change from a session needs its CSRF token (X-CSRF-Token)");
    }
  }
  return std::move(v->caller);
}

void ConsoleSessions::SignIn(const httplib::Request& req, httplib::Response& res) {
  const absl::Time now = absl::Now();
  static log::Budget* budget = new log::Budget("officer_sign_in_refused", 20, absl::Seconds(10));
  if (!tries_.Allow(req.remote_addr, now)) {
    if (budget->Take()) {
      log::Warn("officer_sign_in_refused", {{"from", req.remote_addr}, {"reason", "rate"}});
    }
    return ReplyError(res, absl::ResourceExhaustedError(
                               "too many sign-in attempts from this address: wait a minute"));
  }
  // At most kSignInsAtOnce checks at a time.
  struct Slot {
    std::atomic<int>& n;
    const bool ok;
    explicit Slot(std::atomic<int>& count) : n(count), ok(++count <= kSignInsAtOnce) {}
    ~Slot() { --n; }
  } slot(signing_in_);
  if (!slot.ok) {
    return ReplyError(res, absl::UnavailableError("too many sign-ins at once: try again"));
  }
  v1::SignInRequest in;
  absl::Status parsed = CheckSameSite(req);
  if (parsed.ok()) parsed = CheckJsonBody(req);
  if (parsed.ok()) parsed = FromJson(req.body, &in);
  if (parsed.ok()) parsed = node::CheckBounds(in);
  if (!parsed.ok()) return ReplyError(res, parsed);
  absl::StatusOr<v1::Officer> officer = officers_->SignIn(in.name(), in.password(), in.code());
  if (!officer.ok()) {
    if (budget->Take()) {
      log::Warn("officer_sign_in_refused", {{"officer", node::Printable(in.name(), 32)},
                                            {"from", req.remote_addr},
                                            {"reason", std::string(officer.status().message())}});
    }
    // Whatever the reason, the client learns only that it did not work.
    return ReplyError(res, officer.status().code() == absl::StatusCode::kUnauthenticated
                               ? absl::UnauthenticatedError(node::OfficerBook::kRefusal)
                               : officer.status());
  }
  Sessions::Opened opened = sessions_.Open(officer->name(), officer->generation(), now);
  log::Info("officer_signed_in", {{"officer", officer->name()}, {"from", req.remote_addr}});
  res.set_header("Set-Cookie", SetCookie(opened.token));
  ReplyMessage(res, Info(*officer, opened.session));
}

void ConsoleSessions::Show(const httplib::Request& req, httplib::Response& res) {
  absl::StatusOr<std::pair<v1::Officer, Sessions::Session>> o = Officer(req);
  if (!o.ok()) return ReplyError(res, o.status());
  ReplyMessage(res, Info(o->first, o->second));
}

void ConsoleSessions::SignOut(const httplib::Request& req, httplib::Response& res) {
  absl::StatusOr<Caller> caller = Identify(req);
  if (!caller.ok()) return ReplyError(res, caller.status());
  sessions_.Close(CookieValue(req.get_header_value("Cookie"), kSessionCookie));
  log::Info("officer_signed_out", {{"officer", caller->name}, {"from", req.remote_addr}});
  res.set_header("Set-Cookie", ClearCookie());
  ReplyMessage(res, v1::SignOutResponse());
}

void ConsoleSessions::Register(httplib::Server* server) {
  server->Post("/api/v1/session",
               [this](const httplib::Request& req, httplib::Response& res) { SignIn(req, res); });
  server->Get("/api/v1/session",
              [this](const httplib::Request& req, httplib::Response& res) { Show(req, res); });
  server->Delete("/api/v1/session", [this](const httplib::Request& req, httplib::Response& res) {
    SignOut(req, res);
  });
}

}  // namespace kpx::gateway
