// kpx/storage: the node's tamper-evident ledger in one RocksDB.
//
// Column families:
//   log       big-endian uint64 sequence -> LogRecord{entry bytes, chain hash}
//   certs     certificate number         -> CertificateRecord (current state)
//   outbox    "m" + message id           -> OutboxItem
//             "d" + big-endian due micros + message id -> "" (due index)
//             "r" + length byte + recipient + due micros + message id -> ""
//                 (due index per recipient; held items are in neither)
//   seen      message id                 -> value given by the caller (the
//                                           signed receipt we answered with)
//   merkle    merkle::NodeKey(level, i)  -> 32-byte hash of node (level, i) of
//                                           the Merkle tree over the log
//   peers     Participant code           -> PeerLog (what a peer showed of
//                                           its own log)
//   trust     big-endian version + big-endian sequence -> TrustListRecord
//                                           (each trust-list version put in
//                                           force, by the entry `sequence`)
//   officers  officer sign-in name       -> Officer (the account as it stands)
//   meta      "head"                     -> 8-byte big-endian sequence + 32-byte hash
//                                           of the last entry + 32-byte Merkle root
//             "tree_head"                -> the newest tree head this node signed
//                                           (SignedMessage of a TreeHead)
//
// Chain: hash(n) = SHA-256(hash(n-1) || entry bytes(n)), hash(0) = 32 zero
// bytes. Sequences start at 1 and have no gaps.
//
// Merkle tree: the log is also an RFC 9162 Merkle tree (storage/merkle.h)
// whose leaf i is the LogLeaf of entry i + 1 (storage/log_leaf.h). Its
// nodes are written in the entry's batch; the root of the first n entries
// and proofs between sizes up to the head take O(log n) reads. A ledger
// written before the tree existed gets it built on Open.
//
// Durability: every Append is one WriteBatch written with sync=true, so a
// crash leaves either the whole transition or none of it. Concurrent Append
// calls are grouped by one committing thread into a single batch and a
// single fsync (group commit, as in LevelDB's writer queue).
//
// Thread safety: every method may be called from any thread.
#ifndef KPX_STORAGE_LEDGER_H_
#define KPX_STORAGE_LEDGER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace kpx::storage {

// How Ledger::Open reaches the disk. The default is what the node uses.
struct LedgerOptions {
  // Every file of the ledger is created, written, synced and read through
  // this file system; null: RocksDB's default (the local disk). Tests pass
  // a wrapper that injects faults (tests/fault_fs.h). Shared with the
  // ledger, which keeps it alive until it is closed.
  std::shared_ptr<rocksdb::FileSystem> file_system;
};

struct Head {
  uint64_t sequence = 0;  // 0: empty ledger
  std::string hash;       // 32 bytes; zeros for the empty ledger
  // The Merkle root of the first `sequence` entries (merkle::EmptyRoot()
  // for none).
  std::string root;
  // The encoded LogLeaf the entry added; only in heads Append / AppendAll
  // return and on_sequenced sees.
  std::string leaf;
};

// One state change, written atomically.
struct Transition {
  // Append sets entry.sequence; the caller fills the rest.
  v1::LedgerEntry entry;
  // New current state of entry.certificate_number's record, if it changed.
  std::optional<v1::CertificateRecord> record;
  // Other certificates' records the same step changes (a replacement
  // marks its predecessor REPLACED), keyed by their certificate's number;
  // written in the same batch. The caller holds their locks too.
  std::vector<v1::CertificateRecord> linked_records;
  // Outbox items to add (keyed by message id; due_at decides order).
  std::vector<v1::OutboxItem> outbox_put;
  // Message ids to remove from the outbox. Applied before outbox_put, so a
  // transition may replace an item; removing an absent id is a no-op.
  std::vector<std::string> outbox_delete;
  // If set, marks this message id as seen (dedup) with value seen_value.
  std::string seen_message_id;
  std::string seen_value;
  // What a peer showed of its log, keyed by PeerLog.participant.
  std::vector<v1::PeerLog> peer_logs;
  // A trust-list version put in force by this entry; its `sequence` is
  // filled in with the entry's.
  std::optional<v1::TrustListRecord> trust_list;
  // An officer's account as it stands after this entry, keyed by its name.
  std::optional<v1::Officer> officer;
  // Called on the committing thread once the entry's sequence and hash are
  // known and before anything is written; may fill in fields that depend on
  // them (record history, seen_value). Must not call back into the Ledger.
  // It may not change `entry` (the hash is already computed over it).
  std::function<absl::Status(const Head& after, Transition& t)> on_sequenced;
};

struct VerifyResult {
  bool ok = true;
  uint64_t entries_checked = 0;
  // The last entry whose hash checked out (the empty head if none); equals
  // the stored head when ok.
  Head head;
  uint64_t first_bad_sequence = 0;  // 0 when ok
  std::string problem;              // empty when ok
  // The newest tree head this node signed whose root was recomputed and
  // matched (its size; 0 if none is stored). Its signature is the caller's
  // to check.
  uint64_t tree_head_size = 0;
};

