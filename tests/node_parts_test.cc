// Unit tests of node/'s pure parts, without a ledger or a transport:
// PlanIncoming over payload x side x state, the delivery transition,
// receipt checks with forged, mismatched and valid receipts, retry
// classification and backoff, and the list filter.
#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "node/bounds.h"
#include "node/courier.h"
#include "node/envelope.h"
#include "node/findings.h"
#include "node/keyring.h"
#include "node/messages.h"
#include "node/queries.h"
#include "node/retry_policy.h"
#include "node/text.h"
#include "node/transitions.h"
#include "node/trust_chain.h"
#include "node/trust_list.h"
#include "node/util.h"
#include "storage/log_leaf.h"
#include "storage/merkle.h"
#include "test_util.h"

namespace kpx {
namespace {

using node::IncomingContext;

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

// BW and EU on one trust list, each with an Ed25519 key generated here.
class Keys {
 public:
  Keys() {
    v1::TrustList proto;
    for (const char* code : {"BW", "EU", "AE"}) {
      keys_.emplace(code,
                    kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519)));
      v1::Participant* p = proto.add_participants();
      p->set_code(code);
      p->set_status(v1::ACTIVE);
      kpx::testing::AddOffices(*p);
      kpx::testing::ListSigningKey(*p, keys_.at(code));
    }
    trust_ = kpx::testing::Must(node::TrustList::FromProto(proto));
  }
  const node::TrustList& trust() const { return *trust_; }

  v1::SignedMessage Sign(const std::string& signer, const std::string& recipient,
                         v1::MessageBody body) const {
    v1::Header* h = body.mutable_header();
    h->set_message_id(node::NewMessageId());
    h->set_sender(signer);
    h->set_recipient(recipient);
    *h->mutable_created_at() = node::ToTimestamp(kNow);
    return kpx::testing::Must(node::Signer(signer, keys_.at(signer)).Sign(body));
  }
  v1::SignedMessage Resign(const std::string& signer, const v1::SignedMessage& msg,
                           absl::Time at) const {
    return kpx::testing::Must(node::Signer(signer, keys_.at(signer)).Resign(msg, at));
  }

 private:
  std::map<std::string, crypto::PrivateKey> keys_;
  std::shared_ptr<const node::TrustList> trust_;
};

const Keys& TestKeys() {
  static const Keys* keys = new Keys;
  return *keys;
}

v1::CertificateRecord Record(v1::Side side, v1::CertificateState state, const std::string& partner,
                             const std::string& digest) {
  v1::CertificateRecord r;
  *r.mutable_certificate() = testing::ValidCertificate("BW-7", "BW", "EU", kNow - absl::Hours(1));
  r.set_side(side);
  r.set_state(state);
  r.set_partner(partner);
  r.set_certificate_digest(digest);
  r.set_certificate_message_id("c0ffee");
  return r;
}

enum class Payload {
  kCertificate,
  kConfirmation,
  kRejection,
  kCancellation,
  kExpiry,
  kVoid,
  kTreeHead,
  kNone
};

v1::MessageBody Body(Payload p, const std::string& digest) {
  const v1::Certificate cert = testing::ValidCertificate("BW-7", "BW", "EU", kNow - absl::Hours(1));
  v1::MessageBody b;
  switch (p) {
    case Payload::kCertificate:
      return node::CertificateBody(cert);
    case Payload::kConfirmation: {
      v1::CertificateRecord r;
      *r.mutable_certificate() = cert;
      r.set_certificate_digest(digest);
      v1::Participant eu;
      eu.set_code("EU");
      testing::AddOffices(eu);
      return node::ConfirmationBody(kpx::testing::Must(
          node::BuildConfirmation(r, testing::AsDeclared(), kNow, eu, "EU authority")));
    }
    case Payload::kRejection: {
      v1::CertificateRecord r;
      *r.mutable_certificate() = cert;
      r.set_certificate_digest(digest);
      return node::RejectionBody(r, {v1::SEALS_OR_GOODS_TAMPERED, "seal broken"});
    }
    case Payload::kCancellation:
      return node::CancellationBody("BW-7", {v1::CLERICAL_ERROR, "issued in error"});
    case Payload::kVoid: {
      v1::CertificateRecord r;
      *r.mutable_certificate() = cert;
      r.set_certificate_digest(digest);
      return node::VoidBody(r, {v1::CLERICAL_ERROR, "issued on the wrong form"});
    }
    case Payload::kExpiry: {
      v1::CertificateRecord r;
      *r.mutable_certificate() = cert;
      r.set_certificate_digest(digest);
      return node::ExpiryBody(r, kNow);
    }
    case Payload::kTreeHead:
      return node::TreeHeadBody(1, std::string(32, 'r'));
    case Payload::kNone:
      b.mutable_header()->set_kind(v1::CERTIFICATE);
      return b;
  }
  return b;
}

struct PlanCase {
  const char* name;
  Payload payload;
  const char* sender;  // the peer
  const char* self;    // the receiving node
  // The record as it stands at the receiver; nullopt: none.
  std::optional<std::pair<v1::Side, v1::CertificateState>> current;
  absl::StatusCode want;
  v1::CertificateState want_state;  // when OK
};

constexpr auto E = v1::EXPORTING;
constexpr auto I = v1::IMPORTING;
using C = absl::StatusCode;
constexpr auto kNoState = v1::CERTIFICATE_STATE_UNSPECIFIED;  // for refusals

