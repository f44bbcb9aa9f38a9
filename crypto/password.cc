#include "crypto/password.h"

#include <liboath/oath.h>
#include <sodium.h>

#include <cstdlib>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace kpx::crypto {
namespace {

constexpr size_t kMaxPasswordBytes = 256;
constexpr int kHashesAtOnce = 2;
constexpr unsigned kTotpStep = 30;
constexpr unsigned kTotpDigits = 6;

// libsodium and liboath, initialised once per process.
bool Ready() {
  static const bool ready = [] { return sodium_init() >= 0 && oath_init() == OATH_OK; }();
  return ready;
}

// At most kHashesAtOnce Argon2id computations (64 MiB each) at a time.
class HashSlot {
 public:
  HashSlot() {
    absl::MutexLock l(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n < kHashesAtOnce; }, &busy_));
    ++busy_;
  }
  ~HashSlot() {
    absl::MutexLock l(&mu_);
    --busy_;
  }

 private:
  static absl::Mutex mu_;
  static int busy_ ABSL_GUARDED_BY(mu_);
};
absl::Mutex HashSlot::mu_(absl::kConstInit);
int HashSlot::busy_ = 0;

std::string PercentEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> HashPassword(std::string_view password) {
  if (!Ready()) return absl::InternalError("libsodium did not initialise");
  if (password.size() > kMaxPasswordBytes) {
    return absl::InvalidArgumentError("a password is at most 256 bytes");
  }
  char out[crypto_pwhash_STRBYTES];
  HashSlot slot;
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return absl::ResourceExhaustedError("not enough memory to hash a password");
  }
  return std::string(out);
}

bool CheckPassword(std::string_view password, const std::string& hash) {
  if (!Ready() || password.size() > kMaxPasswordBytes || hash.size() >= crypto_pwhash_STRBYTES ||
      hash.rfind("$argon2id$", 0) != 0) {
    return false;
  }
  HashSlot slot;
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

std::string RandomPassword(size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  Ready();
  std::string out;
  for (size_t i = 0; i < length; ++i) {
    out += kAlphabet[randombytes_uniform(sizeof(kAlphabet) - 1)];
  }
  return out;
}

std::string NewTotpSecret() {
  Ready();
  std::string secret(20, '\0');
  randombytes_buf(secret.data(), secret.size());
  return secret;
}

std::string TotpSecretBase32(const std::string& secret) {
  Ready();
  char* out = nullptr;
  size_t len = 0;
  if (oath_base32_encode(secret.data(), secret.size(), &out, &len) != OATH_OK) return "";
  std::string text(out, len);
  std::free(out);
  while (!text.empty() && text.back() == '=') text.pop_back();
  return text;
}

std::string TotpSecretFromBase32(const std::string& base32) {
  Ready();
  std::string padded = base32;
  while (padded.size() % 8 != 0) padded += '=';
  char* out = nullptr;
  size_t len = 0;
  if (oath_base32_decode(padded.data(), padded.size(), &out, &len) != OATH_OK) return "";
  std::string secret(out, len);
  std::free(out);
  return secret;
}

std::string TotpUri(const std::string& secret, const std::string& issuer,
                    const std::string& account) {
  return absl::StrCat("otpauth://totp/", PercentEncode(issuer), ":", PercentEncode(account),
                      "?secret=", TotpSecretBase32(secret), "&issuer=", PercentEncode(issuer),
                      "&algorithm=SHA1&digits=6&period=30");
}

absl::StatusOr<uint64_t> CheckTotp(const std::string& secret, std::string_view code,
                                   absl::Time now) {
  if (!Ready()) return absl::InternalError("liboath did not initialise");
  if (code.size() != kTotpDigits ||
      code.find_first_not_of("0123456789") != std::string_view::npos) {
    return absl::NotFoundError("the code is not six digits");
  }
  const std::string otp(code);
  int position = 0;
  uint64_t step = 0;
  const int rc = oath_totp_validate3(secret.data(), secret.size(), absl::ToTimeT(now), kTotpStep, 0,
                                     /*window=*/1, &position, &step, otp.c_str());
  if (rc < 0) return absl::NotFoundError("the code is wrong or out of date");
  return step;
}

std::string TotpCode(const std::string& secret, absl::Time now) {
  Ready();
  char otp[kTotpDigits + 1] = {0};
  if (oath_totp_generate(secret.data(), secret.size(), absl::ToTimeT(now), kTotpStep, 0,
                         kTotpDigits, otp) != OATH_OK) {
    return "";
  }
  return otp;
}

}  // namespace kpx::crypto
