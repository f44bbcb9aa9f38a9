#include "gateway/tls.h"

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "gateway/tls_policy.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace kpx::gateway {

absl::StatusOr<TlsIdentity> LoadTlsIdentity(const std::string& cert_file,
                                            const std::string& key_file) {
  absl::StatusOr<std::string> cert = crypto::ReadFile(cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = crypto::ReadFile(key_file);
  if (!key.ok()) return key.status();
  if (absl::StatusOr<crypto::CertificateInfo> info = crypto::ParseCertificatePem(*cert);
      !info.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(cert_file, ": ", info.status().message()));
  }
  return TlsIdentity{*std::move(cert), *std::move(key)};
}

std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(
    const TlsIdentity& identity, const std::string& client_roots_pem) {
  (void)EnforceTls13Only();  // before the SSL_CTX exists; callers check it
  grpc::SslServerCredentialsOptions opts(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  opts.pem_root_certs = client_roots_pem;
  opts.pem_key_cert_pairs.push_back({identity.private_key_pem, identity.cert_chain_pem});
  return grpc::SslServerCredentials(opts);
}

std::shared_ptr<grpc::ServerCredentials> WatchedMutualTlsServerCredentials(
    const std::string& key_file, const std::string& cert_file, const std::string& roots_file) {
  (void)EnforceTls13Only();  // before the SSL_CTX exists; callers check it
  constexpr unsigned kRefreshSeconds = 2;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      key_file, cert_file, roots_file, kRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions opts(provider);
  opts.watch_root_certs();
  opts.watch_identity_key_cert_pairs();
  opts.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  return grpc::experimental::TlsServerCredentials(opts);
}

std::shared_ptr<grpc::Channel> MutualTlsChannel(const std::string& endpoint,
                                                const TlsIdentity& identity,
                                                const std::string& server_roots_pem,
                                                const std::string& server_name) {
  (void)EnforceTls13Only();  // before the SSL_CTX exists; callers check it
  grpc::SslCredentialsOptions opts;
  opts.pem_root_certs = server_roots_pem;
  opts.pem_private_key = identity.private_key_pem;
  opts.pem_cert_chain = identity.cert_chain_pem;
  grpc::ChannelArguments args;
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  // Keep the one channel per peer alive across idle periods.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  // gRPC's own reconnect backoff grows to 120 s by default, failing calls
  // fast all that time even after the peer is back. The outbox already
  // paces retries with its own backoff, so keep reconnects prompt.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(endpoint, grpc::SslCredentials(opts), args);
}

namespace {

// Every value of property `name` the authenticated peer proved; none if it
// did not authenticate.
std::vector<std::string> Properties(const grpc::ServerContext& ctx, const char* name) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return {};
  std::vector<std::string> out;
  for (const grpc::string_ref& v : auth->FindPropertyValues(name))
    out.emplace_back(v.data(), v.size());
  return out;
}

}  // namespace

std::string PeerCertificatePem(const grpc::ServerContext& ctx) {
  std::vector<std::string> pem = Properties(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
  return pem.size() == 1 ? pem.front() : "";
}

absl::StatusOr<std::string> PeerCommonName(const grpc::ServerContext& ctx) {
  const std::vector<std::string> cns = Properties(ctx, GRPC_X509_CN_PROPERTY_NAME);
  const std::string pem = PeerCertificatePem(ctx);
  if (pem.empty()) return absl::UnauthenticatedError("no client certificate");
  // gRPC reports only the subject's first CN; kpx's parser refuses a
  // subject with several (or a NUL byte). Both must agree on one name.
  absl::StatusOr<crypto::CertificateInfo> info = crypto::ParseCertificatePem(pem);
  if (!info.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("client certificate names no single identity: ", info.status().message()));
  }
  if (cns.size() != 1 || info->common_name.empty() || cns.front() != info->common_name) {
    return absl::UnauthenticatedError(
        "client certificate names no single identity: it needs exactly one subject CN");
  }
  return info->common_name;
}

}  // namespace kpx::gateway
