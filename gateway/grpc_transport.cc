#include "gateway/grpc_transport.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gateway/status.h"
#include "node/text.h"

namespace kpx::gateway {
namespace {

// A peer's answer for one message, as this node will store and show it: a
// code gRPC defines (UNKNOWN otherwise) and a bounded, escaped reason.
absl::Status PeerRefusal(int code, const std::string& error) {
  constexpr size_t kMaxPeerErrorBytes = 512;
  const auto c = code > 0 && code <= static_cast<int>(absl::StatusCode::kUnauthenticated)
                     ? static_cast<absl::StatusCode>(code)
                     : absl::StatusCode::kUnknown;
  return absl::Status(c, node::Printable(error, kMaxPeerErrorBytes));
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

std::vector<node::DeliveryOutcome> GrpcTransport::Deliver(
    const std::string& recipient, const std::vector<v1::SignedMessage>& messages) {
  std::vector<node::DeliveryOutcome> out(messages.size());
  absl::StatusOr<std::shared_ptr<Peer>> peer = PeerFor(recipient);
  if (!peer.ok()) {
    for (auto& o : out) o.status = absl::UnavailableError(peer.status().message());
    return out;
  }
  v1::DeliverRequest req;
  for (const v1::SignedMessage& m : messages) *req.add_messages() = m;
  v1::DeliverResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + rpc_timeout_));
  grpc::Status st = (*peer)->stub->Deliver(&ctx, req, &resp);
  if (!st.ok() || resp.results_size() != static_cast<int>(messages.size())) {
    absl::Status failure =
        st.ok()
            ? absl::UnavailableError("peer answered with a wrong number of results")
            : absl::Status(FromGrpc(st).code(), absl::StrCat(recipient, ": ", st.error_message()));
    // A refusal of the whole call (e.g. PERMISSION_DENIED for our TLS
    // identity) is not about the messages: always retry later.
    if (failure.code() != absl::StatusCode::kUnavailable &&
        failure.code() != absl::StatusCode::kDeadlineExceeded) {
      failure = absl::UnavailableError(failure.ToString());
    }
    for (auto& o : out) o.status = failure;
    return out;
  }
  for (int i = 0; i < resp.results_size(); ++i) {
    v1::DeliveryResult& r = *resp.mutable_results(i);
    if (r.code() == 0) {
      out[i].receipt = std::move(*r.mutable_receipt());
    } else {
      out[i].status = PeerRefusal(r.code(), r.error());
    }
  }
  return out;
}

}  // namespace kpx::gateway
