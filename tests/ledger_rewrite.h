// What an attacker with write access to a node's data folder can do: rebuild
// the whole ledger with its history changed so that it verifies on its own
// (chain, Merkle tree and head all recomputed). kpx cannot stop this on the
// node itself; its peers detect it (node/peer_logs.h).
#ifndef KPX_TESTS_LEDGER_REWRITE_H_
#define KPX_TESTS_LEDGER_REWRITE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "kpx/v1/ledger.pb.h"

namespace kpx::testing {

// Rewrites the (closed) ledger in `dir`: every entry re-appended in order
// after `edit` (which returns true if it changed the entry), every
// certificate record, outbox item, peer log and received message's dedup
// mark carried over. The tree head the node last signed is dropped (the
// attacker cannot make it agree). Returns how many entries `edit` changed.
absl::StatusOr<int> RewriteLedger(const std::string& dir,
                                  const std::function<bool(v1::LedgerEntry&)>& edit);

}  // namespace kpx::testing

#endif  // KPX_TESTS_LEDGER_REWRITE_H_