class Ledger {
 public:
  // Opens or creates the ledger in `dir`. Reopening after a crash resumes
  // at the last committed entry.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const std::string& dir);
  // The same, through `options` (see LedgerOptions).
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(const std::string& dir,
                                                      const LedgerOptions& options);
  ~Ledger();

  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Appends t.entry and applies the rest of t in one synced batch. Returns
  // the head after t's entry. If the record / dedup state it relies on may
  // change concurrently, the caller serializes (see node/).
  // Errors: on_sequenced's own error; InvalidArgument if on_sequenced
  // changed t.entry, or a record / outbox item / seen value lacks its key;
  // DataLoss if Open found the log's end disagreeing with the stored head,
  // and the write error after a failed write: both refuse every later write
  // until the ledger is reopened (and, for the former, repaired).
  absl::StatusOr<Head> Append(Transition t);

  // Appends `transitions` in order, as consecutive entries, in one synced
  // batch: all of them or none. Each on_sequenced sees its own entry's head.
  // Returns the head after each; on any error (the first one is returned)
  // nothing is written. An empty vector writes nothing.
  absl::StatusOr<std::vector<Head>> AppendAll(std::vector<Transition> transitions);

  Head head() const;

  // Blocks until head().sequence >= sequence or `deadline` passes. Returns
  // the head at that moment.
  Head WaitForSequence(uint64_t sequence, absl::Time deadline) const;

  absl::StatusOr<std::optional<v1::CertificateRecord>> GetCertificate(
      const std::string& number) const;

  // Certificates in number order starting after `after_number` (empty: from
  // the first), calling `keep` on each; stops after `limit` kept records.
  // Returns the kept records.
  absl::StatusOr<std::vector<v1::CertificateRecord>> ListCertificates(
      const std::string& after_number, size_t limit,
      const std::function<bool(const v1::CertificateRecord&)>& keep) const;

  // The value stored with a seen message id, or nullopt if never seen.
  absl::StatusOr<std::optional<std::string>> GetSeen(const std::string& message_id) const;

  // Outbox items due at or before `now`, earliest first, at most `limit`.
  // Held items (OutboxItem.held: waiting for an earlier message about the
  // same certificate) are never due; they become due when put unheld.
  absl::StatusOr<std::vector<v1::OutboxItem>> DueOutbox(absl::Time now, size_t limit) const;
  // Earliest due time in the outbox, or nullopt when it is empty.
  absl::StatusOr<std::optional<absl::Time>> NextDue() const;
  // The same for the items addressed to `recipient` only.
  absl::StatusOr<std::vector<v1::OutboxItem>> DueOutboxFor(const std::string& recipient,
                                                           absl::Time now, size_t limit) const;
  absl::StatusOr<std::optional<absl::Time>> NextDueFor(const std::string& recipient) const;
  // Recipients with at least one item that is not held, in code order.
  absl::StatusOr<std::vector<std::string>> OutboxRecipients() const;
  // One outbox item, or nullopt if it is not queued.
  absl::StatusOr<std::optional<v1::OutboxItem>> GetOutboxItem(const std::string& message_id) const;
  // Number of items in the outbox (held ones included).
  uint64_t OutboxSize() const;
  // A read-only page of the outbox for listings: items in message id order
  // starting after `after_message_id` (empty: from the first), at most
  // `limit`, read at one point in time. Delivery uses DueOutbox instead.
  absl::StatusOr<std::vector<v1::OutboxItem>> ListOutbox(const std::string& after_message_id,
                                                         size_t limit) const;
  // Rewrites an outbox item (new due_at, attempts, last_error) in one synced
  // batch. NotFound if the item has left the outbox meanwhile. Only those
  // three fields are taken from `item`; the rest stays as queued. Goes
  // through the same commit queue as Append, so it is ordered with the
  // Append that deletes the item and can never bring it back.
  absl::Status RescheduleOutbox(const v1::OutboxItem& item);
  // RescheduleOutbox for many items in one synced batch (a pass of failed
  // deliveries costs one fsync, not one per message). Items that have left
  // the outbox meanwhile are skipped.
  absl::Status RescheduleOutboxAll(std::span<const v1::OutboxItem> items);

  // Entries with sequence in [from, from + limit), in order.
  absl::StatusOr<std::vector<v1::LedgerEntry>> ReadEntries(uint64_t from, size_t limit) const;

  // Walks the whole chain from sequence 1: recomputes every hash, checks
  // that sequences have no gaps, that each stored entry names its own
  // sequence, and that the chain ends at the stored head. Rebuilds the
  // Merkle tree from the entries on the way: every stored node must match,
  // the root must be the head's, and the root at the size of the stored
  // tree head (TreeHead) must be the one it signs. Reports the first
  // tampered or missing entry.
  VerifyResult Verify() const;

