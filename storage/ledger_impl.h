// Internal to storage/: the state behind Ledger, shared by ledger.cc (open
// and reads), commit.cc (the write path) and verify.cc.
#ifndef KPX_STORAGE_LEDGER_IMPL_H_
#define KPX_STORAGE_LEDGER_IMPL_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "kpx/v1/ledger.pb.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "storage/ledger.h"
#include "storage/merkle.h"

namespace kpx::storage {

// The TreeHead a signed tree head's body holds (signature not checked);
// InvalidArgument if it holds none.
absl::StatusOr<v1::TreeHead> TreeHeadOf(const v1::SignedMessage& signed_head);

// Maps a RocksDB status to an absl::Status, prefixing `what`.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);

// One caller of Append or RescheduleOutbox waiting in the writer queue.
// From queueing until `done`, only the thread leading its group touches the
// other fields; `done` itself is read and written under Impl::mu.
struct Writer {
  std::span<Transition> transitions;  // Append / AppendAll
  // RescheduleOutbox / RescheduleOutboxAll: items to rewrite; with
  // skip_missing, items no longer queued are passed over, not an error.
  std::span<const v1::OutboxItem> reschedules;
  bool skip_missing = false;
  size_t approx_bytes = 0;  // bounds the group size
  absl::Status status;
  std::vector<Head> heads;  // the head right after each transition's entry
  bool done = false;
  absl::CondVar cv;
};

class Ledger::Impl {
 public:
  // Stages one commit group into a WriteBatch (commit.cc).
  class GroupBuilder;

  ~Impl();

  // Reads the head and outbox count after DB::Open (ledger.cc).
  absl::Status Load();
  // Queues `w` and returns once it is committed or failed (commit.cc).
  absl::Status Commit(Writer& w);
  VerifyResult Verify() const;  // verify.cc
  // Builds the Merkle tree of a ledger written before it existed, from the
  // log, and stores the head with its root (tree.cc).
  absl::Status BuildTree(const Head& stored);

  // The tree head KeepTreeHead kept, or nullopt (tree.cc).
  absl::StatusOr<std::optional<v1::SignedMessage>> ReadKeptTreeHead(
      const rocksdb::ReadOptions& ro) const;
  // The stored meta head, or the empty head if none was ever written.
  absl::StatusOr<Head> ReadStoredHead(const rocksdb::ReadOptions& ro) const;

  // Set once in Open, then read-only. Handles are released before the DB,
  // the DB before the Env it was opened with (null: the default Env).
  std::unique_ptr<rocksdb::Env> env;
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* log_cf = nullptr;
  rocksdb::ColumnFamilyHandle* certs_cf = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_cf = nullptr;
  rocksdb::ColumnFamilyHandle* seen_cf = nullptr;
  rocksdb::ColumnFamilyHandle* meta_cf = nullptr;
  rocksdb::ColumnFamilyHandle* merkle_cf = nullptr;
  rocksdb::ColumnFamilyHandle* peers_cf = nullptr;
  rocksdb::ColumnFamilyHandle* trust_cf = nullptr;
  rocksdb::ColumnFamilyHandle* officers_cf = nullptr;
  rocksdb::ColumnFamilyHandle* default_cf = nullptr;  // unused, but RocksDB requires it

  mutable absl::Mutex mu;
  // Front writer is the leader; the rest wait for it or their turn.
  std::deque<Writer*> writers ABSL_GUARDED_BY(mu);
  // Last committed entry; only advances after its batch is synced.
  Head head ABSL_GUARDED_BY(mu);
  // The right edge of the Merkle tree of `head.sequence` entries; the
  // leader copies it, stages on the copy, and publishes it with the head.
  merkle::Frontier frontier ABSL_GUARDED_BY(mu);
  uint64_t outbox_count ABSL_GUARDED_BY(mu) = 0;
  uint64_t batches_written ABSL_GUARDED_BY(mu) = 0;
  // Non-OK once writing is unsafe: the log disagreed with the head at Open,
  // or a synced write failed (the disk state is then unknown until reopen).
  absl::Status writes_refused ABSL_GUARDED_BY(mu);
  mutable absl::CondVar head_changed;
  // Serializes KeepTreeHead's read-compare-write.
  absl::Mutex tree_head_mu;
};

// The Merkle nodes of a ledger in RocksDB, read with `ro`.
class DbNodeStore : public merkle::NodeStore {
 public:
  DbNodeStore(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* merkle_cf, rocksdb::ReadOptions ro)
      : db_(db), cf_(merkle_cf), ro_(ro) {}
  absl::StatusOr<std::string> Get(int level, uint64_t index) const override;

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  rocksdb::ReadOptions ro_;
};

}  // namespace kpx::storage

#endif  // KPX_STORAGE_LEDGER_IMPL_H_
