// libFuzzer target: bytes as messages a peer delivers, through the node's
// whole exchange (node::Node::Exchange over a real ledger), so that envelope
// verification, the KP rules on received certificates, the certificate
// state machine and the tree-head gossip all run on hostile input.
//
// The node under test is AE. At start-up it has issued AE-2026-0001 to BW
// and AE-2026-0002 to EU, so confirmations and rejections from those peers
// find a certificate to act on. Input layout:
//   byte 0, bits 0-1  mode:
//     0  the rest is a kpx.v1.DeliverRequest, delivered as it is (at most
//        16 messages, with its known tree size and gossiped tree heads):
//        the signature check sees raw hostile envelopes;
//     1  the rest is a kpx.v1.MessageBody, signed as it is by the peer;
//     2,3  the rest is a MessageBody whose header is completed before the
//        peer signs it (sender, recipient AE, a message id derived from the
//        input, created_at now, kind from the payload, the digest of the
//        certificate a confirmation or rejection names, where unset), so
//        inputs reach the KP rules and the state machine.
//   bits 2-3  the delivering peer: BW, EU, VE (suspended), AE (itself).
//   bit 4     the signed message is delivered twice in one batch.
//   bit 5     signed with BW's key whoever the peer is (a wrong key).
//   bit 6     then signed again (Signer::Resign, as after a key
//             withdrawal); with bit 4 the original goes second.
//
// Invariants checked (abort = finding): a batch in which every message is
// refused leaves the ledger head unchanged (gossip may add a fork record
// only); every accepted message comes with a proof that checks against
// AE's signed tree head, as the sender checks it.
//
// The ledger lives on tmpfs and is reused across inputs (opening RocksDB
// per input would be far too slow); it is recreated every kResetEvery
// inputs so that memory and disk stay bounded on long runs. A crash may
// therefore depend on earlier inputs of the same run; replay the crashing
// input alone first (it usually reproduces, the state being small).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "kpx/v1/service.pb.h"
#include "node/courier.h"
#include "node/envelope.h"
#include "node/node.h"
#include "node/peer_logs.h"
#include "node/transport.h"
#include "node/util.h"
#include "tests/test_util.h"

namespace kpx::fuzz {
namespace {

constexpr char kSelf[] = "AE";
constexpr size_t kMaxMessages = 16;
constexpr int kResetEvery = 5000;

class Harness {
 public:
  Harness() : transport_(&network_, kSelf) { Reset(); }

  // Closes the node and ledger, deletes the ledger and starts afresh.
  void Reset() {
    node_.reset();
    ledger_.reset();
    dir_ = std::make_unique<TempDir>();
    absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger = storage::Ledger::Open(dir_->path());
    Require(ledger.ok(), "opening the ledger");
    ledger_ = *std::move(ledger);
    node::NodeOptions o;
    o.participant = kSelf;
    o.authority_name = "Fuzz Authority";
    o.trust_list = federation_.trust();
    o.signing_keys = {federation_.key(kSelf)};
    o.ledger = ledger_.get();
    o.transport = &transport_;  // no peer registered: nothing is delivered
    o.clock = [] { return FixedNow(); };
    absl::StatusOr<std::unique_ptr<node::Node>> node = node::Node::Create(std::move(o));
    Require(node.ok(), "creating the node");
    node_ = *std::move(node);
    const absl::Time issued = FixedNow() - absl::Hours(1);
    Require(node_->Submit(testing::ValidCertificate("AE-2026-0001", kSelf, "BW", issued)).ok(),
            "issuing AE-2026-0001");
    Require(node_->Submit(testing::ValidCertificate("AE-2026-0002", kSelf, "EU", issued)).ok(),
            "issuing AE-2026-0002");
    inputs_ = 0;
  }

