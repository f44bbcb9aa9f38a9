#include "node/node.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "node/log.h"
#include "node/rules.h"
#include "node/state.h"
#include "node/util.h"

namespace kpx::node {

// Locks the stripes of a set of certificate numbers, in index order so two
// threads locking overlapping sets cannot deadlock.
class Node::StripeLock {
 public:
  StripeLock(const Node& node, const std::vector<std::string>& numbers) {
    std::set<size_t> idx;
    for (const std::string& n : numbers) idx.insert(absl::Hash<std::string>()(n) % kStripes);
    for (size_t i : idx) {
      node.stripes_[i].Lock();
      held_.push_back(&node.stripes_[i]);
    }
  }
  ~StripeLock() {
    for (auto it = held_.rbegin(); it != held_.rend(); ++it) (*it)->Unlock();
  }

 private:
  std::vector<absl::Mutex*> held_;
};

namespace {

constexpr uint32_t kDefaultInitialBackoffMs = 500;
constexpr uint32_t kDefaultMaxBackoffMs = 60000;
constexpr uint32_t kDefaultBatchSize = 256;
constexpr uint32_t kMaxBatchSize = 1000;
constexpr uint32_t kDefaultRpcTimeoutMs = 10000;

void AddHistory(v1::CertificateRecord& rec, v1::CertificateState state, absl::Time at,
                const std::string& message_id, const std::string& detail) {
  rec.set_state(state);
  v1::StateChange* h = rec.add_history();
  h->set_state(state);
  *h->mutable_at() = ToTimestamp(at);
  h->set_message_id(message_id);
  h->set_detail(detail);
}

// on_sequenced hook that stamps the last history item with its sequence.
absl::Status StampHistory(const storage::Head& head, storage::Transition& t) {
  if (t.record.has_value() && t.record->history_size() > 0) {
    t.record->mutable_history()->rbegin()->set_sequence(head.sequence);
  }
  return absl::OkStatus();
}

v1::LedgerEntry MakeEntry(v1::EntryKind kind, const std::string& number, const std::string& partner,
                          v1::CertificateState state, absl::Time now) {
  v1::LedgerEntry e;
  e.set_kind(kind);
  e.set_certificate_number(number);
  e.set_partner(partner);
  e.set_state(state);
  *e.mutable_recorded_at() = ToTimestamp(now);
  return e;
}

v1::OutboxItem MakeOutboxItem(const v1::SignedMessage& msg, const std::string& id,
                              const std::string& recipient, const std::string& number,
                              absl::Time now) {
  v1::OutboxItem item;
  item.set_message_id(id);
  item.set_recipient(recipient);
  item.set_certificate_number(number);
  *item.mutable_message() = msg;
  *item.mutable_due_at() = ToTimestamp(now);
  *item.mutable_queued_at() = ToTimestamp(now);
  return item;
}

// Errors after which re-sending the same bytes cannot succeed: the message
// itself is wrong or conflicts with the receiver's ledger. Anything else
// (unreachable, overloaded, not yet known, trust list not yet updated) is
// retried with backoff.
bool IsPermanent(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kFailedPrecondition ||
         s.code() == absl::StatusCode::kAlreadyExists;
}

}  // namespace

// ------------------------------------------------------------- construction

namespace {

// The newest of `keys` valid at `at` for `participant` on `trust`.
absl::StatusOr<const crypto::PrivateKey*> NewestValidKey(
    const std::vector<crypto::PrivateKey>& keys, const std::string& participant,
    const TrustList& trust, absl::Time at) {
  const crypto::PrivateKey* best = nullptr;
  absl::Time best_from = absl::InfinitePast();
  const v1::Participant* p = trust.Find(participant);
  for (const crypto::PrivateKey& k : keys) {
    if (p == nullptr || !trust.FindKey(participant, k.key_id(), at).ok()) continue;
    absl::Time from = absl::InfinitePast();
    for (const v1::SigningKey& listed : p->signing_keys()) {
      if (listed.key_id() == k.key_id() && IsSet(listed.not_before())) {
        from = FromTimestamp(listed.not_before());
      }
    }
    if (best == nullptr || from > best_from) {
      best = &k;
      best_from = from;
    }
  }
  if (best == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("none of the ", keys.size(), " signing key(s) is a key of ", participant,
                     " valid at ", FormatRfc3339(at), " on the trust list"));
  }
  return best;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Node>> Node::Create(NodeOptions options) {
  if (options.ledger == nullptr || options.transport == nullptr || options.trust_list == nullptr ||
      options.signing_keys.empty()) {
    return absl::InvalidArgumentError(
        "node needs a ledger, a transport, a trust list and a signing key");
  }
  const absl::Time now = options.clock();
  if (absl::Status s = options.trust_list->CheckActive(options.participant, now); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("this node's Participant: ", s.message()));
  }
  if (absl::StatusOr<const crypto::PrivateKey*> k =
          NewestValidKey(options.signing_keys, options.participant, *options.trust_list, now);
      !k.ok()) {
    return k.status();
  }
  v1::DeliveryConfig& d = options.delivery;
  if (d.initial_backoff_ms() == 0) d.set_initial_backoff_ms(kDefaultInitialBackoffMs);
  if (d.max_backoff_ms() == 0) d.set_max_backoff_ms(kDefaultMaxBackoffMs);
  if (d.batch_size() == 0) d.set_batch_size(kDefaultBatchSize);
  // Receivers refuse larger calls (gateway/services.cc).
  d.set_batch_size(std::min<uint32_t>(d.batch_size(), kMaxBatchSize));
  if (d.rpc_timeout_ms() == 0) d.set_rpc_timeout_ms(kDefaultRpcTimeoutMs);
  if (options.authority_name.empty()) {
    options.authority_name = absl::StrCat(options.participant, " KP authority");
  }
  return std::unique_ptr<Node>(new Node(std::move(options)));
}

Node::Node(NodeOptions o)
    : participant_(o.participant),
      authority_name_(o.authority_name),
      ledger_(o.ledger),
      transport_(o.transport),
      delivery_(o.delivery),
      overdue_days_(o.overdue_days == 0 ? 15 : o.overdue_days),
      clock_(std::move(o.clock)),
      trust_(std::move(o.trust_list)),
      keys_(std::make_shared<const std::vector<crypto::PrivateKey>>(std::move(o.signing_keys))) {}

Node::~Node() { StopDelivery(); }

std::shared_ptr<const TrustList> Node::trust_list() const {
  absl::MutexLock l(&trust_mu_);
  return trust_;
}

void Node::SetTrustList(std::shared_ptr<const TrustList> trust) {
  absl::MutexLock l(&trust_mu_);
  trust_ = std::move(trust);
}

absl::Status Node::Reconfigure(std::shared_ptr<const TrustList> trust,
                               std::vector<crypto::PrivateKey> keys) {
  if (trust == nullptr || keys.empty()) {
    return absl::InvalidArgumentError("a reload needs a trust list and a signing key");
  }
  absl::StatusOr<const crypto::PrivateKey*> k = NewestValidKey(keys, participant_, *trust, Now());
  if (!k.ok()) return k.status();
  absl::MutexLock l(&trust_mu_);
  trust_ = std::move(trust);
  keys_ = std::make_shared<const std::vector<crypto::PrivateKey>>(std::move(keys));
  return absl::OkStatus();
}

absl::StatusOr<Signer> Node::SignerAt(absl::Time at) const {
  std::shared_ptr<const TrustList> trust;
  std::shared_ptr<const std::vector<crypto::PrivateKey>> keys;
  {
    absl::MutexLock l(&trust_mu_);
    trust = trust_;
    keys = keys_;
  }
  absl::StatusOr<const crypto::PrivateKey*> k = NewestValidKey(*keys, participant_, *trust, at);
  if (!k.ok()) return k.status();
  return Signer(participant_, **k);
}

absl::StatusOr<std::string> Node::CurrentKeyId() const {
  absl::StatusOr<Signer> s = SignerAt(Now());
  if (!s.ok()) return s.status();
  return s->key().key_id();
}

absl::Status Node::Health() const {
  if (absl::Status s = ledger_->WriteStatus(); !s.ok()) return s;
  return CurrentKeyId().status();
}

absl::StatusOr<v1::SignedMessage> Node::SignBody(v1::MessageBody body, const std::string& recipient,
                                                 std::string* message_id) {
  v1::Header* h = body.mutable_header();
  *message_id = NewMessageId();
  h->set_message_id(*message_id);
  h->set_sender(participant_);
  h->set_recipient(recipient);
  const absl::Time now = Now();
  *h->mutable_created_at() = ToTimestamp(now);
  absl::StatusOr<Signer> signer = SignerAt(now);
  if (!signer.ok()) return signer.status();
  return signer->Sign(body);
}

// ------------------------------------------------------------- authority verbs

absl::StatusOr<v1::CertificateRecord> Node::Submit(v1::Certificate cert) {
  const absl::Time now = Now();
  FillFixedTexts(cert);
  std::shared_ptr<const TrustList> trust = trust_list();
  if (absl::Status s = ValidateCertificate(cert, participant_, *trust, now); !s.ok()) {
    return s;
  }
  if (FromTimestamp(cert.expires_at()) <= now) {
    return absl::InvalidArgumentError("certificate: expires_at is already past");
  }
  const std::string number = cert.number();
  const std::string importer = cert.importing_participant();

  StripeLock lock(*this, {number});
  absl::StatusOr<std::optional<v1::CertificateRecord>> existing = ledger_->GetCertificate(number);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return absl::AlreadyExistsError(
        absl::StrCat("certificate number ", number, " is already used"));
  }

