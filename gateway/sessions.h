// Signed-in officers' sessions (docs/console.md, "Officers").
//
// A session is a random 256-bit token the browser holds in a cookie
// (__Host-kpx-session: Secure, HttpOnly, SameSite=Strict, Path=/), and a
// second random token, the CSRF token, that the page sends back in the
// X-CSRF-Token header with every request that changes something. Tokens
// are made only at sign-in, so a token planted before it is never one of
// ours (no session fixation); only their SHA-256 is kept.
//
// A session ends when it is signed out, after `idle` without a request,
// `lifetime` after sign-in, or when its officer's account is reset or
// disabled (the account's generation moves on; the caller checks it).
// Sessions live in memory: a restart signs everyone out. At most
// `max_sessions` in all (the least recently used goes) and
// kMaxPerOfficer per officer (the oldest goes).
//
// Thread-safe.
#ifndef KPX_GATEWAY_SESSIONS_H_
#define KPX_GATEWAY_SESSIONS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kpx::gateway {

class Sessions {
 public:
  static constexpr size_t kMaxPerOfficer = 8;

  struct Session {
    std::string officer;
    uint64_t generation = 0;  // the account's when signed in
    std::string csrf_token;
    absl::Time signed_in;
    absl::Time last_seen;
    absl::Time expires;  // the earlier of idle and lifetime, from now
  };
  struct Opened {
    std::string token;  // for the cookie
    Session session;
  };

  Sessions(absl::Duration idle, absl::Duration lifetime, size_t max_sessions);

  Opened Open(const std::string& officer, uint64_t generation, absl::Time now);
  // The session `token` names, if it is still open; counts as activity.
  std::optional<Session> Find(const std::string& token, absl::Time now);
  void Close(const std::string& token);
  size_t size() const;

 private:
  struct Entry {
    Session session;
  };
  void Expire(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Evict(const std::string& officer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The officer's oldest session (by sign-in), or with `officer` empty the
  // least recently used of all; end() if none. *count: how many there are.
  std::map<std::string, Entry>::iterator Oldest(const std::string& officer, size_t* count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration idle_;
  const absl::Duration lifetime_;
  const size_t max_sessions_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> by_hash_ ABSL_GUARDED_BY(mu_);  // SHA-256 of the token
};

// A cookie's value in a Cookie header ("a=1; b=2"), empty if absent.
std::string CookieValue(const std::string& header, const std::string& name);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_SESSIONS_H_
