// Opening the ledger and everything that only reads. The write path is in
// commit.cc, the chain check in verify.cc.
#include "storage/ledger.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "storage/keys.h"
#include "storage/ledger_impl.h"

namespace kpx::storage {

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

Ledger::Impl::~Impl() {
  if (!db) return;
  for (rocksdb::ColumnFamilyHandle* cf : {log_cf, certs_cf, outbox_cf, seen_cf, meta_cf, merkle_cf,
                                          peers_cf, trust_cf, officers_cf, default_cf}) {
    // Only fails for a null handle, and those are skipped.
    if (cf != nullptr) (void)db->DestroyColumnFamilyHandle(cf);
  }
  // Every write was synced already; a failing close loses nothing.
  (void)db->Close();
}

absl::StatusOr<Head> Ledger::Impl::ReadStoredHead(const rocksdb::ReadOptions& ro) const {
  std::string value;
  rocksdb::Status s = db->Get(ro, meta_cf, keys::kHeadKey, &value);
  if (s.IsNotFound()) return keys::EmptyHead();
  if (!s.ok()) return FromRocks(s, "reading the head");
  std::optional<Head> head = keys::DecodeHead(value);
  if (!head) return absl::DataLossError("the stored head is malformed");
  return *std::move(head);
}

namespace {

// What is wrong with the log's last record compared with the stored head;
// empty if they agree.
absl::StatusOr<std::string> CheckLogEnd(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* log_cf,
                                        const Head& stored) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), log_cf));
  it->SeekToLast();
  if (!it->status().ok()) return FromRocks(it->status(), "reading the log");
  Head last = keys::EmptyHead();
  if (it->Valid()) {
    const std::optional<uint64_t> sequence = keys::ParseSequenceKey(it->key().ToStringView());
    v1::LogRecord record;
    if (!sequence ||
        !record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return std::string("the last log record is unreadable");
    }
    last.sequence = *sequence;
    last.hash = record.hash();
  }
  if (last.sequence != stored.sequence) {
    return absl::StrCat("log ends at ", last.sequence, " but head says ", stored.sequence);
  }
  if (last.hash != stored.hash) {
    return absl::StrCat("entry ", last.sequence, " has a different hash than the head");
  }
  return std::string();
}

absl::StatusOr<uint64_t> CountOutboxItems(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* outbox_cf) {
  rocksdb::ReadOptions ro;
  const std::string upper(1, keys::kOutboxItemPrefix + 1);
  const rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, outbox_cf));
  uint64_t n = 0;
  for (it->Seek(std::string(1, keys::kOutboxItemPrefix)); it->Valid(); it->Next()) {
    ++n;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "counting the outbox");
  return n;
}

}  // namespace