  v1::MessageBody body;
  body.mutable_header()->set_kind(v1::CERTIFICATE);
  *body.mutable_certificate() = cert;
  std::string id;
  absl::StatusOr<v1::SignedMessage> msg = SignBody(std::move(body), importer, &id);
  if (!msg.ok()) return msg.status();

  storage::Transition t;
  t.entry = MakeEntry(v1::SENT, number, importer, v1::ISSUED, now);
  t.entry.set_message_id(id);
  *t.entry.mutable_message() = *msg;
  v1::CertificateRecord rec;
  *rec.mutable_certificate() = cert;
  rec.set_side(v1::EXPORTING);
  rec.set_partner(importer);
  rec.set_certificate_message_id(id);
  rec.set_certificate_digest(MessageDigest(*msg));
  AddHistory(rec, v1::ISSUED, now, id, "");
  t.record = std::move(rec);
  t.outbox_put.push_back(MakeOutboxItem(*msg, id, importer, number, now));
  return AppendAndReturnRecord(std::move(t));
}

absl::StatusOr<v1::CertificateRecord> Node::AppendAndReturnRecord(storage::Transition t) {
  v1::CertificateRecord result;
  t.on_sequenced = [&result](const storage::Head& head, storage::Transition& tr) {
    absl::Status s = StampHistory(head, tr);
    result = *tr.record;
    return s;
  };
  absl::StatusOr<storage::Head> head = ledger_->Append(std::move(t));
  if (!head.ok()) return head.status();
  Kick();
  return result;
}

