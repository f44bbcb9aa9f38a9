// The authority verbs of a node, whatever the transport: the gRPC
// AuthorityService (services.h) and the HTTP API (http_api.h) both call
// these, so a verb means the same thing, is allowed to the same roles and
// is refused with the same words on either.
//
// Each verb
//   1. checks the caller's roles against the ones docs/protocol.md allows
//      (PERMISSION_DENIED naming the caller and the verb),
//   2. checks the request's bounds (node/bounds.h; INVALID_ARGUMENT naming
//      the field and the verb),
//   3. acts through node::Node,
// and logs what it did ("authority") or refused ("authority_refused").
//
// Who the caller is, is the transport's business: a TLS client
// certificate's Common Name mapped through NodeConfig.authority_clients
// (ClientCaller), or a signed-in officer.
//
// Thread-safe: every method may be called from any thread at once.
#ifndef KPX_GATEWAY_AUTHORITY_H_
#define KPX_GATEWAY_AUTHORITY_H_

#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/config.pb.h"
#include "kpx/v1/service.pb.h"
#include "node/node.h"

namespace kpx::gateway {

// Who calls, and what they may do.
struct Caller {
  std::string name;  // a client certificate's Common Name, or an officer
  std::set<v1::Role> roles;
  // A signed-in officer's name as printed and office; empty for a client
  // certificate.
  std::string full_name;
  std::string office;

  // What the ledger records as the caller (LedgerEntry.actor).
  v1::Actor actor() const;
};

// Operator verbs implemented by the server that owns the node.
struct OperatorHooks {
  std::function<absl::StatusOr<v1::ReloadResponse>()> reload;
  std::function<absl::StatusOr<v1::BackupResponse>(const std::string&)> backup;
};

// The roles each group of verbs is allowed to (docs/protocol.md).
extern const std::set<v1::Role> kAnyRole;
extern const std::set<v1::Role> kAuditorOnly;

class Authority {
 public:
  // `node` must outlive this.
  Authority(node::Node* node, const v1::NodeConfig& config, OperatorHooks hooks);

  // This node's Participant.
  const std::string& participant() const { return node_->participant(); }

  // The caller a client certificate with this Common Name is: the roles
  // config.authority_clients gives it (none if it is not listed).
  Caller ClientCaller(const std::string& common_name) const;

  // OK if `caller` holds one of `allowed`; PERMISSION_DENIED naming the
  // caller, its roles and the verb otherwise (and logged).
  absl::Status Authorize(const Caller& caller, const char* verb,
                         const std::set<v1::Role>& allowed) const;

