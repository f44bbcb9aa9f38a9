// kpx::node evidence bundles: one certificate's whole journey, checkable
// with no node and no network (docs/protocol.md "Evidence bundles").
//
// A bundle holds the exporting node's ledger entries about the certificate
// (bytes as stored), the inclusion path of each in the node's signed tree
// head, and every trust-list version it had in force over those entries
// (each entry's signatures are checked with the version in force when it
// was written; each version with the publishers of the one before); the
// whole is signed by the node. The other Participant's evidence is inside the entries: its signed
// messages (RECEIVED_MESSAGE) and, for each message we sent, its signed
// tree head and the proof that its log holds the message (RECEIPT).
//
// Thread safety: ExportEvidence as the ledger; VerifyEvidence is pure.
#ifndef KPX_NODE_EVIDENCE_H_
#define KPX_NODE_EVIDENCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kpx/v1/ledger.pb.h"
#include "node/context.h"
#include "node/tree_signer.h"

namespace kpx::node {

inline constexpr uint32_t kEvidenceFormat = 2;  // format 1 bundles still verify
// At most this many entries about one certificate go into a bundle.
inline constexpr size_t kMaxEvidenceEntries = 1000;

// The bundle for certificate `number`: NotFound if this node has no entry
// about it. Reads the whole log (there is no index by certificate yet).
absl::StatusOr<v1::EvidenceBundle> ExportEvidence(const NodeContext& ctx, TreeSigner& signer,
                                                  const std::string& number);

// One check of a bundle and what it found.
struct EvidenceCheck {
  bool ok = false;
  std::string what;  // one line, printable
};

struct EvidenceReport {
  bool ok = false;  // every check passed
  std::string certificate_number;
  std::vector<EvidenceCheck> checks;
};

// Checks `bundle_bytes` (a serialized EvidenceBundle) offline, signature by
// signature, and reports each check; stops at the first failure that makes
// the rest meaningless (a bundle that does not parse, a trust list that
// does not load). With `trust_list` non-null its keys are used instead of
// the bundle's own, and a difference is reported as a check.
EvidenceReport VerifyEvidence(const std::string& bundle_bytes, const v1::TrustList* trust_list);

}  // namespace kpx::node

#endif  // KPX_NODE_EVIDENCE_H_