absl::StatusOr<v1::CertificateRecord> Node::SendStateChange(
    const std::string& number, v1::Side side, v1::CertificateState to, const std::string& detail,
    const std::function<absl::StatusOr<v1::MessageBody>(const v1::CertificateRecord&)>& make_body) {
  const absl::Time now = Now();
  StripeLock lock(*this, {number});
  absl::StatusOr<std::optional<v1::CertificateRecord>> current = ledger_->GetCertificate(number);
  if (!current.ok()) return current.status();
  if (!current->has_value() || (*current)->side() != side) {
    return absl::NotFoundError(
        absl::StrCat(side == v1::IMPORTING ? "no received certificate " : "no issued certificate ",
                     number, " at ", participant_));
  }
  v1::CertificateRecord rec = **std::move(current);
  if (absl::Status s = CheckTransition(side, rec.state(), to); !s.ok()) return s;
  if (to != v1::CANCELLED && now >= FromTimestamp(rec.certificate().expires_at())) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate ", number, " expired at ",
                     FormatRfc3339(FromTimestamp(rec.certificate().expires_at()))));
  }
  if (absl::Status s = trust_list()->CheckActive(rec.partner(), now); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  absl::StatusOr<v1::MessageBody> body = make_body(rec);
  if (!body.ok()) return body.status();
  std::string id;
  absl::StatusOr<v1::SignedMessage> msg = SignBody(*std::move(body), rec.partner(), &id);
  if (!msg.ok()) return msg.status();

  storage::Transition t;
  t.entry = MakeEntry(v1::SENT, number, rec.partner(), to, now);
  t.entry.set_message_id(id);
  t.entry.set_detail(detail);
  *t.entry.mutable_message() = *msg;
  AddHistory(rec, to, now, id, detail);
  t.outbox_put.push_back(MakeOutboxItem(*msg, id, rec.partner(), number, now));
  t.record = std::move(rec);
  return AppendAndReturnRecord(std::move(t));
}

