#include "node/trust_chain.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kpx::node {

std::string TrustListSigningInput(std::string_view trust_list_bytes) {
  std::string input("kpx-trust-list-v1");
  input.push_back('\0');
  input.append(trust_list_bytes);
  return input;
}

absl::StatusOr<v1::SignedTrustList> SignTrustList(v1::SignedTrustList signed_list,
                                                  const crypto::PrivateKey& key) {
  absl::StatusOr<std::string> signature = key.Sign(TrustListSigningInput(signed_list.trust_list()));
  if (!signature.ok()) return signature.status();
  auto* sigs = signed_list.mutable_signatures();
  for (int i = sigs->size() - 1; i >= 0; --i) {
    if (sigs->Get(i).key_id() == key.key_id()) sigs->DeleteSubrange(i, 1);
  }
  v1::TrustListSignature* s = sigs->Add();
  s->set_key_id(key.key_id());
  s->set_signature(*std::move(signature));
  return signed_list;
}

SignatureCount CountSignatures(const TrustList& signers, const v1::SignedTrustList& candidate) {
  SignatureCount count;
  const std::string input = TrustListSigningInput(candidate.trust_list());
  std::set<std::string> counted;
  // Verifications are bounded by the publishers, however many signatures
  // come: at most two tries per publisher.
  std::map<std::string, int> tries;
  int looked_at = 0;
  for (const v1::TrustListSignature& sig : candidate.signatures()) {
    if (++looked_at > kMaxTrustListSignatures) {
      count.ignored.push_back(
          absl::StrCat("signatures beyond the first ", kMaxTrustListSignatures, " are ignored"));
      break;
    }
    const v1::TrustListPublisher* pub = signers.FindPublisher(sig.key_id());
    if (pub == nullptr) {
      count.ignored.push_back(absl::StrCat("key ", sig.key_id().substr(0, 64),
                                           " is no publisher of version ", signers.version()));
      continue;
    }
    if (counted.count(pub->key_id()) > 0 || ++tries[pub->key_id()] > 2) {
      count.ignored.push_back(absl::StrCat(pub->name(), " signed more than once (counted once)"));
      continue;
    }
    absl::StatusOr<crypto::PublicKey> key = crypto::PublicKey::FromPem(pub->public_key_pem());
    absl::Status ok = key.ok() ? key->Verify(input, sig.signature()) : key.status();
    if (!ok.ok()) {
      count.invalid.push_back(pub->name());
      continue;
    }
    counted.insert(pub->key_id());
    count.valid.push_back(pub->name());
  }
  return count;
}

absl::Status CheckSuccessor(const TrustList& current, const TrustList& next) {
  if (!current.governed()) {
    return absl::FailedPreconditionError(
        absl::StrCat("trust-list version ", current.version(),
                     " names no publishers: the next version is installed by each operator"));
  }
  if (next.version() != current.version() + 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("trust-list version ", next.version(), " does not follow version ",
                     current.version(), " (it must be ", current.version() + 1, ")"));
  }
  if (!next.governed()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "trust-list version ", next.version(), " names no publishers for the version after it"));
  }
  const SignatureCount count = CountSignatures(current, next.signed_list());
  if (count.valid.size() < current.proto().threshold()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "trust-list version ", next.version(), " is signed by ", count.valid.size(), " of the ",
        current.proto().threshold(), " publishers of version ", current.version(), " required",
        count.valid.empty() ? "" : absl::StrCat(" (", absl::StrJoin(count.valid, ", "), ")")));
  }
  return absl::OkStatus();
}

}  // namespace kpx::node
