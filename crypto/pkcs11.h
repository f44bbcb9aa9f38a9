// kpx/crypto: signing keys kept in a PKCS#11 token (an HSM, a smart card,
// SoftHSM2), named by a PKCS#11 URI (RFC 7512).
//
// A URI kpx accepts names one private key and the module that reaches it:
//
//   pkcs11:token=kpx-bw;object=kpx-signing
//     ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=/etc/kpx/token.pin
//
// Path attributes (before '?', separated by ';'): `token` (the token label,
// required), `object` (the key's CKA_LABEL) and/or `id` (its CKA_ID,
// percent-encoded bytes) — at least one of the two — and optionally
// `type=private`. Query attributes (after '?', separated by '&'):
// `module-path` (absolute path of the module's .so, required) and exactly
// one of `pin-source` (absolute path, or file: URI, of a file holding the
// user PIN; one trailing newline is ignored) or `pin-value` (the PIN itself;
// discouraged: it then sits in the config file). Values are percent-decoded.
// Any other attribute is refused, so that a typo cannot select another key.
//
// The token must hold, under the same label/id, the private key (CKO_PRIVATE_KEY)
// and its public key (CKO_PUBLIC_KEY with CKA_EC_PARAMS and CKA_EC_POINT):
// Ed25519 (CKK_EC_EDWARDS, signed with CKM_EDDSA) or P-256 (CKK_EC, signed
// with CKM_ECDSA over the SHA-256 of the data, re-encoded as DER so that
// the signature is exactly what a file key of the same type produces).
//
// Users normally go through crypto::PrivateKey::FromPkcs11Uri / Load; this
// header is for crypto.cc and tests.
//
// Threads: a Pkcs11Signer may be used from any number of threads; it holds
// one session, guarded by its own mutex (calls into the token are
// serialised per key). A module is loaded (dlopen + C_Initialize with
// CKF_OS_LOCKING_OK) once per module path and stays loaded while any
// signer uses it; the last one to go finalizes and unloads it.
#ifndef KPX_CRYPTO_PKCS11_H_
#define KPX_CRYPTO_PKCS11_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "crypto/crypto.h"

namespace kpx::crypto {

// True if `location` is a PKCS#11 URI ("pkcs11:...") rather than a file.
bool IsPkcs11Uri(std::string_view location);

// `uri` with the value of any pin-value attribute replaced by "***": safe
// to print in logs and error messages. Anything else is returned unchanged.
std::string RedactPkcs11Uri(std::string_view uri);

struct Pkcs11Uri {
  std::string token;        // token label
  std::string object;       // CKA_LABEL, empty if not given
  std::string id;           // CKA_ID (raw bytes), empty if not given
  std::string module_path;  // absolute path
  std::string pin_source;   // absolute path, empty if pin-value is used
  std::string pin_value;    // empty if pin-source is used
};

// Parses and checks `uri` as described above; InvalidArgument naming the
// problem otherwise (never echoing a PIN).
absl::StatusOr<Pkcs11Uri> ParsePkcs11Uri(std::string_view uri);

// One private key in a token, with its public key read out at open.
class Pkcs11Signer {
 public:
  // Loads the module (or shares it), finds the token by label, logs in as
  // the user and finds the key pair. Errors: InvalidArgument (unsupported
  // key, bad URI), NotFound (no such token or object), PermissionDenied
  // (wrong or locked PIN), Unavailable (module cannot be loaded, token
  // absent), Internal otherwise; PKCS#11 errors carry their CKR_ name.
  static absl::StatusOr<std::shared_ptr<Pkcs11Signer>> Open(const Pkcs11Uri& uri);
  ~Pkcs11Signer();
  Pkcs11Signer(const Pkcs11Signer&) = delete;
  Pkcs11Signer& operator=(const Pkcs11Signer&) = delete;

  Algorithm algorithm() const { return algorithm_; }
  // The key pair's public half, as built from CKA_EC_POINT (owned here).
  const EVP_PKEY* public_key() const { return public_key_.get(); }

  // Raw 64-byte Ed25519 or DER ECDSA signature of `data`. If the session
  // was lost (token removed and re-inserted, module restarted), reopens it
  // and logs in again once before giving up.
  absl::StatusOr<std::string> Sign(std::string_view data) const;

  struct State;  // module, session, handles; defined in pkcs11.cc

 private:
  Pkcs11Signer() = default;

  Algorithm algorithm_ = Algorithm::kEd25519;
  std::shared_ptr<EVP_PKEY> public_key_;
  std::unique_ptr<State> state_;
};

}  // namespace kpx::crypto

#endif  // KPX_CRYPTO_PKCS11_H_