namespace {

constexpr size_t kMaxReasonBytes = 2048;

absl::Status CheckReason(const std::string& reason, const char* what) {
  if (reason.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " needs a reason"));
  if (reason.size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " reason is longer than ", kMaxReasonBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::CertificateRecord> Node::Cancel(const std::string& number,
                                                   const std::string& reason) {
  if (absl::Status s = CheckReason(reason, "a cancellation"); !s.ok()) return s;
  return SendStateChange(number, v1::EXPORTING, v1::CANCELLED, reason,
                         [&](const v1::CertificateRecord&) -> absl::StatusOr<v1::MessageBody> {
                           v1::MessageBody b;
                           b.mutable_header()->set_kind(v1::CANCELLATION);
                           b.mutable_cancellation()->set_certificate_number(number);
                           b.mutable_cancellation()->set_reason(reason);
                           return b;
                         });
}

absl::StatusOr<v1::CertificateRecord> Node::Confirm(const std::string& number,
                                                    absl::Time received_at) {
  if (received_at == absl::InfinitePast()) received_at = Now();
  return SendStateChange(number, v1::IMPORTING, v1::CONFIRMED, "",
                         [&](const v1::CertificateRecord& rec) -> absl::StatusOr<v1::MessageBody> {
                           const v1::Certificate& c = rec.certificate();
                           if (received_at > Now() + absl::Minutes(5)) {
                             return absl::InvalidArgumentError("received_at is in the future");
                           }
                           v1::MessageBody b;
                           b.mutable_header()->set_kind(v1::IMPORT_CONFIRMATION);
                           v1::ImportConfirmation* ic = b.mutable_confirmation();
                           ic->set_certificate_number(number);
                           ic->set_number_of_parcels(c.number_of_parcels());
                           ic->set_total_carats_hundredths(c.total_carats_hundredths());
                           ic->set_total_value_usd_cents(c.total_value_usd_cents());
                           *ic->mutable_importer() = c.importer();
                           *ic->mutable_exporter() = c.exporter();
                           *ic->mutable_received_at() = ToTimestamp(received_at);
                           ic->set_importing_authority(authority_name_);
                           ic->set_certificate_digest(rec.certificate_digest());
                           return b;
                         });
}

absl::StatusOr<v1::CertificateRecord> Node::Reject(const std::string& number,
                                                   const std::string& reason) {
  if (absl::Status s = CheckReason(reason, "a rejection"); !s.ok()) return s;
  return SendStateChange(number, v1::IMPORTING, v1::REJECTED, reason,
                         [&](const v1::CertificateRecord& rec) -> absl::StatusOr<v1::MessageBody> {
                           v1::MessageBody b;
                           b.mutable_header()->set_kind(v1::REJECTION);
                           b.mutable_rejection()->set_certificate_number(number);
                           b.mutable_rejection()->set_reason(reason);
                           b.mutable_rejection()->set_certificate_digest(rec.certificate_digest());
                           return b;
                         });
}

absl::StatusOr<v1::CertificateRecord> Node::Get(const std::string& number) const {
  absl::StatusOr<std::optional<v1::CertificateRecord>> rec = ledger_->GetCertificate(number);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) {
    return absl::NotFoundError(absl::StrCat("no certificate ", number, " at ", participant_));
  }
  return **std::move(rec);
}

absl::StatusOr<v1::ListCertificatesResponse> Node::List(
    const v1::ListCertificatesRequest& req) const {
  size_t limit = req.page_size() == 0 ? 50 : std::min<uint32_t>(req.page_size(), 1000);
  const absl::Time now = Now();
  auto keep = [&](const v1::CertificateRecord& r) {
    if (req.state() != v1::CERTIFICATE_STATE_UNSPECIFIED && r.state() != req.state()) {
      return false;
    }
    if (!req.partner().empty() && r.partner() != req.partner()) return false;
    const absl::Time issued = FromTimestamp(r.certificate().issued_at());
    if (IsSet(req.issued_from()) && issued < FromTimestamp(req.issued_from())) return false;
    if (IsSet(req.issued_until()) && issued >= FromTimestamp(req.issued_until())) return false;
    const uint32_t overdue_days = req.overdue_days() > 0 ? req.overdue_days()
                                  : req.overdue()        ? overdue_days_
                                                         : 0;
    if (overdue_days > 0 && !IsOverdue(r, now, absl::Hours(24) * overdue_days)) return false;
    return true;
  };
  // Fetch one more than asked to learn whether another page exists.
  absl::StatusOr<std::vector<v1::CertificateRecord>> recs =
      ledger_->ListCertificates(req.page_token(), limit + 1, keep);
  if (!recs.ok()) return recs.status();
  v1::ListCertificatesResponse resp;
  for (size_t i = 0; i < recs->size() && i < limit; ++i) {
    *resp.add_certificates() = (*recs)[i];
  }
  if (recs->size() > limit) resp.set_next_page_token((*recs)[limit - 1].certificate().number());
  return resp;
}

// ------------------------------------------------------------- receiving

absl::StatusOr<storage::Transition> Node::PrepareIncoming(const std::string& peer,
                                                          const v1::MessageBody& body,
                                                          const v1::SignedMessage& msg,
                                                          const v1::CertificateRecord* current,
                                                          absl::Time now) {
  const std::string& id = body.header().message_id();
  storage::Transition t;
  t.seen_message_id = id;
  auto finish = [&](v1::CertificateRecord rec, v1::CertificateState to, const std::string& number,
                    const std::string& detail) {
    t.entry = MakeEntry(v1::RECEIVED_MESSAGE, number, peer, to, now);
    t.entry.set_message_id(id);
    t.entry.set_detail(detail);
    *t.entry.mutable_message() = msg;
    AddHistory(rec, to, now, id, detail);
    t.record = std::move(rec);
  };
  // For answers about a certificate we issued to `peer`.
  auto ours = [&](const std::string& number,
                  v1::CertificateState to) -> absl::StatusOr<v1::CertificateRecord> {
    if (current == nullptr || current->side() != v1::EXPORTING || current->partner() != peer) {
      return absl::NotFoundError(
          absl::StrCat(participant_, " issued no certificate ", number, " to ", peer));
    }
    if (absl::Status s = CheckTransition(v1::EXPORTING, current->state(), to); !s.ok()) {
      return s;
    }
    return *current;
  };

  switch (body.payload_case()) {
    case v1::MessageBody::kCertificate: {
      const v1::Certificate& cert = body.certificate();
      if (cert.importing_participant() != participant_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "certificate is for ", cert.importing_participant(), ", not ", participant_));
      }
      if (absl::Status s = ValidateCertificate(cert, peer, *trust_list(), now); !s.ok()) {
        return absl::InvalidArgumentError(s.message());
      }
      if (current != nullptr) {
        return absl::AlreadyExistsError(
            absl::StrCat("certificate number ", cert.number(), " was already received"));
      }
      v1::CertificateRecord rec;
      *rec.mutable_certificate() = cert;
      rec.set_side(v1::IMPORTING);
      rec.set_partner(peer);
      rec.set_certificate_message_id(id);
      rec.set_certificate_digest(MessageDigest(msg));
      *rec.mutable_delivered_at() = ToTimestamp(now);
      finish(std::move(rec), v1::RECEIVED, cert.number(), "");
      return t;
    }
    case v1::MessageBody::kConfirmation: {
      const v1::ImportConfirmation& c = body.confirmation();
      absl::StatusOr<v1::CertificateRecord> rec = ours(c.certificate_number(), v1::CONFIRMED);
      if (!rec.ok()) return rec.status();
      if (c.certificate_digest() != rec->certificate_digest()) {
        return absl::InvalidArgumentError("confirmation names a different certificate digest");
      }
      finish(*std::move(rec), v1::CONFIRMED, c.certificate_number(), "");
      return t;
    }
    case v1::MessageBody::kRejection: {
      const v1::Rejection& r = body.rejection();
      absl::StatusOr<v1::CertificateRecord> rec = ours(r.certificate_number(), v1::REJECTED);
      if (!rec.ok()) return rec.status();
      if (r.certificate_digest() != rec->certificate_digest()) {
        return absl::InvalidArgumentError("rejection names a different certificate digest");
      }
      finish(*std::move(rec), v1::REJECTED, r.certificate_number(), r.reason());
      return t;
    }
    case v1::MessageBody::kCancellation: {
      const v1::Cancellation& c = body.cancellation();
      if (current == nullptr || current->side() != v1::IMPORTING || current->partner() != peer) {
        return absl::NotFoundError(absl::StrCat(participant_, " received no certificate ",
                                                c.certificate_number(), " from ", peer));
      }
      if (absl::Status s = CheckTransition(v1::IMPORTING, current->state(), v1::CANCELLED);
          !s.ok()) {
        return s;
      }
      finish(*current, v1::CANCELLED, c.certificate_number(), c.reason());
      return t;
    }
    case v1::MessageBody::kReceipt:
      return absl::InvalidArgumentError("receipts travel only in Deliver responses");
    default:
      return absl::InvalidArgumentError("message has no payload");
  }
}

