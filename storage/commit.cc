// The write path: group commit in the style of LevelDB's writer queue.
//
// Every Append, AppendAll and RescheduleOutbox queues a Writer. The writer
// at the front leads: it stages itself and the writers queued behind it (up
// to a bound) into one WriteBatch, writes it with one fsync, then publishes
// the new head and wakes the others with their own results. Because this is
// the only path that writes the ledger (the Unsafe*ForTest tools aside, and
// they touch only the log), the leader may read the current outbox from the
// DB without further locking.
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "rocksdb/write_batch.h"
#include "storage/keys.h"
#include "storage/ledger_impl.h"
#include "storage/log_leaf.h"
#include "storage/merkle.h"

namespace kpx::storage {
namespace {

// Bounds one group so that a burst does not make the leader's own caller
// wait for an arbitrarily large batch.
constexpr size_t kMaxGroupWriters = 512;
constexpr size_t kMaxGroupBytes = size_t{4} << 20;

// An outbox item as currently stored; nullopt if not in the outbox.
using OutboxState = std::optional<v1::OutboxItem>;

size_t ApproxBytes(const Transition& t) {
  size_t n = t.entry.ByteSizeLong() + t.seen_message_id.size() + t.seen_value.size();
  if (t.record) n += t.record->ByteSizeLong();
  for (const v1::CertificateRecord& r : t.linked_records) n += r.ByteSizeLong();
  for (const v1::OutboxItem& item : t.outbox_put) n += item.ByteSizeLong();
  for (const std::string& id : t.outbox_delete) n += id.size();
  for (const v1::PeerLog& p : t.peer_logs) n += p.ByteSizeLong();
  if (t.trust_list) n += t.trust_list->ByteSizeLong();
  return n;
}

// Checks the parts of `t` that Append relies on, after on_sequenced ran.
absl::Status Validate(const Transition& t) {
  const std::string& number = t.entry.certificate_number();
  if (t.record) {
    if (number.empty()) {
      return absl::InvalidArgumentError("a certificate record needs entry.certificate_number");
    }
    const std::string& record_number = t.record->certificate().number();
    if (!record_number.empty() && record_number != number) {
      return absl::InvalidArgumentError(absl::StrCat("record is for certificate ", record_number,
                                                     " but the entry is for ", number));
    }
  }
  for (const v1::CertificateRecord& r : t.linked_records) {
    if (r.certificate().number().empty() || r.certificate().number() == number) {
      return absl::InvalidArgumentError("a linked record needs its own certificate number");
    }
  }
  for (const v1::OutboxItem& item : t.outbox_put) {
    if (item.message_id().empty()) {
      return absl::InvalidArgumentError("outbox item without message_id");
    }
  }
  for (const std::string& id : t.outbox_delete) {
    if (id.empty()) return absl::InvalidArgumentError("empty outbox_delete id");
  }
  if (t.seen_message_id.empty() && !t.seen_value.empty()) {
    return absl::InvalidArgumentError("seen_value without seen_message_id");
  }
  for (const v1::PeerLog& p : t.peer_logs) {
    if (p.participant().empty()) return absl::InvalidArgumentError("peer log without participant");
  }
  return absl::OkStatus();
}

}  // namespace

// Builds one group's WriteBatch. Each writer is staged whole or not at all:
// a failing writer is rolled back and does not take a sequence, so the
// chain stays gapless and the Merkle tree's edge is as before it.
class Ledger::Impl::GroupBuilder {
 public:
  GroupBuilder(const Ledger::Impl& impl, Head head, merkle::Frontier frontier)
      : impl_(impl), head_(std::move(head)), frontier_(std::move(frontier)) {}

  // Stages `w` and fills w.heads. On error nothing of `w` remains in the
  // batch.
  absl::Status Add(Writer& w);
  // Records the new head in the batch; call once, after the last Add.
  absl::Status Finish();

