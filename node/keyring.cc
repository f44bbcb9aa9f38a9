#include "node/keyring.h"

#include "absl/strings/str_cat.h"
#include "node/util.h"

namespace kpx::node {
namespace {

// When `key_id` of `p` starts being valid (InfinitePast if always).
absl::Time NotBefore(const v1::Participant& p, const std::string& key_id) {
  for (const v1::SigningKey& listed : p.signing_keys()) {
    if (listed.key_id() == key_id && IsSet(listed.not_before())) {
      return FromTimestamp(listed.not_before());
    }
  }
  return absl::InfinitePast();
}

// The newest of `keys` valid at `at` for `participant` on `trust`.
absl::StatusOr<const crypto::PrivateKey*> NewestValidKey(
    const std::vector<crypto::PrivateKey>& keys, const std::string& participant,
    const TrustList& trust, absl::Time at) {
  const crypto::PrivateKey* best = nullptr;
  absl::Time best_from = absl::InfinitePast();
  const v1::Participant* p = trust.Find(participant);
  for (const crypto::PrivateKey& k : keys) {
    if (p == nullptr || !trust.FindKey(participant, k.key_id(), at).ok()) continue;
    const absl::Time from = NotBefore(*p, k.key_id());
    if (best == nullptr || from > best_from) {
      best = &k;
      best_from = from;
    }
  }
  if (best == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("none of the ", keys.size(), " signing key(s) is a key of ", participant,
                     " valid at ", FormatRfc3339(at), " on the trust list"));
  }
  return best;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Keyring>> Keyring::Create(std::string participant,
                                                         std::shared_ptr<const TrustList> trust,
                                                         std::vector<crypto::PrivateKey> keys,
                                                         absl::Time now) {
  if (trust == nullptr || keys.empty()) {
    return absl::InvalidArgumentError("a node needs a trust list and a signing key");
  }
  if (absl::Status s = trust->CheckActive(participant, now); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("this node's Participant: ", s.message()));
  }
  if (absl::StatusOr<const crypto::PrivateKey*> k = NewestValidKey(keys, participant, *trust, now);
      !k.ok()) {
    return k.status();
  }
  return std::unique_ptr<Keyring>(
      new Keyring(std::move(participant), std::move(trust), std::move(keys)));
}

Keyring::Keyring(std::string participant, std::shared_ptr<const TrustList> trust,
                 std::vector<crypto::PrivateKey> keys)
    : participant_(std::move(participant)),
      trust_(std::move(trust)),
      keys_(std::make_shared<const std::vector<crypto::PrivateKey>>(std::move(keys))) {}

std::shared_ptr<const TrustList> Keyring::trust() const {
  absl::MutexLock l(&mu_);
  return trust_;
}

void Keyring::SetTrust(std::shared_ptr<const TrustList> trust) {
  absl::MutexLock l(&mu_);
  trust_ = std::move(trust);
}

absl::Status Keyring::Replace(std::shared_ptr<const TrustList> trust,
                              std::vector<crypto::PrivateKey> keys, absl::Time now) {
  if (trust == nullptr || keys.empty()) {
    return absl::InvalidArgumentError("a reload needs a trust list and a signing key");
  }
  absl::StatusOr<const crypto::PrivateKey*> k = NewestValidKey(keys, participant_, *trust, now);
  if (!k.ok()) return k.status();
  absl::MutexLock l(&mu_);
  trust_ = std::move(trust);
  keys_ = std::make_shared<const std::vector<crypto::PrivateKey>>(std::move(keys));
  return absl::OkStatus();
}

absl::Status Keyring::CheckKeys(const TrustList& trust, const std::vector<crypto::PrivateKey>& keys,
                                absl::Time now) const {
  return NewestValidKey(keys, participant_, trust, now).status();
}

absl::StatusOr<Signer> Keyring::SignerAt(absl::Time at) const {
  std::shared_ptr<const TrustList> trust;
  std::shared_ptr<const std::vector<crypto::PrivateKey>> keys;
  {
    absl::MutexLock l(&mu_);
    trust = trust_;
    keys = keys_;
  }
  absl::StatusOr<const crypto::PrivateKey*> k = NewestValidKey(*keys, participant_, *trust, at);
  if (!k.ok()) return k.status();
  return Signer(participant_, **k);
}

}  // namespace kpx::node