namespace {

const std::string& NumberOf(const v1::MessageBody& body) {
  switch (body.payload_case()) {
    case v1::MessageBody::kCertificate:
      return body.certificate().number();
    case v1::MessageBody::kConfirmation:
      return body.confirmation().certificate_number();
    case v1::MessageBody::kRejection:
      return body.rejection().certificate_number();
    case v1::MessageBody::kCancellation:
      return body.cancellation().certificate_number();
    default: {
      static const std::string* empty = new std::string;
      return *empty;
    }
  }
}

}  // namespace

std::vector<DeliveryOutcome> Node::Receive(const std::string& peer,
                                           const std::vector<v1::SignedMessage>& messages) {
  const absl::Time now = Now();
  std::shared_ptr<const TrustList> trust = trust_list();
  std::vector<DeliveryOutcome> out(messages.size());
  std::vector<std::optional<v1::MessageBody>> bodies(messages.size());
  std::vector<std::string> numbers;

  // Signature checks need no lock; they are the expensive part.
  for (size_t i = 0; i < messages.size(); ++i) {
    absl::StatusOr<v1::MessageBody> body = VerifyMessage(messages[i], peer, *trust, now);
    if (!body.ok()) {
      out[i].status = body.status();
      continue;
    }
    if (body->header().recipient() != participant_) {
      out[i].status = absl::PermissionDeniedError(absl::StrCat("message is addressed to '",
                                                               body->header().recipient(),
                                                               "', this node is ", participant_));
      continue;
    }
    bodies[i] = *std::move(body);
    numbers.push_back(NumberOf(*bodies[i]));
  }

  StripeLock lock(*this, numbers);
  // Records as this batch leaves them, so that two messages about one
  // certificate in one batch (issue, then cancel) see each other.
  std::map<std::string, v1::CertificateRecord> overlay;
  std::map<std::string, size_t> batch_ids;  // message id -> index in batch
  std::vector<storage::Transition> transitions;
  std::vector<size_t> owner;  // transitions[k] answers messages[owner[k]]
  std::vector<std::optional<size_t>> copy_of(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!bodies[i].has_value()) continue;
    const v1::MessageBody& body = *bodies[i];
    const std::string& id = body.header().message_id();
    const std::string& number = NumberOf(body);
    if (auto it = batch_ids.find(id); it != batch_ids.end()) {
      copy_of[i] = it->second;  // answered below with the first copy's outcome
      continue;
    }
    absl::StatusOr<std::optional<std::string>> seen = ledger_->GetSeen(id);
    if (!seen.ok()) {
      out[i].status = seen.status();
      continue;
    }
    if (seen->has_value()) {
      if (!out[i].receipt.ParseFromString(**seen)) {
        out[i].status = absl::DataLossError("stored receipt does not parse");
      }
      continue;  // redelivery: the original receipt, nothing stored
    }
    const v1::CertificateRecord* current = nullptr;
    std::optional<v1::CertificateRecord> stored;
    if (auto it = overlay.find(number); it != overlay.end()) {
      current = &it->second;
    } else {
      absl::StatusOr<std::optional<v1::CertificateRecord>> rec = ledger_->GetCertificate(number);
      if (!rec.ok()) {
        out[i].status = rec.status();
        continue;
      }
      stored = *std::move(rec);
      if (stored.has_value()) current = &*stored;
    }
    absl::StatusOr<storage::Transition> t = PrepareIncoming(peer, body, messages[i], current, now);
    if (!t.ok()) {
      out[i].status = t.status();
      continue;
    }
    overlay[number] = *t->record;
    batch_ids[id] = i;
    const std::string digest = MessageDigest(messages[i]);
    DeliveryOutcome* outcome = &out[i];
    t->on_sequenced = [this, outcome, id, digest, peer, now](const storage::Head& head,
                                                             storage::Transition& tr) {
      if (absl::Status s = StampHistory(head, tr); !s.ok()) return s;
      v1::MessageBody rb;
      v1::Header* h = rb.mutable_header();
      h->set_message_id(NewMessageId());
      h->set_sender(participant_);
      h->set_recipient(peer);
      *h->mutable_created_at() = ToTimestamp(now);
      h->set_kind(v1::DELIVERY_RECEIPT);
      v1::DeliveryReceipt* r = rb.mutable_receipt();
      r->set_message_id(id);
      r->set_message_digest(digest);
      r->set_ledger_sequence(head.sequence);
      r->set_ledger_hash(head.hash);
      *r->mutable_received_at() = ToTimestamp(now);
      absl::StatusOr<Signer> signer = SignerAt(now);
      if (!signer.ok()) return signer.status();
      absl::StatusOr<v1::SignedMessage> receipt = signer->Sign(rb);
      if (!receipt.ok()) return receipt.status();
      tr.seen_value = receipt->SerializeAsString();
      outcome->receipt = *std::move(receipt);
      return absl::OkStatus();
    };
    transitions.push_back(*std::move(t));
    owner.push_back(i);
  }
  if (!transitions.empty()) {
    absl::StatusOr<std::vector<storage::Head>> heads = ledger_->AppendAll(std::move(transitions));
    for (size_t i : owner) {
      if (!heads.ok()) {
        out[i].status =
            absl::UnavailableError(absl::StrCat("ledger write failed: ", heads.status().message()));
        out[i].receipt.Clear();
        continue;
      }
      if (Observer* obs = observer_.load(); obs != nullptr) {
        obs->Received(peer, v1::MessageKind_Name(bodies[i]->header().kind()));
      }
      log::Info("received", {{"message", bodies[i]->header().message_id()},
                             {"certificate", NumberOf(*bodies[i])},
                             {"partner", peer},
                             {"kind", v1::MessageKind_Name(bodies[i]->header().kind())}});
    }
  }
  // In-batch duplicates get the first copy's outcome.
  for (size_t i = 0; i < messages.size(); ++i) {
    if (copy_of[i].has_value()) out[i] = out[*copy_of[i]];
  }
  if (Observer* obs = observer_.load(); obs != nullptr) {
    for (const DeliveryOutcome& o : out) {
      if (!o.status.ok()) obs->Refused(peer, o.status.code());
    }
  }
  return out;
}