absl::Status Ledger::Impl::Load() {
  absl::StatusOr<Head> stored = ReadStoredHead(rocksdb::ReadOptions());
  if (!stored.ok()) return stored.status();
  // The head and the last log record are written in one batch, so they
  // disagree only if the store was changed behind this class's back. Keep
  // the stored head, but append nothing until someone has looked: appending
  // would overwrite, or leave a gap next to, the evidence.
  absl::StatusOr<std::string> problem = CheckLogEnd(db.get(), log_cf, *stored);
  if (!problem.ok()) return problem.status();
  absl::StatusOr<uint64_t> outbox_items = CountOutboxItems(db.get(), outbox_cf);
  if (!outbox_items.ok()) return outbox_items.status();
  if (problem->empty() && stored->root.empty()) {  // written before the Merkle tree
    if (absl::Status built = BuildTree(*stored); !built.ok()) return built;
    stored = ReadStoredHead(rocksdb::ReadOptions());
    if (!stored.ok()) return stored.status();
  }
  merkle::Frontier edge;
  if (problem->empty()) {
    absl::StatusOr<merkle::Frontier> loaded = merkle::Frontier::Load(
        DbNodeStore(db.get(), merkle_cf, rocksdb::ReadOptions()), stored->sequence);
    if (!loaded.ok()) {
      problem = std::string(loaded.status().message());
    } else if (loaded->Root() != stored->root) {
      problem = "the Merkle tree's nodes disagree with the head's root";
    } else {
      edge = *std::move(loaded);
    }
  }

  absl::MutexLock lock(&mu);
  head = *std::move(stored);
  frontier = std::move(edge);
  outbox_count = *outbox_items;
  if (!problem->empty()) {
    writes_refused =
        absl::DataLossError(absl::StrCat("ledger refuses writes: ", *problem, "; run Verify"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const std::string& dir) {
  return Open(dir, LedgerOptions());
}

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const std::string& dir,
                                                     const LedgerOptions& options) {
  auto impl = std::make_unique<Impl>();
  if (options.file_system != nullptr) impl->env = rocksdb::NewCompositeEnv(options.file_system);
  rocksdb::DBOptions db_options;
  if (impl->env != nullptr) db_options.env = impl->env.get();
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  // A node runs for years; keep file handles bounded (tables past this are
  // reopened on demand).
  db_options.max_open_files = 512;
  // All memtables together stay under 32 MiB: an idle node should not hold
  // everything written since the last flush (the default is 64 MiB per
  // column family with no overall cap).
  db_options.db_write_buffer_size = size_t{32} << 20;

  rocksdb::BlockBasedTableOptions table;
  // Modest and shared by all column families: reads are mostly recent
  // certificates and the outbox. Verify bypasses it.
  table.block_cache = rocksdb::NewLRUCache(size_t{16} << 20);
  // Point lookups (certs, seen, outbox items) mostly hit or miss one key.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_options.write_buffer_size = size_t{8} << 20;

  // RocksDB insists on the default family; the ledger does not use it.
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const std::string& name :
       {rocksdb::kDefaultColumnFamilyName, std::string("log"), std::string("certs"),
        std::string("outbox"), std::string("seen"), std::string("meta"), std::string("merkle"),
        std::string("peers"), std::string("trust"), std::string("officers")}) {
    families.emplace_back(name, cf_options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, families, &handles, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("opening ledger in ", dir));

  impl->db.reset(raw);
  impl->default_cf = handles[0];
  impl->log_cf = handles[1];
  impl->certs_cf = handles[2];
  impl->outbox_cf = handles[3];
  impl->seen_cf = handles[4];
  impl->meta_cf = handles[5];
  impl->merkle_cf = handles[6];
  impl->peers_cf = handles[7];
  impl->trust_cf = handles[8];
  impl->officers_cf = handles[9];
  if (absl::Status loaded = impl->Load(); !loaded.ok()) return loaded;
  return std::unique_ptr<Ledger>(new Ledger(std::move(impl)));
}

Ledger::Ledger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Ledger::~Ledger() = default;

Head Ledger::head() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->head;
}

Head Ledger::WaitForSequence(uint64_t sequence, absl::Time deadline) const {
  absl::MutexLock lock(&impl_->mu);
  while (impl_->head.sequence < sequence) {
    // True on timeout; the head is returned as it is then.
    if (impl_->head_changed.WaitWithDeadline(&impl_->mu, deadline)) break;
  }
  return impl_->head;
}

uint64_t Ledger::OutboxSize() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->outbox_count;
}

absl::StatusOr<std::optional<v1::CertificateRecord>> Ledger::GetCertificate(
    const std::string& number) const {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->certs_cf, number, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "reading certificate record");
  v1::CertificateRecord record;
  if (!record.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("certificate record ", number, " is unreadable"));
  }
  return record;
}

absl::StatusOr<std::vector<v1::CertificateRecord>> Ledger::ListCertificates(
    const std::string& after_number, size_t limit,
    const std::function<bool(const v1::CertificateRecord&)>& keep) const {
  std::vector<v1::CertificateRecord> kept;
  if (limit == 0) return kept;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->certs_cf));
  it->Seek(after_number);
  if (!after_number.empty() && it->Valid() && it->key() == rocksdb::Slice(after_number)) {
    it->Next();
  }
  for (; it->Valid() && kept.size() < limit; it->Next()) {
    v1::CertificateRecord record;
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(
          absl::StrCat("certificate record ", it->key().ToString(), " is unreadable"));
    }
    if (!keep || keep(record)) kept.push_back(std::move(record));
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), "listing certificates");
  }
  return kept;
}

absl::StatusOr<std::optional<std::string>> Ledger::GetSeen(const std::string& message_id) const {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->seen_cf, message_id, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "reading seen message");
  return value;
}

