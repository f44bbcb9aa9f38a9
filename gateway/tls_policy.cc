#include "gateway/tls_policy.h"

#include <openssl/bio.h>
#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"

namespace kpx::gateway {
namespace {

// The OpenSSL configuration kpx loads (see tls_policy.h). "Protocol" sets
// the SSL_OP_NO_* flags, which gRPC leaves alone; MinProtocol is there too
// for anything else in the process that does not set its own minimum.
constexpr char kOpenSslConfig[] =
    "openssl_conf = kpx_openssl\n"
    "[kpx_openssl]\n"
    "ssl_conf = kpx_ssl\n"
    "[kpx_ssl]\n"
    "system_default = kpx_tls\n"
    "[kpx_tls]\n"
    "Protocol = -SSLv3, -TLSv1, -TLSv1.1, -TLSv1.2\n"
    "MinProtocol = TLSv1.3\n";

std::string OpenSslError(const char* what) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  char buf[256] = "no OpenSSL error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  return absl::StrCat("TLS 1.3-only policy: ", what, ": ", buf);
}

absl::Status LoadConfig() {
  // Initialise OpenSSL (and its default configuration) first, so nothing
  // loads that later over what kpx sets here.
  if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, nullptr) != 1) {
    return absl::InternalError(OpenSslError("initialising OpenSSL"));
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(kOpenSslConfig, sizeof(kOpenSslConfig) - 1), &BIO_free);
  std::unique_ptr<CONF, decltype(&NCONF_free)> conf(NCONF_new(nullptr), &NCONF_free);
  if (bio == nullptr || conf == nullptr) return absl::InternalError(OpenSslError("out of memory"));
  long bad_line = 0;
  if (NCONF_load_bio(conf.get(), bio.get(), &bad_line) != 1) {
    return absl::InternalError(
        OpenSslError(absl::StrCat("parsing the configuration, line ", bad_line).c_str()));
  }
  if (CONF_modules_load(conf.get(), nullptr, 0) <= 0) {
    return absl::InternalError(OpenSslError("loading the configuration"));
  }
  return absl::OkStatus();
}

// Whether a context made now, with gRPC's own version range applied, and a
// connection made from it, refuse TLS 1.2 and older.
absl::Status CheckTookEffect() {
  constexpr uint64_t kOld =
      SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_TLSv1_2;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), &SSL_CTX_free);
  if (ctx == nullptr) return absl::InternalError(OpenSslError("creating a probe context"));
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
    return absl::InternalError(OpenSslError("setting the probe's versions"));
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  if (ssl == nullptr) return absl::InternalError(OpenSslError("creating a probe connection"));
  if ((SSL_CTX_get_options(ctx.get()) & kOld) != kOld ||
      (SSL_get_options(ssl.get()) & kOld) != kOld) {
    return absl::InternalError(
        "TLS 1.3-only policy did not take effect: a new TLS context still allows TLS 1.2");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EnforceTls13Only() {
  static std::once_flag once;
  static absl::Status* result = nullptr;  // never freed: read until exit
  std::call_once(once, [] {
    absl::Status s = LoadConfig();
    if (s.ok()) s = CheckTookEffect();
    result = new absl::Status(std::move(s));
  });
  return *result;
}

}  // namespace kpx::gateway
