// libFuzzer target: bytes as PEM / X.509, through every parser in crypto/
// that reads PEM from a file or a peer: certificates, certificate chains
// against a CA bundle, public and private keys.
//
// Input: the whole input is tried as each kind of PEM. If it contains the
// line "#CA\n", what precedes it is the leaf (plus intermediates) and what
// follows the CA bundle for VerifyCertificateChain; otherwise the input is
// verified against itself (a self-signed certificate).
#include <cstddef>
#include <cstdint>
#include <string>

#include "crypto/crypto.h"
#include "fuzz_util.h"

namespace {

using kpx::fuzz::AsView;
using kpx::fuzz::FixedNow;

void TryKeys(std::string_view pem) {
  if (absl::StatusOr<kpx::crypto::PrivateKey> key = kpx::crypto::PrivateKey::FromPem(pem);
      key.ok()) {
    // A key that parses must sign, and its own public half must verify.
    absl::StatusOr<std::string> sig = key->Sign("kpx fuzz");
    kpx::fuzz::Require(sig.ok(), "signing with a parsed key");
    kpx::fuzz::Require(key->public_key().Verify("kpx fuzz", *sig).ok(), "own signature");
    kpx::fuzz::Require(!key->ToPem().empty(), "private key round trip");
  }
  if (absl::StatusOr<kpx::crypto::PublicKey> pub = kpx::crypto::PublicKey::FromPem(pem); pub.ok()) {
    // A parsed public key re-encodes to a PEM that parses to the same key.
    absl::StatusOr<kpx::crypto::PublicKey> again = kpx::crypto::PublicKey::FromPem(pub->ToPem());
    kpx::fuzz::Require(again.ok() && again->key_id() == pub->key_id(), "public key round trip");
    (void)pub->Verify("kpx fuzz", "not a signature");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = AsView(data, size);
  (void)kpx::crypto::ParseCertificatePem(in);
  TryKeys(in);
  const size_t split = in.find("#CA\n");
  if (split == std::string_view::npos) {
    (void)kpx::crypto::VerifyCertificateChain(in, in, FixedNow());
  } else {
    (void)kpx::crypto::VerifyCertificateChain(in.substr(0, split), in.substr(split + 4),
                                              FixedNow());
  }
  return 0;
}
