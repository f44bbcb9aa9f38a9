#include "gateway/services.h"

#include <malloc.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gateway/status.h"
#include "gateway/tls.h"
#include "node/bounds.h"
#include "node/config.h"
#include "node/courier.h"
#include "node/log.h"
#include "node/text.h"
#include "node/util.h"

namespace kpx::gateway {
namespace {

// What senders are told to stay within (delivery.batch_size is cut to it).
constexpr int kMaxMessagesPerDeliver = static_cast<int>(node::kMaxDeliveryBatchSize);
// Ledger entries a Watch or export holds at once: entries can be large
// (a certificate of up to 256 KiB, and what refers to it), so few.
constexpr size_t kEntriesPerRead = 8;

// Returns free heap memory to the system: when `now_idle`, else at most
// once a second (it walks every malloc arena).
void TrimHeap(bool now_idle) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::Time last = absl::InfinitePast();
  {
    absl::MutexLock l(&mu);
    const absl::Time now = absl::Now();
    if (!now_idle && now - last < absl::Seconds(1)) return;
    last = now;
  }
  ::malloc_trim(0);
}

}  // namespace

// ---------------------------------------------------------------- peers

absl::StatusOr<std::string> PeerServiceImpl::Identify(grpc::ServerContext& ctx) const {
  absl::StatusOr<std::string> peer =
      node_->trust_list()->IdentifyPeer(PeerCertificatePem(ctx), absl::Now());
  if (!peer.ok()) {
    log::Warn("peer_refused", {{"from", ctx.peer()}, {"reason", peer.status().message()}});
  }
  return peer;
}