  // Exporter.
  absl::StatusOr<v1::CertificateRecord> Submit(const Caller& c,
                                               const v1::SubmitCertificateRequest& r) const;
  // The printed certificate's QR payload and short code (any role; a
  // certificate this node issued).
  absl::StatusOr<v1::AttestationResponse> GetAttestation(const Caller& c,
                                                         const v1::GetAttestationRequest& r) const;
  // Public, no caller: what a printed certificate's QR payload, or its
  // number and short code, turn out to be (node/attestation.h). Rate
  // limiting is the transport's.
  absl::StatusOr<node::PaperCheck> CheckPaper(absl::string_view payload) const;
  absl::StatusOr<node::PaperCheck> CheckPaperCode(const std::string& number,
                                                  absl::string_view code) const;
  // What Submit would refuse, every problem at once; changes nothing.
  absl::StatusOr<v1::CheckCertificateResponse> CheckCertificate(
      const Caller& c, const v1::CheckCertificateRequest& r) const;
  absl::StatusOr<v1::CertificateRecord> Cancel(const Caller& c,
                                               const v1::CancelCertificateRequest& r) const;
  absl::StatusOr<v1::CertificateRecord> Amend(const Caller& c,
                                              const v1::AmendCertificateRequest& r) const;
  absl::StatusOr<v1::CertificateRecord> Resend(const Caller& c,
                                               const v1::ResendCertificateRequest& r) const;
  absl::StatusOr<v1::CertificateRecord> Void(const Caller& c,
                                             const v1::VoidCertificateRequest& r) const;
  // Importer. An empty findings.official is filled with the caller's name.
  absl::StatusOr<v1::CertificateRecord> Confirm(const Caller& c,
                                                const v1::ConfirmReceiptRequest& r) const;
  absl::StatusOr<v1::CertificateRecord> Reject(const Caller& c,
                                               const v1::RejectShipmentRequest& r) const;
  // Any role.
  absl::StatusOr<v1::CertificateRecord> Get(const Caller& c,
                                            const v1::GetCertificateRequest& r) const;
  absl::StatusOr<v1::ListCertificatesResponse> List(const Caller& c,
                                                    const v1::ListCertificatesRequest& r) const;
  // How many certificates by state, overdue and with discrepancies.
  absl::StatusOr<node::CertificateCounts> CountCertificates(const Caller& c) const;
  absl::StatusOr<v1::TraceCertificateResponse> Trace(const Caller& c,
                                                     const v1::TraceCertificateRequest& r) const;
  absl::StatusOr<v1::EvidenceBundle> ExportEvidence(const Caller& c,
                                                    const v1::ExportEvidenceRequest& r) const;
  absl::StatusOr<v1::ListTrustListsResponse> ListTrustLists(
      const Caller& c, const v1::ListTrustListsRequest& r) const;
  // Auditor.
  absl::StatusOr<v1::VerifyLedgerResponse> VerifyLedger(const Caller& c,
                                                        const v1::VerifyLedgerRequest& r) const;
  // Operator or auditor. Pages through the outbox in message id order; the
  // page token is the last message id of the previous page.
  absl::StatusOr<v1::ListOutboxResponse> ListOutbox(const Caller& c,
                                                    const v1::ListOutboxRequest& r) const;
  absl::StatusOr<v1::ListPeersResponse> ListPeers(const Caller& c,
                                                  const v1::ListPeersRequest& r) const;
  // Operator.
  absl::StatusOr<v1::ReloadResponse> Reload(const Caller& c, const v1::ReloadRequest& r) const;
  absl::StatusOr<v1::BackupResponse> Backup(const Caller& c, const v1::BackupRequest& r) const;
  absl::StatusOr<v1::PeerSummary> ResetPeerLog(const Caller& c,
                                               const v1::ResetPeerLogRequest& r) const;
  // The record without the list's bytes.
  absl::StatusOr<v1::TrustListRecord> PublishTrustList(const Caller& c,
                                                       const v1::PublishTrustListRequest& r) const;
  // Officers' accounts (node/officers.h).
  absl::StatusOr<v1::OfficerCredentials> AddOfficer(const Caller& c,
                                                    const v1::AddOfficerRequest& r) const;
  absl::StatusOr<v1::ListOfficersResponse> ListOfficers(const Caller& c,
                                                        const v1::ListOfficersRequest& r) const;
  absl::StatusOr<v1::Officer> SetOfficerDisabled(const Caller& c,
                                                 const v1::SetOfficerDisabledRequest& r) const;
  absl::StatusOr<v1::OfficerCredentials> ResetOfficer(const Caller& c,
                                                      const v1::ResetOfficerRequest& r) const;

  // The caller a signed-in officer is.
  static Caller OfficerCaller(const v1::Officer& officer);

 private:
  // Authorize, then the request's bounds.
  absl::Status Admit(const Caller& caller, const char* verb,
                     const google::protobuf::Message& request,
                     const std::set<v1::Role>& allowed) const;

  node::Node* const node_;
  const OperatorHooks hooks_;
  // A message queued longer than this is stuck (delivery.stuck_after_hours).
  const absl::Duration stuck_after_;
  std::map<std::string, std::set<v1::Role>> roles_;  // by Common Name
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_AUTHORITY_H_
