// kpx::node::Node: one Participant's node logic, wired from small parts.
//
// It validates and signs what its authorities issue, records every step in
// the ledger, delivers outgoing messages through a Transport, and checks
// and records what peers deliver. It includes no gRPC: gateway/ adapts it
// to the network. Node itself only builds and connects the parts; each
// does one job (docs/architecture.md walks the data path through them):
//   keyring          trust list and signing keys, swapped together
//   certificate_locks  serializes changes to one certificate
//   authority_desk   submit, cancel, confirm, reject
//   queries          get, list
//   inbox            receive from peers: verify, plan, commit, report, answer
//   courier          deliver the outbox: send, check proofs, record
//   tree_signer      our signed tree heads (one per exchange at most)
//   peer_logs        what peers showed of their logs; fork detection
//   trust_book       trust-list versions: recorded, fetched, put in force
//   resigner         queued messages under a withdrawn key, signed again
//   dispatcher       one delivery lane (thread) per partner
//   sweeper          expiry (importer side), overdue log
//   background_loop  the housekeeping thread: sweeper, gossip checks,
//                    trust-list poll, re-signing pass
// with pure helpers in messages, transitions and retry_policy.
//
// Concurrency: every public method is thread-safe. Changes to one
// certificate are serialized by its CertificateLock; changes to different
// certificates run in parallel and share fsyncs through the ledger's group
// commit. StartDelivery starts one delivery lane per partner and the
// housekeeping thread; tests may instead step delivery with DeliverDue().
//
// Ownership: the Node does not own the Ledger or the Transport; both must
// outlive it.
#ifndef KPX_NODE_NODE_H_
#define KPX_NODE_NODE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "kpx/v1/config.pb.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/service.pb.h"
#include "node/attestation.h"
#include "node/authority_desk.h"
#include "node/background_loop.h"
#include "node/certificate_locks.h"
#include "node/context.h"
#include "node/courier.h"
#include "node/dispatcher.h"
#include "node/evidence.h"
#include "node/inbox.h"
#include "node/keyring.h"
#include "node/observer.h"
#include "node/officers.h"
#include "node/peer_logs.h"
#include "node/queries.h"
#include "node/resigner.h"
#include "node/sweeper.h"
#include "node/transport.h"
#include "node/tree_signer.h"
#include "node/trust_book.h"
#include "node/trust_list.h"
#include "storage/ledger.h"

namespace kpx::node {

struct NodeOptions {
  std::string participant;
  // Name of the authority, used in import confirmations. Empty: the
  // default of NodeConfig.authority_name.
  std::string authority_name;
  std::shared_ptr<const TrustList> trust_list;
  // The keys this node may sign with (at least one); see keyring.h.
  std::vector<crypto::PrivateKey> signing_keys;
  storage::Ledger* ledger = nullptr;
  Transport* transport = nullptr;
  // Zero fields take NodeConfig's defaults (ApplyDefaults, node/config.h).
  v1::DeliveryConfig delivery;
  // Days after which a certificate waiting for the importing authority is
  // overdue (listed, counted, logged once a day). 0: the default.
  uint32_t overdue_days = 0;
  // Importer side: days after expiry during which a shipment that arrived
  // in time may still be confirmed. 0: the default (NodeConfig).
  uint32_t confirm_grace_days = 0;
  // Zero fields take NodeConfig's defaults; only partner_mib_per_hour is
  // used here (the others are the listeners').
  v1::LimitsConfig limits;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Seeds the retry jitter; 0: a random seed.
  uint64_t random_seed = 0;
  // How often peers are asked for newer trust-list versions; 0: the
  // default (NodeConfig.trust_poll_seconds).
  uint32_t trust_poll_seconds = 0;
  // Called with each trust-list version put in force (trust_book.h), on
  // the thread that put it there; may be empty.
  std::function<void(const TrustList&)> on_trust_list;
};

class Node : public Receiver {
 public:
  // Fails if the participant is not active on the trust list or none of
  // the signing keys is one of its keys valid now.
  static absl::StatusOr<std::unique_ptr<Node>> Create(NodeOptions options);
  ~Node() override;

