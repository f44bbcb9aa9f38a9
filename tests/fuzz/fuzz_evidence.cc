// libFuzzer target: evidence bundles as `kpxctl evidence verify` reads them
// (node::VerifyEvidence), offline and hostile.
//
// At start-up two real nodes (BW and EU, in this process over
// node::MemoryTransport, ledgers on tmpfs) take one certificate through
// issue, delivery and confirmation, and BW exports its bundle. Input
// layout: byte 0 mode, then
//   mode even  the rest is a whole bundle file, verified as it is;
//   mode odd   the rest is an edit script over BW's valid bundle: pairs of
//              (2-byte big-endian offset, byte to XOR there); an offset
//              past the end appends the byte instead.
// Invariants (abort = finding): the valid bundle verifies; a bundle whose
// bytes differ from it in any way never does; no input crashes the checker
// or makes it print more than a bounded report.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_util.h"
#include "node/evidence.h"
#include "node/node.h"
#include "node/transport.h"
#include "tests/test_util.h"

namespace kpx::fuzz {
namespace {

class Harness {
 public:
  Harness() {
    for (const char* code : {"BW", "EU"}) {
      dirs_[code] = std::make_unique<TempDir>();
      absl::StatusOr<std::unique_ptr<storage::Ledger>> l =
          storage::Ledger::Open(dirs_[code]->path());
      Require(l.ok(), "opening a ledger");
      ledgers_[code] = *std::move(l);
      transports_[code] = std::make_unique<node::MemoryTransport>(&network_, code);
      node::NodeOptions o;
      o.participant = code;
      o.trust_list = federation_.trust();
      o.signing_keys = {federation_.key(code)};
      o.ledger = ledgers_[code].get();
      o.transport = transports_[code].get();
      o.clock = [] { return FixedNow(); };
      absl::StatusOr<std::unique_ptr<node::Node>> n = node::Node::Create(std::move(o));
      Require(n.ok(), "creating a node");
      nodes_[code] = *std::move(n);
      network_.Register(code, nodes_[code].get());
    }
    const absl::Time issued = FixedNow() - absl::Hours(1);
    Require(
        nodes_["BW"]->Submit(testing::ValidCertificate("BW-2026-0001", "BW", "EU", issued)).ok(),
        "issuing");
    nodes_["BW"]->DeliverDue();
    Require(nodes_["EU"]->Confirm("BW-2026-0001", testing::AsDeclared(), absl::InfinitePast()).ok(),
            "confirming");
    nodes_["EU"]->DeliverDue();
    absl::StatusOr<v1::EvidenceBundle> bundle = nodes_["BW"]->ExportEvidence("BW-2026-0001");
    Require(bundle.ok(), "exporting evidence");
    valid_ = bundle->SerializeAsString();
    Require(node::VerifyEvidence(valid_, nullptr).ok, "the exported bundle verifies");
  }

  void Run(std::string_view in) {
    if (in.empty()) return;
    std::string bundle;
    if ((in[0] & 1) == 0) {
      bundle = std::string(in.substr(1));
    } else {
      bundle = valid_;
      for (size_t i = 1; i + 2 < in.size(); i += 3) {
        const size_t at = (static_cast<uint8_t>(in[i]) << 8) | static_cast<uint8_t>(in[i + 1]);
        if (at < bundle.size()) {
          bundle[at] = static_cast<char>(bundle[at] ^ in[i + 2]);
        } else {
          bundle.push_back(in[i + 2]);
        }
      }
    }
    const node::EvidenceReport report = node::VerifyEvidence(bundle, nullptr);
    if (report.ok && bundle != valid_) {
      std::fprintf(stderr, "an altered bundle verified\n");
      std::abort();
    }
    if (report.checks.size() > 4 * node::kMaxEvidenceEntries + 16) std::abort();
  }

 private:
  Federation federation_;
  node::MemoryTransport::Network network_;
  std::map<std::string, std::unique_ptr<TempDir>> dirs_;
  std::map<std::string, std::unique_ptr<storage::Ledger>> ledgers_;
  std::map<std::string, std::unique_ptr<node::MemoryTransport>> transports_;
  std::map<std::string, std::unique_ptr<node::Node>> nodes_;
  std::string valid_;
};

}  // namespace
}  // namespace kpx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kpx::fuzz::Harness harness;
  harness.Run(kpx::fuzz::AsView(data, size));
  return 0;
}
