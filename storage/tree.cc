// The ledger's Merkle tree beyond the write path: proofs, the build for
// ledgers written before the tree, tree heads, and what peers showed.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/write_batch.h"
#include "storage/keys.h"
#include "storage/ledger_impl.h"
#include "storage/log_leaf.h"
#include "storage/merkle.h"

namespace kpx::storage {

absl::StatusOr<std::string> DbNodeStore::Get(int level, uint64_t index) const {
  std::string value;
  rocksdb::Status s = db_->Get(ro_, cf_, merkle::NodeKey(level, index), &value);
  if (s.IsNotFound()) return absl::NotFoundError("no such merkle node");
  if (!s.ok()) return FromRocks(s, "reading a merkle node");
  return value;
}

absl::StatusOr<v1::TreeHead> TreeHeadOf(const v1::SignedMessage& signed_head) {
  v1::MessageBody body;
  if (!body.ParseFromString(signed_head.body()) || !body.has_tree_head()) {
    return absl::InvalidArgumentError("not a signed tree head");
  }
  return body.tree_head();
}

absl::Status Ledger::Impl::BuildTree(const Head& stored) {
  constexpr size_t kNodesPerBatch = 1 << 16;
  merkle::Frontier edge;
  rocksdb::WriteBatch batch;
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.readahead_size = size_t{8} << 20;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, log_cf));
  v1::LogRecord record;
  v1::LedgerEntry entry;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
        !entry.ParseFromString(record.entry()) || entry.sequence() != edge.size() + 1) {
      return absl::DataLossError(absl::StrCat("building the Merkle tree: entry ", edge.size() + 1,
                                              " is unreadable or out of place; run Verify"));
    }
    const std::string leaf = EncodeLogLeaf(LeafOf(entry, record.entry()));
    for (const merkle::NodeWrite& w : edge.Add(merkle::LeafHash(leaf))) {
      rocksdb::Status s = batch.Put(merkle_cf, merkle::NodeKey(w.level, w.index), w.hash);
      if (!s.ok()) return FromRocks(s, "staging a merkle node");
    }
    if (batch.Count() >= kNodesPerBatch) {
      rocksdb::Status s = db->Write(rocksdb::WriteOptions(), &batch);
      if (!s.ok()) return FromRocks(s, "writing merkle nodes");
      batch.Clear();
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the log");
  if (edge.size() != stored.sequence) {
    return absl::DataLossError("building the Merkle tree: the log does not end at the head");
  }
  Head head = stored;
  head.root = edge.Root();
  rocksdb::Status s = batch.Put(meta_cf, keys::kHeadKey, keys::EncodeHead(head));
  if (!s.ok()) return FromRocks(s, "staging the head");
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return FromRocks(db->Write(sync, &batch), "writing the Merkle tree");
}

absl::StatusOr<std::string> Ledger::RawEntry(uint64_t sequence) const {
  if (sequence == 0 || sequence > head().sequence) {
    return absl::NotFoundError(absl::StrCat("no ledger entry ", sequence));
  }
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions(), impl_->log_cf, keys::SequenceKey(sequence), &value);
  if (!s.ok()) return FromRocks(s, absl::StrCat("reading ledger entry ", sequence));
  v1::LogRecord record;
  if (!record.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("ledger entry ", sequence, " is unreadable"));
  }
  return std::move(*record.mutable_entry());
}

absl::StatusOr<std::string> Ledger::Leaf(uint64_t sequence) const {
  absl::StatusOr<std::string> bytes = RawEntry(sequence);
  if (!bytes.ok()) return bytes.status();
  v1::LedgerEntry entry;
  if (!entry.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("ledger entry ", sequence, " is unreadable"));
  }
  return EncodeLogLeaf(LeafOf(entry, *bytes));
}