const PlanCase kPlanCases[] = {
    {"certificate, new", Payload::kCertificate, "BW", "EU", std::nullopt, C::kOk, v1::RECEIVED},
    {"certificate, again",
     Payload::kCertificate,
     "BW",
     "EU",
     {{I, v1::RECEIVED}},
     C::kAlreadyExists,
     kNoState},
    {"certificate, for another node", Payload::kCertificate, "BW", "AE", std::nullopt,
     C::kInvalidArgument, kNoState},
    {"certificate, from a non-exporter", Payload::kCertificate, "AE", "EU", std::nullopt,
     C::kInvalidArgument, kNoState},
    {"confirmation, none issued", Payload::kConfirmation, "EU", "BW", std::nullopt, C::kNotFound,
     kNoState},
    {"confirmation of ISSUED",
     Payload::kConfirmation,
     "EU",
     "BW",
     {{E, v1::ISSUED}},
     C::kOk,
     v1::CONFIRMED},
    {"confirmation of DELIVERED",
     Payload::kConfirmation,
     "EU",
     "BW",
     {{E, v1::DELIVERED}},
     C::kOk,
     v1::CONFIRMED},
    {"confirmation of CONFIRMED",
     Payload::kConfirmation,
     "EU",
     "BW",
     {{E, v1::CONFIRMED}},
     C::kFailedPrecondition,
     kNoState},
    // Crossed our cancellation: the importer's decision stands.
    {"confirmation of CANCELLED",
     Payload::kConfirmation,
     "EU",
     "BW",
     {{E, v1::CANCELLED}},
     C::kOk,
     v1::CONFIRMED},
    {"confirmation of EXPIRED",
     Payload::kConfirmation,
     "EU",
     "BW",
     {{E, v1::EXPIRED}},
     C::kFailedPrecondition,
     kNoState},
    {"confirmation of a received one",
     Payload::kConfirmation,
     "EU",
     "BW",
     {{I, v1::RECEIVED}},
     C::kNotFound,
     kNoState},
    {"confirmation from another partner",
     Payload::kConfirmation,
     "AE",
     "BW",
     {{E, v1::DELIVERED}},
     C::kNotFound,
     kNoState},
    {"rejection of DELIVERED",
     Payload::kRejection,
     "EU",
     "BW",
     {{E, v1::DELIVERED}},
     C::kOk,
     v1::REJECTED},
    {"rejection of REJECTED",
     Payload::kRejection,
     "EU",
     "BW",
     {{E, v1::REJECTED}},
     C::kFailedPrecondition,
     kNoState},
    {"rejection of CANCELLED",
     Payload::kRejection,
     "EU",
     "BW",
     {{E, v1::CANCELLED}},
     C::kOk,
     v1::REJECTED},
    {"expiry of DELIVERED",
     Payload::kExpiry,
     "EU",
     "BW",
     {{E, v1::DELIVERED}},
     C::kOk,
     v1::EXPIRED},
    {"expiry of CANCELLED",
     Payload::kExpiry,
     "EU",
     "BW",
     {{E, v1::CANCELLED}},
     C::kOk,
     v1::EXPIRED},
    {"expiry of CONFIRMED",
     Payload::kExpiry,
     "EU",
     "BW",
     {{E, v1::CONFIRMED}},
     C::kFailedPrecondition,
     kNoState},
    {"expiry of a received one",
     Payload::kExpiry,
     "EU",
     "BW",
     {{I, v1::RECEIVED}},
     C::kNotFound,
     kNoState},
    {"void of CONFIRMED", Payload::kVoid, "BW", "EU", {{I, v1::CONFIRMED}}, C::kOk, v1::VOIDED},
    {"void of RECEIVED",
     Payload::kVoid,
     "BW",
     "EU",
     {{I, v1::RECEIVED}},
     C::kFailedPrecondition,
     kNoState},
    {"void of our own", Payload::kVoid, "BW", "EU", {{E, v1::CONFIRMED}}, C::kNotFound, kNoState},
    {"cancellation of DISPUTED",
     Payload::kCancellation,
     "BW",
     "EU",
     {{I, v1::DISPUTED}},
     C::kOk,
     v1::CANCELLED},
    {"confirmation of DISPUTED",
     Payload::kConfirmation,
     "EU",
     "BW",
     {{E, v1::DISPUTED}},
     C::kOk,
     v1::CONFIRMED},
    {"rejection, none issued", Payload::kRejection, "EU", "BW", std::nullopt, C::kNotFound,
     kNoState},
    {"cancellation of RECEIVED",
     Payload::kCancellation,
     "BW",
     "EU",
     {{I, v1::RECEIVED}},
     C::kOk,
     v1::CANCELLED},
    // Crossed our decision: kept in the ledger, the record unchanged.
    {"cancellation of CONFIRMED",
     Payload::kCancellation,
     "BW",
     "EU",
     {{I, v1::CONFIRMED}},
     C::kOk,
     kNoState},
    {"cancellation of REJECTED",
     Payload::kCancellation,
     "BW",
     "EU",
     {{I, v1::REJECTED}},
     C::kOk,
     kNoState},
    {"cancellation of EXPIRED",
     Payload::kCancellation,
     "BW",
     "EU",
     {{I, v1::EXPIRED}},
     C::kOk,
     kNoState},
    {"cancellation of CANCELLED",
     Payload::kCancellation,
     "BW",
     "EU",
     {{I, v1::CANCELLED}},
     C::kFailedPrecondition,
     kNoState},
    {"cancellation, never received", Payload::kCancellation, "BW", "EU", std::nullopt, C::kNotFound,
     kNoState},
    {"cancellation of our own",
     Payload::kCancellation,
     "BW",
     "EU",
     {{E, v1::ISSUED}},
     C::kNotFound,
     kNoState},
    {"tree head as a message", Payload::kTreeHead, "BW", "EU", std::nullopt, C::kInvalidArgument,
     kNoState},
    {"no payload", Payload::kNone, "BW", "EU", std::nullopt, C::kInvalidArgument, kNoState},
};

