// libFuzzer target: bytes as a peer's answer to our Deliver call, through
// the sending node's whole courier (node::Courier over a real ledger): the
// count check, the peer's tree head (signature, consistency with the one
// held: node/peer_logs.h), each proof (CheckProof: leaf, inclusion path),
// the gossiped heads, refusal codes and texts, and what is recorded.
//
// The node under test is BW, with certificates issued to EU always queued.
// Input layout: byte 0 flags, then a kpx.v1.DeliverResponse.
//   bit 0  the response's tree_head.body is a MessageBody that EU signs (its
//          header completed: sender EU, no recipient, created_at now, a
//          message id, kind TREE_HEAD), so inputs get past the signature;
//   bit 1  results are padded or cut to the number of messages sent;
//   bit 2  each 73-byte leaf carries the sent message's real digest
//          (bytes 41..72), so inputs reach the inclusion check;
//   bit 3  with bit 0: the head is made to prove result 0 alone (size =
//          its leaf's sequence, root = its leaf hash when that is 1, path
//          empty), so inputs reach the receipt's recording.
//
// Invariants (abort = finding): every message sent is afterwards either
// still queued or recorded once, as RECEIPT or DELIVERY_FAILED; every
// RECEIPT recorded holds a proof that checks on its own (EU's head, the
// leaf names the message, the path leads to the root).
//
// The ledger lives on tmpfs and is reused across inputs; it is recreated
// every kResetEvery inputs, and once EU's log was found inconsistent (its
// receipts are refused for good from then on).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "fuzz_util.h"
#include "kpx/v1/service.pb.h"
#include "node/courier.h"
#include "node/envelope.h"
#include "node/node.h"
#include "node/peer_logs.h"
#include "node/util.h"
#include "storage/log_leaf.h"
#include "storage/merkle.h"
#include "tests/test_util.h"

namespace kpx::fuzz {
namespace {

constexpr char kSelf[] = "BW";
constexpr char kPeer[] = "EU";
constexpr int kResetEvery = 2000;

// Answers with whatever the current input says.
class ScriptedTransport : public node::Transport {
 public:
  absl::StatusOr<v1::DeliverResponse> Deliver(const std::string&,
                                              const v1::DeliverRequest& request) override {
    sent = request;
    return response;
  }
  absl::StatusOr<v1::ConsistencyResponse> GetConsistency(const std::string&,
                                                         const v1::ConsistencyRequest&) override {
    return absl::UnavailableError("not scripted");
  }
  absl::StatusOr<v1::GetTrustListsResponse> GetTrustLists(
      const std::string&, const v1::GetTrustListsRequest&) override {
    return absl::UnavailableError("not scripted");
  }
  v1::DeliverResponse response;
  v1::DeliverRequest sent;
};

class Harness {
 public:
  Harness() { Reset(); }

  void Reset() {
    node_.reset();
    ledger_.reset();
    dir_ = std::make_unique<TempDir>();
    absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger = storage::Ledger::Open(dir_->path());
    Require(ledger.ok(), "opening the ledger");
    ledger_ = *std::move(ledger);
    node::NodeOptions o;
    o.participant = kSelf;
    o.trust_list = federation_.trust();
    o.signing_keys = {federation_.key(kSelf)};
    o.ledger = ledger_.get();
    o.transport = &transport_;
    o.clock = [] { return FixedNow(); };
    o.random_seed = 1;
    absl::StatusOr<std::unique_ptr<node::Node>> node = node::Node::Create(std::move(o));
    Require(node.ok(), "creating the node");
    node_ = *std::move(node);
    inputs_ = 0;
    issued_ = 0;
  }

  void Run(std::string_view in) {
    if (++inputs_ > kResetEvery || Forked()) Reset();
    if (in.empty()) return;
    const uint8_t flags = static_cast<uint8_t>(in[0]);
    v1::DeliverResponse resp;
    if (!resp.ParseFromArray(in.data() + 1, static_cast<int>(in.size() - 1))) return;
    Queue();
    const std::vector<v1::OutboxItem> due =
        ledger_->DueOutboxFor(kPeer, FixedNow(), node_->delivery().batch_size()).value();
    Require(!due.empty(), "something to deliver");
    Shape(flags, due, resp);
    transport_.response = resp;
    const uint64_t before = ledger_->head().sequence;
    node_->DeliverDue();
    Check(before);
  }

 private:
  bool Forked() const {
    absl::StatusOr<std::optional<v1::PeerLog>> log = ledger_->GetPeerLog(kPeer);
    return log.ok() && log->has_value() && (*log)->inconsistent();
  }

  // At least three certificates queued for EU, all due now.
  void Queue() {
    const absl::Time issued = FixedNow() - absl::Hours(1);
    while (ledger_->OutboxSize() < 3) {
      const std::string number = absl::StrFormat("BW-2026-%04d", ++issued_);
      Require(node_->Submit(testing::ValidCertificate(number, kSelf, kPeer, issued)).ok(),
              "issuing a certificate");
    }
    std::vector<v1::OutboxItem> items = ledger_->ListOutbox("", 100).value();
    for (v1::OutboxItem& item : items) *item.mutable_due_at() = node::ToTimestamp(FixedNow());
    Require(ledger_->RescheduleOutboxAll(items).ok(), "making the outbox due");
  }