namespace {

// The smallest key after every key that starts with `prefix`.
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

}  // namespace

// Items of the due index under `prefix` (keys prefix + due + id) due at or
// before `now`, earliest first, at most `limit`.
absl::StatusOr<std::vector<v1::OutboxItem>> Ledger::ScanDue(const std::string& prefix,
                                                            absl::Time now, size_t limit) const {
  std::vector<v1::OutboxItem> due;
  const int64_t now_micros = absl::ToUnixMicros(now);
  if (limit == 0 || now_micros < 0) return due;

  // Index and items read at one point in time, so a concurrent commit
  // cannot make them look inconsistent.
  rocksdb::ManagedSnapshot snapshot(impl_->db.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  rocksdb::ReadOptions scan = ro;
  const std::string upper = PrefixEnd(prefix);
  const rocksdb::Slice upper_slice(upper);
  scan.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(scan, impl_->outbox_cf));
  for (it->Seek(prefix); it->Valid() && due.size() < limit; it->Next()) {
    std::optional<keys::DueKey> key =
        keys::ParseDueKeyAfter(it->key().ToStringView(), prefix.size());
    if (!key) return absl::DataLossError("malformed outbox due key");
    if (key->due_micros > static_cast<uint64_t>(now_micros)) break;
    std::string value;
    rocksdb::Status s =
        impl_->db->Get(ro, impl_->outbox_cf, keys::OutboxItemKey(key->message_id), &value);
    if (!s.ok()) {
      return FromRocks(s, absl::StrCat("reading outbox item ", std::string(key->message_id),
                                       " named by the index"));
    }
    v1::OutboxItem item;
    if (!item.ParseFromString(value) || item.held() || keys::DueMicros(item) != key->due_micros) {
      return absl::DataLossError(absl::StrCat("outbox item ", std::string(key->message_id),
                                              " disagrees with its due index"));
    }
    due.push_back(std::move(item));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the outbox");
  return due;
}

// The earliest due time under `prefix`, or nullopt if none.
absl::StatusOr<std::optional<absl::Time>> Ledger::FirstDue(const std::string& prefix) const {
  rocksdb::ReadOptions scan;
  const std::string upper = PrefixEnd(prefix);
  const rocksdb::Slice upper_slice(upper);
  scan.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(scan, impl_->outbox_cf));
  it->Seek(prefix);
  if (!it->status().ok()) return FromRocks(it->status(), "reading the outbox");
  if (!it->Valid()) return std::nullopt;
  std::optional<keys::DueKey> key = keys::ParseDueKeyAfter(it->key().ToStringView(), prefix.size());
  if (!key) return absl::DataLossError("malformed outbox due key");
  return absl::FromUnixMicros(static_cast<int64_t>(key->due_micros));
}

absl::StatusOr<std::vector<v1::OutboxItem>> Ledger::DueOutbox(absl::Time now, size_t limit) const {
  return ScanDue(std::string(1, keys::kOutboxDuePrefix), now, limit);
}

absl::StatusOr<std::optional<absl::Time>> Ledger::NextDue() const {
  return FirstDue(std::string(1, keys::kOutboxDuePrefix));
}

absl::StatusOr<std::vector<v1::OutboxItem>> Ledger::DueOutboxFor(const std::string& recipient,
                                                                 absl::Time now,
                                                                 size_t limit) const {
  return ScanDue(keys::RecipientDuePrefix(recipient), now, limit);
}

absl::StatusOr<std::optional<absl::Time>> Ledger::NextDueFor(const std::string& recipient) const {
  return FirstDue(keys::RecipientDuePrefix(recipient));
}

absl::StatusOr<std::vector<std::string>> Ledger::OutboxRecipients() const {
  std::vector<std::string> recipients;
  rocksdb::ReadOptions scan;
  const std::string lower(1, keys::kOutboxRecipientDuePrefix);
  const std::string upper = PrefixEnd(lower);
  const rocksdb::Slice upper_slice(upper);
  scan.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(scan, impl_->outbox_cf));
  // One seek per recipient: jump past each recipient's keys.
  for (it->Seek(lower); it->Valid();
       it->Seek(PrefixEnd(keys::RecipientDuePrefix(recipients.back())))) {
    std::optional<std::string_view> r = keys::ParseRecipientOfDueKey(it->key().ToStringView());
    if (!r) return absl::DataLossError("malformed outbox recipient key");
    recipients.emplace_back(*r);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the outbox");
  return recipients;
}

