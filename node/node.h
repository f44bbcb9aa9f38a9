// kpx::node::Node: one Participant's node logic. It validates and signs
// what its authorities issue, records every step in the ledger, delivers
// outgoing messages through a Transport, and checks and records what peers
// deliver. It includes no gRPC: gateway/ adapts it to the network.
//
// Concurrency: every public method is thread-safe. Changes to one
// certificate are serialized by a lock striped on its number; changes to
// different certificates run in parallel and share fsyncs through the
// ledger's group commit. One background thread (StartDelivery) drains the
// outbox; it can also be stepped by hand with DeliverDue() in tests.
//
// Ownership: the Node does not own the Ledger or the Transport; both must
// outlive it.
#ifndef KPX_NODE_NODE_H_
#define KPX_NODE_NODE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "kpx/v1/config.pb.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/service.pb.h"
#include "node/envelope.h"
#include "node/observer.h"
#include "node/transport.h"
#include "node/trust_list.h"
#include "storage/ledger.h"

namespace kpx::node {

struct NodeOptions {
  std::string participant;
  // Name of the authority, used in import confirmations.
  std::string authority_name;
  std::shared_ptr<const TrustList> trust_list;
  // The keys this node may sign with (at least one). Each message is signed
  // with the newest key valid at that moment on the trust list (latest
  // not_before), so a rotation happens by itself when the new key's window
  // opens.
  std::vector<crypto::PrivateKey> signing_keys;
  storage::Ledger* ledger = nullptr;
  Transport* transport = nullptr;
  v1::DeliveryConfig delivery;  // zero fields take the defaults
  // Days after which a certificate waiting for the importing authority is
  // overdue (listed, counted, logged once a day). 0: 15.
  uint32_t overdue_days = 0;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

class Node : public Receiver {
 public:
  // Fails if the participant is not active on the trust list or none of
  // the signing keys is one of its keys valid now.
  static absl::StatusOr<std::unique_ptr<Node>> Create(NodeOptions options);
  ~Node() override;

  const std::string& participant() const { return participant_; }
  uint32_t overdue_days() const { return overdue_days_; }
  storage::Ledger& ledger() { return *ledger_; }

  // ---- authority verbs (roles are checked by gateway/)

  // Exporter: validates `cert` against the KP rules, signs it, and records
  // it ISSUED with its delivery queued, in one ledger batch.
  absl::StatusOr<v1::CertificateRecord> Submit(v1::Certificate cert);
  // Exporter: voids an ISSUED or DELIVERED certificate and tells the importer.
  absl::StatusOr<v1::CertificateRecord> Cancel(const std::string& number,
                                               const std::string& reason);
  // Importer: confirms receipt of the shipment of a RECEIVED certificate
  // and sends the signed confirmation to the exporter. `received_at`
  // unset (InfinitePast) means now.
  absl::StatusOr<v1::CertificateRecord> Confirm(const std::string& number, absl::Time received_at);
  // Importer: refuses the shipment of a RECEIVED certificate.
  absl::StatusOr<v1::CertificateRecord> Reject(const std::string& number,
                                               const std::string& reason);
  // NotFound if this node has no certificate with that number.
  absl::StatusOr<v1::CertificateRecord> Get(const std::string& number) const;
  absl::StatusOr<v1::ListCertificatesResponse> List(
      const v1::ListCertificatesRequest& request) const;

  // ---- peers

  // Checks and records messages delivered by `peer` (the identity its TLS
  // certificate proves). One outcome per message: OK with our signed
  // receipt (the original one for a redelivered message), or why it was
  // refused; a refused message changes nothing.
  std::vector<DeliveryOutcome> Receive(const std::string& peer,
                                       const std::vector<v1::SignedMessage>& messages) override;

  // ---- delivery and housekeeping

