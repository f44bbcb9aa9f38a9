// Officers' passwords and second factors.
//
// Passwords are hashed with Argon2id (libsodium's crypto_pwhash_str, its
// "interactive" cost: 2 passes over 64 MiB, about 0.1 s on one core); the
// stored string names the algorithm, its cost and a random salt, so a
// later, higher cost still verifies older hashes. At most two hashes are
// computed at once in the process (each holds 64 MiB), whoever asks: a
// flood of sign-ins waits, it does not exhaust memory.
//
// Second factors are TOTP codes (RFC 6238: HMAC-SHA-1, 30 s steps, six
// digits, what every authenticator app does) through liboath.
//
// Thread-safe.
#ifndef KPX_CRYPTO_PASSWORD_H_
#define KPX_CRYPTO_PASSWORD_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kpx::crypto {

// An Argon2id hash of `password` (at most 256 bytes), as crypto_pwhash_str
// writes it ("$argon2id$v=19$m=65536,t=2,p=1$...").
absl::StatusOr<std::string> HashPassword(std::string_view password);
// True if `password` hashes to `hash`; false for a wrong password or a
// hash that is not an Argon2id string.
bool CheckPassword(std::string_view password, const std::string& hash);

// A random password of `length` characters from an alphabet without
// look-alikes (no 0/O, 1/l/I).
std::string RandomPassword(size_t length = 16);

// A fresh 20-byte TOTP secret.
std::string NewTotpSecret();
// Its base32 form, as authenticator apps take it (no padding).
std::string TotpSecretBase32(const std::string& secret);
// The secret from its base32 form (what an authenticator app is given);
// empty if it is not base32.
std::string TotpSecretFromBase32(const std::string& base32);
// The otpauth:// URI an authenticator app reads from a QR code.
std::string TotpUri(const std::string& secret, const std::string& issuer,
                    const std::string& account);

// The time step (30 s since the Unix epoch) at which `code` is valid for
// `secret`, looking one step either side of `now`; NotFound if it is not.
absl::StatusOr<uint64_t> CheckTotp(const std::string& secret, std::string_view code,
                                   absl::Time now);
// The code for `secret` at `now` (tests, and the quickstart's demo officer).
std::string TotpCode(const std::string& secret, absl::Time now);

}  // namespace kpx::crypto

#endif  // KPX_CRYPTO_PASSWORD_H_