absl::StatusOr<std::optional<v1::OutboxItem>> Ledger::GetOutboxItem(
    const std::string& message_id) const {
  std::string value;
  rocksdb::Status s = impl_->db->Get(rocksdb::ReadOptions(), impl_->outbox_cf,
                                     keys::OutboxItemKey(message_id), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return FromRocks(s, "reading outbox item");
  v1::OutboxItem item;
  if (!item.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("outbox item ", message_id, " is unreadable"));
  }
  return item;
}

absl::StatusOr<std::vector<v1::LedgerEntry>> Ledger::ReadEntries(uint64_t from,
                                                                 size_t limit) const {
  std::vector<v1::LedgerEntry> entries;
  // Only committed entries: those at or below the published head.
  const uint64_t last_committed = head().sequence;
  const uint64_t first = std::max<uint64_t>(from, 1);
  if (limit == 0 || first > last_committed) return entries;
  const uint64_t last_wanted = limit - 1 > std::numeric_limits<uint64_t>::max() - from
                                   ? std::numeric_limits<uint64_t>::max()
                                   : from + (limit - 1);
  const uint64_t last = std::min(last_wanted, last_committed);
  if (first > last) return entries;
  entries.reserve(std::min<uint64_t>(last - first + 1, 1024));

  rocksdb::ReadOptions ro;
  const std::string upper = keys::SequenceKey(last + 1);
  const rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->log_cf));
  uint64_t expected = first;
  v1::LogRecord record;
  for (it->Seek(keys::SequenceKey(first)); it->Valid(); it->Next()) {
    std::optional<uint64_t> sequence = keys::ParseSequenceKey(it->key().ToStringView());
    if (sequence != expected) {
      return absl::DataLossError(absl::StrCat("ledger entry ", expected, " is missing"));
    }
    v1::LedgerEntry& entry = entries.emplace_back();
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
        !entry.ParseFromString(record.entry())) {
      return absl::DataLossError(absl::StrCat("ledger entry ", expected, " is unreadable"));
    }
    if (entry.sequence() != expected) {
      return absl::DataLossError(
          absl::StrCat("ledger entry ", expected, " names sequence ", entry.sequence()));
    }
    ++expected;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the log");
  if (expected != last + 1) {
    return absl::DataLossError(absl::StrCat("ledger entry ", expected, " is missing"));
  }
  return entries;
}

VerifyResult Ledger::Verify() const { return impl_->Verify(); }

absl::Status Ledger::UnsafePutRawLogRecordForTest(uint64_t sequence, const std::string& value) {
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocks(impl_->db->Put(options, impl_->log_cf, keys::SequenceKey(sequence), value),
                   "writing raw log record");
}

absl::Status Ledger::UnsafeDeleteLogRecordForTest(uint64_t sequence) {
  rocksdb::WriteOptions options;
  options.sync = true;
  return FromRocks(impl_->db->Delete(options, impl_->log_cf, keys::SequenceKey(sequence)),
                   "deleting raw log record");
}

absl::StatusOr<std::vector<v1::OutboxItem>> Ledger::ListOutbox(const std::string& after_message_id,
                                                               size_t limit) const {
  std::vector<v1::OutboxItem> items;
  if (limit == 0) return items;
  rocksdb::ReadOptions scan;
  const std::string upper(1, keys::kOutboxItemPrefix + 1);
  const rocksdb::Slice upper_slice(upper);
  scan.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(scan, impl_->outbox_cf));
  const std::string start = keys::OutboxItemKey(after_message_id);
  it->Seek(start);
  if (!after_message_id.empty() && it->Valid() && it->key() == rocksdb::Slice(start)) it->Next();
  for (; it->Valid() && items.size() < limit; it->Next()) {
    v1::OutboxItem& item = items.emplace_back();
    if (!item.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError(
          absl::StrCat("outbox item ", it->key().ToString().substr(1), " is unreadable"));
    }
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing the outbox");
  return items;
}

}  // namespace kpx::storage