namespace {

absl::Status CheckSize(uint64_t tree_size, uint64_t head) {
  if (tree_size <= head) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("the ledger has ", head, " entries, not ", tree_size));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> Ledger::InclusionProof(uint64_t sequence,
                                                                uint64_t tree_size) const {
  if (absl::Status s = CheckSize(tree_size, head().sequence); !s.ok()) return s;
  if (sequence == 0) return absl::InvalidArgumentError("sequences start at 1");
  return merkle::InclusionProof(
      DbNodeStore(impl_->db.get(), impl_->merkle_cf, rocksdb::ReadOptions()), sequence - 1,
      tree_size);
}

absl::StatusOr<std::vector<std::string>> Ledger::ConsistencyProof(uint64_t old_size,
                                                                  uint64_t new_size) const {
  if (absl::Status s = CheckSize(new_size, head().sequence); !s.ok()) return s;
  return merkle::ConsistencyProof(
      DbNodeStore(impl_->db.get(), impl_->merkle_cf, rocksdb::ReadOptions()), old_size, new_size);
}

absl::StatusOr<std::string> Ledger::RootAt(uint64_t tree_size) const {
  if (absl::Status s = CheckSize(tree_size, head().sequence); !s.ok()) return s;
  return merkle::Root(DbNodeStore(impl_->db.get(), impl_->merkle_cf, rocksdb::ReadOptions()),
                      tree_size);
}

absl::Status Ledger::KeepTreeHead(const v1::SignedMessage& tree_head, uint64_t tree_size) {
  absl::MutexLock lock(&impl_->tree_head_mu);
  absl::StatusOr<std::optional<v1::SignedMessage>> kept = KeptTreeHead();
  if (!kept.ok()) return kept.status();
  if (kept->has_value()) {
    absl::StatusOr<v1::TreeHead> old = TreeHeadOf(**kept);
    if (old.ok() && old->tree_size() >= tree_size) return absl::OkStatus();
  }
  std::string value;
  if (!tree_head.SerializeToString(&value)) return absl::InternalError("cannot serialize");
  return FromRocks(
      impl_->db->Put(rocksdb::WriteOptions(), impl_->meta_cf, keys::kTreeHeadKey, value),
      "keeping the tree head");
}

absl::StatusOr<std::optional<v1::SignedMessage>> Ledger::KeptTreeHead() const {
  return impl_->ReadKeptTreeHead(rocksdb::ReadOptions());
}

absl::StatusOr<std::optional<v1::SignedMessage>> Ledger::Impl::ReadKeptTreeHead(
    const rocksdb::ReadOptions& ro) const {
  std::string value;
  rocksdb::Status s = db->Get(ro, meta_cf, keys::kTreeHeadKey, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "reading the tree head");
  v1::SignedMessage head;
  if (!head.ParseFromString(value)) return absl::DataLossError("the kept tree head is unreadable");
  return head;
}

absl::StatusOr<std::optional<v1::PeerLog>> Ledger::GetPeerLog(
    const std::string& participant) const {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->peers_cf, participant, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "reading a peer log");
  v1::PeerLog log;
  if (!log.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("peer log of ", participant, " is unreadable"));
  }
  return log;
}

absl::StatusOr<std::vector<v1::PeerLog>> Ledger::ListPeerLogs() const {
  std::vector<v1::PeerLog> logs;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->peers_cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!logs.emplace_back().ParseFromArray(it->value().data(),
                                            static_cast<int>(it->value().size()))) {
      return absl::DataLossError("a peer log is unreadable");
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing peer logs");
  return logs;
}

absl::StatusOr<std::vector<v1::TrustListRecord>> Ledger::ListTrustLists(uint64_t from_version,
                                                                        size_t max) const {
  std::vector<v1::TrustListRecord> records;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->trust_cf));
  for (it->Seek(keys::TrustListKey(from_version, 0)); it->Valid() && records.size() < max;
       it->Next()) {
    if (!records.emplace_back().ParseFromArray(it->value().data(),
                                               static_cast<int>(it->value().size()))) {
      return absl::DataLossError("a trust-list record is unreadable");
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing trust-list versions");
  return records;
}

absl::StatusOr<std::optional<v1::TrustListRecord>> Ledger::LatestTrustList() const {
  // By sequence, not version: an operator managing the list by hand may
  // have gone back to an older version. The family holds a few records.
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->trust_cf));
  std::optional<uint64_t> newest;
  std::string value;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 16) return absl::DataLossError("a trust-list key is malformed");
    const uint64_t sequence = keys::ReadBigEndian(it->key().ToStringView().substr(8));
    if (!newest || sequence > *newest) {
      newest = sequence;
      value = it->value().ToString();
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the trust list in force");
  if (!newest) return std::nullopt;
  v1::TrustListRecord record;
  if (!record.ParseFromString(value)) {
    return absl::DataLossError("the trust-list record in force is unreadable");
  }
  return record;
}

absl::Status Ledger::UnsafePutMerkleNodeForTest(int level, uint64_t index,
                                                const std::string& hash) {
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return FromRocks(impl_->db->Put(sync, impl_->merkle_cf, merkle::NodeKey(level, index), hash),
                   "writing a merkle node");
}

absl::Status Ledger::UnsafeForgetTreeForTest() {
  rocksdb::WriteBatch batch;
  rocksdb::Status s =
      batch.DeleteRange(impl_->merkle_cf, std::string(1, '\0'), std::string(1, '\x7f'));
  Head legacy = head();
  legacy.root.clear();
  if (s.ok()) s = batch.Put(impl_->meta_cf, keys::kHeadKey, keys::EncodeHead(legacy));
  if (!s.ok()) return FromRocks(s, "staging");
  rocksdb::WriteOptions sync;
  sync.sync = true;
  return FromRocks(impl_->db->Write(sync, &batch), "forgetting the tree");
}

absl::StatusOr<std::optional<v1::Officer>> Ledger::GetOfficer(const std::string& name) const {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->officers_cf, name, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "reading an officer");
  v1::Officer officer;
  if (!officer.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("officer ", name, " is unreadable"));
  }
  return officer;
}

absl::StatusOr<std::vector<v1::Officer>> Ledger::ListOfficers() const {
  std::vector<v1::Officer> officers;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->officers_cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!officers.emplace_back().ParseFromArray(it->value().data(),
                                                static_cast<int>(it->value().size()))) {
      return absl::DataLossError("an officer record is unreadable");
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing officers");
  return officers;
}

}  // namespace kpx::storage
