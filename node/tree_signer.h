// kpx::node::TreeSigner: signs this node's tree heads (RFC 9162 signed
// tree heads over its ledger; docs/protocol.md "Tree heads").
//
// A Deliver exchange is answered with one signed tree head covering every
// message it stored: one signature per exchange, made after the ledger
// write, outside the commit and the certificates' locks. A head is signed
// at most once per ledger size: while the ledger has not grown, every
// caller gets the one signed last. Each signed head is kept in the ledger
// (Ledger::KeepTreeHead) so that `ledger verify` can check it.
//
// Thread safety: Current may be called from any thread.
#ifndef KPX_NODE_TREE_SIGNER_H_
#define KPX_NODE_TREE_SIGNER_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kpx/v1/message.pb.h"
#include "node/context.h"

namespace kpx::node {

// A tree head with the values it signs.
struct SignedTree {
  v1::SignedMessage message;
  uint64_t size = 0;
  std::string root;
};

class TreeSigner {
 public:
  explicit TreeSigner(const NodeContext& ctx) : ctx_(ctx) {}

  // A signed head of the ledger as it is now (covering at least every
  // entry committed before the call). FailedPrecondition if no key is
  // valid now.
  absl::StatusOr<SignedTree> Current();
  // Tree heads signed since start (a benchmark figure).
  uint64_t signed_count() const;

 private:
  const NodeContext& ctx_;
  mutable absl::Mutex mu_;
  SignedTree last_ ABSL_GUARDED_BY(mu_);
  bool have_last_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t signed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kpx::node

#endif  // KPX_NODE_TREE_SIGNER_H_