  bool empty() const { return batch_.Count() == 0; }
  rocksdb::WriteBatch* batch() { return &batch_; }
  const Head& head() const { return head_; }
  const merkle::Frontier& frontier() const { return frontier_; }
  int64_t outbox_delta() const { return outbox_delta_; }

 private:
  absl::Status StageTransition(Transition& t);
  // Adds the leaf of `entry` (stored as `entry_bytes`) to the tree: its
  // nodes into the batch; fills in after.leaf and after.root.
  absl::Status StageLeaf(const v1::LedgerEntry& entry, const std::string& entry_bytes, Head& after);
  absl::Status StageReschedule(const v1::OutboxItem& update);
  absl::Status DeleteOutbox(const std::string& id);
  absl::Status PutOutbox(const v1::OutboxItem& item);
  // Removes `item`'s two due-index keys (none for a held item).
  absl::Status DeleteDueKeys(const v1::OutboxItem& item);
  // The item as the batch so far would leave it: this writer's changes,
  // then earlier writers' in this group, then the DB.
  absl::StatusOr<OutboxState> CurrentOutbox(const std::string& id) const;

  absl::Status Put(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                   const std::string& value);
  absl::Status PutProto(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
                        const google::protobuf::MessageLite& message);
  absl::Status Delete(rocksdb::ColumnFamilyHandle* cf, const std::string& key);

