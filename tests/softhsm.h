// A SoftHSM2 token made at test time in its own temporary folder, with key
// pairs generated inside it through PKCS#11 (C_GenerateKeyPair), as an
// operator would with a real HSM. Fails the test (never skips) if SoftHSM2
// is missing: deploy/install-deps.sh installs it.
//
// Sets SOFTHSM2_CONF for the whole process (and for child kpxd processes)
// to the token's own softhsm2.conf; one SoftHsmToken at a time per process.
#ifndef KPX_TESTS_SOFTHSM_H_
#define KPX_TESTS_SOFTHSM_H_

#include <string>

#include "crypto/crypto.h"
#include "test_util.h"

namespace kpx::testing {

// Debian's SoftHSM2 module.
inline constexpr char kSoftHsmModule[] = "/usr/lib/softhsm/libsofthsm2.so";

class SoftHsmToken {
 public:
  static constexpr char kLabel[] = "kpx-test";
  static constexpr char kPin[] = "1234";
  static constexpr char kSoPin[] = "5678";

  // Writes softhsm2.conf, points SOFTHSM2_CONF at it and initializes a
  // token labelled kLabel with user PIN kPin (softhsm2-util --init-token).
  SoftHsmToken();
  ~SoftHsmToken();
  SoftHsmToken(const SoftHsmToken&) = delete;
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;

  const std::string& dir() const { return tmp_.path(); }
  // A file holding kPin (for pin-source=).
  std::string PinFile() const { return tmp_.Sub("user.pin"); }

  // Generates a key pair in the token: private key labelled `label` and
  // public key labelled `public_label` (the same unless a test splices two
  // pairs), both with CKA_ID `id`. The module is loaded and finalized
  // around the call, so nothing of it stays initialized in this process;
  // call it before any key from the token is loaded (C_Initialize would
  // find the module in use and the test fail).
  void Generate(crypto::Algorithm a, const std::string& label, const std::string& id,
                const std::string& public_label = "");

  // pkcs11:token=kpx-test;object=<label>?module-path=...&pin-source=<PinFile()>
  std::string Uri(const std::string& label) const;

 private:
  TempDir tmp_;
};

}  // namespace kpx::testing

#endif  // KPX_TESTS_SOFTHSM_H_
