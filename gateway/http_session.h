// Officers signing in to the console over HTTPS, and who each request
// comes from (docs/console.md, "Officers").
//
//   POST   /api/v1/session  {name, password, code} -> SessionInfo, and the
//                           session cookie; 429 after kSignInsPerMinute
//                           tries from one client address in a minute
//   GET    /api/v1/session  -> SessionInfo of the cookie's session
//   DELETE /api/v1/session  signs out
//
// Identify names the caller of any API request: its verified client
// certificate (a system), else its session cookie (an officer). A request
// from a session that changes something (any method but GET) must carry
// the session's CSRF token in X-CSRF-Token, and must not come from another
// site (Origin, Sec-Fetch-Site).
//
// Sign-ins, failures and sign-outs are logged (officer_signed_in,
// officer_sign_in_refused, officer_signed_out). Thread-safe.
#ifndef KPX_GATEWAY_HTTP_SESSION_H_
#define KPX_GATEWAY_HTTP_SESSION_H_

#include <httplib.h>

#include <atomic>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gateway/authority.h"
#include "gateway/rate_limit.h"
#include "gateway/sessions.h"
#include "node/officers.h"

namespace kpx::gateway {

inline constexpr char kSessionCookie[] = "__Host-kpx-session";

class ConsoleSessions {
 public:
  static constexpr int kSignInsPerMinute = 10;
  static constexpr size_t kMaxSessions = 1024;
  // Sign-ins checked at once (each an Argon2id hash); beyond, 503 at once,
  // so that a flood of sign-ins cannot hold every console thread.
  static constexpr int kSignInsAtOnce = 4;

  // `authority` and `officers` must outlive this.
  ConsoleSessions(const Authority* authority, node::OfficerBook* officers,
                  absl::Duration idle = absl::Minutes(15),
                  absl::Duration lifetime = absl::Hours(12));

  // Serves /api/v1/session on `server`.
  void Register(httplib::Server* server);

  // The caller `req` comes from; UNAUTHENTICATED if none, PERMISSION_DENIED
  // for a state change without the CSRF token or from another site.
  absl::StatusOr<Caller> Identify(const httplib::Request& req);

  // Who looks at a console page: the caller, and for an officer the
  // session's CSRF token (for the page's forms). As Identify for a GET.
  struct Visitor {
    Caller caller;
    std::string csrf_token;
  };
  absl::StatusOr<Visitor> Visit(const httplib::Request& req);

  Sessions& sessions() { return sessions_; }

 private:
  void SignIn(const httplib::Request& req, httplib::Response& res);
  void Show(const httplib::Request& req, httplib::Response& res);
  void SignOut(const httplib::Request& req, httplib::Response& res);
  // The officer of the request's session, if it is open and its account
  // still allows it.
  absl::StatusOr<std::pair<v1::Officer, Sessions::Session>> Officer(const httplib::Request& req);
  const Authority* const authority_;
  node::OfficerBook* const officers_;
  Sessions sessions_;
  // Sign-in tries per client address.
  AddressRateLimit tries_{kSignInsPerMinute, 4096};
  std::atomic<int> signing_in_{0};
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_HTTP_SESSION_H_
