// The gRPC services of a node, adapting node::Node to the network.
//
// PeerService: the caller's identity is the Participant whose CA its TLS
// client certificate chains to and whose node name it carries as Common
// Name (trust list), checked on every call; the node then checks it
// against each message's sender and signer.
//
// AuthorityService: the caller's role comes from the Common Name of its
// TLS client certificate through NodeConfig.authority_clients; each verb
// is Authority's (authority.h), which allows it to the roles named in
// docs/protocol.md only. Watch and ExportLedger stream here.
//
// Both are thread-safe; gRPC calls them from its own threads.
#ifndef KPX_GATEWAY_SERVICES_H_
#define KPX_GATEWAY_SERVICES_H_

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "gateway/authority.h"
#include "gateway/stream_slots.h"
#include "kpx/v1/config.pb.h"
#include "kpx/v1/service.grpc.pb.h"
#include "node/node.h"

namespace kpx::gateway {

class PeerServiceImpl final : public v1::PeerService::Service {
 public:
  explicit PeerServiceImpl(node::Node* node) : node_(node) {}

  grpc::Status Deliver(grpc::ServerContext* ctx, const v1::DeliverRequest* req,
                       v1::DeliverResponse* resp) override;
  grpc::Status GetConsistency(grpc::ServerContext* ctx, const v1::ConsistencyRequest* req,
                              v1::ConsistencyResponse* resp) override;
  grpc::Status GetTrustLists(grpc::ServerContext* ctx, const v1::GetTrustListsRequest* req,
                             v1::GetTrustListsResponse* resp) override;

 private:
  // The Participant the caller's TLS certificate proves; logs a refusal.
  absl::StatusOr<std::string> Identify(grpc::ServerContext& ctx) const;
  node::Node* const node_;
};

class AuthorityServiceImpl final : public v1::AuthorityService::Service {
 public:
  // `node` and `authority` must outlive this.
  AuthorityServiceImpl(node::Node* node, const Authority* authority, const v1::NodeConfig& config);

  // Makes Watch streams end promptly (server shutdown).
  void Stop() { stopping_ = true; }

