// TLS material for kpx's gRPC endpoints, TLS 1.3 only (tls_policy.h: the
// makers below apply that policy before creating anything; programs check
// EnforceTls13Only() themselves and refuse to run if it failed). Both listeners require client
// certificates: the peer listener accepts certificates that chain to any
// Participant's CA on the trust list (which one is then checked per call),
// the authority listener only certificates from this Participant's
// authority client CA.
#ifndef KPX_GATEWAY_TLS_H_
#define KPX_GATEWAY_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace kpx::gateway {

struct TlsIdentity {
  std::string cert_chain_pem;
  std::string private_key_pem;
};

absl::StatusOr<TlsIdentity> LoadTlsIdentity(const std::string& cert_file,
                                            const std::string& key_file);

// Server credentials requiring and verifying a client certificate that
// chains to `client_roots_pem`.
std::shared_ptr<grpc::ServerCredentials> MutualTlsServerCredentials(
    const TlsIdentity& identity, const std::string& client_roots_pem);

// Like MutualTlsServerCredentials, but the key, certificate and client
// roots are files re-read every few seconds, so replacing them takes
// effect without a restart (a key that does not match its certificate is
// ignored and the pair in force kept).
std::shared_ptr<grpc::ServerCredentials> WatchedMutualTlsServerCredentials(
    const std::string& key_file, const std::string& cert_file, const std::string& roots_file);

// A channel to `endpoint` presenting `identity`, accepting only a server
// certificate that chains to `server_roots_pem` and names `server_name`.
std::shared_ptr<grpc::Channel> MutualTlsChannel(const std::string& endpoint,
                                                const TlsIdentity& identity,
                                                const std::string& server_roots_pem,
                                                const std::string& server_name);

// The PEM certificate the calling peer proved with TLS; empty if none
// (which the listeners' settings make impossible).
std::string PeerCertificatePem(const grpc::ServerContext& ctx);

// The one subject Common Name the calling peer proved with TLS.
// UNAUTHENTICATED (with a one-line reason) if there is no certificate, or
// its name is ambiguous: several CNs, none, a NUL byte, or gRPC's CN and
// kpx's own parse of the certificate (crypto::ParseCertificatePem)
// disagree. Such a caller has no identity, and so no role.
absl::StatusOr<std::string> PeerCommonName(const grpc::ServerContext& ctx);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_TLS_H_