TEST_CASE("PlanIncoming over payload, side and state", "[parts][plan]") {
  const std::string digest = "digest-of-the-certificate";
  for (const PlanCase& c : kPlanCases) {
    SECTION(c.name) {
      const v1::MessageBody body = Body(c.payload, digest);
      const v1::SignedMessage msg = TestKeys().Sign(c.sender, c.self, body);
      v1::MessageBody signed_body;
      REQUIRE(signed_body.ParseFromString(msg.body()));
      std::optional<v1::CertificateRecord> current;
      // Records are BW's certificate: EU is the partner at BW, BW at EU.
      if (c.current) {
        const v1::Side side = c.current->first;
        current = Record(side, c.current->second, side == E ? "EU" : "BW", digest);
      }
      const std::string self = c.self, peer = c.sender;
      const IncomingContext ctx{self, peer, TestKeys().trust(), kNow};
      absl::StatusOr<storage::Transition> t =
          node::PlanIncoming(ctx, signed_body, msg, current ? &*current : nullptr);
      CHECK(t.status().code() == c.want);
      if (!t.ok()) continue;
      const std::string& id = signed_body.header().message_id();
      CHECK(t->entry.kind() == v1::RECEIVED_MESSAGE);
      CHECK(t->seen_message_id == id);
      if (c.want_state == kNoState) {  // noted only
        CHECK_FALSE(t->record.has_value());
        CHECK(t->entry.state() == kNoState);
        CHECK_THAT(t->entry.detail(), Catch::Matchers::Contains("stands"));
        continue;
      }
      REQUIRE(t->record.has_value());
      CHECK(t->record->state() == c.want_state);
      CHECK(t->record->history().rbegin()->message_id() == id);
      CHECK(t->entry.kind() == v1::RECEIVED_MESSAGE);
      CHECK(t->entry.state() == c.want_state);
      CHECK(t->entry.partner() == peer);
      CHECK(t->seen_message_id == id);
      CHECK(t->outbox_put.empty());
      if (c.payload == Payload::kCertificate) {
        CHECK(t->record->side() == v1::IMPORTING);
        CHECK(t->record->certificate_digest() == node::MessageDigest(msg));
      }
    }
  }
}

TEST_CASE("an answer naming another certificate digest is refused", "[parts][plan]") {
  const v1::SignedMessage msg = TestKeys().Sign("EU", "BW", Body(Payload::kConfirmation, "other"));
  v1::MessageBody body;
  REQUIRE(body.ParseFromString(msg.body()));
  const v1::CertificateRecord current = Record(E, v1::DELIVERED, "EU", "the-digest");
  const std::string self = "BW", peer = "EU";
  absl::StatusOr<storage::Transition> t =
      node::PlanIncoming({self, peer, TestKeys().trust(), kNow}, body, msg, &current);
  CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a confirmation of an arrival before the certificate was issued is refused",
          "[parts][plan]") {
  // BW-7 was issued an hour before kNow (Record); clocks may differ by 5 min.
  const v1::CertificateRecord current = Record(E, v1::DELIVERED, "EU", "d");
  const std::string self = "BW", peer = "EU";
  auto plan = [&](absl::Duration before_issue) {
    v1::MessageBody body = Body(Payload::kConfirmation, "d");
    *body.mutable_confirmation()->mutable_arrived_at() =
        node::ToTimestamp(kNow - absl::Hours(1) - before_issue);
    const v1::SignedMessage msg = TestKeys().Sign("EU", "BW", body);
    v1::MessageBody signed_body;
    REQUIRE(signed_body.ParseFromString(msg.body()));
    return node::PlanIncoming({self, peer, TestKeys().trust(), kNow}, signed_body, msg, &current)
        .status();
  };
  const absl::Status early = plan(absl::Hours(1));
  CHECK(early.code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(early.message(), "arrived before the certificate was issued"));
  CHECK(plan(absl::Minutes(4)).ok());  // within the clock skew
}

TEST_CASE("the delivery transition records receipts and refusals", "[parts][deliver]") {
  v1::OutboxItem item;
  item.set_message_id("c0ffee");
  item.set_recipient("EU");
  item.set_certificate_number("BW-7");
  v1::DeliveryProof receipt;
  *receipt.mutable_tree_head() = TestKeys().Sign("EU", "", Body(Payload::kTreeHead, ""));

  SECTION("the first receipt for the certificate moves it to DELIVERED") {
    storage::Transition t = node::DeliveryTransition(
        item, absl::OkStatus(), receipt, Record(E, v1::ISSUED, "EU", "d"), std::nullopt, kNow);
    CHECK(t.entry.kind() == v1::RECEIPT);
    CHECK(t.entry.state() == v1::DELIVERED);
    REQUIRE(t.record.has_value());
    CHECK(t.record->state() == v1::DELIVERED);
    CHECK(node::FromTimestamp(t.record->delivered_at()) == kNow);
    CHECK(t.outbox_delete == std::vector<std::string>{"c0ffee"});
  }
  SECTION("a receipt for a later message leaves the record alone") {
    item.set_message_id("beef");
    storage::Transition t = node::DeliveryTransition(
        item, absl::OkStatus(), receipt, Record(E, v1::DELIVERED, "EU", "d"), std::nullopt, kNow);
    CHECK(t.entry.kind() == v1::RECEIPT);
    CHECK_FALSE(t.record.has_value());
  }
  SECTION("a permanent refusal of the certificate makes it REFUSED, with the code") {
    storage::Transition t =
        node::DeliveryTransition(item, absl::InvalidArgumentError("bad HS code"), {},
                                 Record(E, v1::ISSUED, "EU", "d"), std::nullopt, kNow);
    CHECK(t.entry.kind() == v1::DELIVERY_FAILED);
    CHECK(t.entry.detail() == "INVALID_ARGUMENT: bad HS code");
    CHECK(t.entry.state() == v1::REFUSED);
    REQUIRE(t.record.has_value());
    CHECK(t.record->state() == v1::REFUSED);
    CHECK(t.record->history().rbegin()->detail() == "INVALID_ARGUMENT: bad HS code");
    CHECK(t.outbox_delete == std::vector<std::string>{"c0ffee"});
  }
  SECTION("a permanent refusal of a later message leaves the record alone") {
    item.set_message_id("beef");
    storage::Transition t =
        node::DeliveryTransition(item, absl::NotFoundError("no such certificate"), {},
                                 Record(E, v1::DELIVERED, "EU", "d"), std::nullopt, kNow);
    CHECK(t.entry.kind() == v1::DELIVERY_FAILED);
    CHECK_FALSE(t.record.has_value());
  }
}

