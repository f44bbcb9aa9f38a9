// Signed trust-list versions: how a version is signed, and whether one may
// follow another.
//
// Version n+1 is in force only if at least `threshold` of the publishers
// named in version n signed its exact bytes (TrustListSignature: over
// "kpx-trust-list-v1" || 0x00 || bytes). A version that names no
// publishers is managed by hand: no signed version can follow it, and an
// operator installs each one (TrustBook, trust_book.h).
//
// Pure functions; thread-safe.
#ifndef KPX_NODE_TRUST_CHAIN_H_
#define KPX_NODE_TRUST_CHAIN_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/crypto.h"
#include "kpx/v1/config.pb.h"
#include "node/trust_list.h"

namespace kpx::node {

// At most this many signatures are looked at on one version.
inline constexpr int kMaxTrustListSignatures = 64;

// The bytes a publisher signs for `trust_list_bytes`.
std::string TrustListSigningInput(std::string_view trust_list_bytes);

// `signed_list` with `key`'s signature added (one made before by the same
// key is replaced). Fails only if the key cannot sign (a token error).
absl::StatusOr<v1::SignedTrustList> SignTrustList(v1::SignedTrustList signed_list,
                                                  const crypto::PrivateKey& key);

// What the publishers of `signers` made of `candidate`'s signatures.
struct SignatureCount {
  std::vector<std::string> valid;    // names of the publishers whose signature verifies
  std::vector<std::string> invalid;  // publishers with a signature that does not verify
  std::vector<std::string> ignored;  // one line per other signature, and why it is not counted
};
SignatureCount CountSignatures(const TrustList& signers, const v1::SignedTrustList& candidate);

// OK if `next` may follow `current`: current names publishers, next is
// version current + 1 and names publishers too, and at least current's
// threshold of them signed next. A signature that does not verify is not
// counted, and refuses nothing by itself: the signatures travel beside the
// signed bytes, so a peer passing a version on could otherwise spoil it.
// FailedPrecondition saying which rule fails otherwise.
absl::Status CheckSuccessor(const TrustList& current, const TrustList& next);

}  // namespace kpx::node

#endif  // KPX_NODE_TRUST_CHAIN_H_
