#include "crypto/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "crypto/openssl_util.h"
#include "crypto/pkcs11.h"

namespace kpx::crypto {
namespace {

using internal::BioContents;
using internal::BioPtr;
using internal::Free;
using internal::InternalWithOpenSsl;
using internal::InvalidWithOpenSsl;
using internal::MemBio;

using KeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX_free>>;

constexpr size_t kEd25519KeySize = 32;

// OpenSSL wants a non-null pointer even for zero bytes; an empty
// string_view may have a null data().
const unsigned char* Bytes(std::string_view s) {
  static const unsigned char kNothing = 0;
  return s.empty() ? &kNothing : reinterpret_cast<const unsigned char*>(s.data());
}

std::shared_ptr<EVP_PKEY> Share(KeyPtr key) { return std::shared_ptr<EVP_PKEY>(std::move(key)); }

// OpenSSL's default for an encrypted PEM is to prompt on the terminal,
// which would hang a daemon. kpx keys are never encrypted: refuse.
int NoPassphrase(char*, int, int, void*) { return -1; }

// For failures that leave no safe value to return (the RNG, SHA-256).
[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "kpx/crypto: %s failed: %s\n", what, internal::OpenSslError().c_str());
  std::abort();
}

// Ed25519 signs the message itself; ECDSA signs its SHA-256.
const EVP_MD* DigestFor(Algorithm a) { return a == Algorithm::kEd25519 ? nullptr : EVP_sha256(); }

// The Algorithm of `key`, or InvalidArgument if kpx does not accept it.
absl::StatusOr<Algorithm> Classify(const EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "ED25519")) return Algorithm::kEd25519;
  if (EVP_PKEY_is_a(key, "EC")) {
    // Explicit curve parameters are refused even when they spell out P-256:
    // they are a classic source of verification bugs (e.g. CVE-2020-0601).
    char buf[80];
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, buf, sizeof(buf), &len) !=
            1 ||
        std::string_view(buf, len) != OSSL_PKEY_EC_ENCODING_GROUP) {
      ERR_clear_error();
      return absl::InvalidArgumentError("EC key without a named curve; only P-256 is accepted");
    }
    if (EVP_PKEY_get_group_name(key, buf, sizeof(buf), &len) != 1) {
      return InvalidWithOpenSsl("EC key without a curve name");
    }
    // The name may come as "prime256v1" or as its NIST alias "P-256".
    int nid = OBJ_sn2nid(buf);
    if (nid == NID_undef) nid = EC_curve_nist2nid(buf);
    if (nid != NID_X9_62_prime256v1) {
      return absl::InvalidArgumentError(
          absl::StrCat("EC key on curve ", buf, "; only P-256 is accepted"));
    }
    return Algorithm::kEcdsaP256;
  }
  const char* type = EVP_PKEY_get0_type_name(key);
  return absl::InvalidArgumentError(absl::StrCat(
      type != nullptr ? type : "unknown", " key; only Ed25519 ", "and ECDSA P-256 are accepted"));
}

// DER SubjectPublicKeyInfo of `key` (its public half); empty on failure.
std::string SpkiDer(const EVP_PKEY* key) {
  int len = i2d_PUBKEY(key, nullptr);
  if (len <= 0) return std::string();
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_PUBKEY(key, &p) != len) return std::string();
  return der;
}

}  // namespace

std::string_view AlgorithmName(Algorithm a) {
  switch (a) {
    case Algorithm::kEd25519:
      return "ed25519";
    case Algorithm::kEcdsaP256:
      return "ecdsa-p256";
  }
  return "unknown";
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string Sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(Bytes(data), data.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    Fatal("SHA-256");
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(out.data());
  while (n > 0) {  // RAND_bytes takes an int count
    int chunk = static_cast<int>(std::min<size_t>(n, 1 << 20));
    if (RAND_bytes(p, chunk) != 1) Fatal("RAND_bytes");
    p += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return out;
}

// ---------------------------------------------------------------- PublicKey

PublicKey::PublicKey(std::shared_ptr<EVP_PKEY> key, Algorithm a)
    : key_(std::move(key)), algorithm_(a) {}

absl::StatusOr<PublicKey> PublicKey::FromEvp(const EVP_PKEY* key) {
  absl::StatusOr<Algorithm> algorithm = Classify(key);
  if (!algorithm.ok()) return algorithm.status();
  std::string der = SpkiDer(key);
  if (der.empty()) return InternalWithOpenSsl("encoding SubjectPublicKeyInfo");
  const unsigned char* p = Bytes(der);
  KeyPtr pub(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (pub == nullptr) {
    return InternalWithOpenSsl("decoding SubjectPublicKeyInfo");
  }
  PublicKey out(Share(std::move(pub)), *algorithm);
  out.key_id_ = HexEncode(Sha256(der));
  return out;
}

absl::StatusOr<PublicKey> PublicKey::FromPem(std::string_view pem) {
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return InvalidWithOpenSsl("public key PEM too large");
  KeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) return InvalidWithOpenSsl("public key PEM");
  return FromEvp(key.get());
}

absl::StatusOr<PublicKey> PublicKey::FromRawEd25519(std::string_view raw) {
  if (raw.size() != kEd25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw Ed25519 public key must be 32 bytes, got ", raw.size()));
  }
  KeyPtr key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, Bytes(raw), raw.size()));
  if (key == nullptr) return InvalidWithOpenSsl("raw Ed25519 public key");
  return FromEvp(key.get());
}

std::string PublicKey::ToPem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (key_ == nullptr || bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key_.get()) != 1) {
    ERR_clear_error();
    return std::string();
  }
  return BioContents(bio.get());
}