  const Ledger::Impl& impl_;
  rocksdb::WriteBatch batch_;
  Head head_;
  merkle::Frontier frontier_;
  size_t entries_ = 0;
  std::map<std::string, OutboxState> group_outbox_;
  int64_t outbox_delta_ = 0;
  // The writer being staged; merged into the two above only if it succeeds.
  std::map<std::string, OutboxState> writer_outbox_;
  int64_t writer_outbox_delta_ = 0;
};

absl::Status Ledger::Impl::GroupBuilder::Add(Writer& w) {
  writer_outbox_.clear();
  writer_outbox_delta_ = 0;
  const Head head_before = head_;
  const merkle::Frontier frontier_before = frontier_;
  const size_t entries_before = entries_;
  batch_.SetSavePoint();
  absl::Status s;
  if (!w.reschedules.empty()) {
    for (const v1::OutboxItem& item : w.reschedules) {
      s = StageReschedule(item);
      if (w.skip_missing && s.code() == absl::StatusCode::kNotFound) s = absl::OkStatus();
      if (!s.ok()) break;
    }
  } else {
    w.heads.reserve(w.transitions.size());
    for (Transition& t : w.transitions) {
      s = StageTransition(t);
      if (!s.ok()) break;
      w.heads.push_back(head_);
    }
  }
  if (!s.ok()) {
    // Cannot fail: the save point was set just above.
    (void)batch_.RollbackToSavePoint();
    head_ = head_before;
    frontier_ = frontier_before;
    entries_ = entries_before;
    w.heads.clear();
    return s;
  }
  (void)batch_.PopSavePoint();
  for (auto& [id, state] : writer_outbox_) {
    group_outbox_.insert_or_assign(id, std::move(state));
  }
  outbox_delta_ += writer_outbox_delta_;
  return absl::OkStatus();
}

absl::Status Ledger::Impl::GroupBuilder::Finish() {
  if (entries_ == 0) return absl::OkStatus();
  return Put(impl_.meta_cf, keys::kHeadKey, keys::EncodeHead(head_));
}

absl::Status Ledger::Impl::GroupBuilder::StageTransition(Transition& t) {
  const uint64_t sequence = head_.sequence + 1;
  t.entry.set_sequence(sequence);
  std::string entry_bytes;
  if (!t.entry.SerializeToString(&entry_bytes)) {
    return absl::InternalError("cannot serialize ledger entry");
  }
  Head after;
  after.sequence = sequence;
  after.hash = crypto::Sha256(head_.hash + entry_bytes);
  if (absl::Status s = StageLeaf(t.entry, entry_bytes, after); !s.ok()) return s;

  if (t.on_sequenced) {
    if (absl::Status s = t.on_sequenced(after, t); !s.ok()) return s;
    // The chain holds entry_bytes. Had the callback changed the entry, what
    // it built from it (the record, a signed receipt) would describe an
    // entry other than the one stored.
    std::string check;
    if (!t.entry.SerializeToString(&check) || check != entry_bytes) {
      return absl::InvalidArgumentError("on_sequenced changed the entry");
    }
  }
  if (absl::Status s = Validate(t); !s.ok()) return s;

  v1::LogRecord log_record;
  log_record.set_entry(std::move(entry_bytes));
  log_record.set_hash(after.hash);
  absl::Status s = PutProto(impl_.log_cf, keys::SequenceKey(sequence), log_record);
  if (s.ok() && t.record) {
    s = PutProto(impl_.certs_cf, t.entry.certificate_number(), *t.record);
  }
  for (size_t i = 0; s.ok() && i < t.linked_records.size(); ++i) {
    s = PutProto(impl_.certs_cf, t.linked_records[i].certificate().number(), t.linked_records[i]);
  }
  // Deletes before puts, so that a transition may replace an item.
  for (size_t i = 0; s.ok() && i < t.outbox_delete.size(); ++i) {
    s = DeleteOutbox(t.outbox_delete[i]);
  }
  for (size_t i = 0; s.ok() && i < t.outbox_put.size(); ++i) {
    s = PutOutbox(t.outbox_put[i]);
  }
  if (s.ok() && !t.seen_message_id.empty()) {
    s = Put(impl_.seen_cf, t.seen_message_id, t.seen_value);
  }
  for (size_t i = 0; s.ok() && i < t.peer_logs.size(); ++i) {
    s = PutProto(impl_.peers_cf, t.peer_logs[i].participant(), t.peer_logs[i]);
  }
  if (s.ok() && t.trust_list) {
    v1::TrustListRecord record = *t.trust_list;
    record.set_sequence(sequence);
    s = PutProto(impl_.trust_cf, keys::TrustListKey(record.version(), sequence), record);
  }
  if (s.ok() && t.officer) s = PutProto(impl_.officers_cf, t.officer->name(), *t.officer);
  if (!s.ok()) return s;
  head_ = std::move(after);
  ++entries_;
  return absl::OkStatus();
}

absl::Status Ledger::Impl::GroupBuilder::StageLeaf(const v1::LedgerEntry& entry,
                                                   const std::string& entry_bytes, Head& after) {
  after.leaf = EncodeLogLeaf(LeafOf(entry, entry_bytes));
  for (const merkle::NodeWrite& w : frontier_.Add(merkle::LeafHash(after.leaf))) {
    if (absl::Status s = Put(impl_.merkle_cf, merkle::NodeKey(w.level, w.index), w.hash); !s.ok()) {
      return s;
    }
  }
  after.root = frontier_.Root();
  return absl::OkStatus();
}

absl::Status Ledger::Impl::GroupBuilder::StageReschedule(const v1::OutboxItem& update) {
  if (update.message_id().empty()) {
    return absl::InvalidArgumentError("outbox item without message_id");
  }
  absl::StatusOr<OutboxState> current = CurrentOutbox(update.message_id());
  if (!current.ok()) return current.status();
  if (!current->has_value()) {
    return absl::NotFoundError(
        absl::StrCat("outbox item ", update.message_id(), " is no longer queued"));
  }
  // Only the delivery bookkeeping changes; what is sent, and to whom, stays
  // exactly as queued.
  v1::OutboxItem item = std::move(**current);
  *item.mutable_due_at() = update.due_at();
  item.set_attempts(update.attempts());
  item.set_last_error(update.last_error());
  return PutOutbox(item);
}

absl::Status Ledger::Impl::GroupBuilder::DeleteOutbox(const std::string& id) {
  absl::StatusOr<OutboxState> current = CurrentOutbox(id);
  if (!current.ok()) return current.status();
  // Already gone (delivered earlier, or never queued): nothing to undo.
  if (!current->has_value()) return absl::OkStatus();
  absl::Status s = DeleteDueKeys(**current);
  if (s.ok()) s = Delete(impl_.outbox_cf, keys::OutboxItemKey(id));
  if (!s.ok()) return s;
  writer_outbox_.insert_or_assign(id, std::nullopt);
  --writer_outbox_delta_;
  return absl::OkStatus();
}

absl::Status Ledger::Impl::GroupBuilder::PutOutbox(const v1::OutboxItem& item) {
  absl::StatusOr<OutboxState> current = CurrentOutbox(item.message_id());
  if (!current.ok()) return current.status();
  absl::Status s;
  if (current->has_value()) {
    // Replacing: drop the old due keys, or the item would be due twice.
    s = DeleteDueKeys(**current);
  } else {
    ++writer_outbox_delta_;
  }
  if (s.ok()) {
    s = PutProto(impl_.outbox_cf, keys::OutboxItemKey(item.message_id()), item);
  }
  // A held item (waiting for an earlier message about its certificate) is
  // in no due index: nothing delivers it until it is put again unheld.
  if (s.ok() && !item.held()) s = Put(impl_.outbox_cf, keys::OutboxDueKey(item), "");
  if (s.ok() && !item.held()) s = Put(impl_.outbox_cf, keys::RecipientDueKey(item), "");
  if (!s.ok()) return s;
  writer_outbox_.insert_or_assign(item.message_id(), item);
  return absl::OkStatus();
}

absl::Status Ledger::Impl::GroupBuilder::DeleteDueKeys(const v1::OutboxItem& item) {
  if (item.held()) return absl::OkStatus();
  absl::Status s = Delete(impl_.outbox_cf, keys::OutboxDueKey(item));
  if (s.ok()) s = Delete(impl_.outbox_cf, keys::RecipientDueKey(item));
  return s;
}

absl::StatusOr<OutboxState> Ledger::Impl::GroupBuilder::CurrentOutbox(const std::string& id) const {
  if (auto it = writer_outbox_.find(id); it != writer_outbox_.end()) {
    return it->second;
  }
  if (auto it = group_outbox_.find(id); it != group_outbox_.end()) {
    return it->second;
  }
  std::string value;
  rocksdb::Status s =
      impl_.db->Get(rocksdb::ReadOptions(), impl_.outbox_cf, keys::OutboxItemKey(id), &value);
  if (s.IsNotFound()) return OutboxState();
  if (!s.ok()) return FromRocks(s, "reading outbox item");
  v1::OutboxItem item;
  if (!item.ParseFromString(value)) {
    return absl::DataLossError(absl::StrCat("outbox item ", id, " is unreadable"));
  }
  return OutboxState(std::move(item));
}

absl::Status Ledger::Impl::GroupBuilder::Put(rocksdb::ColumnFamilyHandle* cf,
                                             const std::string& key, const std::string& value) {
  return FromRocks(batch_.Put(cf, key, value), "staging a write");
}

absl::Status Ledger::Impl::GroupBuilder::PutProto(rocksdb::ColumnFamilyHandle* cf,
                                                  const std::string& key,
                                                  const google::protobuf::MessageLite& message) {
  std::string value;
  if (!message.SerializeToString(&value)) {
    return absl::InternalError(absl::StrCat("cannot serialize ", message.GetTypeName()));
  }
  return Put(cf, key, value);
}

absl::Status Ledger::Impl::GroupBuilder::Delete(rocksdb::ColumnFamilyHandle* cf,
                                                const std::string& key) {
  return FromRocks(batch_.Delete(cf, key), "staging a delete");
}

absl::Status Ledger::Impl::Commit(Writer& w) {
  absl::MutexLock lock(&mu);
  writers.push_back(&w);
  while (!w.done && &w != writers.front()) w.cv.Wait(&mu);
  if (w.done) return w.status;

  // `w` leads: it takes itself and whoever queued behind it, within bounds.
  std::vector<Writer*> group;
  size_t group_bytes = 0;
  for (Writer* x : writers) {
    if (!group.empty() &&
        (group.size() == kMaxGroupWriters || group_bytes + x->approx_bytes > kMaxGroupBytes)) {
      break;
    }
    group.push_back(x);
    group_bytes += x->approx_bytes;
  }

  if (!writes_refused.ok()) {
    for (Writer* x : group) x->status = writes_refused;
  } else {
    const Head before = head;
    merkle::Frontier edge = frontier;
    // Stage and sync without the lock, so readers are not blocked and new
    // writers can queue up as the next group. The leader stays at the front
    // of the queue until it is done, so no other thread leads meanwhile.
    mu.Unlock();
    GroupBuilder builder(*this, before, std::move(edge));
    for (Writer* x : group) x->status = builder.Add(*x);
    absl::Status written = builder.Finish();
    if (written.ok() && !builder.empty()) {
      rocksdb::WriteOptions options;
      options.sync = true;
      written = FromRocks(db->Write(options, builder.batch()), "writing ledger batch");
    }
    mu.Lock();
    if (written.ok()) {
      if (!builder.empty()) ++batches_written;
      if (builder.head().sequence != head.sequence) {
        head = builder.head();
        head.leaf.clear();
        frontier = builder.frontier();
        head_changed.SignalAll();
      }
      outbox_count =
          static_cast<uint64_t>(static_cast<int64_t>(outbox_count) + builder.outbox_delta());
    } else {
      // After a failed sync we cannot know what reached the disk; refuse
      // further writes until the ledger is reopened and recovered.
      writes_refused = written;
      for (Writer* x : group) {
        if (x->status.ok()) x->status = written;
      }
    }
  }

  for (size_t i = 0; i < group.size(); ++i) {
    Writer* x = writers.front();
    writers.pop_front();
    x->done = true;
    if (x != &w) x->cv.Signal();
  }
  if (!writers.empty()) writers.front()->cv.Signal();
  return w.status;
}

absl::StatusOr<Head> Ledger::Append(Transition t) {
  Writer w;
  w.transitions = std::span<Transition>(&t, 1);
  w.approx_bytes = ApproxBytes(t);
  if (absl::Status s = impl_->Commit(w); !s.ok()) return s;
  return std::move(w.heads.front());
}

absl::StatusOr<std::vector<Head>> Ledger::AppendAll(std::vector<Transition> transitions) {
  if (transitions.empty()) return std::vector<Head>();
  Writer w;
  w.transitions = transitions;
  for (const Transition& t : transitions) w.approx_bytes += ApproxBytes(t);
  if (absl::Status s = impl_->Commit(w); !s.ok()) return s;
  return std::move(w.heads);
}

absl::Status Ledger::RescheduleOutbox(const v1::OutboxItem& item) {
  Writer w;
  w.reschedules = std::span<const v1::OutboxItem>(&item, 1);
  w.approx_bytes = item.ByteSizeLong();
  return impl_->Commit(w);
}

absl::Status Ledger::RescheduleOutboxAll(std::span<const v1::OutboxItem> items) {
  if (items.empty()) return absl::OkStatus();
  Writer w;
  w.reschedules = items;
  w.skip_missing = true;
  for (const v1::OutboxItem& item : items) w.approx_bytes += item.ByteSizeLong();
  return impl_->Commit(w);
}

uint64_t Ledger::batches_written() const {
  absl::MutexLock lock(&impl_->mu);
  return impl_->batches_written;
}

}  // namespace kpx::storage