TEST_CASE("messages about one certificate are queued in order and released one by one",
          "[parts][order]") {
  const v1::SignedMessage cert_msg = TestKeys().Sign("BW", "EU", Body(Payload::kCertificate, ""));
  const v1::Certificate cert = testing::ValidCertificate("BW-7", "BW", "EU", kNow);
  storage::Transition issue = node::IssueTransition(cert, "m1", cert_msg, kNow);
  REQUIRE(issue.outbox_put.size() == 1);
  CHECK_FALSE(issue.outbox_put[0].held());  // nothing ahead of it: due now
  CHECK(node::FromTimestamp(issue.outbox_put[0].due_at()) == kNow);

  const v1::SignedMessage cancel_msg =
      TestKeys().Sign("BW", "EU", Body(Payload::kCancellation, ""));
  storage::Transition cancel =
      node::SendTransition(*issue.record, v1::CANCELLED, "withdrawn", "m2", cancel_msg, kNow);
  REQUIRE(cancel.outbox_put.size() == 1);
  CHECK(cancel.outbox_put[0].held());  // behind the certificate
  CHECK(cancel.outbox_put[0].waits_for() == "m1");
  REQUIRE(cancel.record.has_value());
  CHECK(std::vector<std::string>(cancel.record->queued_message_ids().begin(),
                                 cancel.record->queued_message_ids().end()) ==
        std::vector<std::string>{"m1", "m2"});
  REQUIRE(node::QueuedAfter(*cancel.record, "m1") != nullptr);
  CHECK(*node::QueuedAfter(*cancel.record, "m1") == "m2");
  CHECK(node::QueuedAfter(*cancel.record, "m2") == nullptr);

  // The certificate's receipt releases the cancellation: due now.
  v1::OutboxItem first = issue.outbox_put[0];
  const absl::Time later = kNow + absl::Minutes(5);
  storage::Transition receipt = node::DeliveryTransition(
      first, absl::OkStatus(), {}, *cancel.record, cancel.outbox_put[0], later);
  CHECK(receipt.outbox_delete == std::vector<std::string>{"m1"});
  REQUIRE(receipt.outbox_put.size() == 1);
  CHECK(receipt.outbox_put[0].message_id() == "m2");
  CHECK_FALSE(receipt.outbox_put[0].held());
  CHECK(node::FromTimestamp(receipt.outbox_put[0].due_at()) == later);
  REQUIRE(receipt.record.has_value());
  CHECK(std::vector<std::string>(receipt.record->queued_message_ids().begin(),
                                 receipt.record->queued_message_ids().end()) ==
        std::vector<std::string>{"m2"});
  // A permanent refusal releases the next one too: it is the partner's
  // answer to that message, and the queue must not stall behind it.
  storage::Transition refused = node::DeliveryTransition(
      first, absl::InvalidArgumentError("bad"), {}, *cancel.record, cancel.outbox_put[0], later);
  CHECK(refused.entry.kind() == v1::DELIVERY_FAILED);
  REQUIRE(refused.outbox_put.size() == 1);
  CHECK_FALSE(refused.outbox_put[0].held());
}

// A receiver's log of `n` entries in which entry `sequence` recorded `msg`
// (the others are other entries); its signed head and that entry's result.
struct ReceiverLog {
  storage::merkle::MemoryNodeStore store;
  std::vector<std::string> leaves;
  node::SignedTree head;
  v1::DeliveryResult result;
};

ReceiverLog LogHolding(const v1::SignedMessage& msg, uint64_t sequence, uint64_t n,
                       v1::EntryKind kind = v1::RECEIVED_MESSAGE) {
  ReceiverLog log;
  for (uint64_t i = 1; i <= n; ++i) {
    storage::LogLeaf leaf{i, kind, std::string(32, static_cast<char>(i)),
                          i == sequence ? node::MessageDigest(msg) : std::string(32, 'o')};
    log.leaves.push_back(storage::EncodeLogLeaf(leaf));
    const std::string hash = storage::merkle::LeafHash(log.leaves.back());
    log.store.Apply(
        kpx::testing::Must(storage::merkle::Append(log.store, i - 1, {&hash, 1})).writes);
  }
  const std::string root = kpx::testing::Must(storage::merkle::Root(log.store, n));
  log.head = {TestKeys().Sign("EU", "", node::TreeHeadBody(n, root)), n, root};
  log.result.set_leaf(log.leaves[sequence - 1]);
  for (std::string& h :
       kpx::testing::Must(storage::merkle::InclusionProof(log.store, sequence - 1, n))) {
    log.result.add_inclusion_path(std::move(h));
  }
  return log;
}

TEST_CASE("tree heads and proofs are checked: forged, mismatched and valid", "[parts][receipt]") {
  const v1::SignedMessage sent = TestKeys().Sign("BW", "EU", Body(Payload::kCertificate, ""));
  v1::OutboxItem item;
  item.set_message_id("c0ffee");
  item.set_recipient("EU");
  *item.mutable_message() = sent;
  const node::TrustList& trust = TestKeys().trust();
  ReceiverLog log = LogHolding(sent, 5, 7);

  absl::StatusOr<node::SignedTree> head = node::CheckTreeHead(log.head.message, "EU", trust, kNow);
  REQUIRE(head.ok());
  CHECK(head->size == 7);
  absl::StatusOr<v1::DeliveryProof> proof = node::CheckProof(log.result, item, *head);
  REQUIRE(proof.ok());
  CHECK(proof->leaf() == log.leaves[4]);
  CHECK(proof->tree_head().SerializeAsString() == log.head.message.SerializeAsString());

  // The head: another signer's, forged, or not a tree head at all.
  CHECK_FALSE(node::CheckTreeHead(log.head.message, "AE", trust, kNow).ok());
  v1::SignedMessage forged = log.head.message;
  forged.mutable_signature()->back() ^= 1;
  CHECK_FALSE(node::CheckTreeHead(forged, "EU", trust, kNow).ok());
  CHECK_FALSE(node::CheckTreeHead(TestKeys().Sign("EU", "", Body(Payload::kCancellation, "")), "EU",
                                  trust, kNow)
                  .ok());
  CHECK_FALSE(node::CheckTreeHead(TestKeys().Sign("EU", "BW", Body(Payload::kTreeHead, "")), "EU",
                                  trust, kNow)
                  .ok());
  // A tree head signed again verifies as a message, but is no tree head.
  const v1::SignedMessage resigned = TestKeys().Resign("EU", log.head.message, kNow);
  REQUIRE(node::VerifyMessage(resigned, "EU", trust, kNow).ok());
  CHECK(node::CheckTreeHead(resigned, "EU", trust, kNow).status().message() ==
        "a tree head is never signed again");

  auto refused = [&](const v1::DeliveryResult& r, const node::SignedTree& h) {
    absl::StatusOr<v1::DeliveryProof> p = node::CheckProof(r, item, h);
    return p.status().code() == absl::StatusCode::kUnavailable;
  };
  // The leaf: of another entry, of another kind, cut short.
  v1::DeliveryResult other = log.result;
  other.set_leaf(log.leaves[3]);
  CHECK(refused(other, *head));
  CHECK(refused(LogHolding(sent, 5, 7, v1::SENT).result, *head));
  v1::DeliveryResult cut = log.result;
  cut.mutable_leaf()->pop_back();
  CHECK(refused(cut, *head));
  // The path: a bit flipped, one hash missing, against a smaller tree.
  v1::DeliveryResult flipped = log.result;
  (*flipped.mutable_inclusion_path(0))[3] ^= 1;
  CHECK(refused(flipped, *head));
  v1::DeliveryResult shorter = log.result;
  shorter.mutable_inclusion_path()->RemoveLast();
  CHECK(refused(shorter, *head));
  node::SignedTree smaller = *head;
  smaller.size = 6;
  CHECK(refused(log.result, smaller));
}