  // Starts / stops the background delivery thread. Stop is idempotent and
  // waits for an exchange in progress.
  void StartDelivery();
  void StopDelivery();
  // Wakes the delivery thread (new work queued).
  void Kick();
  // One pass over the due outbox: delivers, records receipts, reschedules
  // failures with backoff. Returns the number of messages attempted.
  size_t DeliverDue();
  // Marks certificates whose validity ran out unconfirmed EXPIRED. Returns
  // how many.
  size_t ExpireDue();
  // Logs one line per overdue certificate. Returns how many.
  size_t LogOverdue();

  // The trust list in force; replaced atomically by SetTrustList.
  std::shared_ptr<const TrustList> trust_list() const;
  void SetTrustList(std::shared_ptr<const TrustList> trust);

  // Reports events to `observer` (not owned; may be null). Set before
  // StartDelivery; it must outlive the node.
  void SetObserver(Observer* observer) { observer_ = observer; }

  // Replaces the trust list and the signing keys together (a reload).
  // Refuses, changing nothing, if no key would be valid now.
  absl::Status Reconfigure(std::shared_ptr<const TrustList> trust,
                           std::vector<crypto::PrivateKey> keys);

  // The key id a message signed now would carry; an error if no key is
  // valid now (the node then reports NOT_SERVING).
  absl::StatusOr<std::string> CurrentKeyId() const;
  // OK while the node can work: ledger writable and a key valid now.
  absl::Status Health() const;

 private:
  class StripeLock;
  explicit Node(NodeOptions options);

  absl::Time Now() const { return clock_(); }
  // The signer for a message created at `at`: the newest of keys_ valid
  // then on the trust list.
  absl::StatusOr<Signer> SignerAt(absl::Time at) const;
  // Fills in `body`'s header (a new message id, returned in *message_id;
  // this node as sender; `recipient`; now) and signs it with the key in
  // force now.
  absl::StatusOr<v1::SignedMessage> SignBody(v1::MessageBody body, const std::string& recipient,
                                             std::string* message_id);
  // Builds the transition for a locally initiated state change that sends
  // `msg` to the partner.
  absl::StatusOr<v1::CertificateRecord> SendStateChange(
      const std::string& number, v1::Side side, v1::CertificateState to, const std::string& detail,
      const std::function<absl::StatusOr<v1::MessageBody>(const v1::CertificateRecord&)>&
          make_body);
  // Appends `t` (whose record is set), stamping the record's last history
  // item with the entry's sequence, and returns the stamped record.
  absl::StatusOr<v1::CertificateRecord> AppendAndReturnRecord(storage::Transition t);
  absl::StatusOr<storage::Transition> PrepareIncoming(const std::string& peer,
                                                      const v1::MessageBody& body,
                                                      const v1::SignedMessage& msg,
                                                      const v1::CertificateRecord* current,
                                                      absl::Time now);
  absl::Duration Backoff(uint32_t attempts);
  void DeliveryLoop();
  void DeliverTo(const std::string& recipient, std::vector<v1::OutboxItem> items);

  const std::string participant_;
  const std::string authority_name_;
  storage::Ledger* const ledger_;
  Transport* const transport_;
  v1::DeliveryConfig delivery_;
  const uint32_t overdue_days_;
  const std::function<absl::Time()> clock_;

  mutable absl::Mutex trust_mu_;
  std::shared_ptr<const TrustList> trust_ ABSL_GUARDED_BY(trust_mu_);
  std::shared_ptr<const std::vector<crypto::PrivateKey>> keys_ ABSL_GUARDED_BY(trust_mu_);

  std::atomic<Observer*> observer_{nullptr};

  static constexpr int kStripes = 64;
  mutable absl::Mutex stripes_[kStripes];

  absl::Mutex rng_mu_;
  absl::BitGen rng_ ABSL_GUARDED_BY(rng_mu_);

  absl::Mutex loop_mu_;
  bool stop_ ABSL_GUARDED_BY(loop_mu_) = false;
  bool kicked_ ABSL_GUARDED_BY(loop_mu_) = false;
  std::thread loop_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_NODE_H_
