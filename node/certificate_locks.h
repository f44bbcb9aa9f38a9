// kpx::node::CertificateLocks: serializes changes to one certificate.
//
// A read-modify-write of a certificate record (read the record, decide,
// append the transition) must not interleave with another on the same
// certificate. CertificateLocks is 64 mutexes striped on the certificate
// number; changes to different certificates mostly take different stripes
// and share fsyncs through the ledger's group commit.
//
// For clang's -Wthread-safety, CertificateLocks is one capability: code
// that must run with a certificate locked is annotated
// ABSL_EXCLUSIVE_LOCKS_REQUIRED(locks), and a CertificateLock in scope is
// what satisfies it. (Which stripes are held is dynamic; the analysis
// checks that *some* CertificateLock is held, the numbers are the
// caller's to get right.)
//
// Thread safety: a CertificateLock may be taken on any thread; it locks
// its stripes in index order, so two threads locking overlapping sets of
// numbers cannot deadlock. Not reentrant: a thread must not hold two
// CertificateLocks at once.
#ifndef KPX_NODE_CERTIFICATE_LOCKS_H_
#define KPX_NODE_CERTIFICATE_LOCKS_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kpx::node {

class ABSL_LOCKABLE CertificateLocks {
 public:
  CertificateLocks() = default;
  CertificateLocks(const CertificateLocks&) = delete;
  CertificateLocks& operator=(const CertificateLocks&) = delete;

 private:
  friend class CertificateLock;
  static constexpr size_t kStripes = 64;
  absl::Mutex stripes_[kStripes];
};

// Holds the stripes of a set of certificate numbers for its lifetime.
class ABSL_SCOPED_LOCKABLE CertificateLock {
 public:
  CertificateLock(CertificateLocks& locks, const std::vector<std::string>& numbers)
      ABSL_EXCLUSIVE_LOCK_FUNCTION(locks);
  CertificateLock(CertificateLocks& locks, const std::string& number)
      ABSL_EXCLUSIVE_LOCK_FUNCTION(locks);
  ~CertificateLock() ABSL_UNLOCK_FUNCTION();

  CertificateLock(const CertificateLock&) = delete;
  CertificateLock& operator=(const CertificateLock&) = delete;

 private:
  std::vector<absl::Mutex*> held_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_CERTIFICATE_LOCKS_H_