TEST_CASE("retry is an allow-list of passing failures", "[parts][retry]") {
  const std::map<absl::StatusCode, bool> want = {
      {C::kUnavailable, true},       {C::kDeadlineExceeded, true},
      {C::kResourceExhausted, true}, {C::kOutOfRange, true},
      {C::kPermissionDenied, true},  {C::kUnauthenticated, true},
      {C::kInvalidArgument, false},  {C::kFailedPrecondition, false},
      {C::kAlreadyExists, false},    {C::kNotFound, false},
      {C::kInternal, false},         {C::kUnknown, false},
      {C::kDataLoss, false},         {C::kAborted, false},
      {C::kCancelled, false},        {C::kUnimplemented, false},
  };
  for (const auto& [code, retry] : want) {
    INFO(absl::StatusCodeToString(code));
    CHECK(node::IsRetryable(absl::Status(code, "x")) == retry);
  }
}

TEST_CASE("backoff doubles with bounded jitter and is reproducible from its seed",
          "[parts][retry]") {
  node::RetryPolicy a(absl::Milliseconds(500), absl::Seconds(60), 42);
  node::RetryPolicy b(absl::Milliseconds(500), absl::Seconds(60), 42);
  absl::Duration nominal = absl::Milliseconds(500);
  for (uint32_t attempt = 1; attempt <= 12; ++attempt) {
    const absl::Duration d = a.Backoff(attempt);
    CHECK(d == b.Backoff(attempt));
    CHECK(d >= std::min(nominal * 0.8, absl::Seconds(60)));
    CHECK(d <= std::min(nominal * 1.2, absl::Seconds(60)));
    if (nominal < absl::Seconds(60)) nominal *= 2;  // doubling stops at the maximum
  }
  node::RetryPolicy c(absl::Milliseconds(500), absl::Seconds(60), 43);
  bool differs = false;
  node::RetryPolicy a2(absl::Milliseconds(500), absl::Seconds(60), 42);
  for (uint32_t attempt = 1; attempt <= 5; ++attempt) {
    differs |= a2.Backoff(attempt) != c.Backoff(attempt);
  }
  CHECK(differs);
}

TEST_CASE("the list filter", "[parts][list]") {
  v1::CertificateRecord r = Record(E, v1::DELIVERED, "EU", "d");
  *r.mutable_certificate()->mutable_issued_at() = node::ToTimestamp(kNow - absl::Hours(24 * 20));
  *r.mutable_delivered_at() = node::ToTimestamp(kNow - absl::Hours(24 * 16));
  auto req = [](auto fill) {
    v1::ListCertificatesRequest q;
    fill(q);
    return q;
  };
  using Q = v1::ListCertificatesRequest;
  struct Row {
    const char* name;
    Q q;
    bool keep;
  } rows[] = {
      {"no filter", Q(), true},
      {"state matches", req([](Q& q) { q.set_state(v1::DELIVERED); }), true},
      {"state differs", req([](Q& q) { q.set_state(v1::CONFIRMED); }), false},
      {"partner matches", req([](Q& q) { q.set_partner("EU"); }), true},
      {"partner differs", req([](Q& q) { q.set_partner("AE"); }), false},
      {"issued after from",
       req([](Q& q) { *q.mutable_issued_from() = node::ToTimestamp(kNow - absl::Hours(24 * 21)); }),
       true},
      {"issued before from",
       req([](Q& q) { *q.mutable_issued_from() = node::ToTimestamp(kNow - absl::Hours(24 * 19)); }),
       false},
      {"until is exclusive", req([](Q& q) {
         *q.mutable_issued_until() = node::ToTimestamp(kNow - absl::Hours(24 * 20));
       }),
       false},
      {"overdue by the node's 15 days", req([](Q& q) { q.set_overdue(true); }), true},
      {"not overdue after 17 days", req([](Q& q) { q.set_overdue_days(17); }), false},
      {"overdue after 10 days", req([](Q& q) { q.set_overdue_days(10); }), true},
  };
  for (const Row& row : rows) {
    INFO(row.name);
    CHECK(node::MatchesFilter(row.q, r, kNow, 15) == row.keep);
  }
}

