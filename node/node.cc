#include "node/node.h"

#include "absl/strings/str_cat.h"
#include "node/config.h"

namespace kpx::node {
namespace {

// NodeOptions' zero fields filled from NodeConfig's defaults.
v1::NodeConfig Defaulted(const NodeOptions& o) {
  v1::NodeConfig c;
  c.set_participant(o.participant);
  c.set_authority_name(o.authority_name);
  *c.mutable_delivery() = o.delivery;
  *c.mutable_limits() = o.limits;
  c.set_overdue_days(o.overdue_days);
  c.set_confirm_grace_days(o.confirm_grace_days);
  c.set_trust_poll_seconds(o.trust_poll_seconds);
  ApplyDefaults(&c);
  return c;
}

// The list to start with: the operator's, unless the ledger holds a newer
// signed version (the node moved on; a stale file must not stop it from
// starting, say with a key the newer version replaced). TrustBook::Open
// then decides for good, and reports what it can not read.
std::shared_ptr<const TrustList> InForce(const storage::Ledger& ledger,
                                         std::shared_ptr<const TrustList> file) {
  absl::StatusOr<std::optional<v1::TrustListRecord>> stored = ledger.LatestTrustList();
  if (file == nullptr || !stored.ok() || !stored->has_value()) return file;
  absl::StatusOr<std::shared_ptr<const TrustList>> kept =
      TrustList::FromSigned((*stored)->signed_list());
  if (!kept.ok() || !(*kept)->governed() || (*kept)->version() <= file->version()) return file;
  return *std::move(kept);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Node>> Node::Create(NodeOptions options) {
  if (options.ledger == nullptr || options.transport == nullptr) {
    return absl::InvalidArgumentError("node needs a ledger and a transport");
  }
  absl::StatusOr<std::unique_ptr<Keyring>> keyring =
      Keyring::Create(options.participant, InForce(*options.ledger, options.trust_list),
                      std::move(options.signing_keys), options.clock());
  if (!keyring.ok()) return keyring.status();
  const v1::NodeConfig defaults = Defaulted(options);
  std::unique_ptr<Node> node(new Node(std::move(options), defaults, *std::move(keyring)));
  if (absl::Status s = node->trust_book_.Open(); !s.ok()) return s;
  return node;
}

Node::Node(NodeOptions o, const v1::NodeConfig& defaults, std::unique_ptr<Keyring> keyring)
    : overdue_days_(defaults.overdue_days()),
      delivery_(defaults.delivery()),
      keyring_(std::move(keyring)),
      ctx_{o.participant, o.ledger, keyring_.get(), &locks_, &observer_, std::move(o.clock)},
      transport_(o.transport),
      desk_(ctx_, defaults.authority_name(), [this](const std::string& r) { Kick(r); }),
      queries_(ctx_, overdue_days_),
      attestor_(ctx_),
      tree_signer_(ctx_),
      peer_logs_(ctx_),
      inbox_(ctx_, &tree_signer_, &peer_logs_,
             uint64_t{defaults.limits().partner_mib_per_hour()} << 20),
      courier_(ctx_, o.transport, &peer_logs_, delivery_,
               o.random_seed != 0 ? o.random_seed : RandomSeed()),
      sweeper_(ctx_, overdue_days_, defaults.confirm_grace_days(),
               [this](const std::string& r) { Kick(r); }),
      dispatcher_(ctx_, &courier_),
      trust_book_(ctx_, o.transport, absl::Seconds(defaults.trust_poll_seconds()),
                  std::move(o.on_trust_list)),
      resigner_(ctx_, [this](const std::string& r) { Kick(r); }),
      officers_(ctx_),
      loop_(
          ctx_, &sweeper_,
          [this] {
            CheckGossip();
            PollTrustLists();
            resigner_.Pass();
          },
          absl::Seconds(defaults.trust_poll_seconds())) {}

Node::~Node() { StopDelivery(); }

absl::StatusOr<v1::CertificateRecord> Node::Submit(v1::Certificate cert,
                                                   const std::string& request_id,
                                                   const v1::Actor& by) {
  return desk_.Submit(std::move(cert), request_id, by);
}
std::vector<absl::Status> Node::CheckCertificate(v1::Certificate* cert) const {
  return desk_.CheckCertificate(cert);
}
absl::StatusOr<v1::CertificateRecord> Node::Cancel(const std::string& number, const Reason& reason,
                                                   const std::string& request_id,
                                                   const v1::Actor& by) {
  return desk_.Cancel(number, reason, request_id, by);
}
absl::StatusOr<v1::CertificateRecord> Node::Confirm(const std::string& number,
                                                    const v1::ImportFindings& findings,
                                                    absl::Time received_at,
                                                    const std::string& request_id,
                                                    const v1::Actor& by) {
  return desk_.Confirm(number, findings, received_at, request_id, by);
}
absl::StatusOr<v1::CertificateRecord> Node::Reject(const std::string& number, const Reason& reason,
                                                   const std::string& request_id,
                                                   const v1::Actor& by) {
  return desk_.Reject(number, reason, request_id, by);
}
absl::StatusOr<v1::CertificateRecord> Node::Resend(const std::string& number,
                                                   std::optional<v1::Certificate> corrected,
                                                   const std::string& request_id,
                                                   const v1::Actor& by) {
  return desk_.Resend(number, std::move(corrected), request_id, by);
}

absl::StatusOr<v1::CertificateRecord> Node::Void(const std::string& number, const Reason& reason,
                                                 const std::string& request_id,
                                                 const v1::Actor& by) {
  return desk_.Void(number, reason, request_id, by);
}
absl::StatusOr<v1::CertificateRecord> Node::Amend(v1::Certificate amended, const Reason& reason,
                                                  const std::string& request_id,
                                                  const v1::Actor& by) {
  return desk_.Amend(std::move(amended), reason, request_id, by);
}
absl::StatusOr<v1::TraceCertificateResponse> Node::Trace(const std::string& number) const {
  return queries_.Trace(number);
}
absl::StatusOr<v1::EvidenceBundle> Node::ExportEvidence(const std::string& number) {
  return node::ExportEvidence(ctx_, tree_signer_, number);
}
absl::StatusOr<v1::CertificateRecord> Node::Get(const std::string& number) const {
  return queries_.Get(number);
}
absl::StatusOr<v1::ListCertificatesResponse> Node::List(
    const v1::ListCertificatesRequest& request) const {
  return queries_.List(request);
}

v1::DeliverResponse Node::Exchange(const std::string& peer, const v1::DeliverRequest& request) {
  return inbox_.Exchange(peer, request);
}
absl::StatusOr<v1::ConsistencyResponse> Node::Consistency(const std::string& peer,
                                                          const v1::ConsistencyRequest& request) {
  return inbox_.Consistency(request);
}
absl::StatusOr<v1::GetTrustListsResponse> Node::TrustLists(
    const std::string& peer, const v1::GetTrustListsRequest& request) {
  return trust_book_.Since(request.after_version());
}
absl::StatusOr<v1::TrustListRecord> Node::PublishTrustList(const v1::SignedTrustList& signed_list) {
  absl::StatusOr<v1::TrustListRecord> r = trust_book_.Publish(signed_list);
  if (r.ok()) resigner_.Pass();
  return r;
}
absl::StatusOr<v1::ListTrustListsResponse> Node::ListTrustLists() const {
  return trust_book_.List();
}
size_t Node::PollTrustLists() { return trust_book_.Poll(); }
std::vector<ReceiveOutcome> Node::Receive(const std::string& peer,
                                          const std::vector<v1::SignedMessage>& messages) {
  return inbox_.Receive(peer, messages);
}
storage::VerifyResult Node::VerifyLedger() const {
  storage::VerifyResult r = ctx_.ledger->Verify();
  if (!r.ok || r.tree_head_size == 0) return r;
  absl::StatusOr<std::optional<v1::SignedMessage>> kept = ctx_.ledger->KeptTreeHead();
  absl::Status s = kept.ok() ? absl::OkStatus() : kept.status();
  if (s.ok() && kept->has_value()) {
    s = CheckTreeHead(**kept, ctx_.participant, *keyring_->trust(), ctx_.Now()).status();
  }
  if (!s.ok()) {
    r.ok = false;
    r.first_bad_sequence = r.tree_head_size;
    r.problem = absl::StrCat("the tree head this node signed last does not verify: ", s.message());
  }
  return r;
}

absl::StatusOr<v1::PeerLog> Node::ResetPeerLog(const std::string& peer, const std::string& reason) {
  return peer_logs_.Reset(peer, reason, ctx_.Now());
}

size_t Node::CheckGossip() { return peer_logs_.CheckGossip(*transport_, ctx_.Now()); }

void Node::StartDelivery() {
  dispatcher_.Start();
  loop_.Start();
}
void Node::StopDelivery() {
  loop_.Stop();
  dispatcher_.Stop();
}
void Node::Kick(const std::string& recipient) { dispatcher_.Kick(recipient); }
size_t Node::DeliverDue() { return courier_.DeliverDue(); }
size_t Node::ExpireDue() { return sweeper_.ExpireDue(); }
size_t Node::LogOverdue() { return sweeper_.LogOverdue(); }
size_t Node::StuckMessages() const { return courier_.stuck(); }

std::shared_ptr<const TrustList> Node::trust_list() const { return keyring_->trust(); }
void Node::SetTrustList(std::shared_ptr<const TrustList> trust) {
  keyring_->SetTrust(std::move(trust));
}
absl::Status Node::Reconfigure(std::shared_ptr<const TrustList> trust,
                               std::vector<crypto::PrivateKey> keys) {
  absl::Status s = trust_book_.Install(std::move(trust), std::move(keys));
  if (s.ok()) resigner_.Pass();
  return s;
}

absl::StatusOr<std::string> Node::CurrentKeyId() const {
  absl::StatusOr<Signer> s = keyring_->SignerAt(ctx_.Now());
  if (!s.ok()) return s.status();
  return s->key().key_id();
}

absl::Status Node::Health() const {
  if (absl::Status s = ctx_.ledger->WriteStatus(); !s.ok()) return s;
  return CurrentKeyId().status();
}

}  // namespace kpx::node