// ------------------------------------------------------------- delivery

absl::Duration Node::Backoff(uint32_t attempts) {
  absl::Duration d = absl::Milliseconds(delivery_.initial_backoff_ms());
  const absl::Duration max = absl::Milliseconds(delivery_.max_backoff_ms());
  for (uint32_t i = 1; i < attempts && d < max; ++i) d *= 2;
  // +/- 20% jitter so that many nodes retrying after an outage spread out;
  // never beyond the configured maximum.
  absl::MutexLock l(&rng_mu_);
  return std::min(d * absl::Uniform(rng_, 0.8, 1.2), max);
}

void Node::DeliverTo(const std::string& recipient, std::vector<v1::OutboxItem> items) {
  const absl::Time now = Now();
  std::shared_ptr<const TrustList> trust = trust_list();
  std::vector<DeliveryOutcome> outcomes;
  if (absl::Status s = trust->CheckActive(recipient, now); !s.ok()) {
    // The KP forbids sending to a suspended Participant: hold the messages
    // (they go out if it is readmitted).
    outcomes.assign(items.size(), {s, {}});
  } else {
    std::vector<v1::SignedMessage> msgs;
    msgs.reserve(items.size());
    for (const v1::OutboxItem& it : items) msgs.push_back(it.message());
    outcomes = transport_->Deliver(recipient, msgs);
    if (outcomes.size() != items.size()) {
      outcomes.assign(items.size(),
                      {absl::InternalError("transport returned a wrong number of outcomes"), {}});
    }
  }

  // Check each receipt: signed by the recipient, about this message.
  for (size_t i = 0; i < items.size(); ++i) {
    if (!outcomes[i].status.ok()) continue;
    absl::StatusOr<v1::MessageBody> rb = VerifyMessage(outcomes[i].receipt, recipient, *trust, now);
    if (!rb.ok()) {
      outcomes[i].status =
          absl::UnavailableError(absl::StrCat("receipt refused: ", rb.status().message()));
    } else if (!rb->has_receipt() || rb->receipt().message_id() != items[i].message_id() ||
               rb->receipt().message_digest() != MessageDigest(items[i].message())) {
      outcomes[i].status = absl::UnavailableError("receipt does not match the message");
    }
  }

  std::vector<std::string> numbers;
  for (const v1::OutboxItem& it : items) numbers.push_back(it.certificate_number());
  StripeLock lock(*this, numbers);
  std::map<std::string, v1::CertificateRecord> overlay;
  std::vector<storage::Transition> transitions;
  std::vector<v1::OutboxItem> retries;
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::OutboxItem& item = items[i];
    const absl::Status& st = outcomes[i].status;
    const std::string attempt = std::to_string(item.attempts() + 1);
    if (!st.ok()) {
      log::Warn(IsPermanent(st) ? "delivery_refused" : "delivery_failed",
                {{"message", item.message_id()},
                 {"certificate", item.certificate_number()},
                 {"partner", recipient},
                 {"attempt", attempt},
                 {"code", absl::StatusCodeToString(st.code())},
                 {"reason", st.message()}});
    } else {
      log::Info("delivered", {{"message", item.message_id()},
                              {"certificate", item.certificate_number()},
                              {"partner", recipient},
                              {"attempt", attempt}});
    }
    if (Observer* obs = observer_.load(); obs != nullptr) {
      if (st.ok()) {
        v1::MessageBody sent;
        sent.ParseFromString(item.message().body());
        obs->Delivered(recipient, v1::MessageKind_Name(sent.header().kind()),
                       now - FromTimestamp(item.queued_at()));
      } else if (IsPermanent(st)) {
        obs->DeliveryRefused(recipient, st.code());
      }
    }
    if (!st.ok() && !IsPermanent(st)) {
      v1::OutboxItem next = item;
      next.set_attempts(item.attempts() + 1);
      next.set_last_error(std::string(st.message()));
      *next.mutable_due_at() = ToTimestamp(now + Backoff(next.attempts()));
      retries.push_back(std::move(next));
      continue;
    }
    const std::string& number = item.certificate_number();
    storage::Transition t;
    t.outbox_delete.push_back(item.message_id());
    if (st.ok()) {
      t.entry = MakeEntry(v1::RECEIPT, number, recipient, v1::CERTIFICATE_STATE_UNSPECIFIED, now);
      *t.entry.mutable_receipt() = outcomes[i].receipt;
    } else {
      t.entry =
          MakeEntry(v1::DELIVERY_FAILED, number, recipient, v1::CERTIFICATE_STATE_UNSPECIFIED, now);
      t.entry.set_detail(absl::StrCat(absl::StatusCodeToString(st.code()), ": ", st.message()));
    }
    t.entry.set_message_id(item.message_id());
    // The first receipt for the certificate message moves ISSUED to DELIVERED.
    std::optional<v1::CertificateRecord> rec;
    if (auto it = overlay.find(number); it != overlay.end()) {
      rec = it->second;
    } else if (absl::StatusOr<std::optional<v1::CertificateRecord>> r =
                   ledger_->GetCertificate(number);
               r.ok()) {
      rec = *std::move(r);
    }
    if (st.ok() && rec.has_value() && rec->certificate_message_id() == item.message_id() &&
        rec->state() == v1::ISSUED) {
      AddHistory(*rec, v1::DELIVERED, now, item.message_id(), "");
      *rec->mutable_delivered_at() = ToTimestamp(now);
      t.entry.set_state(v1::DELIVERED);
      overlay[number] = *rec;
      t.record = std::move(rec);
      t.on_sequenced = StampHistory;
    }
    transitions.push_back(std::move(t));
  }
  if (!transitions.empty()) {
    // On failure the items stay in the outbox and go again next pass; the
    // receiver answers with the same receipts.
    (void)ledger_->AppendAll(std::move(transitions));
  }
  // One synced batch for every retry of this pass. Should it fail, the
  // items stay due and are tried again at once.
  (void)ledger_->RescheduleOutboxAll(retries);
}

