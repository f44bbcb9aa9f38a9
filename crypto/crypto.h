// kpx/crypto: everything kpx needs from OpenSSL, and nothing about protobuf.
//
// Keys are Ed25519 (default) or ECDSA P-256 with SHA-256. Signatures are
// raw Ed25519 (64 bytes) or DER-encoded ECDSA. Key ids are the lowercase hex
// SHA-256 of the public key's SubjectPublicKeyInfo DER encoding.
//
// A PrivateKey is either held in memory (generated, or read from a PEM
// file) or kept in a PKCS#11 token (FromPkcs11Uri, crypto/pkcs11.h): both
// sign the same way and produce the same signature encoding, so callers
// need not know which. Every key is checked on load: its public and private
// halves must agree, and its key id is computed from the real public key.
//
// Thread safety: PrivateKey and PublicKey are immutable after construction;
// Sign and Verify may be called from any number of threads at once (each
// call uses its own EVP_MD_CTX; there is no global lock; a token key
// serialises its own calls into the token with a per-key mutex).
#ifndef KPX_CRYPTO_CRYPTO_H_
#define KPX_CRYPTO_CRYPTO_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace kpx::crypto {

class Pkcs11Signer;  // crypto/pkcs11.h

enum class Algorithm { kEd25519, kEcdsaP256 };

// "ed25519" / "ecdsa-p256".
std::string_view AlgorithmName(Algorithm a);

// Raw 32-byte SHA-256 digest.
std::string Sha256(std::string_view data);
// Lowercase hex of arbitrary bytes.
std::string HexEncode(std::string_view bytes);
// `n` cryptographically random bytes (RAND_bytes). Aborts the process if
// the RNG fails: there is no safe value to return instead.
std::string RandomBytes(size_t n);
// True if `a` and `b` are equal, in a time that depends on their lengths
// only (CRYPTO_memcmp): for comparing secrets such as tokens and codes.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

class PublicKey {
 public:
  // PEM "PUBLIC KEY" (SubjectPublicKeyInfo). Only Ed25519 and P-256 keys
  // are accepted; anything else is InvalidArgument.
  static absl::StatusOr<PublicKey> FromPem(std::string_view pem);
  // A raw 32-byte Ed25519 public key (RFC 8032 test vectors).
  static absl::StatusOr<PublicKey> FromRawEd25519(std::string_view raw);

  Algorithm algorithm() const { return algorithm_; }
  // Hex SHA-256 of the SubjectPublicKeyInfo DER.
  const std::string& key_id() const { return key_id_; }
  // Empty only if OpenSSL itself fails (out of memory).
  std::string ToPem() const;

  // OK if `signature` is a valid signature of `data` by this key;
  // Unauthenticated otherwise. (Internal only if OpenSSL itself fails, e.g.
  // out of memory; either way the signature is not accepted.)
  absl::Status Verify(std::string_view data, std::string_view signature) const;

 private:
  friend class PrivateKey;  // derives its public half through FromEvp

  PublicKey(std::shared_ptr<EVP_PKEY> key, Algorithm a);
  // Checks that `key` (public or private) is Ed25519 or named-curve P-256
  // and returns a PublicKey holding a public-only copy of it, so that a
  // PublicKey never carries private material.
  static absl::StatusOr<PublicKey> FromEvp(const EVP_PKEY* key);

  std::shared_ptr<EVP_PKEY> key_;
  Algorithm algorithm_;
  std::string key_id_;
};

class PrivateKey {
 public:
  static absl::StatusOr<PrivateKey> Generate(Algorithm a);
  // PEM "PRIVATE KEY" (PKCS#8, unencrypted) or "EC PRIVATE KEY".
  // InvalidArgument if the file's public key does not belong to its private
  // key (an EC key carries both), so that the key id always names the key
  // that actually signs.
  static absl::StatusOr<PrivateKey> FromPem(std::string_view pem);
  // A raw 32-byte Ed25519 seed (RFC 8032 test vectors).
  static absl::StatusOr<PrivateKey> FromRawEd25519(std::string_view seed);
  // A key pair in a PKCS#11 token, named by a URI as crypto/pkcs11.h
  // describes. The public key is read from the token's public key object
  // and the key id computed from it as for a file key; a test signature
  // made at load must verify under it. Errors as Pkcs11Signer::Open, or
  // InvalidArgument if the test signature does not verify. The module stays
  // loaded, and the session open, as long as any copy of the key lives.
  static absl::StatusOr<PrivateKey> FromPkcs11Uri(std::string_view uri);
  // What the node config names as a signing key: a PKCS#11 URI (starts
  // with "pkcs11:") or the path of a PEM file. Errors start with the
  // location (with any pin-value redacted).
  static absl::StatusOr<PrivateKey> Load(const std::string& file_or_uri);

  Algorithm algorithm() const { return algorithm_; }
  const PublicKey& public_key() const { return public_key_; }
  const std::string& key_id() const { return public_key_.key_id(); }
  // True for a key kept in a PKCS#11 token.
  bool in_token() const { return token_ != nullptr; }
  // PKCS#8 PEM. Handle with care: this is the secret. Empty if the key is
  // in a token (its secret never leaves it) or if OpenSSL itself fails
  // (out of memory).
  std::string ToPem() const;

  // Raw 64-byte Ed25519 or DER ECDSA (SHA-256) signature, for file and
  // token keys alike. A token key may fail with the token's error
  // (Unavailable if the token is gone, with the CKR_ name).
  absl::StatusOr<std::string> Sign(std::string_view data) const;

 private:
  PrivateKey(std::shared_ptr<EVP_PKEY> key, Algorithm a, PublicKey pub);
  // Takes ownership of `key` (non-null) and checks its type.
  static absl::StatusOr<PrivateKey> Adopt(EVP_PKEY* key);

  std::shared_ptr<EVP_PKEY> key_;              // null for a token key
  std::shared_ptr<const Pkcs11Signer> token_;  // null for an in-memory key
  Algorithm algorithm_;
  PublicKey public_key_;
};

// A parsed X.509 certificate.
struct CertificateInfo {
  std::string common_name;  // subject CN, empty if none
  std::string subject;      // one-line subject, RFC 2253
  absl::Time not_before;
  absl::Time not_after;
};

// The first certificate in `pem`. InvalidArgument if there is none, or if
// its subject has several CNs or a CN with a NUL byte (ambiguous names).
absl::StatusOr<CertificateInfo> ParseCertificatePem(std::string_view pem);

// OK if the first certificate in `leaf_pem` chains to one of the
// certificates in `ca_bundle_pem` and is valid at `now`; PermissionDenied
// with OpenSSL's reason otherwise. Further certificates in `leaf_pem` are
// used as untrusted intermediates. InvalidArgument if either input holds no
// certificate or a damaged one.
absl::Status VerifyCertificateChain(std::string_view leaf_pem, std::string_view ca_bundle_pem,
                                    absl::Time now);

// Reads a whole file; NotFound / PermissionDenied with the path in the message.
// Reads into the heap only, so it is safe on threads with small stacks.
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace kpx::crypto

#endif  // KPX_CRYPTO_CRYPTO_H_