  const std::string& participant() const { return ctx_.participant; }
  uint32_t overdue_days() const { return overdue_days_; }
  const v1::DeliveryConfig& delivery() const { return delivery_; }
  storage::Ledger& ledger() { return *ctx_.ledger; }

  // ---- authority verbs (roles are checked by gateway/); see authority_desk.h
  absl::StatusOr<v1::CertificateRecord> Submit(v1::Certificate cert,
                                               const std::string& request_id = "",
                                               const v1::Actor& by = {});
  std::vector<absl::Status> CheckCertificate(v1::Certificate* cert) const;
  absl::StatusOr<v1::CertificateRecord> Cancel(const std::string& number, const Reason& reason,
                                               const std::string& request_id = "",
                                               const v1::Actor& by = {});
  absl::StatusOr<v1::CertificateRecord> Resend(const std::string& number,
                                               std::optional<v1::Certificate> corrected,
                                               const std::string& request_id = "",
                                               const v1::Actor& by = {});
  absl::StatusOr<v1::CertificateRecord> Void(const std::string& number, const Reason& reason,
                                             const std::string& request_id = "",
                                             const v1::Actor& by = {});
  absl::StatusOr<v1::CertificateRecord> Amend(v1::Certificate amended, const Reason& reason,
                                              const std::string& request_id = "",
                                              const v1::Actor& by = {});
  // `received_at` unset (InfinitePast) means now.
  absl::StatusOr<v1::CertificateRecord> Confirm(const std::string& number,
                                                const v1::ImportFindings& findings,
                                                absl::Time received_at,
                                                const std::string& request_id = "",
                                                const v1::Actor& by = {});
  absl::StatusOr<v1::CertificateRecord> Reject(const std::string& number, const Reason& reason,
                                               const std::string& request_id = "",
                                               const v1::Actor& by = {});
  // ---- queries; see queries.h
  absl::StatusOr<v1::CertificateRecord> Get(const std::string& number) const;
  absl::StatusOr<v1::ListCertificatesResponse> List(
      const v1::ListCertificatesRequest& request) const;
  absl::StatusOr<v1::TraceCertificateResponse> Trace(const std::string& number) const;
  absl::StatusOr<CertificateCounts> CountCertificates() const { return queries_.Count(); }
  // The evidence bundle of certificate `number` (evidence.h).
  absl::StatusOr<v1::EvidenceBundle> ExportEvidence(const std::string& number);
  // The printed certificate's QR code and the public checks of a paper
  // (attestation.h).
  const Attestor& attestor() const { return attestor_; }

  // ---- peers; see inbox.h. `peer` is the identity its TLS certificate proves.
  v1::DeliverResponse Exchange(const std::string& peer, const v1::DeliverRequest& request) override;
  absl::StatusOr<v1::ConsistencyResponse> Consistency(
      const std::string& peer, const v1::ConsistencyRequest& request) override;
  absl::StatusOr<v1::GetTrustListsResponse> TrustLists(
      const std::string& peer, const v1::GetTrustListsRequest& request) override;
  // The receive steps of Exchange alone, without its answer (tests).
  std::vector<ReceiveOutcome> Receive(const std::string& peer,
                                      const std::vector<v1::SignedMessage>& messages);
  // What peers showed of their logs (peer_logs.h): checks gossiped tree
  // heads now (the housekeeping thread does so every 30 s); returns how
  // many were settled.
  size_t CheckGossip();
  // An operator clears `peer`'s inconsistent mark (peer_logs.h Reset).
  absl::StatusOr<v1::PeerLog> ResetPeerLog(const std::string& peer, const std::string& reason);
  // Ledger::Verify, and the signature of the tree head this node signed
  // last (which Verify checks the root of) against the trust list.
  storage::VerifyResult VerifyLedger() const;
  // Tree heads this node signed since it started.
  uint64_t TreeHeadsSigned() const { return tree_signer_.signed_count(); }