size_t Node::DeliverDue() {
  absl::StatusOr<std::vector<v1::OutboxItem>> due =
      ledger_->DueOutbox(Now(), delivery_.batch_size() * 4);
  if (!due.ok() || due->empty()) return 0;
  // One exchange per recipient per pass, each in its own thread so that a
  // slow peer does not hold up the others.
  std::map<std::string, std::vector<v1::OutboxItem>> by_recipient;
  for (v1::OutboxItem& it : *due) {
    auto& v = by_recipient[it.recipient()];
    if (v.size() < delivery_.batch_size()) v.push_back(std::move(it));
  }
  size_t n = 0;
  std::vector<std::thread> threads;
  for (auto& [recipient, items] : by_recipient) {
    n += items.size();
    if (by_recipient.size() == 1) {
      DeliverTo(recipient, std::move(items));
    } else {
      threads.emplace_back([this, r = recipient, its = std::move(items)]() mutable {
        DeliverTo(r, std::move(its));
      });
    }
  }
  for (std::thread& t : threads) t.join();
  return n;
}

size_t Node::ExpireDue() {
  const absl::Time now = Now();
  auto expirable = [&](const v1::CertificateRecord& r) {
    const bool open =
        (r.side() == v1::EXPORTING && (r.state() == v1::ISSUED || r.state() == v1::DELIVERED)) ||
        (r.side() == v1::IMPORTING && r.state() == v1::RECEIVED);
    return open && now >= FromTimestamp(r.certificate().expires_at());
  };
  absl::StatusOr<std::vector<v1::CertificateRecord>> recs =
      ledger_->ListCertificates("", SIZE_MAX, expirable);
  if (!recs.ok()) return 0;
  size_t n = 0;
  for (const v1::CertificateRecord& found : *recs) {
    const std::string& number = found.certificate().number();
    StripeLock lock(*this, {number});
    absl::StatusOr<std::optional<v1::CertificateRecord>> cur = ledger_->GetCertificate(number);
    if (!cur.ok() || !cur->has_value() || !expirable(**cur)) continue;  // changed meanwhile
    v1::CertificateRecord rec = **cur;
    storage::Transition t;
    t.entry = MakeEntry(v1::STATE_CHANGE, number, rec.partner(), v1::EXPIRED, now);
    t.entry.set_detail("validity ran out unconfirmed");
    AddHistory(rec, v1::EXPIRED, now, "", "validity ran out unconfirmed");
    t.record = std::move(rec);
    t.on_sequenced = StampHistory;
    if (ledger_->Append(std::move(t)).ok()) ++n;
  }
  return n;
}

