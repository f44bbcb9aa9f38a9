#include "node/tree_signer.h"

#include "node/log.h"
#include "node/messages.h"

namespace kpx::node {

absl::StatusOr<SignedTree> TreeSigner::Current() {
  const storage::Head head = ctx_.ledger->head();
  const absl::Time now = ctx_.Now();
  // The head signed last serves while the ledger has not grown, and while
  // its key is still the one we sign with (a withdrawn key's head would be
  // refused by every peer).
  absl::StatusOr<Signer> key = ctx_.keyring->SignerAt(now);
  if (!key.ok()) return key.status();
  {
    absl::MutexLock l(&mu_);
    if (have_last_ && last_.size >= head.sequence &&
        last_.message.key_id() == key->key().key_id()) {
      return last_;
    }
  }
  // Signed without the lock: concurrent exchanges may each sign a head;
  // the largest is kept for the next callers.
  absl::StatusOr<Sealed> sealed =
      Seal(*ctx_.keyring, TreeHeadBody(head.sequence, head.root), "", now);
  if (!sealed.ok()) return sealed.status();
  SignedTree tree{std::move(sealed->message), head.sequence, head.root};
  if (absl::Status kept = ctx_.ledger->KeepTreeHead(tree.message, tree.size); !kept.ok()) {
    // The head is valid either way; only `ledger verify` misses it.
    if (Observer* obs = ctx_.observer->get(); obs != nullptr) obs->LedgerWriteFailed("tree_head");
    log::Error("tree_head_not_kept",
               {{"tree_size", std::to_string(tree.size)}, {"reason", kept.message()}});
  }
  absl::MutexLock l(&mu_);
  ++signed_;
  if (!have_last_ || tree.size >= last_.size) {
    last_ = tree;
    have_last_ = true;
  }
  return tree;
}

uint64_t TreeSigner::signed_count() const {
  absl::MutexLock l(&mu_);
  return signed_;
}

}  // namespace kpx::node