  grpc::Status SubmitCertificate(grpc::ServerContext* ctx, const v1::SubmitCertificateRequest* req,
                                 v1::CertificateRecord* resp) override;
  grpc::Status GetAttestation(grpc::ServerContext* ctx, const v1::GetAttestationRequest* req,
                              v1::AttestationResponse* resp) override;
  grpc::Status CheckCertificate(grpc::ServerContext* ctx, const v1::CheckCertificateRequest* req,
                                v1::CheckCertificateResponse* resp) override;
  grpc::Status CancelCertificate(grpc::ServerContext* ctx, const v1::CancelCertificateRequest* req,
                                 v1::CertificateRecord* resp) override;
  grpc::Status ConfirmReceipt(grpc::ServerContext* ctx, const v1::ConfirmReceiptRequest* req,
                              v1::CertificateRecord* resp) override;
  grpc::Status RejectShipment(grpc::ServerContext* ctx, const v1::RejectShipmentRequest* req,
                              v1::CertificateRecord* resp) override;
  grpc::Status AmendCertificate(grpc::ServerContext* ctx, const v1::AmendCertificateRequest* req,
                                v1::CertificateRecord* resp) override;
  grpc::Status VoidCertificate(grpc::ServerContext* ctx, const v1::VoidCertificateRequest* req,
                               v1::CertificateRecord* resp) override;
  grpc::Status ResendCertificate(grpc::ServerContext* ctx, const v1::ResendCertificateRequest* req,
                                 v1::CertificateRecord* resp) override;
  grpc::Status TraceCertificate(grpc::ServerContext* ctx, const v1::TraceCertificateRequest* req,
                                v1::TraceCertificateResponse* resp) override;
  grpc::Status GetCertificate(grpc::ServerContext* ctx, const v1::GetCertificateRequest* req,
                              v1::CertificateRecord* resp) override;
  grpc::Status ListCertificates(grpc::ServerContext* ctx, const v1::ListCertificatesRequest* req,
                                v1::ListCertificatesResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                     grpc::ServerWriter<v1::LedgerEntry>* writer) override;
  grpc::Status VerifyLedger(grpc::ServerContext* ctx, const v1::VerifyLedgerRequest* req,
                            v1::VerifyLedgerResponse* resp) override;
  grpc::Status ExportLedger(grpc::ServerContext* ctx, const v1::ExportLedgerRequest* req,
                            grpc::ServerWriter<v1::LedgerEntry>* writer) override;
  grpc::Status Reload(grpc::ServerContext* ctx, const v1::ReloadRequest* req,
                      v1::ReloadResponse* resp) override;
  grpc::Status Backup(grpc::ServerContext* ctx, const v1::BackupRequest* req,
                      v1::BackupResponse* resp) override;
  // Operator and auditor. Pages through the outbox in message id order;
  // the page token is the last message id of the previous page.
  grpc::Status ListOutbox(grpc::ServerContext* ctx, const v1::ListOutboxRequest* req,
                          v1::ListOutboxResponse* resp) override;
  grpc::Status ExportEvidence(grpc::ServerContext* ctx, const v1::ExportEvidenceRequest* req,
                              v1::EvidenceBundle* resp) override;
  grpc::Status ResetPeerLog(grpc::ServerContext* ctx, const v1::ResetPeerLogRequest* req,
                            v1::PeerSummary* resp) override;
  grpc::Status ListPeers(grpc::ServerContext* ctx, const v1::ListPeersRequest* req,
                         v1::ListPeersResponse* resp) override;
  grpc::Status PublishTrustList(grpc::ServerContext* ctx, const v1::PublishTrustListRequest* req,
                                v1::TrustListRecord* resp) override;
  grpc::Status ListTrustLists(grpc::ServerContext* ctx, const v1::ListTrustListsRequest* req,
                              v1::ListTrustListsResponse* resp) override;
  grpc::Status AddOfficer(grpc::ServerContext* ctx, const v1::AddOfficerRequest* req,
                          v1::OfficerCredentials* resp) override;
  grpc::Status ListOfficers(grpc::ServerContext* ctx, const v1::ListOfficersRequest* req,
                            v1::ListOfficersResponse* resp) override;
  grpc::Status SetOfficerDisabled(grpc::ServerContext* ctx,
                                  const v1::SetOfficerDisabledRequest* req,
                                  v1::Officer* resp) override;
  grpc::Status ResetOfficer(grpc::ServerContext* ctx, const v1::ResetOfficerRequest* req,
                            v1::OfficerCredentials* resp) override;

 private:
  // The caller the TLS client certificate proves (Authority::ClientCaller);
  // UNAUTHENTICATED, logged with `verb`, if it proves none.
  absl::StatusOr<Caller> Identify(const grpc::ServerContext& ctx, const char* verb) const;
  // Identifies the caller, runs `verb` and copies its answer into *resp.
  template <typename Response, typename Verb>
  grpc::Status Serve(const grpc::ServerContext& ctx, const char* name, Response* resp,
                     Verb verb) const;
  // Takes one of the Watch streams `who` may hold; RESOURCE_EXHAUSTED when
  // the client or the node has all it may (limits.max_watch_streams*).
  grpc::Status TakeWatchSlot(const std::string& who);
  void ReturnWatchSlot(const std::string& who);
  // Streams entries from `from` on; follows new appends if `follow`. Reads
  // a few entries at a time, so one stream holds little memory.
  grpc::Status Stream(grpc::ServerContext* ctx, uint64_t from, bool follow,
                      grpc::ServerWriter<v1::LedgerEntry>* writer);

  node::Node* const node_;
  const Authority* const authority_;
  std::atomic<bool> stopping_{false};

  StreamSlots watch_slots_;  // limits.max_watch_streams, ..._per_client
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_SERVICES_H_
