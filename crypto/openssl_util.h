// Internal to kpx/crypto: RAII owners and error helpers for OpenSSL objects,
// shared by crypto.cc and x509.cc. Not part of the API; do not include it
// from outside crypto/.
#ifndef KPX_CRYPTO_OPENSSL_UTIL_H_
#define KPX_CRYPTO_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/err.h>

#include <climits>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kpx::crypto::internal {

// unique_ptr deleter calling an OpenSSL free function, e.g.
// std::unique_ptr<BIO, Free<BIO_free>>.
template <auto FreeFn>
struct Free {
  template <typename T>
  void operator()(T* p) const {
    FreeFn(p);
  }
};

using BioPtr = std::unique_ptr<BIO, Free<BIO_free>>;

// Debian's Abseil is built with its own absl::string_view (not an alias of
// std::string_view), so std::string_view must be converted explicitly.
inline absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Pops the oldest error off this thread's OpenSSL error queue, renders it,
// and clears the rest, so that a stale error can never be blamed on a
// later, unrelated call.
inline std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "(no OpenSSL error recorded)";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

// `what`: <OpenSSL's reason>, as an InvalidArgument / Internal status.
inline absl::Status InvalidWithOpenSsl(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Absl(what), ": ", OpenSslError()));
}
inline absl::Status InternalWithOpenSsl(std::string_view what) {
  return absl::InternalError(absl::StrCat(Absl(what), ": ", OpenSslError()));
}

// A read-only memory BIO over `data` (no copy: `data` must outlive it).
// Null if `data` is too large for OpenSSL's int length or on OOM.
inline BioPtr MemBio(std::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) return nullptr;
  // An empty view may have a null data(); BIO_new_mem_buf wants a pointer.
  const char* p = data.empty() ? "" : data.data();
  return BioPtr(BIO_new_mem_buf(p, static_cast<int>(data.size())));
}

// Everything written so far to a memory BIO.
inline std::string BioContents(BIO* bio) {
  char* p = nullptr;
  long n = BIO_get_mem_data(bio, &p);
  return n > 0 ? std::string(p, static_cast<size_t>(n)) : std::string();
}

}  // namespace kpx::crypto::internal

#endif  // KPX_CRYPTO_OPENSSL_UTIL_H_