TEST_CASE("CheckText refuses what would mislead a reader; Printable escapes it", "[text]") {
  using node::Lines;
  const auto ok = [](std::string_view s, Lines l = Lines::kOne) {
    return node::CheckText(s, 64, l, "field").ok();
  };
  CHECK(ok("Okavango Diamond Company"));
  CHECK(ok("Société Générale — Ōsaka 大阪"));
  CHECK(ok("two\nlines\tand a tab", Lines::kMany));
  CHECK_FALSE(ok("two\nlines"));
  CHECK_FALSE(ok("cr\rhere", Lines::kMany));
  CHECK_FALSE(ok("\x1b[31mred", Lines::kMany));  // ESC
  CHECK_FALSE(ok("del\x7f"));                    // DEL
  CHECK_FALSE(
      ok("csi\xc2\x9b"
         "2J"));  // C1 U+009B
  CHECK_FALSE(
      ok("evil\xe2\x80\xae"
         "txt.exe"));               // U+202E right-to-left override
  CHECK_FALSE(ok("\xff\xfe"));      // not UTF-8
  CHECK_FALSE(ok("\xc0\xaf"));      // overlong '/'
  CHECK_FALSE(ok("\xed\xa0\x80"));  // a surrogate
  CHECK_FALSE(ok(std::string(65, 'x')));
  CHECK(node::CheckText(std::string(65, 'x'), 64, Lines::kOne, "remarks").message() ==
        "remarks is 65 bytes; at most 64 are allowed");

  CHECK(node::Printable("Okavango 大阪") == "Okavango 大阪");
  CHECK(node::Printable("no\nCONFIRMED seq 999") == "no\\nCONFIRMED seq 999");
  CHECK(node::Printable("\x1b[2J\x7f") == "\\x1B[2J\\x7F");
  CHECK(node::Printable("a\xc2\x9b"
                        "b\xe2\x80\xae") == "a\\u{009B}b\\u{202E}");
  CHECK(node::Printable("\xff") == "\\xFF");
  CHECK(node::Printable(std::string(10, 'x'), 4) == "xxxx…[+6 bytes]");
  CHECK(node::Printable("大阪", 4) == "大…[+3 bytes]");  // never cuts a character
  CHECK(node::EscapeJsonControls("{\"a\":\"x\xe2\x80\xae\"}") == "{\"a\":\"x\\u202E\"}");
}

TEST_CASE("CheckBounds holds every field of every message to one rule set", "[bounds]") {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::CERTIFICATE);
  *b.mutable_certificate() = testing::ValidCertificate("BW-1", "BW", "EU");
  REQUIRE(node::CheckBounds(b).ok());
  const auto refused = [](const v1::MessageBody& m, const std::string& why) {
    const absl::Status s = node::CheckBounds(m);
    INFO(s);
    return s.code() == absl::StatusCode::kInvalidArgument && absl::StrContains(s.message(), why);
  };
  {
    v1::MessageBody m = b;
    m.mutable_certificate()->mutable_exporter()->set_name(std::string(1025, 'n'));
    CHECK(refused(m, "certificate.exporter.name is 1025 bytes"));
  }
  {
    v1::MessageBody m = b;
    m.mutable_certificate()->set_remarks(std::string(4000, 'r') + "\nsecond line");
    CHECK(node::CheckBounds(m).ok());  // remarks: long and several lines
    m.mutable_certificate()->mutable_lines(1)->set_quality("a\nb");
    CHECK(refused(m, "certificate.lines[1].quality holds a control character"));
  }
  {
    v1::MessageBody m = b;
    v1::Shipment* sh = m.mutable_certificate()->mutable_shipment();
    while (sh->seal_numbers_size() < 1001) sh->add_seal_numbers("S");
    CHECK(refused(m, "certificate.shipment.seal_numbers has 1001 elements"));
  }
  {
    v1::MessageBody m = b;
    (*m.mutable_certificate()->mutable_extensions())["note"] = std::string(16 * 1024, 'e');
    CHECK(node::CheckBounds(m).ok());
    (*m.mutable_certificate()->mutable_extensions())["note"] += "e";
    CHECK(refused(m, "certificate.extensions[0].value is 16385 bytes"));
  }
  {
    v1::MessageBody m = b;
    m.mutable_certificate()->mutable_expires_at()->set_seconds(253402300800);  // year 10000
    CHECK(refused(m, "certificate.expires_at: time outside 2000-2099"));
    m.mutable_certificate()->mutable_expires_at()->set_seconds(1800000000);
    m.mutable_certificate()->mutable_expires_at()->set_nanos(-1);
    CHECK(refused(m, "certificate.expires_at: nanoseconds out of range"));
  }
  {
    v1::MessageBody m = b;
    m.mutable_certificate()->set_type(static_cast<v1::CertificateType>(42));
    CHECK(refused(m, "certificate.type: unknown value 42"));
  }
  {
    v1::MessageBody m = b;
    m.mutable_header()->GetReflection()->MutableUnknownFields(m.mutable_header())->AddVarint(77, 1);
    CHECK(refused(m, "header: field number 77 is unknown"));
  }
  {
    v1::MessageBody m;
    m.mutable_rejection()->set_certificate_digest(std::string(1025, 'd'));
    CHECK(refused(m, "rejection.certificate_digest is 1025 bytes"));
  }
}

// ---------------------------------------------------------------- trust chain

struct Publisher {
  crypto::PrivateKey key;
  v1::TrustListPublisher listed;
};

Publisher MakePublisher(const std::string& name, crypto::Algorithm a) {
  Publisher p{kpx::testing::Must(crypto::PrivateKey::Generate(a)), {}};
  p.listed.set_name(name);
  p.listed.set_key_id(p.key.key_id());
  p.listed.set_algorithm(a == crypto::Algorithm::kEd25519 ? v1::ED25519 : v1::ECDSA_P256_SHA256);
  p.listed.set_public_key_pem(p.key.public_key().ToPem());
  return p;
}

