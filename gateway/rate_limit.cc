#include "gateway/rate_limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "gateway/connection_gate.h"

namespace kpx::gateway {

bool AddressRateLimit::Allow(const std::string& remote_addr, absl::Time now) {
  const std::string client = AddressKey(remote_addr);
  absl::MutexLock l(&mu_);
  const absl::Time minute = absl::FromUnixSeconds(absl::ToUnixSeconds(now) / 60 * 60);
  if (minute != minute_) {
    minute_ = minute;
    tries_.clear();
    shared_tries_ = 0;
  }
  auto it = tries_.find(client);
  if (it == tries_.end()) {
    if (tries_.size() >= max_tracked_) return ++shared_tries_ <= 10 * per_minute_;
    it = tries_.emplace(client, 0).first;
  }
  return ++it->second <= per_minute_;
}

std::string AddressKey(const std::string& address) {
  sockaddr_storage addr{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    addr.ss_family = AF_INET6;
  } else if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    addr.ss_family = AF_INET;
  } else {
    return "other";
  }
  return ClientKey(addr);
}

}  // namespace kpx::gateway