absl::Status PublicKey::Verify(std::string_view data, std::string_view signature) const {
  if (key_ == nullptr) return absl::FailedPreconditionError("empty PublicKey");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, DigestFor(algorithm_), nullptr, key_.get()) != 1) {
    return InternalWithOpenSsl("EVP_DigestVerifyInit");
  }
  // Only 1 is success. 0 is a wrong signature and <0 one OpenSSL cannot
  // even parse (bad DER, wrong length); to the caller both are forgeries.
  int rc =
      EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(data), data.size());
  ERR_clear_error();
  if (rc != 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        "bad ", internal::Absl(AlgorithmName(algorithm_)), " signature for key ", key_id_));
  }
  return absl::OkStatus();
}

// --------------------------------------------------------------- PrivateKey

PrivateKey::PrivateKey(std::shared_ptr<EVP_PKEY> key, Algorithm a, PublicKey pub)
    : key_(std::move(key)), algorithm_(a), public_key_(std::move(pub)) {}

absl::StatusOr<PrivateKey> PrivateKey::Adopt(EVP_PKEY* key) {
  std::shared_ptr<EVP_PKEY> owned = Share(KeyPtr(key));
  absl::StatusOr<PublicKey> pub = PublicKey::FromEvp(key);
  if (!pub.ok()) return pub.status();
  Algorithm a = pub->algorithm();
  return PrivateKey(std::move(owned), a, *std::move(pub));
}

absl::StatusOr<PrivateKey> PrivateKey::Generate(Algorithm a) {
  EVP_PKEY* key = nullptr;
  switch (a) {
    case Algorithm::kEd25519:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
    case Algorithm::kEcdsaP256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    default:
      return absl::InvalidArgumentError("unknown algorithm");
  }
  if (key == nullptr) return InternalWithOpenSsl("key generation");
  return Adopt(key);
}

absl::StatusOr<PrivateKey> PrivateKey::FromPem(std::string_view pem) {
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return InvalidWithOpenSsl("private key PEM too large");
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) return InvalidWithOpenSsl("private key PEM");
  // An EC key file carries its public point beside the private scalar; if
  // they disagree (a damaged or spliced file) every signature would fail
  // to verify under the key id derived from that point. Found by fuzz_pem.
  std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX_free>> ctx(
      EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (ctx == nullptr) return InternalWithOpenSsl("EVP_PKEY_CTX_new_from_pkey");
  if (EVP_PKEY_pairwise_check(ctx.get()) != 1) {
    return InvalidWithOpenSsl("private key PEM: public and private halves do not match");
  }
  return Adopt(key.release());
}

absl::StatusOr<PrivateKey> PrivateKey::FromRawEd25519(std::string_view seed) {
  if (seed.size() != kEd25519KeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw Ed25519 seed must be 32 bytes, got ", seed.size()));
  }
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, Bytes(seed), seed.size());
  if (key == nullptr) return InvalidWithOpenSsl("raw Ed25519 seed");
  return Adopt(key);
}

std::string PrivateKey::ToPem() const {
  // A secure-memory BIO: its buffers are wiped when grown and when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (key_ == nullptr || bio == nullptr ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    ERR_clear_error();
    return std::string();
  }
  return BioContents(bio.get());
}

absl::StatusOr<PrivateKey> PrivateKey::FromPkcs11Uri(std::string_view uri) {
  absl::StatusOr<Pkcs11Uri> parsed = ParsePkcs11Uri(uri);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<std::shared_ptr<Pkcs11Signer>> signer = Pkcs11Signer::Open(*parsed);
  if (!signer.ok()) return signer.status();
  absl::StatusOr<PublicKey> pub = PublicKey::FromEvp((*signer)->public_key());
  if (!pub.ok()) return pub.status();
  PrivateKey key(nullptr, pub->algorithm(), *std::move(pub));
  key.token_ = *std::move(signer);
  // The token's public key object is only a label away from the private
  // one: prove they are halves of one pair before trusting the key id.
  const std::string probe = absl::StrCat("kpx key check ", HexEncode(RandomBytes(16)));
  absl::StatusOr<std::string> sig = key.Sign(probe);
  if (!sig.ok()) return sig.status();
  if (!key.public_key().Verify(probe, *sig).ok()) {
    return absl::InvalidArgumentError(
        "PKCS#11: the token's public key object does not match its private key");
  }
  return key;
}

absl::StatusOr<PrivateKey> PrivateKey::Load(const std::string& file_or_uri) {
  absl::StatusOr<PrivateKey> key;
  if (IsPkcs11Uri(file_or_uri)) {
    key = FromPkcs11Uri(file_or_uri);
  } else {
    absl::StatusOr<std::string> pem = ReadFile(file_or_uri);
    if (!pem.ok()) return pem.status();  // names the file already
    key = FromPem(*pem);
  }
  if (!key.ok()) {
    return absl::Status(key.status().code(),
                        absl::StrCat(RedactPkcs11Uri(file_or_uri), ": ", key.status().message()));
  }
  return key;
}

absl::StatusOr<std::string> PrivateKey::Sign(std::string_view data) const {
  if (token_ != nullptr) return token_->Sign(data);
  if (key_ == nullptr) return absl::FailedPreconditionError("empty PrivateKey");
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, DigestFor(algorithm_), nullptr, key_.get()) != 1) {
    return InternalWithOpenSsl("EVP_DigestSignInit");
  }
  // The first call only sizes the output: exactly 64 bytes for Ed25519, an
  // upper bound for DER-encoded ECDSA, whose length varies.
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, Bytes(data), data.size()) != 1) {
    return InternalWithOpenSsl("EVP_DigestSign");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, Bytes(data),
                     data.size()) != 1) {
    return InternalWithOpenSsl("EVP_DigestSign");
  }
  sig.resize(len);
  return sig;
}

}  // namespace kpx::crypto