TEST_CASE("trust-list publishers and threshold are checked on load", "[node][trust]") {
  Publisher a = MakePublisher("A", crypto::Algorithm::kEd25519);
  v1::TrustList t;
  t.set_version(1);
  *t.add_publishers() = a.listed;
  CHECK(node::TrustList::FromProto(t).status().code() == C::kInvalidArgument);  // threshold 0
  t.set_threshold(2);
  CHECK(absl::StrContains(node::TrustList::FromProto(t).status().message(), "threshold 2 for 1"));
  t.set_threshold(1);
  CHECK(node::TrustList::FromProto(t).ok());
  *t.add_publishers() = a.listed;
  CHECK(absl::StrContains(node::TrustList::FromProto(t).status().message(), "listed twice"));
  t.mutable_publishers(1)->set_key_id(std::string(64, 'a'));
  CHECK(absl::StrContains(node::TrustList::FromProto(t).status().message(), "does not match"));
  v1::TrustList none;
  none.set_threshold(1);
  CHECK_FALSE(node::TrustList::FromProto(none).ok());
  // Published bytes with a field this build does not know are refused.
  v1::SignedTrustList s;
  s.set_trust_list(std::string("\x08\x01", 2) + std::string("\xf8\x3e\x01", 3));  // field 999
  CHECK(absl::StrContains(node::TrustList::FromSigned(s).status().message(), "unknown"));
}

TEST_CASE("version n+1 follows n only with the threshold of n's publishers", "[node][trust]") {
  std::vector<Publisher> pubs = {MakePublisher("Chair", crypto::Algorithm::kEd25519),
                                 MakePublisher("Secretariat", crypto::Algorithm::kEcdsaP256),
                                 MakePublisher("Vice-Chair", crypto::Algorithm::kEd25519)};
  v1::TrustList v1;
  v1.set_version(1);
  for (const Publisher& p : pubs) *v1.add_publishers() = p.listed;
  v1.set_threshold(2);
  auto current = kpx::testing::Must(node::TrustList::FromProto(v1));
  v1::TrustList v2 = v1;
  v2.set_version(2);
  auto signed_by = [&](const v1::TrustList& t, std::vector<int> who) {
    v1::SignedTrustList s;
    s.set_trust_list(t.SerializeAsString());
    for (int i : who) s = kpx::testing::Must(node::SignTrustList(s, pubs[i].key));
    return kpx::testing::Must(node::TrustList::FromSigned(s));
  };
  CHECK(node::CheckSuccessor(*current, *signed_by(v2, {0, 1})).ok());
  CHECK(node::CheckSuccessor(*current, *signed_by(v2, {2, 1, 0})).ok());
  absl::Status one = node::CheckSuccessor(*current, *signed_by(v2, {1}));
  CHECK(one.code() == C::kFailedPrecondition);
  CHECK(absl::StrContains(one.message(), "signed by 1 of the 2 publishers of version 1 required"));
  // The same publisher twice counts once; re-signing replaces its signature.
  CHECK_FALSE(node::CheckSuccessor(*current, *signed_by(v2, {1, 1})).ok());
  CHECK(signed_by(v2, {1, 1})->signed_list().signatures_size() == 1);
  // A key that is no publisher does not count.
  v1::SignedTrustList outsider = signed_by(v2, {0})->signed_list();
  outsider = kpx::testing::Must(node::SignTrustList(
      outsider, kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519))));
  CHECK_FALSE(
      node::CheckSuccessor(*current, *kpx::testing::Must(node::TrustList::FromSigned(outsider)))
          .ok());
  // Publishers' signatures over other bytes do not count.
  v1::SignedTrustList forged = signed_by(v2, {0, 1})->signed_list();
  v1::TrustList other = v2;
  other.add_participants()->set_code("ZZ");
  other.mutable_participants(0)->set_status(v1::ACTIVE);
  forged.set_trust_list(other.SerializeAsString());
  auto forged_list = kpx::testing::Must(node::TrustList::FromSigned(forged));
  CHECK(absl::StrContains(node::CheckSuccessor(*current, *forged_list).message(),
                          "signed by 0 of the 2"));
  CHECK(node::CountSignatures(*current, forged).invalid.size() == 2);
  // A spoiled signature, put first by whoever passed the version on, does
  // not stop the genuine ones from counting.
  v1::SignedTrustList spoiled = signed_by(v2, {0, 1})->signed_list();
  v1::TrustListSignature junk = spoiled.signatures(0);
  junk.set_signature("junk");
  *spoiled.mutable_signatures()->Add() = junk;
  spoiled.mutable_signatures()->SwapElements(0, 2);
  CHECK(node::CheckSuccessor(*current, *kpx::testing::Must(node::TrustList::FromSigned(spoiled)))
            .ok());
  // Versions must follow one another, and keep publishers.
  v1::TrustList v3 = v2;
  v3.set_version(3);
  CHECK(absl::StrContains(node::CheckSuccessor(*current, *signed_by(v3, {0, 1})).message(),
                          "does not follow version 1"));
  v1::TrustList orphan = v2;
  orphan.clear_publishers();
  orphan.set_threshold(0);
  CHECK(absl::StrContains(node::CheckSuccessor(*current, *signed_by(orphan, {0, 1})).message(),
                          "names no publishers"));
  // A hand-managed list has no successor by signature.
  v1::TrustList by_hand;
  by_hand.set_version(1);
  CHECK_FALSE(node::CheckSuccessor(*kpx::testing::Must(node::TrustList::FromProto(by_hand)),
                                   *signed_by(v2, {0, 1}))
                  .ok());
}

TEST_CASE("onboarding decides who may send what to whom, and when", "[node][trust]") {
  v1::TrustList t;
  for (const char* code : {"BW", "EU", "AE"}) {
    v1::Participant* p = t.add_participants();
    p->set_code(code);
    p->set_status(v1::ACTIVE);
  }
  const absl::Time now = absl::Now();
  t.mutable_participants(0)->mutable_onboarding()->set_directions(v1::RECEIVES_ONLY);
  t.mutable_participants(1)->mutable_onboarding()->add_accepted_types(v1::STANDARD);
  *t.mutable_participants(2)->mutable_onboarding()->mutable_live_from() =
      node::ToTimestamp(now + absl::Hours(1));
  auto list = kpx::testing::Must(node::TrustList::FromProto(t));
  CHECK(absl::StrContains(list->CheckOnboarded("BW", "EU", v1::STANDARD, now).message(),
                          "BW is onboarded to receive certificates only"));
  CHECK(list->CheckOnboarded("EU", "BW", v1::STANDARD, now).ok());
  CHECK(absl::StrContains(list->CheckOnboarded("AE", "EU", v1::STANDARD, now).message(),
                          "AE is live on kpx only from"));
  CHECK(list->CheckOnboarded("AE", "BW", v1::STANDARD, now + absl::Hours(1)).ok());
  CHECK(absl::StrContains(list->CheckOnboarded("BW", "EU", v1::TECHNICAL, now).message(),
                          "onboarded to receive"));
  t.mutable_participants(0)->mutable_onboarding()->set_directions(v1::SENDS_AND_RECEIVES);
  list = kpx::testing::Must(node::TrustList::FromProto(t));
  CHECK(absl::StrContains(list->CheckOnboarded("BW", "EU", v1::TECHNICAL, now).message(),
                          "EU does not accept TECHNICAL"));
  CHECK(list->CheckOnboarded("XX", "EU", v1::STANDARD, now).code() == C::kPermissionDenied);
}

