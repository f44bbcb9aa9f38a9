// Ledger::Verify: walks the log from sequence 1 and recomputes the chain
// and the Merkle tree.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "rocksdb/db.h"
#include "storage/keys.h"
#include "storage/ledger_impl.h"
#include "storage/log_leaf.h"
#include "storage/merkle.h"

namespace kpx::storage {
namespace {

// Compares the nodes a rebuilt tree completes with the stored ones. The
// rebuild completes each level's nodes in index order, so one forward
// iterator per level reads the stored nodes once, in key order.
class NodeChecker {
 public:
  NodeChecker(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const rocksdb::ReadOptions& ro)
      : db_(db), cf_(cf), ro_(ro) {}

  // Empty if `w` is stored as computed; what differs otherwise.
  std::string Check(const merkle::NodeWrite& w) {
    if (levels_.size() <= static_cast<size_t>(w.level)) levels_.resize(w.level + 1);
    std::unique_ptr<rocksdb::Iterator>& it = levels_[w.level];
    const std::string key = merkle::NodeKey(w.level, w.index);
    if (it == nullptr) {
      it.reset(db_->NewIterator(ro_, cf_));
      it->Seek(key);
    }
    const bool same =
        it->Valid() && it->key() == rocksdb::Slice(key) && it->value() == rocksdb::Slice(w.hash);
    if (!same && !it->status().ok()) return absl::StrCat("reading merkle nodes failed");
    if (!same) return absl::StrCat("merkle node (", w.level, ", ", w.index, ") differs");
    it->Next();
    return std::string();
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  rocksdb::ReadOptions ro_;
  std::vector<std::unique_ptr<rocksdb::Iterator>> levels_;
};

}  // namespace

VerifyResult Ledger::Impl::Verify() const {
  VerifyResult result;
  result.head = keys::EmptyHead();  // advances over each intact entry
  auto fail = [&result](uint64_t sequence, std::string problem) {
    result.ok = false;
    result.first_bad_sequence = sequence;
    result.problem = std::move(problem);
    return result;
  };

  // Log and head read at one point in time, so appends running meanwhile
  // cannot make the head look ahead of the log.
  rocksdb::ManagedSnapshot snapshot(db.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  absl::StatusOr<Head> stored = ReadStoredHead(ro);
  if (!stored.ok()) {
    return fail(1, absl::StrCat("cannot read the head: ", stored.status().message()));
  }

  // The size and root of the kept tree head; size 0 if none.
  absl::StatusOr<std::optional<v1::SignedMessage>> kept = ReadKeptTreeHead(ro);
  absl::StatusOr<v1::TreeHead> signed_head = !kept.ok()          ? kept.status()
                                             : kept->has_value() ? TreeHeadOf(**kept)
                                                                 : v1::TreeHead();
  if (!signed_head.ok()) {
    return fail(1, absl::StrCat("cannot read the tree head: ", signed_head.status().message()));
  }

  // One sequential pass over data read once: keep it out of the block
  // cache and read ahead in large chunks.
  ro.fill_cache = false;
  ro.readahead_size = size_t{8} << 20;
  merkle::Frontier edge;
  NodeChecker nodes(db.get(), merkle_cf, ro);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, log_cf));
  // Reused for every entry, so parsing reuses their buffers.
  v1::LogRecord record;
  v1::LedgerEntry entry;
  std::string chained;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const uint64_t expected = result.head.sequence + 1;
    const std::optional<uint64_t> sequence = keys::ParseSequenceKey(it->key().ToStringView());
    if (!sequence) {
      return fail(expected, absl::StrCat("log key after entry ", expected - 1, " is malformed"));
    }
    if (*sequence != expected) {
      return fail(expected, absl::StrCat("entry ", expected, " missing"));
    }
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return fail(expected, absl::StrCat("entry ", expected, " unreadable"));
    }
    chained.assign(result.head.hash);
    chained.append(record.entry());
    std::string hash = crypto::Sha256(chained);
    if (hash != record.hash()) {
      return fail(expected, absl::StrCat("entry ", expected, " hash mismatch: contents changed"));
    }
    if (!entry.ParseFromString(record.entry())) {
      return fail(expected, absl::StrCat("entry ", expected, " unreadable"));
    }
    if (entry.sequence() != expected) {
      return fail(expected, absl::StrCat("entry ", expected, " names sequence ", entry.sequence()));
    }
    for (const merkle::NodeWrite& w :
         edge.Add(merkle::LeafHash(EncodeLogLeaf(LeafOf(entry, record.entry()))))) {
      // Past the head the log itself is wrong (reported below).
      if (expected > stored->sequence) break;
      if (std::string problem = nodes.Check(w); !problem.empty()) {
        return fail(expected,
                    absl::StrCat("entry ", expected, " does not match the Merkle tree: ", problem));
      }
    }
    if (edge.size() == signed_head->tree_size() && edge.Root() != signed_head->root_hash()) {
      return fail(expected, absl::StrCat("the signed tree head of ", expected,
                                         " entries has another root than the log"));
    }
    result.head.sequence = expected;
    result.head.hash = std::move(hash);
    ++result.entries_checked;
  }
  const uint64_t last = result.head.sequence;
  if (!it->status().ok()) {
    return fail(last + 1,
                absl::StrCat("reading entry ", last + 1, " failed: ", it->status().ToString()));
  }
  if (last != stored->sequence) {
    return fail(std::min(last, stored->sequence) + 1,
                absl::StrCat("log ends at ", last, " but head says ", stored->sequence));
  }
  if (result.head.hash != stored->hash) {
    return fail(std::max<uint64_t>(last, 1),
                absl::StrCat("head hash differs from entry ", last, "'s"));
  }
  result.head.root = edge.Root();
  if (result.head.root != stored->root) {
    return fail(std::max<uint64_t>(last, 1), "the head's Merkle root differs from the log's");
  }
  if (signed_head->tree_size() > last) {
    return fail(last + 1, absl::StrCat("the signed tree head covers ", signed_head->tree_size(),
                                       " entries but the log has ", last));
  }
  result.tree_head_size = signed_head->tree_size();
  return result;
}

}  // namespace kpx::storage
