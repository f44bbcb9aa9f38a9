#include "gateway/sessions.h"

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "crypto/crypto.h"

namespace kpx::gateway {
namespace {

std::string NewToken() { return absl::BytesToHexString(crypto::RandomBytes(32)); }

}  // namespace

Sessions::Sessions(absl::Duration idle, absl::Duration lifetime, size_t max_sessions)
    : idle_(idle), lifetime_(lifetime), max_sessions_(max_sessions) {}

void Sessions::Expire(absl::Time now) {
  for (auto it = by_hash_.begin(); it != by_hash_.end();) {
    it = now >= it->second.session.expires ? by_hash_.erase(it) : std::next(it);
  }
}

std::map<std::string, Sessions::Entry>::iterator Sessions::Oldest(const std::string& officer,
                                                                  size_t* count) {
  auto found = by_hash_.end();
  *count = 0;
  for (auto it = by_hash_.begin(); it != by_hash_.end(); ++it) {
    const Session& s = it->second.session;
    if (!officer.empty() && s.officer != officer) continue;
    ++*count;
    if (found == by_hash_.end()) {
      found = it;
      continue;
    }
    const Session& f = found->second.session;
    if (officer.empty() ? s.last_seen < f.last_seen : s.signed_in < f.signed_in) found = it;
  }
  return found;
}

void Sessions::Evict(const std::string& officer) {
  // Room for one more: the officer's oldest beyond kMaxPerOfficer - 1,
  // then the least recently used of all beyond max_sessions_ - 1.
  size_t n = 0;
  for (auto it = Oldest(officer, &n); n >= kMaxPerOfficer; it = Oldest(officer, &n)) {
    by_hash_.erase(it);
  }
  for (auto it = Oldest("", &n); n > 0 && n >= max_sessions_; it = Oldest("", &n)) {
    by_hash_.erase(it);
  }
}

Sessions::Opened Sessions::Open(const std::string& officer, uint64_t generation, absl::Time now) {
  Opened o;
  o.token = NewToken();
  o.session.officer = officer;
  o.session.generation = generation;
  o.session.csrf_token = NewToken();
  o.session.signed_in = now;
  o.session.last_seen = now;
  o.session.expires = std::min(now + idle_, now + lifetime_);
  absl::MutexLock l(&mu_);
  Expire(now);
  Evict(officer);
  by_hash_[crypto::Sha256(o.token)] = Entry{o.session};
  return o;
}

std::optional<Sessions::Session> Sessions::Find(const std::string& token, absl::Time now) {
  if (token.size() != 64) return std::nullopt;
  absl::MutexLock l(&mu_);
  auto it = by_hash_.find(crypto::Sha256(token));
  if (it == by_hash_.end()) return std::nullopt;
  Session& s = it->second.session;
  if (now >= s.expires) {
    by_hash_.erase(it);
    return std::nullopt;
  }
  s.last_seen = now;
  s.expires = std::min(now + idle_, s.signed_in + lifetime_);
  return s;
}

void Sessions::Close(const std::string& token) {
  absl::MutexLock l(&mu_);
  by_hash_.erase(crypto::Sha256(token));
}

size_t Sessions::size() const {
  absl::MutexLock l(&mu_);
  return by_hash_.size();
}

std::string CookieValue(const std::string& header, const std::string& name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, name) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

}  // namespace kpx::gateway