  // ---- delivery and housekeeping
  // Starts / stops the delivery lanes and the housekeeping thread. Stop is
  // idempotent and waits for the exchanges in progress.
  void StartDelivery();
  void StopDelivery();
  // Wakes the delivery lanes (new work queued).
  // A message for `recipient` was queued: wake (or start) its lane.
  void Kick(const std::string& recipient);
  // One delivery pass: a batch per partner, concurrently; returns the
  // number of messages attempted. Not while StartDelivery runs.
  size_t DeliverDue();
  // Importer side: marks RECEIVED certificates past expiry plus the
  // confirmation grace EXPIRED and tells their exporters; returns how many.
  size_t ExpireDue();
  // Logs one line per overdue certificate; returns how many.
  size_t LogOverdue();
  // Messages queued longer than delivery.stuck_after_hours (see courier.h).
  size_t StuckMessages() const;

  // The trust list in force.
  std::shared_ptr<const TrustList> trust_list() const;
  // Puts `trust` in force without recording it (tests).
  void SetTrustList(std::shared_ptr<const TrustList> trust);
  // The operator's trust list and signing keys (a reload): see
  // TrustBook::Install for which list ends in force. Refuses, changing
  // nothing, if the list may not follow the one in force or no key would
  // be valid now.
  absl::Status Reconfigure(std::shared_ptr<const TrustList> trust,
                           std::vector<crypto::PrivateKey> keys);

  // ---- trust-list versions; see trust_book.h
  // An operator's signed next version.
  absl::StatusOr<v1::TrustListRecord> PublishTrustList(const v1::SignedTrustList& signed_list);
  absl::StatusOr<v1::ListTrustListsResponse> ListTrustLists() const;
  // Asks the peers that are due for newer versions now (the housekeeping
  // thread does so every trust_poll_seconds); returns how many came into
  // force.
  size_t PollTrustLists();
  // Versions peers offered that were refused since start.
  uint64_t TrustListsRefused() const { return trust_book_.refused_count(); }

  // ---- withdrawn keys; see resigner.h
  // Signs again, now, every queued message whose key may no longer sign
  // (the housekeeping thread does so when the trust list or the time
  // withdraws a key); returns how many.
  absl::StatusOr<size_t> ResignWithdrawn() { return resigner_.ResignWithdrawn(); }
  // Messages re-signed, and passes that failed, since start.
  uint64_t MessagesResigned() const { return resigner_.resigned(); }
  uint64_t ResignFailures() const { return resigner_.failures(); }

  // ---- officers' accounts and sign-ins; see officers.h
  OfficerBook& officers() { return officers_; }

  // Reports events to `observer` (not owned; may be null). It must outlive
  // the node or be cleared first.
  void SetObserver(Observer* observer) { observer_.Set(observer); }

  // The key id a message signed now would carry; an error if no key is
  // valid now (the node then reports NOT_SERVING).
  absl::StatusOr<std::string> CurrentKeyId() const;
  // OK while the node can work: ledger writable and a key valid now.
  absl::Status Health() const;

 private:
  // `defaults`: the options' zero fields filled in (ApplyDefaults).
  Node(NodeOptions options, const v1::NodeConfig& defaults, std::unique_ptr<Keyring> keyring);

  const uint32_t overdue_days_;
  const v1::DeliveryConfig delivery_;
  std::unique_ptr<Keyring> keyring_;
  CertificateLocks locks_;
  ObserverSlot observer_;
  const NodeContext ctx_;

  Transport* const transport_;
  AuthorityDesk desk_;
  Queries queries_;
  Attestor attestor_;
  TreeSigner tree_signer_;
  PeerLogs peer_logs_;
  Inbox inbox_;
  Courier courier_;
  Sweeper sweeper_;
  Dispatcher dispatcher_;
  TrustBook trust_book_;
  Resigner resigner_;
  OfficerBook officers_;
  BackgroundLoop loop_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_NODE_H_
