// libFuzzer target: bytes as a peer's answer to GetTrustLists, through the
// node's whole trust book (node::TrustBook over a real ledger): parsing
// the published bytes (no unknown fields, bounds), the list's own checks
// (TrustList::FromProto), the signatures and threshold (CheckSuccessor),
// the ledger write and the swap into the keyring.
//
// The node under test is BW; version 1 in force names three publishers,
// two of whom must sign. Input layout: byte 0 flags, then a
// kpx.v1.GetTrustListsResponse.
//   bit 1  each version's bytes that parse as a TrustList get the next
//          version number (in force + 1 + i) and, if they name none, the
//          publishers of version 1, so inputs get past the version rule;
//   bit 0  each version is then signed by publishers 1 and 2 (real
//          signatures over its bytes), so inputs get past the threshold.
//
// Invariants (abort = finding): the version in force is the last one
// recorded; every version recorded from a peer verifies as the successor
// of the one recorded before it; the list in force loads from its
// published bytes.
//
// The ledger lives on tmpfs and is recreated every kResetEvery inputs.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "kpx/v1/service.pb.h"
#include "node/node.h"
#include "node/trust_chain.h"
#include "node/util.h"

namespace kpx::fuzz {
namespace {

constexpr char kSelf[] = "BW";
constexpr int kResetEvery = 500;

class ScriptedTransport : public node::Transport {
 public:
  absl::StatusOr<v1::DeliverResponse> Deliver(const std::string&,
                                              const v1::DeliverRequest&) override {
    return absl::UnavailableError("not scripted");
  }
  absl::StatusOr<v1::ConsistencyResponse> GetConsistency(const std::string&,
                                                         const v1::ConsistencyRequest&) override {
    return absl::UnavailableError("not scripted");
  }
  absl::StatusOr<v1::GetTrustListsResponse> GetTrustLists(
      const std::string& peer, const v1::GetTrustListsRequest&) override {
    if (peer != "EU") return absl::UnavailableError("only EU answers");
    return response;
  }
  v1::GetTrustListsResponse response;
};

class Harness {
 public:
  Harness() {
    v1::TrustList governed = federation_.trust()->proto();
    governed.set_version(1);
    governed.set_threshold(2);
    for (int i = 0; i < 3; ++i) {
      // Fixed seeds: an input means the same thing in every run.
      absl::StatusOr<crypto::PrivateKey> key =
          crypto::PrivateKey::FromRawEd25519(std::string(32, static_cast<char>('a' + i)));
      Require(key.ok(), "publisher key");
      v1::TrustListPublisher* p = governed.add_publishers();
      p->set_name(std::string("publisher ") + static_cast<char>('1' + i));
      p->set_key_id(key->key_id());
      p->set_algorithm(v1::ED25519);
      p->set_public_key_pem(key->public_key().ToPem());
      publishers_.push_back(*std::move(key));
    }
    absl::StatusOr<std::shared_ptr<const node::TrustList>> v1 =
        node::TrustList::FromProto(governed);
    Require(v1.ok(), "governed trust list");
    first_ = *std::move(v1);
    Reset();
  }

  void Reset() {
    node_.reset();
    ledger_.reset();
    dir_ = std::make_unique<TempDir>();
    absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger = storage::Ledger::Open(dir_->path());
    Require(ledger.ok(), "opening the ledger");
    ledger_ = *std::move(ledger);
    node::NodeOptions o;
    o.participant = kSelf;
    o.trust_list = first_;
    o.signing_keys = {federation_.key(kSelf)};
    o.ledger = ledger_.get();
    o.transport = &transport_;
    // Hours apart, so every input finds EU's poll due (at most 30 min of backoff).
    o.clock = [this] { return FixedNow() + absl::Hours(inputs_); };
    o.random_seed = 1;
    absl::StatusOr<std::unique_ptr<node::Node>> node = node::Node::Create(std::move(o));
    Require(node.ok(), "creating the node");
    node_ = *std::move(node);
    inputs_ = 0;
  }

  void Run(std::string_view in) {
    if (++inputs_ > kResetEvery) Reset();
    if (in.empty()) return;
    const uint8_t flags = static_cast<uint8_t>(in[0]);
    v1::GetTrustListsResponse resp;
    if (!resp.ParseFromArray(in.data() + 1, static_cast<int>(in.size() - 1))) return;
    Shape(flags, resp);
    transport_.response = resp;
    node_->PollTrustLists();
    Check();
  }

 private:
  void Shape(uint8_t flags, v1::GetTrustListsResponse& resp) {
    const uint64_t in_force = node_->trust_list()->version();
    for (int i = 0; i < resp.versions_size() && i < 8; ++i) {
      v1::SignedTrustList* s = resp.mutable_versions(i);
      v1::TrustList list;
      if ((flags & 2) && list.ParseFromString(s->trust_list())) {
        list.set_version(in_force + 1 + static_cast<uint64_t>(i));
        if (list.publishers().empty()) {
          *list.mutable_publishers() = first_->proto().publishers();
          list.set_threshold(first_->proto().threshold());
        }
        s->set_trust_list(list.SerializeAsString());
      }
      if (flags & 1) {
        for (int k = 0; k < 2; ++k) {
          absl::StatusOr<v1::SignedTrustList> signed_list =
              node::SignTrustList(*s, publishers_[static_cast<size_t>(k)]);
          Require(signed_list.ok(), "signing");
          *s = *std::move(signed_list);
        }
      }
    }
  }

  void Check() {
    absl::StatusOr<std::vector<v1::TrustListRecord>> records = ledger_->ListTrustLists(0, 100000);
    Require(records.ok() && !records->empty(), "reading the versions");
    std::shared_ptr<const node::TrustList> before;
    for (const v1::TrustListRecord& r : *records) {
      absl::StatusOr<std::shared_ptr<const node::TrustList>> list =
          node::TrustList::FromSigned(r.signed_list());
      if (!list.ok()) std::abort();  // a version recorded that does not load
      if (before != nullptr && !node::CheckSuccessor(*before, **list).ok()) std::abort();
      before = *std::move(list);
    }
    if (node_->trust_list()->digest() != before->digest()) std::abort();
  }

  Federation federation_;
  std::vector<crypto::PrivateKey> publishers_;
  std::shared_ptr<const node::TrustList> first_;
  ScriptedTransport transport_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<storage::Ledger> ledger_;
  std::unique_ptr<node::Node> node_;
  int64_t inputs_ = 0;
};

}  // namespace
}  // namespace kpx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kpx::fuzz::Harness* harness = new kpx::fuzz::Harness();
  harness->Run(kpx::fuzz::AsView(data, size));
  return 0;
}
