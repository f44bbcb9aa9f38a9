#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "crypto/openssl_util.h"

namespace kpx::crypto {
namespace {

using internal::BioContents;
using internal::BioPtr;
using internal::Free;
using internal::InternalWithOpenSsl;
using internal::InvalidWithOpenSsl;
using internal::MemBio;

using X509Ptr = std::unique_ptr<X509, Free<X509_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX_free>>;

struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

struct FileClose {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// Every certificate in `pem`, in order. A damaged PEM block is an error
// rather than silently skipped: a corrupted CA bundle should fail loudly,
// not quietly lose a CA.
absl::StatusOr<std::vector<X509Ptr>> ReadCertificates(std::string_view pem, std::string_view what) {
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return InvalidWithOpenSsl(absl::StrCat(internal::Absl(what), " too large"));
  std::vector<X509Ptr> certs;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    certs.push_back(std::move(cert));
  }
  // Running out of input is reported as "no start line"; anything else
  // means a block we could not decode.
  unsigned long err = ERR_peek_last_error();
  if (ERR_GET_LIB(err) != ERR_LIB_PEM || ERR_GET_REASON(err) != PEM_R_NO_START_LINE) {
    return InvalidWithOpenSsl(what);
  }
  ERR_clear_error();
  if (certs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(internal::Absl(what), ": no certificate"));
  }
  return certs;
}

absl::StatusOr<absl::Time> ToTime(const ASN1_TIME* t) {
  struct tm tm = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    return InvalidWithOpenSsl("certificate validity time");
  }
  return absl::FromCivil(absl::CivilSecond(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                           tm.tm_min, tm.tm_sec),
                         absl::UTCTimeZone());
}

// The subject's CN in UTF-8, or "" if it has none.
absl::StatusOr<std::string> CommonName(const X509_NAME* name) {
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return std::string();
  // With two CNs, which one names the peer would be up to whoever reads
  // it; refuse rather than guess.
  if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) {
    return absl::InvalidArgumentError("certificate subject has several CNs");
  }
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return InvalidWithOpenSsl("certificate CN");
  std::string cn(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  // "node-a\0.evil" would read as "node-a" to anything C-string based.
  if (cn.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("certificate CN contains a NUL byte");
  }
  return cn;
}

}  // namespace

absl::StatusOr<CertificateInfo> ParseCertificatePem(std::string_view pem) {
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return InvalidWithOpenSsl("certificate PEM too large");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) return InvalidWithOpenSsl("certificate PEM");

  CertificateInfo info;
  const X509_NAME* subject = X509_get_subject_name(cert.get());
  absl::StatusOr<std::string> cn = CommonName(subject);
  if (!cn.ok()) return cn.status();
  info.common_name = *std::move(cn);

  BioPtr out(BIO_new(BIO_s_mem()));
  if (out == nullptr || X509_NAME_print_ex(out.get(), subject, 0, XN_FLAG_RFC2253) < 0) {
    return InternalWithOpenSsl("printing certificate subject");
  }
  info.subject = BioContents(out.get());

  absl::StatusOr<absl::Time> t = ToTime(X509_get0_notBefore(cert.get()));
  if (!t.ok()) return t.status();
  info.not_before = *t;
  t = ToTime(X509_get0_notAfter(cert.get()));
  if (!t.ok()) return t.status();
  info.not_after = *t;
  return info;
}

absl::Status VerifyCertificateChain(std::string_view leaf_pem, std::string_view ca_bundle_pem,
                                    absl::Time now) {
  absl::StatusOr<std::vector<X509Ptr>> chain = ReadCertificates(leaf_pem, "leaf certificate");
  if (!chain.ok()) return chain.status();
  absl::StatusOr<std::vector<X509Ptr>> cas = ReadCertificates(ca_bundle_pem, "CA bundle");
  if (!cas.ok()) return cas.status();

  StorePtr store(X509_STORE_new());
  if (store == nullptr) return InternalWithOpenSsl("X509_STORE_new");
  for (const X509Ptr& ca : *cas) {
    // The store takes its own reference.
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) {
      return InternalWithOpenSsl("X509_STORE_add_cert");
    }
  }
  // Anything after the leaf may help build the path but is not trusted.
  X509StackPtr untrusted(sk_X509_new_null());
  if (untrusted == nullptr) return InternalWithOpenSsl("sk_X509_new_null");
  for (size_t i = 1; i < chain->size(); ++i) {
    X509Ptr& cert = (*chain)[i];
    if (sk_X509_push(untrusted.get(), cert.get()) <= 0) {
      return InternalWithOpenSsl("sk_X509_push");
    }
    cert.release();  // now owned by `untrusted`
  }

  X509* leaf = chain->front().get();
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (ctx == nullptr || X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get()) != 1) {
    return InternalWithOpenSsl("X509_STORE_CTX_init");
  }
  // Validity is judged at the caller's `now`, not the wall clock, so that
  // callers (and tests) control time. This also sets USE_CHECK_TIME.
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), absl::ToTimeT(now));
  int rc = X509_verify_cert(ctx.get());
  if (rc == 1) return absl::OkStatus();
  int err = X509_STORE_CTX_get_error(ctx.get());
  int depth = X509_STORE_CTX_get_error_depth(ctx.get());
  ERR_clear_error();
  // rc < 0 is an internal failure whose reason may be X509_V_OK; refuse
  // all the same.
  return absl::PermissionDeniedError(absl::StrCat("certificate chain refused at depth ", depth,
                                                  ": ", X509_verify_cert_error_string(err)));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  // "e": O_CLOEXEC, so the descriptor never leaks into a child process.
  std::unique_ptr<std::FILE, FileClose> f(std::fopen(path.c_str(), "rbe"));
  if (f == nullptr) return absl::ErrnoToStatus(errno, path);
  // Reads straight into the string's heap buffer, never through a large
  // stack buffer: callers include threads kpx does not own and whose
  // stacks are small (the metrics server's, about 100 KiB).
  constexpr size_t kChunk = 1 << 16;
  std::string out;
  for (;;) {
    const size_t have = out.size();
    out.resize(have + kChunk);
    const size_t n = std::fread(out.data() + have, 1, kChunk, f.get());
    out.resize(have + n);
    if (n < kChunk) break;
  }
  if (std::ferror(f.get())) return absl::ErrnoToStatus(errno, path);
  return out;
}

}  // namespace kpx::crypto