  void Shape(uint8_t flags, const std::vector<v1::OutboxItem>& due, v1::DeliverResponse& resp) {
    if (flags & 2) {
      while (resp.results_size() > static_cast<int>(due.size()))
        resp.mutable_results()->RemoveLast();
      while (resp.results_size() < static_cast<int>(due.size())) resp.add_results();
    }
    if (flags & 4) {
      for (int i = 0; i < resp.results_size() && i < static_cast<int>(due.size()); ++i) {
        std::string* leaf = resp.mutable_results(i)->mutable_leaf();
        if (leaf->size() == storage::kLogLeafSize) {
          leaf->replace(41, 32, node::MessageDigest(due[i].message()));
        }
      }
    }
    if (flags & 1) SignHead(flags, resp);
  }

  void SignHead(uint8_t flags, v1::DeliverResponse& resp) {
    v1::MessageBody body;
    if (!body.ParseFromString(resp.tree_head().body())) return;
    if ((flags & 8) && resp.results_size() > 0) {
      absl::StatusOr<storage::LogLeaf> leaf = storage::DecodeLogLeaf(resp.results(0).leaf());
      if (leaf.ok()) {
        body.mutable_tree_head()->set_tree_size(leaf->sequence);
        if (leaf->sequence == 1) {
          body.mutable_tree_head()->set_root_hash(
              storage::merkle::LeafHash(resp.results(0).leaf()));
        }
        resp.mutable_results(0)->clear_inclusion_path();
      }
    }
    v1::Header* h = body.mutable_header();
    if (h->message_id().empty()) h->set_message_id(node::NewMessageId());
    if (h->sender().empty()) h->set_sender(kPeer);
    if (!h->has_created_at()) *h->mutable_created_at() = node::ToTimestamp(FixedNow());
    if (h->kind() == v1::MESSAGE_KIND_UNSPECIFIED) h->set_kind(node::KindOf(body));
    absl::StatusOr<v1::SignedMessage> m = node::Signer(kPeer, federation_.key(kPeer)).Sign(body);
    Require(m.ok(), "signing");
    *resp.mutable_tree_head() = *std::move(m);
  }

  void Check(uint64_t before) {
    std::set<std::string> recorded;
    const uint64_t after = ledger_->head().sequence;
    if (after > before) {
      const std::vector<v1::LedgerEntry> entries =
          ledger_->ReadEntries(before + 1, after - before).value();
      for (const v1::LedgerEntry& e : entries) {
        if (e.kind() == v1::RECEIPT) CheckReceipt(e);
        // KPX_FUZZ_VERBOSE=1: print what each input recorded (to check what seeds reach).
        static const bool verbose = std::getenv("KPX_FUZZ_VERBOSE") != nullptr;
        if (verbose) std::fprintf(stderr, "recorded %s\n", v1::EntryKind_Name(e.kind()).c_str());
        if (e.kind() == v1::RECEIPT || e.kind() == v1::DELIVERY_FAILED) {
          Require(recorded.insert(e.message_id()).second, "a message recorded twice");
        }
      }
    }
    for (const v1::SignedMessage& m : transport_.sent.messages()) {
      v1::MessageBody b;
      Require(b.ParseFromString(m.body()), "our own message parses");
      const bool queued = ledger_->GetOutboxItem(b.header().message_id()).value().has_value();
      if (queued == (recorded.count(b.header().message_id()) > 0)) {
        std::fprintf(stderr, "message %s: queued %d recorded %d\n", b.header().message_id().c_str(),
                     queued, !queued);
        std::abort();
      }
    }
  }

  void CheckReceipt(const v1::LedgerEntry& e) {
    absl::StatusOr<node::SignedTree> head =
        node::CheckTreeHead(e.proof().tree_head(), kPeer, *federation_.trust(), FixedNow());
    if (!head.ok()) std::abort();
    absl::StatusOr<storage::LogLeaf> leaf = storage::DecodeLogLeaf(e.proof().leaf());
    if (!leaf.ok() || leaf->kind != v1::RECEIVED_MESSAGE) std::abort();
    const std::vector<std::string> path(e.proof().inclusion_path().begin(),
                                        e.proof().inclusion_path().end());
    if (!storage::merkle::VerifyInclusion(storage::merkle::LeafHash(e.proof().leaf()),
                                          leaf->sequence - 1, head->size, path, head->root)
             .ok()) {
      std::abort();
    }
    for (const v1::SignedMessage& m : transport_.sent.messages()) {
      v1::MessageBody b;
      if (b.ParseFromString(m.body()) && b.header().message_id() == e.message_id()) {
        if (leaf->message_digest != node::MessageDigest(m)) std::abort();
        return;
      }
    }
    std::abort();  // a receipt for a message not sent
  }

  Federation federation_;
  ScriptedTransport transport_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<storage::Ledger> ledger_;
  std::unique_ptr<node::Node> node_;
  int inputs_ = 0;
  int issued_ = 0;
};

}  // namespace
}  // namespace kpx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kpx::fuzz::Harness harness;
  harness.Run(kpx::fuzz::AsView(data, size));
  return 0;
}