size_t Node::LogOverdue() {
  const absl::Time now = Now();
  const absl::Duration after = absl::Hours(24) * overdue_days_;
  size_t n = 0;
  (void)ledger_->ListCertificates("", SIZE_MAX, [&](const v1::CertificateRecord& r) {
    if (!IsOverdue(r, now, after)) return false;
    ++n;
    log::Warn("overdue",
              {{"certificate", r.certificate().number()},
               {"partner", r.partner()},
               {"state", v1::CertificateState_Name(r.state())},
               {"waiting_days", std::to_string(static_cast<int64_t>(
                                    (now - FromTimestamp(r.delivered_at())) / absl::Hours(24)))}});
    return false;  // logged; nothing to keep
  });
  return n;
}

void Node::Kick() {
  absl::MutexLock l(&loop_mu_);
  kicked_ = true;
}

void Node::StartDelivery() {
  absl::MutexLock l(&loop_mu_);
  if (loop_.joinable()) return;
  stop_ = false;
  loop_ = std::thread([this] { DeliveryLoop(); });
}

void Node::StopDelivery() {
  {
    absl::MutexLock l(&loop_mu_);
    if (!loop_.joinable()) return;
    stop_ = true;
  }
  loop_.join();
  absl::MutexLock l(&loop_mu_);
  loop_ = std::thread();
}

void Node::DeliveryLoop() {
  absl::Time next_expiry_sweep = absl::InfinitePast();
  absl::Time next_overdue_log = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock l(&loop_mu_);
      if (stop_) return;
      kicked_ = false;
    }
    if (Now() >= next_expiry_sweep) {
      ExpireDue();
      next_expiry_sweep = Now() + absl::Minutes(1);
    }
    if (Now() >= next_overdue_log) {
      LogOverdue();
      next_overdue_log = Now() + absl::Hours(24);
    }
    if (DeliverDue() > 0) continue;  // more may be due at once
    // Sleep until the next item is due, new work is queued, or 1 s passes.
    absl::Time wake = absl::Now() + absl::Seconds(1);
    if (absl::StatusOr<std::optional<absl::Time>> next = ledger_->NextDue();
        next.ok() && next->has_value()) {
      wake = std::min(wake, absl::Now() + (**next - Now()));
    }
    absl::MutexLock l(&loop_mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop_mu_) { return stop_ || kicked_; };
    loop_mu_.AwaitWithDeadline(absl::Condition(&woken), wake);
  }
}

}  // namespace kpx::node
