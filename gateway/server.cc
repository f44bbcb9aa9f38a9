#include "gateway/server.h"

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "gateway/tls.h"
#include "node/trust_list.h"
#include "spdlog/spdlog.h"

namespace kpx::gateway {
namespace {

// Builds and starts one listener; fails if the address cannot be bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> Listen(
    const std::string& address, std::shared_ptr<grpc::ServerCredentials> creds,
    grpc::Service* service, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, std::move(creds), port);
  builder.RegisterService(service);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  return server;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NodeServer>> NodeServer::Start(const v1::NodeConfig& config) {
  absl::StatusOr<std::shared_ptr<const node::TrustList>> trust =
      node::TrustList::FromTextFile(config.trust_list_file());
  if (!trust.ok()) return trust.status();
  absl::StatusOr<std::string> key_pem = crypto::ReadFile(config.signing_key_file());
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<crypto::PrivateKey> key = crypto::PrivateKey::FromPem(*key_pem);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.signing_key_file(), ": ", key.status().message()));
  }
  absl::StatusOr<TlsIdentity> identity =
      LoadTlsIdentity(config.tls_cert_file(), config.tls_key_file());
  if (!identity.ok()) return identity.status();
  absl::StatusOr<std::string> client_ca = crypto::ReadFile(config.authority_client_ca_file());
  if (!client_ca.ok()) return client_ca.status();

  std::unique_ptr<NodeServer> s(new NodeServer);
  absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger =
      storage::Ledger::Open(config.data_dir());
  if (!ledger.ok()) return ledger.status();
  s->ledger_ = *std::move(ledger);

  // The transport asks the node for the trust list in force, so a reload
  // reaches both. The node is set before delivery starts, and the
  // transport is only used by the node's delivery threads, which stop
  // before the node and the transport are destroyed.
  std::shared_ptr<const node::TrustList> initial = *trust;
  const uint32_t timeout_ms =
      config.delivery().rpc_timeout_ms() ? config.delivery().rpc_timeout_ms() : 10000;
  NodeServer* self = s.get();
  s->transport_ = std::make_unique<GrpcTransport>(
      *identity,
      [self, initial]() { return self->node_ ? self->node_->trust_list() : initial; },
      absl::Milliseconds(timeout_ms));

  node::NodeOptions opts;
  opts.participant = config.participant();
  opts.authority_name = config.authority_name();
  opts.trust_list = *trust;
  opts.signing_key = *std::move(key);
  opts.ledger = s->ledger_.get();
  opts.transport = s->transport_.get();
  opts.delivery = config.delivery();
  absl::StatusOr<std::unique_ptr<node::Node>> node = node::Node::Create(std::move(opts));
  if (!node.ok()) return node.status();
  s->node_ = *std::move(node);

  s->peer_service_ = std::make_unique<PeerServiceImpl>(s->node_.get());
  s->authority_service_ = std::make_unique<AuthorityServiceImpl>(s->node_.get(), config);
  absl::StatusOr<std::unique_ptr<grpc::Server>> peer = Listen(
      config.peer_listen(), MutualTlsServerCredentials(*identity, (*trust)->AllCasPem()),
      s->peer_service_.get(), &s->peer_port_);
  if (!peer.ok()) return peer.status();
  s->peer_server_ = *std::move(peer);
  absl::StatusOr<std::unique_ptr<grpc::Server>> authority =
      Listen(config.authority_listen(), MutualTlsServerCredentials(*identity, *client_ca),
             s->authority_service_.get(), &s->authority_port_);
  if (!authority.ok()) return authority.status();
  s->authority_server_ = *std::move(authority);

  s->node_->StartDelivery();
  return s;
}

void NodeServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (authority_service_) authority_service_->Stop();
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
  if (authority_server_) authority_server_->Shutdown(deadline);
  if (peer_server_) peer_server_->Shutdown(deadline);
  if (node_) node_->StopDelivery();
}

NodeServer::~NodeServer() {
  Shutdown();
  // Members go in reverse order: services before the node, the node before
  // the transport and the ledger.
  authority_server_.reset();
  peer_server_.reset();
  authority_service_.reset();
  peer_service_.reset();
  node_.reset();
  transport_.reset();
  ledger_.reset();
}

}  // namespace kpx::gateway