  // ---- the Merkle tree (storage/merkle.h); sizes count entries from 1.
  // The leaf entry `sequence` added (encoded LogLeaf). NotFound past the head.
  absl::StatusOr<std::string> Leaf(uint64_t sequence) const;
  // Entry `sequence`'s bytes exactly as stored and hashed (a serialized
  // LedgerEntry). NotFound past the head.
  absl::StatusOr<std::string> RawEntry(uint64_t sequence) const;
  // The inclusion path of entry `sequence`'s leaf in the tree of the first
  // `tree_size` entries. InvalidArgument unless 1 <= sequence <= tree_size
  // <= head().sequence.
  absl::StatusOr<std::vector<std::string>> InclusionProof(uint64_t sequence,
                                                          uint64_t tree_size) const;
  // The consistency proof from the tree of `old_size` entries to that of
  // `new_size`. InvalidArgument unless old_size <= new_size <= head().sequence.
  absl::StatusOr<std::vector<std::string>> ConsistencyProof(uint64_t old_size,
                                                            uint64_t new_size) const;
  // The root of the first `tree_size` entries (at most head().sequence).
  absl::StatusOr<std::string> RootAt(uint64_t tree_size) const;

  // ---- tree heads
  // Keeps `tree_head`, a tree head this node signed for its first
  // `tree_size` entries, unless one of at least that size is kept already.
  // Written without its own fsync: it reaches the disk with the next synced
  // batch (losing the newest one in a crash is harmless; the peers hold it).
  absl::Status KeepTreeHead(const v1::SignedMessage& tree_head, uint64_t tree_size);
  // The tree head KeepTreeHead kept, or nullopt.
  absl::StatusOr<std::optional<v1::SignedMessage>> KeptTreeHead() const;

  // What `participant` showed of its log, or nullopt if nothing yet.
  absl::StatusOr<std::optional<v1::PeerLog>> GetPeerLog(const std::string& participant) const;
  // Every peer's, in code order.
  absl::StatusOr<std::vector<v1::PeerLog>> ListPeerLogs() const;

  // ---- trust-list versions (Transition.trust_list)
  // Those of versions `from_version` and later, oldest first (in version,
  // then sequence, order), at most `max` of them.
  absl::StatusOr<std::vector<v1::TrustListRecord>> ListTrustLists(uint64_t from_version,
                                                                  size_t max) const;
  // The one put in force last (the highest sequence), or nullopt if none
  // is stored.
  absl::StatusOr<std::optional<v1::TrustListRecord>> LatestTrustList() const;

  // An officer's account; nullopt if there is none of that name.
  absl::StatusOr<std::optional<v1::Officer>> GetOfficer(const std::string& name) const;
  // Every officer's account, by name.
  absl::StatusOr<std::vector<v1::Officer>> ListOfficers() const;

  // Synced batches written by Append, AppendAll and RescheduleOutbox since
  // Open. Fewer than the calls when group commit merged concurrent ones.
  uint64_t batches_written() const;

  // OK while the ledger accepts writes; the reason it refuses them
  // otherwise (see Append). The node reports NOT_SERVING while this fails.
  absl::Status WriteStatus() const;

  // Approximate size: SST files on disk plus the memtables not yet flushed.
  uint64_t ApproximateSizeBytes() const;

  // Writes a consistent copy of the whole ledger (log, records, outbox,
  // dedup, head) into `backup_dir`, which must not exist, while the ledger
  // stays open for writes (a RocksDB checkpoint: hard links where the file
  // system allows, else copies). Returns the head the copy ends at
  // (ALREADY_EXISTS if `backup_dir` exists). Which paths are acceptable
  // (absolute, bounded, outside the data folder) is the caller's check:
  // NodeServer::Backup.
  absl::StatusOr<Head> Checkpoint(const std::string& backup_dir) const;

  // Copies a Checkpoint in `backup_dir` into `dir`, which must not exist or
  // be an empty folder (FAILED_PRECONDITION otherwise, touching nothing),
  // then opens and verifies it. If the copy, the open or the verification
  // fails (DATA_LOSS for a damaged backup), it removes everything it wrote:
  // `dir` itself if it created it, else what it put in `dir`, so `dir` is
  // as before and a retry can use it.
  static absl::StatusOr<VerifyResult> Restore(const std::string& backup_dir,
                                              const std::string& dir);

  // For tests and tools: raw access to overwrite or delete a log record, to
  // show that Verify catches tampering. Not used by the node.
  absl::Status UnsafePutRawLogRecordForTest(uint64_t sequence, const std::string& value);
  absl::Status UnsafeDeleteLogRecordForTest(uint64_t sequence);
  // Overwrites one Merkle node.
  absl::Status UnsafePutMerkleNodeForTest(int level, uint64_t index, const std::string& hash);
  // Makes the ledger look as written before the Merkle tree: no nodes, the
  // head without a root. Takes effect when the ledger is next opened.
  absl::Status UnsafeForgetTreeForTest();

 private:
  class Impl;
  explicit Ledger(std::unique_ptr<Impl> impl);
  absl::StatusOr<std::vector<v1::OutboxItem>> ScanDue(const std::string& prefix, absl::Time now,
                                                      size_t limit) const;
  absl::StatusOr<std::optional<absl::Time>> FirstDue(const std::string& prefix) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kpx::storage

#endif  // KPX_STORAGE_LEDGER_H_
