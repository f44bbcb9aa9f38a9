// Ledger::Verify: walks the log from sequence 1 and recomputes the chain.
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

namespace kpx::storage {

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

  // One sequential pass over data read once: keep it out of the block
  // cache and read ahead in large chunks.
  ro.fill_cache = false;
  ro.readahead_size = size_t{8} << 20;
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
  return result;
}

}  // namespace kpx::storage
