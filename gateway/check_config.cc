#include "gateway/check_config.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "crypto/pkcs11.h"
#include "node/config.h"
#include "node/keyring.h"
#include "node/trust_list.h"

namespace kpx::gateway {
namespace {

using Problems = std::vector<std::string>;

// `field PATH: message`, naming the file once even if the message does too.
std::string About(const std::string& field, const std::string& path, absl::string_view message) {
  if (absl::StrContains(message, path)) return absl::StrCat(field, ": ", message);
  return absl::StrCat(field, " ", path, ": ", message);
}

// The file's content, or a problem.
std::optional<std::string> Read(const std::string& field, const std::string& path, Problems* out) {
  absl::StatusOr<std::string> text = crypto::ReadFile(path);
  if (!text.ok()) {
    out->push_back(About(field, path, text.status().message()));
    return std::nullopt;
  }
  return *std::move(text);
}

// True if the PEM private key `key` belongs to the PEM certificate `cert`.
bool KeyMatchesCertificate(const std::string& cert, const std::string& key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> cb(BIO_new_mem_buf(cert.data(), cert.size()), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> kb(BIO_new_mem_buf(key.data(), key.size()), BIO_free);
  if (!cb || !kb) return false;
  std::unique_ptr<X509, decltype(&X509_free)> x(
      PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr), X509_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(
      PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  return x && k && X509_check_private_key(x.get(), k.get()) == 1;
}

void CheckTls(const v1::NodeConfig& c, absl::Time now, Problems* out) {
  std::optional<std::string> cert = Read("tls_cert_file", c.tls_cert_file(), out);
  std::optional<std::string> key = Read("tls_key_file", c.tls_key_file(), out);
  if (cert) {
    absl::StatusOr<crypto::CertificateInfo> info = crypto::ParseCertificatePem(*cert);
    if (!info.ok()) {
      out->push_back(About("tls_cert_file", c.tls_cert_file(), info.status().message()));
      cert.reset();
    } else if (info->not_after < now) {
      out->push_back(About("tls_cert_file", c.tls_cert_file(), "the certificate has expired"));
    }
  }
  if (cert && key && !KeyMatchesCertificate(*cert, *key)) {
    out->push_back(About("tls_key_file", c.tls_key_file(),
                         absl::StrCat("not the private key of ", c.tls_cert_file())));
  }
  if (std::optional<std::string> ca =
          Read("authority_client_ca_file", c.authority_client_ca_file(), out)) {
    if (absl::StatusOr<crypto::CertificateInfo> info = crypto::ParseCertificatePem(*ca);
        !info.ok()) {
      out->push_back(
          About("authority_client_ca_file", c.authority_client_ca_file(), info.status().message()));
    }
  }
}

// The signing keys that load; a problem for each that does not.
std::vector<crypto::PrivateKey> SigningKeys(const v1::NodeConfig& c, Problems* out) {
  std::vector<std::pair<std::string, std::string>> files = {
      {"signing_key_file", c.signing_key_file()}};
  for (const std::string& f : c.additional_signing_key_files()) {
    files.emplace_back("additional_signing_key_files", f);
  }
  std::vector<crypto::PrivateKey> keys;
  for (const auto& [field, location] : files) {
    // A PEM file or a PKCS#11 URI (the token is opened and a test signature
    // made, as the node will at start). The message names the location,
    // with any pin-value redacted.
    absl::StatusOr<crypto::PrivateKey> key = crypto::PrivateKey::Load(location);
    if (!key.ok()) {
      out->push_back(About(field, crypto::RedactPkcs11Uri(location), key.status().message()));
    } else {
      keys.push_back(*std::move(key));
    }
  }
  return keys;
}

void CheckTrust(const v1::NodeConfig& c, const std::vector<crypto::PrivateKey>& keys,
                bool all_keys_read, absl::Time now, Problems* out) {
  absl::StatusOr<std::shared_ptr<const node::TrustList>> trust =
      node::TrustList::FromTextFile(c.trust_list_file());
  if (!trust.ok()) {
    out->push_back(About("trust_list_file", c.trust_list_file(), trust.status().message()));
    return;
  }
  if (absl::Status s = (*trust)->CheckActive(c.participant(), now); !s.ok()) {
    out->push_back(About("trust_list_file", c.trust_list_file(), s.message()));
    return;
  }
  if (!all_keys_read && keys.empty()) return;  // already reported
  // The check the node makes at start: one of the keys valid now.
  if (absl::StatusOr<std::unique_ptr<node::Keyring>> ring =
          node::Keyring::Create(c.participant(), *trust, keys, now);
      !ring.ok()) {
    out->push_back(
        absl::StrCat("signing keys: ", ring.status().message(), " (", c.trust_list_file(), ")"));
  }
}

void CheckAddress(const std::string& field, const std::string& address, bool may_be_off,
                  Problems* out) {
  if (may_be_off && address == "off") return;
  const size_t colon = address.rfind(':');
  uint32_t port = 0;
  const bool ok = colon != std::string::npos && colon > 0 && colon + 1 < address.size() &&
                  address.find_first_not_of("0123456789", colon + 1) == std::string::npos &&
                  absl::SimpleAtoi(address.substr(colon + 1), &port) && port <= 65535;
  if (!ok) {
    out->push_back(absl::StrCat(field, " '", address, "': not host:port with a port 0-65535",
                                may_be_off ? " (or \"off\")" : ""));
  }
}

void CheckDataDir(const std::string& dir, Problems* out) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path data(dir);
  if (fs::exists(data, ec)) {
    if (!fs::is_directory(data, ec)) {
      out->push_back(absl::StrCat("data_dir ", dir, ": not a folder"));
    } else if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      out->push_back(absl::StrCat("data_dir ", dir, ": not writable"));
    }
    return;
  }
  const fs::path parent = data.parent_path();
  if (!fs::is_directory(parent, ec)) {
    out->push_back(
        absl::StrCat("data_dir ", dir, ": parent folder ", parent.string(), " does not exist"));
  } else if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    out->push_back(
        absl::StrCat("data_dir ", dir, ": parent folder ", parent.string(), " is not writable"));
  }
}

}  // namespace

std::vector<std::string> CheckConfig(const std::string& path, absl::Time now) {
  Problems out;
  absl::StatusOr<v1::NodeConfig> config = node::LoadConfig(path);
  if (!config.ok()) return {std::string(config.status().message())};
  CheckTls(*config, now, &out);
  const size_t before = out.size();
  std::vector<crypto::PrivateKey> keys = SigningKeys(*config, &out);
  CheckTrust(*config, keys, out.size() == before, now, &out);
  CheckAddress("peer_listen", config->peer_listen(), false, &out);
  CheckAddress("authority_listen", config->authority_listen(), false, &out);
  CheckAddress("metrics_listen", config->metrics_listen(), true, &out);
  CheckAddress("console_listen", config->console_listen(), true, &out);
  CheckDataDir(config->data_dir(), &out);
  return out;
}

}  // namespace kpx::gateway