  void Run(std::string_view in) {
    if (++inputs_ > kResetEvery) Reset();
    if (in.empty()) return;
    const uint8_t flags = static_cast<uint8_t>(in[0]);
    const std::string_view rest = in.substr(1);
    static const char* const kPeers[] = {"BW", "EU", "VE", "AE"};
    const std::string peer = kPeers[(flags >> 2) & 3];

    v1::DeliverRequest req;
    if ((flags & 3) == 0) {
      if (!req.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) return;
      while (req.messages_size() > static_cast<int>(kMaxMessages))
        req.mutable_messages()->RemoveLast();
    } else {
      v1::MessageBody body;
      if (!body.ParseFromArray(rest.data(), static_cast<int>(rest.size()))) return;
      if ((flags & 3) >= 2) Complete(peer, rest, body);
      const std::string signer = (flags & 0x20) ? "BW" : peer;
      absl::StatusOr<v1::SignedMessage> m = node::Signer(peer, federation_.key(signer)).Sign(body);
      Require(m.ok(), "signing");
      const v1::SignedMessage first = *m;
      if (flags & 0x40) {
        m = node::Signer(peer, federation_.key(signer)).Resign(first, FixedNow());
        Require(m.ok(), "re-signing");
      }
      *req.add_messages() = *m;
      if (flags & 0x10) *req.add_messages() = first;
    }
    Deliver(peer, req);
  }

 private:
  // Fills what a well-behaved sender always sets, keeping what the input
  // set, so the fuzzer need not guess a valid message id, timestamp or
  // digest.
  // A confirmation or rejection without a certificate digest gets the one
  // of the record it names, if the node has that record.
  void Complete(const std::string& peer, std::string_view raw, v1::MessageBody& body) const {
    std::string* digest = nullptr;
    std::string number;
    if (body.has_confirmation()) {
      digest = body.mutable_confirmation()->mutable_certificate_digest();
      number = body.confirmation().certificate_number();
    } else if (body.has_rejection()) {
      digest = body.mutable_rejection()->mutable_certificate_digest();
      number = body.rejection().certificate_number();
    }
    if (digest != nullptr && digest->empty()) {
      if (absl::StatusOr<v1::CertificateRecord> r = node_->Get(number); r.ok()) {
        *digest = r->certificate_digest();
      }
    }
    v1::Header* h = body.mutable_header();
    if (h->message_id().empty()) {
      h->set_message_id(crypto::HexEncode(crypto::Sha256(raw)).substr(0, 32));
    }
    if (h->sender().empty()) h->set_sender(peer);
    if (h->recipient().empty()) h->set_recipient(kSelf);
    if (!h->has_created_at()) *h->mutable_created_at() = node::ToTimestamp(FixedNow());
    if (h->kind() == v1::MESSAGE_KIND_UNSPECIFIED) h->set_kind(node::KindOf(body));
  }

  void Deliver(const std::string& peer, const v1::DeliverRequest& req) {
    if (req.messages().empty()) return;
    const uint64_t before = ledger_->head().sequence;
    v1::DeliverResponse resp = node_->Exchange(peer, req);
    Require(resp.results_size() == req.messages_size(), "one result per message");
    // KPX_FUZZ_VERBOSE=1: print each outcome (to check what seeds reach).
    static const bool verbose = std::getenv("KPX_FUZZ_VERBOSE") != nullptr;
    bool any_ok = false;
    for (int i = 0; i < resp.results_size(); ++i) {
      const v1::DeliveryResult& r = resp.results(i);
      if (verbose)
        std::fprintf(stderr, "outcome from %s: %d %s\n", peer.c_str(), r.code(), r.error().c_str());
      if (r.code() != 0) continue;
      any_ok = true;
      absl::StatusOr<node::SignedTree> head =
          node::CheckTreeHead(resp.tree_head(), kSelf, *federation_.trust(), FixedNow());
      Require(head.ok(), "an accepted message comes with AE's valid tree head");
      v1::OutboxItem sent;
      *sent.mutable_message() = req.messages(i);
      Require(node::CheckProof(r, sent, *head).ok(), "an accepted message's proof checks");
    }
    if (!any_ok) {
      const uint64_t after = ledger_->head().sequence;
      bool only_forks = true;
      if (after != before) {
        const std::vector<v1::LedgerEntry> entries =
            ledger_->ReadEntries(before + 1, after - before).value();
        for (const v1::LedgerEntry& e : entries) {
          only_forks = only_forks && e.kind() == v1::PEER_LOG_INCONSISTENT;
        }
      }
      Require(only_forks, "a refused batch leaves the ledger unchanged");
    }
  }

  Federation federation_;
  node::MemoryTransport::Network network_;
  node::MemoryTransport transport_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<storage::Ledger> ledger_;
  std::unique_ptr<node::Node> node_;
  int inputs_ = 0;
};

}  // namespace
}  // namespace kpx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A static object, not a leaked pointer: its destructor closes the
  // ledger and removes its folder when the fuzzer exits.
  static kpx::fuzz::Harness harness;
  harness.Run(kpx::fuzz::AsView(data, size));
  return 0;
}