TEST_CASE("a key is retired or revoked; a message signed again keeps its body and digest",
          "[node][keys]") {
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  crypto::PrivateKey old_key =
      kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519));
  crypto::PrivateKey next_key =
      kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEcdsaP256));
  v1::TrustList proto;
  v1::Participant* p = proto.add_participants();
  p->set_code("BW");
  p->set_status(v1::ACTIVE);
  kpx::testing::AddOffices(*p);
  // The old key is revoked an hour ago; the next one is valid from then.
  *kpx::testing::ListSigningKey(*p, old_key)->mutable_revoked_at() =
      node::ToTimestamp(now - absl::Hours(1));
  *kpx::testing::ListSigningKey(*p, next_key)->mutable_not_before() =
      node::ToTimestamp(now - absl::Hours(1));
  auto trust = kpx::testing::Must(node::TrustList::FromProto(proto));
  auto made_at = [&](absl::Time at) {
    v1::MessageBody body;
    v1::Header* h = body.mutable_header();
    h->set_message_id(node::NewMessageId());
    h->set_sender("BW");
    h->set_recipient("EU");
    h->set_kind(v1::CANCELLATION);
    *h->mutable_created_at() = node::ToTimestamp(at);
    body.mutable_cancellation()->set_certificate_number("BW-1");
    body.mutable_cancellation()->set_reason("clerical error");
    return kpx::testing::Must(node::Signer("BW", old_key).Sign(body));
  };
  const v1::SignedMessage before = made_at(now - absl::Hours(2));
  const v1::SignedMessage after = made_at(now - absl::Minutes(30));
  // Made before the revocation: still holds. Claiming a time after: refused.
  CHECK(node::VerifyMessage(before, "BW", *trust, now).ok());
  absl::Status refused = node::VerifyMessage(after, "BW", *trust, now).status();
  CHECK(refused.code() == C::kUnauthenticated);
  CHECK(absl::StrContains(refused.message(), "is revoked from"));
  // The node's keyring never signs with it again.
  auto keyring = kpx::testing::Must(node::Keyring::Create("BW", trust, {old_key, next_key}, now));
  CHECK(kpx::testing::Must(keyring->SignerAt(now)).key().key_id() == next_key.key_id());
  CHECK_FALSE(node::Keyring::Create("BW", trust, {old_key}, now).ok());

  // Signed again with the next key: same body and digest, and it verifies.
  const node::Signer next("BW", next_key);
  v1::SignedMessage again = kpx::testing::Must(next.Resign(after, now));
  CHECK(again.body() == after.body());
  CHECK(node::MessageDigest(again) == node::MessageDigest(after));
  CHECK(again.key_id() == next_key.key_id());
  CHECK(node::SigningTime(again) == now);
  CHECK(node::VerifyMessage(again, "BW", *trust, now).ok());
  // Every change to it is refused.
  v1::SignedMessage changed = again;
  changed.set_body(before.body());  // the resigning names another body
  CHECK(node::VerifyMessage(changed, "BW", *trust, now).status().code() == C::kInvalidArgument);
  changed = again;
  changed.set_signature(next_key.Sign(again.body()).value());  // signed over the body
  CHECK(node::VerifyMessage(changed, "BW", *trust, now).status().code() == C::kUnauthenticated);
  changed = again;
  changed.set_resigning(again.resigning() + std::string("\xf8\x3e\x01", 3));  // field 999
  CHECK(node::VerifyMessage(changed, "BW", *trust, now).status().code() == C::kInvalidArgument);
  changed.set_resigning(std::string(node::kMaxResigningBytes + 1, 'x'));
  CHECK(node::VerifyMessage(changed, "BW", *trust, now).status().code() == C::kInvalidArgument);
  // Re-signed with the revoked key, or "before" the message was made.
  CHECK(node::Signer("BW", old_key).Resign(after, now).value().key_id() == old_key.key_id());
  CHECK(
      node::VerifyMessage(node::Signer("BW", old_key).Resign(after, now).value(), "BW", *trust, now)
          .status()
          .code() == C::kUnauthenticated);
  v1::SignedMessage early = kpx::testing::Must(next.Resign(after, now - absl::Minutes(45)));
  CHECK(absl::StrContains(node::VerifyMessage(early, "BW", *trust, now).status().message(),
                          "re-signed before it was made"));
  // A re-signing time in the future is not accepted either.
  v1::SignedMessage ahead = kpx::testing::Must(next.Resign(after, now + absl::Hours(1)));
  CHECK(node::VerifyMessage(ahead, "BW", *trust, now).status().code() == C::kOutOfRange);

  // A retired key: what it signed before not_after holds, after it not.
  p->mutable_signing_keys(0)->clear_revoked_at();
  *p->mutable_signing_keys(0)->mutable_not_after() = node::ToTimestamp(now - absl::Hours(1));
  auto retired = kpx::testing::Must(node::TrustList::FromProto(proto));
  CHECK(node::VerifyMessage(before, "BW", *retired, now).ok());
  CHECK(node::VerifyMessage(after, "BW", *retired, now).status().code() == C::kUnauthenticated);
}

}  // namespace
}  // namespace kpx
