// kpx::node::Keyring: the trust list in force and this node's signing
// keys, held together so that a reload swaps both at once.
//
// Each message is signed with the newest of the node's keys that the trust
// list says is valid at that moment (latest not_before), so a rotation
// happens by itself when the next key's window opens.
//
// Thread safety: every method may be called from any thread. The trust
// list is immutable and shared; Replace swaps the pointers under a lock.
#ifndef KPX_NODE_KEYRING_H_
#define KPX_NODE_KEYRING_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "node/envelope.h"
#include "node/trust_list.h"

namespace kpx::node {

class Keyring {
 public:
  // Fails, building nothing, if `participant` is not active at `now` on
  // `trust` or none of `keys` is one of its keys valid then.
  static absl::StatusOr<std::unique_ptr<Keyring>> Create(std::string participant,
                                                         std::shared_ptr<const TrustList> trust,
                                                         std::vector<crypto::PrivateKey> keys,
                                                         absl::Time now);

  const std::string& participant() const { return participant_; }

  // The trust list in force.
  std::shared_ptr<const TrustList> trust() const;
  // Replaces the trust list only (tests; the keys stay).
  void SetTrust(std::shared_ptr<const TrustList> trust);
  // Replaces the trust list and the keys together. Refuses, changing
  // nothing, if no key would be valid at `now`.
  absl::Status Replace(std::shared_ptr<const TrustList> trust, std::vector<crypto::PrivateKey> keys,
                       absl::Time now);

  // OK if one of `keys` is a key of this node's Participant valid at `now`
  // on `trust` (what Replace requires); FailedPrecondition otherwise.
  absl::Status CheckKeys(const TrustList& trust, const std::vector<crypto::PrivateKey>& keys,
                         absl::Time now) const;

  // The signer for a message created at `at`; FailedPrecondition if no key
  // of ours is valid then.
  absl::StatusOr<Signer> SignerAt(absl::Time at) const;

 private:
  Keyring(std::string participant, std::shared_ptr<const TrustList> trust,
          std::vector<crypto::PrivateKey> keys);

  const std::string participant_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TrustList> trust_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const std::vector<crypto::PrivateKey>> keys_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kpx::node

#endif  // KPX_NODE_KEYRING_H_
