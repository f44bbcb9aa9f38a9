#include "node/certificate_locks.h"

#include <set>

#include "absl/hash/hash.h"

namespace kpx::node {

// The analysis cannot follow a dynamic set of mutexes; the constructor and
// destructor are the only places stripes are locked and unlocked.
CertificateLock::CertificateLock(CertificateLocks& locks, const std::vector<std::string>& numbers)
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  std::set<size_t> stripes;
  for (const std::string& n : numbers) {
    stripes.insert(absl::Hash<std::string>()(n) % CertificateLocks::kStripes);
  }
  for (size_t i : stripes) {
    locks.stripes_[i].Lock();
    held_.push_back(&locks.stripes_[i]);
  }
}

CertificateLock::CertificateLock(CertificateLocks& locks,
                                 const std::string& number) ABSL_NO_THREAD_SAFETY_ANALYSIS
    : CertificateLock(locks, std::vector<std::string>{number}) {}

CertificateLock::~CertificateLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (auto it = held_.rbegin(); it != held_.rend(); ++it) (*it)->Unlock();
}

}  // namespace kpx::node
