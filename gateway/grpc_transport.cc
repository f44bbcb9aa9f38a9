#include "gateway/grpc_transport.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gateway/status.h"

namespace kpx::gateway {
namespace {

// A call that failed as a whole (e.g. PERMISSION_DENIED for our TLS
// identity) is not about the messages: always retried later.
absl::Status CallFailed(const std::string& recipient, const grpc::Status& st) {
  absl::Status s = FromGrpc(st);
  const std::string what = absl::StrCat(recipient, ": ", st.error_message());
  if (s.code() == absl::StatusCode::kDeadlineExceeded) return absl::DeadlineExceededError(what);
  if (s.code() == absl::StatusCode::kUnavailable) return absl::UnavailableError(what);
  return absl::UnavailableError(absl::StrCat(absl::StatusCodeToString(s.code()), ": ", what));
}

}  // namespace

GrpcTransport::GrpcTransport(TlsIdentity identity,
                             std::function<std::shared_ptr<const node::TrustList>()> trust,
                             absl::Duration rpc_timeout)
    : identity_(std::move(identity)), trust_(std::move(trust)), rpc_timeout_(rpc_timeout) {}

void GrpcTransport::SetIdentity(TlsIdentity identity) {
  absl::MutexLock l(&mu_);
  identity_ = std::move(identity);
  peers_.clear();
}

absl::StatusOr<std::shared_ptr<GrpcTransport::Peer>> GrpcTransport::PeerFor(
    const std::string& recipient) {
  std::shared_ptr<const node::TrustList> trust = trust_();
  const v1::Participant* p = trust->Find(recipient);
  if (p == nullptr || p->endpoint().empty() || p->tls_ca_pem().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(recipient, " has no endpoint and CA on the trust list"));
  }
  const std::string server_name = node::ServerName(*p);
  absl::MutexLock l(&mu_);
  std::shared_ptr<Peer>& peer = peers_[recipient];
  if (peer == nullptr || peer->endpoint != p->endpoint() || peer->ca_pem != p->tls_ca_pem() ||
      peer->server_name != server_name) {
    auto fresh = std::make_shared<Peer>();
    fresh->endpoint = p->endpoint();
    fresh->ca_pem = p->tls_ca_pem();
    fresh->server_name = server_name;
    fresh->stub = v1::PeerService::NewStub(
        MutualTlsChannel(p->endpoint(), identity_, p->tls_ca_pem(), server_name));
    peer = std::move(fresh);
  }
  // The caller's reference keeps a replaced peer's stub alive until its
  // call in flight ends.
  return peer;
}

template <typename Response, typename Call>
absl::StatusOr<Response> GrpcTransport::Unary(const std::string& recipient, Call call) {
  absl::StatusOr<std::shared_ptr<Peer>> peer = PeerFor(recipient);
  if (!peer.ok()) return absl::UnavailableError(peer.status().message());
  Response resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_));
  grpc::Status st = call(*(*peer)->stub, &ctx, &resp);
  if (!st.ok()) return CallFailed(recipient, st);
  return resp;
}

absl::StatusOr<v1::DeliverResponse> GrpcTransport::Deliver(const std::string& recipient,
                                                           const v1::DeliverRequest& request) {
  return Unary<v1::DeliverResponse>(
      recipient, [&](v1::PeerService::Stub& stub, grpc::ClientContext* ctx,
                     v1::DeliverResponse* resp) { return stub.Deliver(ctx, request, resp); });
}

absl::StatusOr<v1::ConsistencyResponse> GrpcTransport::GetConsistency(
    const std::string& recipient, const v1::ConsistencyRequest& request) {
  return Unary<v1::ConsistencyResponse>(
      recipient,
      [&](v1::PeerService::Stub& stub, grpc::ClientContext* ctx, v1::ConsistencyResponse* resp) {
        return stub.GetConsistency(ctx, request, resp);
      });
}

absl::StatusOr<v1::GetTrustListsResponse> GrpcTransport::GetTrustLists(
    const std::string& recipient, const v1::GetTrustListsRequest& request) {
  return Unary<v1::GetTrustListsResponse>(
      recipient,
      [&](v1::PeerService::Stub& stub, grpc::ClientContext* ctx, v1::GetTrustListsResponse* resp) {
        return stub.GetTrustLists(ctx, request, resp);
      });
}

}  // namespace kpx::gateway