grpc::Status PeerServiceImpl::Deliver(grpc::ServerContext* ctx, const v1::DeliverRequest* req,
                                      v1::DeliverResponse* resp) {
  absl::StatusOr<std::string> peer = Identify(*ctx);
  if (!peer.ok()) return ToGrpc(peer.status());
  if (req->messages_size() > kMaxMessagesPerDeliver) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("at most ", kMaxMessagesPerDeliver, " messages per call"));
  }
  *resp = node_->Exchange(*peer, *req);
  for (int i = 0; i < resp->results_size(); ++i) {
    const v1::DeliveryResult& r = resp->results(i);
    if (r.code() == 0) continue;
    // The message id is not yet trusted: log what the peer proved (its
    // identity) and what it claimed (the signer).
    log::Warn("message_refused",
              {{"partner", *peer},
               {"signer", node::Printable(req->messages(i).signer(), 32)},
               {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(r.code()))},
               {"reason", r.error()}});
  }
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::GetConsistency(grpc::ServerContext* ctx,
                                             const v1::ConsistencyRequest* req,
                                             v1::ConsistencyResponse* resp) {
  absl::StatusOr<std::string> peer = Identify(*ctx);
  if (!peer.ok()) return ToGrpc(peer.status());
  absl::StatusOr<v1::ConsistencyResponse> r = node_->Consistency(*peer, *req);
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::GetTrustLists(grpc::ServerContext* ctx,
                                            const v1::GetTrustListsRequest* req,
                                            v1::GetTrustListsResponse* resp) {
  absl::StatusOr<std::string> peer = Identify(*ctx);
  if (!peer.ok()) return ToGrpc(peer.status());
  absl::StatusOr<v1::GetTrustListsResponse> r = node_->TrustLists(*peer, *req);
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

// ---------------------------------------------------------------- authorities

AuthorityServiceImpl::AuthorityServiceImpl(node::Node* node, const Authority* authority,
                                           const v1::NodeConfig& config)
    : node_(node),
      authority_(authority),
      watch_slots_(static_cast<int>(config.limits().max_watch_streams()),
                   static_cast<int>(config.limits().max_watch_streams_per_client())) {}

absl::StatusOr<Caller> AuthorityServiceImpl::Identify(const grpc::ServerContext& ctx,
                                                      const char* verb) const {
  absl::StatusOr<std::string> cn = PeerCommonName(ctx);
  if (!cn.ok()) {
    log::Warn("authority_refused",
              {{"verb", verb}, {"from", ctx.peer()}, {"reason", cn.status().message()}});
    return cn.status();
  }
  return authority_->ClientCaller(*cn);
}

template <typename Response, typename Verb>
grpc::Status AuthorityServiceImpl::Serve(const grpc::ServerContext& ctx, const char* name,
                                         Response* resp, Verb verb) const {
  absl::StatusOr<Caller> caller = Identify(ctx, name);
  if (!caller.ok()) return ToGrpc(caller.status());
  absl::StatusOr<Response> r = verb(*caller);
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::SubmitCertificate(grpc::ServerContext* ctx,
                                                     const v1::SubmitCertificateRequest* req,
                                                     v1::CertificateRecord* resp) {
  return Serve(*ctx, "SubmitCertificate", resp,
               [&](const Caller& c) { return authority_->Submit(c, *req); });
}

grpc::Status AuthorityServiceImpl::GetAttestation(grpc::ServerContext* ctx,
                                                  const v1::GetAttestationRequest* req,
                                                  v1::AttestationResponse* resp) {
  return Serve(*ctx, "GetAttestation", resp,
               [&](const Caller& c) { return authority_->GetAttestation(c, *req); });
}

grpc::Status AuthorityServiceImpl::CheckCertificate(grpc::ServerContext* ctx,
                                                    const v1::CheckCertificateRequest* req,
                                                    v1::CheckCertificateResponse* resp) {
  return Serve(*ctx, "CheckCertificate", resp,
               [&](const Caller& c) { return authority_->CheckCertificate(c, *req); });
}

grpc::Status AuthorityServiceImpl::CancelCertificate(grpc::ServerContext* ctx,
                                                     const v1::CancelCertificateRequest* req,
                                                     v1::CertificateRecord* resp) {
  return Serve(*ctx, "CancelCertificate", resp,
               [&](const Caller& c) { return authority_->Cancel(c, *req); });
}

grpc::Status AuthorityServiceImpl::AmendCertificate(grpc::ServerContext* ctx,
                                                    const v1::AmendCertificateRequest* req,
                                                    v1::CertificateRecord* resp) {
  return Serve(*ctx, "AmendCertificate", resp,
               [&](const Caller& c) { return authority_->Amend(c, *req); });
}

grpc::Status AuthorityServiceImpl::ResendCertificate(grpc::ServerContext* ctx,
                                                     const v1::ResendCertificateRequest* req,
                                                     v1::CertificateRecord* resp) {
  return Serve(*ctx, "ResendCertificate", resp,
               [&](const Caller& c) { return authority_->Resend(c, *req); });
}

grpc::Status AuthorityServiceImpl::VoidCertificate(grpc::ServerContext* ctx,
                                                   const v1::VoidCertificateRequest* req,
                                                   v1::CertificateRecord* resp) {
  return Serve(*ctx, "VoidCertificate", resp,
               [&](const Caller& c) { return authority_->Void(c, *req); });
}

grpc::Status AuthorityServiceImpl::ConfirmReceipt(grpc::ServerContext* ctx,
                                                  const v1::ConfirmReceiptRequest* req,
                                                  v1::CertificateRecord* resp) {
  return Serve(*ctx, "ConfirmReceipt", resp,
               [&](const Caller& c) { return authority_->Confirm(c, *req); });
}

grpc::Status AuthorityServiceImpl::RejectShipment(grpc::ServerContext* ctx,
                                                  const v1::RejectShipmentRequest* req,
                                                  v1::CertificateRecord* resp) {
  return Serve(*ctx, "RejectShipment", resp,
               [&](const Caller& c) { return authority_->Reject(c, *req); });
}

grpc::Status AuthorityServiceImpl::GetCertificate(grpc::ServerContext* ctx,
                                                  const v1::GetCertificateRequest* req,
                                                  v1::CertificateRecord* resp) {
  return Serve(*ctx, "GetCertificate", resp,
               [&](const Caller& c) { return authority_->Get(c, *req); });
}

grpc::Status AuthorityServiceImpl::ListCertificates(grpc::ServerContext* ctx,
                                                    const v1::ListCertificatesRequest* req,
                                                    v1::ListCertificatesResponse* resp) {
  return Serve(*ctx, "ListCertificates", resp,
               [&](const Caller& c) { return authority_->List(c, *req); });
}

grpc::Status AuthorityServiceImpl::TraceCertificate(grpc::ServerContext* ctx,
                                                    const v1::TraceCertificateRequest* req,
                                                    v1::TraceCertificateResponse* resp) {
  return Serve(*ctx, "TraceCertificate", resp,
               [&](const Caller& c) { return authority_->Trace(c, *req); });
}

grpc::Status AuthorityServiceImpl::ExportEvidence(grpc::ServerContext* ctx,
                                                  const v1::ExportEvidenceRequest* req,
                                                  v1::EvidenceBundle* resp) {
  return Serve(*ctx, "ExportEvidence", resp,
               [&](const Caller& c) { return authority_->ExportEvidence(c, *req); });
}

grpc::Status AuthorityServiceImpl::ListTrustLists(grpc::ServerContext* ctx,
                                                  const v1::ListTrustListsRequest* req,
                                                  v1::ListTrustListsResponse* resp) {
  return Serve(*ctx, "ListTrustLists", resp,
               [&](const Caller& c) { return authority_->ListTrustLists(c, *req); });
}

grpc::Status AuthorityServiceImpl::VerifyLedger(grpc::ServerContext* ctx,
                                                const v1::VerifyLedgerRequest* req,
                                                v1::VerifyLedgerResponse* resp) {
  return Serve(*ctx, "VerifyLedger", resp,
               [&](const Caller& c) { return authority_->VerifyLedger(c, *req); });
}

grpc::Status AuthorityServiceImpl::ListOutbox(grpc::ServerContext* ctx,
                                              const v1::ListOutboxRequest* req,
                                              v1::ListOutboxResponse* resp) {
  return Serve(*ctx, "ListOutbox", resp,
               [&](const Caller& c) { return authority_->ListOutbox(c, *req); });
}

grpc::Status AuthorityServiceImpl::ListPeers(grpc::ServerContext* ctx,
                                             const v1::ListPeersRequest* req,
                                             v1::ListPeersResponse* resp) {
  return Serve(*ctx, "ListPeers", resp,
               [&](const Caller& c) { return authority_->ListPeers(c, *req); });
}

grpc::Status AuthorityServiceImpl::Reload(grpc::ServerContext* ctx, const v1::ReloadRequest* req,
                                          v1::ReloadResponse* resp) {
  return Serve(*ctx, "Reload", resp, [&](const Caller& c) { return authority_->Reload(c, *req); });
}

grpc::Status AuthorityServiceImpl::Backup(grpc::ServerContext* ctx, const v1::BackupRequest* req,
                                          v1::BackupResponse* resp) {
  return Serve(*ctx, "Backup", resp, [&](const Caller& c) { return authority_->Backup(c, *req); });
}

grpc::Status AuthorityServiceImpl::ResetPeerLog(grpc::ServerContext* ctx,
                                                const v1::ResetPeerLogRequest* req,
                                                v1::PeerSummary* resp) {
  return Serve(*ctx, "ResetPeerLog", resp,
               [&](const Caller& c) { return authority_->ResetPeerLog(c, *req); });
}

grpc::Status AuthorityServiceImpl::PublishTrustList(grpc::ServerContext* ctx,
                                                    const v1::PublishTrustListRequest* req,
                                                    v1::TrustListRecord* resp) {
  return Serve(*ctx, "PublishTrustList", resp,
               [&](const Caller& c) { return authority_->PublishTrustList(c, *req); });
}

grpc::Status AuthorityServiceImpl::AddOfficer(grpc::ServerContext* ctx,
                                              const v1::AddOfficerRequest* req,
                                              v1::OfficerCredentials* resp) {
  return Serve(*ctx, "AddOfficer", resp,
               [&](const Caller& c) { return authority_->AddOfficer(c, *req); });
}

grpc::Status AuthorityServiceImpl::ListOfficers(grpc::ServerContext* ctx,
                                                const v1::ListOfficersRequest* req,
                                                v1::ListOfficersResponse* resp) {
  return Serve(*ctx, "ListOfficers", resp,
               [&](const Caller& c) { return authority_->ListOfficers(c, *req); });
}

grpc::Status AuthorityServiceImpl::SetOfficerDisabled(grpc::ServerContext* ctx,
                                                      const v1::SetOfficerDisabledRequest* req,
                                                      v1::Officer* resp) {
  return Serve(*ctx, "SetOfficerDisabled", resp,
               [&](const Caller& c) { return authority_->SetOfficerDisabled(c, *req); });
}

grpc::Status AuthorityServiceImpl::ResetOfficer(grpc::ServerContext* ctx,
                                                const v1::ResetOfficerRequest* req,
                                                v1::OfficerCredentials* resp) {
  return Serve(*ctx, "ResetOfficer", resp,
               [&](const Caller& c) { return authority_->ResetOfficer(c, *req); });
}

grpc::Status AuthorityServiceImpl::Stream(grpc::ServerContext* ctx, uint64_t from, bool follow,
                                          grpc::ServerWriter<v1::LedgerEntry>* writer) {
  storage::Ledger& ledger = node_->ledger();
  uint64_t next = std::max<uint64_t>(from, 1);
  const uint64_t end = ledger.head().sequence;  // for a one-shot export
  while (!ctx->IsCancelled() && !stopping_) {
    absl::StatusOr<std::vector<v1::LedgerEntry>> entries =
        ledger.ReadEntries(next, kEntriesPerRead);
    if (!entries.ok()) return ToGrpc(entries.status());
    for (const v1::LedgerEntry& e : *entries) {
      if (!follow && e.sequence() > end) return grpc::Status::OK;
      if (!writer->Write(e)) return grpc::Status::OK;  // client went away
      next = e.sequence() + 1;
    }
    if (!entries->empty()) continue;
    if (!follow) return grpc::Status::OK;
    // Wake at least twice a second to notice cancellation and shutdown.
    ledger.WaitForSequence(next, absl::Now() + absl::Milliseconds(500));
  }
  return ctx->IsCancelled() ? grpc::Status::CANCELLED
                            : grpc::Status(grpc::StatusCode::UNAVAILABLE, "node stopping");
}

grpc::Status AuthorityServiceImpl::TakeWatchSlot(const std::string& who) {
  int held = 0;
  std::string why;
  switch (watch_slots_.Take(who, &held)) {
    case StreamSlots::Refusal::kNone:
      return grpc::Status::OK;
    case StreamSlots::Refusal::kPerCaller:
      why = absl::StrCat("client '", who, "' already has ", held,
                         " Watch streams open (limits.max_watch_streams_per_client)");
      break;
    case StreamSlots::Refusal::kInAll:
      why = absl::StrCat("the node already serves ", held,
                         " Watch streams (limits.max_watch_streams)");
      break;
  }
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why + "; try again later");
}

void AuthorityServiceImpl::ReturnWatchSlot(const std::string& who) {
  const bool idle = watch_slots_.Give(who);
  // What a stream's thread allocated sits in its malloc arena after it
  // ends; hand the free pages back to the system.
  TrimHeap(idle);
}

grpc::Status AuthorityServiceImpl::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                                         grpc::ServerWriter<v1::LedgerEntry>* writer) {
  absl::StatusOr<Caller> caller = Identify(*ctx, "Watch");
  if (!caller.ok()) return ToGrpc(caller.status());
  if (absl::Status s = authority_->Authorize(*caller, "Watch", kAnyRole); !s.ok()) {
    return ToGrpc(s);
  }
  const std::string& who = caller->name;
  if (grpc::Status s = TakeWatchSlot(who); !s.ok()) {
    log::Warn("authority_refused",
              {{"verb", "Watch"}, {"client", who}, {"reason", s.error_message()}});
    return s;
  }
  grpc::Status result = Stream(ctx, req->from_sequence(), /*follow=*/true, writer);
  ReturnWatchSlot(who);
  return result;
}

grpc::Status AuthorityServiceImpl::ExportLedger(grpc::ServerContext* ctx,
                                                const v1::ExportLedgerRequest* req,
                                                grpc::ServerWriter<v1::LedgerEntry>* writer) {
  absl::StatusOr<Caller> caller = Identify(*ctx, "ExportLedger");
  if (!caller.ok()) return ToGrpc(caller.status());
  if (absl::Status s = authority_->Authorize(*caller, "ExportLedger", kAuditorOnly); !s.ok()) {
    return ToGrpc(s);
  }
  return Stream(ctx, req->from_sequence(), /*follow=*/false, writer);
}

}  // namespace kpx::gateway
