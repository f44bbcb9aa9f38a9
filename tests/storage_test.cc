// storage/: the hash-chained RocksDB ledger.
#include <stdlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "kpx/v1/ledger.pb.h"
#include "storage/ledger.h"
#include "storage/log_leaf.h"
#include "storage/merkle.h"
#include "tests/fault_fs.h"

namespace kpx::storage {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/kpx-storage-test-XXXXXX";
    const char* made = mkdtemp(pattern);
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string ledger() const { return path_ + "/ledger"; }

 private:
  std::string path_;
};

std::unique_ptr<Ledger> OpenLedger(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(dir);
  INFO(ledger.status().ToString());
  REQUIRE(ledger.ok());
  return *std::move(ledger);
}

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1'000'000'000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  return ts;
}

Transition Entry(const std::string& certificate, const std::string& detail) {
  Transition t;
  t.entry.set_kind(v1::STATE_CHANGE);
  t.entry.set_certificate_number(certificate);
  t.entry.set_detail(detail);
  *t.entry.mutable_recorded_at() = Ts(kT0);
  return t;
}

v1::CertificateRecord Record(const std::string& number, v1::CertificateState state) {
  v1::CertificateRecord r;
  r.mutable_certificate()->set_number(number);
  r.set_state(state);
  r.set_partner("NA");
  return r;
}

v1::OutboxItem Item(const std::string& id, absl::Time due) {
  v1::OutboxItem item;
  item.set_message_id(id);
  item.set_recipient("NA");
  item.set_certificate_number("BW-1");
  item.mutable_message()->set_body("body of " + id);
  *item.mutable_due_at() = Ts(due);
  return item;
}

Head MustAppend(Ledger& ledger, Transition t) {
  absl::StatusOr<Head> head = ledger.Append(std::move(t));
  INFO(head.status().ToString());
  REQUIRE(head.ok());
  return *head;
}

std::vector<std::string> Ids(const std::vector<v1::OutboxItem>& items) {
  std::vector<std::string> ids;
  for (const v1::OutboxItem& item : items) ids.push_back(item.message_id());
  return ids;
}

std::vector<v1::OutboxItem> Due(const Ledger& ledger, absl::Time now, size_t limit = 100) {
  absl::StatusOr<std::vector<v1::OutboxItem>> due = ledger.DueOutbox(now, limit);
  REQUIRE(due.ok());
  return *due;
}

std::optional<absl::Time> NextDue(const Ledger& ledger) {
  absl::StatusOr<std::optional<absl::Time>> next = ledger.NextDue();
  REQUIRE(next.ok());
  return *next;
}

std::vector<v1::LedgerEntry> Entries(const Ledger& ledger, uint64_t from, size_t limit) {
  absl::StatusOr<std::vector<v1::LedgerEntry>> entries = ledger.ReadEntries(from, limit);
  INFO(entries.status().ToString());
  REQUIRE(entries.ok());
  return *entries;
}

// The chain recomputed from the stored entries, independently of storage/:
// heads[i] is the head after entry i + 1.
std::vector<Head> RecomputeChain(const Ledger& ledger) {
  std::vector<Head> heads;
  std::string previous(32, '\0');
  for (const v1::LedgerEntry& e : Entries(ledger, 1, 1'000'000)) {
    previous = crypto::Sha256(previous + e.SerializeAsString());
    heads.push_back(Head{e.sequence(), previous});
  }
  return heads;
}

TEST_CASE("empty ledger has the zero head and verifies") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  CHECK(ledger->head().sequence == 0);
  CHECK(ledger->head().hash == std::string(32, '\0'));
  CHECK(Entries(*ledger, 1, 10).empty());
  VerifyResult v = ledger->Verify();
  CHECK(v.ok);
  CHECK(v.entries_checked == 0);
  CHECK(ledger->OutboxSize() == 0);
}

TEST_CASE("append, read back and head") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  Head h1 = MustAppend(*ledger, Entry("BW-1", "one"));
  Head h2 = MustAppend(*ledger, Entry("BW-1", "two"));
  Head h3 = MustAppend(*ledger, Entry("BW-2", "three"));
  CHECK(h1.sequence == 1);
  CHECK(h2.sequence == 2);
  CHECK(h3.sequence == 3);
  CHECK(h3.hash.size() == 32);
  CHECK(ledger->head().sequence == 3);
  CHECK(ledger->head().hash == h3.hash);

  std::vector<v1::LedgerEntry> all = Entries(*ledger, 1, 10);
  REQUIRE(all.size() == 3);
  CHECK(all[0].sequence() == 1);
  CHECK(all[0].detail() == "one");
  CHECK(all[2].certificate_number() == "BW-2");
  CHECK(all[2].recorded_at().seconds() == absl::ToUnixSeconds(kT0));

  std::vector<v1::LedgerEntry> middle = Entries(*ledger, 2, 1);
  REQUIRE(middle.size() == 1);
  CHECK(middle[0].detail() == "two");
  CHECK(Entries(*ledger, 3, 5).size() == 1);
  CHECK(Entries(*ledger, 4, 5).empty());
  CHECK(Entries(*ledger, 0, 2).size() == 1);  // [0, 2) holds only entry 1
  CHECK(Entries(*ledger, 2, 0).empty());
}

TEST_CASE("hash chain equals a recomputation") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  std::vector<Head> returned;
  for (int i = 0; i < 5; ++i) {
    Transition t = Entry("BW-" + std::to_string(i % 2), "entry " + std::to_string(i));
    t.entry.set_kind(i % 2 ? v1::SENT : v1::RECEIPT);
    t.entry.set_partner("NA");
    t.entry.mutable_message()->set_body(std::string(100 + i, 'x'));
    returned.push_back(MustAppend(*ledger, std::move(t)));
  }
  std::vector<Head> recomputed = RecomputeChain(*ledger);
  REQUIRE(recomputed.size() == returned.size());
  for (size_t i = 0; i < returned.size(); ++i) {
    CHECK(recomputed[i].sequence == returned[i].sequence);
    CHECK(recomputed[i].hash == returned[i].hash);
  }
  VerifyResult v = ledger->Verify();
  CHECK(v.ok);
  CHECK(v.entries_checked == 5);
  CHECK(v.head.sequence == 5);
  CHECK(v.head.hash == returned.back().hash);
}

TEST_CASE("record, outbox and seen are written with the entry") {
  TempDir dir;
  {
    auto ledger = OpenLedger(dir.ledger());
    Transition t = Entry("BW-1", "issued");
    t.record = Record("BW-1", v1::ISSUED);
    t.outbox_put.push_back(Item("m1", kT0));
    t.seen_message_id = "in-1";
    t.seen_value = "receipt-1";
    MustAppend(*ledger, std::move(t));

    absl::StatusOr<std::optional<v1::CertificateRecord>> record = ledger->GetCertificate("BW-1");
    REQUIRE(record.ok());
    REQUIRE(record->has_value());
    CHECK((*record)->state() == v1::ISSUED);
    CHECK(ledger->OutboxSize() == 1);
    CHECK(Ids(Due(*ledger, kT0)) == std::vector<std::string>{"m1"});
    absl::StatusOr<std::optional<std::string>> seen = ledger->GetSeen("in-1");
    REQUIRE(seen.ok());
    CHECK(*seen == std::optional<std::string>("receipt-1"));
    absl::StatusOr<std::optional<std::string>> unseen = ledger->GetSeen("in-2");
    REQUIRE(unseen.ok());
    CHECK(!unseen->has_value());
    absl::StatusOr<std::optional<v1::CertificateRecord>> none = ledger->GetCertificate("BW-9");
    REQUIRE(none.ok());
    CHECK(!none->has_value());

    // A later entry replaces the current state.
    Transition delivered = Entry("BW-1", "delivered");
    delivered.record = Record("BW-1", v1::DELIVERED);
    delivered.outbox_delete.push_back("m1");
    MustAppend(*ledger, std::move(delivered));
  }
  // All of it is on disk together.
  auto ledger = OpenLedger(dir.ledger());
  absl::StatusOr<std::optional<v1::CertificateRecord>> record = ledger->GetCertificate("BW-1");
  REQUIRE(record.ok());
  REQUIRE(record->has_value());
  CHECK((*record)->state() == v1::DELIVERED);
  CHECK(ledger->OutboxSize() == 0);
  absl::StatusOr<std::optional<std::string>> seen = ledger->GetSeen("in-1");
  REQUIRE(seen.ok());
  CHECK(*seen == std::optional<std::string>("receipt-1"));
}

TEST_CASE("a transition that breaks the rules is refused whole") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  MustAppend(*ledger, Entry("BW-1", "first"));
  const Head before = ledger->head();

  SECTION("record for another certificate") {
    Transition t = Entry("BW-1", "x");
    t.record = Record("BW-2", v1::ISSUED);
    t.outbox_put.push_back(Item("m1", kT0));
    CHECK(ledger->Append(std::move(t)).status().code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("on_sequenced changes the hashed entry") {
    Transition t = Entry("BW-1", "x");
    t.outbox_put.push_back(Item("m1", kT0));
    t.on_sequenced = [](const Head&, Transition& t) {
      t.entry.set_detail("rewritten after hashing");
      return absl::OkStatus();
    };
    CHECK(ledger->Append(std::move(t)).status().code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("outbox item without id") {
    Transition t = Entry("BW-1", "x");
    t.outbox_put.push_back(Item("", kT0));
    CHECK(ledger->Append(std::move(t)).status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(ledger->head().sequence == before.sequence);
  CHECK(ledger->head().hash == before.hash);
  CHECK(ledger->OutboxSize() == 0);
  CHECK(MustAppend(*ledger, Entry("BW-1", "next")).sequence == 2);
  CHECK(ledger->Verify().ok);
}

TEST_CASE("AppendAll writes consecutive entries, all or none") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  MustAppend(*ledger, Entry("BW-1", "first"));

  std::vector<uint64_t> sequenced;
  auto record_sequence = [&sequenced](const Head& after, Transition&) {
    sequenced.push_back(after.sequence);
    return absl::OkStatus();
  };
  std::vector<Transition> batch(3);
  batch[0] = Entry("BW-2", "issue");
  batch[0].record = Record("BW-2", v1::ISSUED);
  batch[0].outbox_put.push_back(Item("m1", kT0));
  batch[1] = Entry("BW-2", "cancel");
  batch[1].record = Record("BW-2", v1::CANCELLED);
  batch[1].outbox_delete.push_back("m1");  // queued by the one before
  batch[1].outbox_put.push_back(Item("m2", kT0));
  batch[2] = Entry("BW-3", "issue");
  for (Transition& t : batch) t.on_sequenced = record_sequence;

  SECTION("all") {
    absl::StatusOr<std::vector<Head>> heads = ledger->AppendAll(std::move(batch));
    REQUIRE(heads.ok());
    REQUIRE(heads->size() == 3);
    CHECK((*heads)[0].sequence == 2);
    CHECK((*heads)[2].sequence == 4);
    CHECK(sequenced == std::vector<uint64_t>{2, 3, 4});
    CHECK(ledger->head().hash == (*heads)[2].hash);
    std::vector<Head> chain = RecomputeChain(*ledger);
    REQUIRE(chain.size() == 4);
    CHECK(chain[2].hash == (*heads)[1].hash);
    absl::StatusOr<std::optional<v1::CertificateRecord>> record = ledger->GetCertificate("BW-2");
    REQUIRE(record.ok());
    REQUIRE(record->has_value());
    CHECK((*record)->state() == v1::CANCELLED);
    CHECK(ledger->OutboxSize() == 1);
    CHECK(Ids(Due(*ledger, kT0)) == std::vector<std::string>{"m2"});
  }
  SECTION("none when one fails") {
    batch[2].on_sequenced = [](const Head&, Transition&) { return absl::InternalError("boom"); };
    const uint64_t batches = ledger->batches_written();
    absl::StatusOr<std::vector<Head>> heads = ledger->AppendAll(std::move(batch));
    CHECK(heads.status().message() == "boom");
    CHECK(ledger->head().sequence == 1);
    CHECK(ledger->batches_written() == batches);
    CHECK(!ledger->GetCertificate("BW-2")->has_value());
    CHECK(ledger->OutboxSize() == 0);
    CHECK(Due(*ledger, absl::InfiniteFuture()).empty());
    CHECK(MustAppend(*ledger, Entry("BW-1", "next")).sequence == 2);
    CHECK(ledger->Verify().ok);
  }
  SECTION("nothing for an empty vector") {
    absl::StatusOr<std::vector<Head>> heads = ledger->AppendAll({});
    REQUIRE(heads.ok());
    CHECK(heads->empty());
    CHECK(ledger->head().sequence == 1);
  }
}

TEST_CASE("reopen resumes at the exact head and next sequence") {
  TempDir dir;
  Head last;
  {
    auto ledger = OpenLedger(dir.ledger());
    for (int i = 0; i < 3; ++i) last = MustAppend(*ledger, Entry("BW-1", "e"));
  }
  auto ledger = OpenLedger(dir.ledger());
  CHECK(ledger->head().sequence == 3);
  CHECK(ledger->head().hash == last.hash);
  Head next = MustAppend(*ledger, Entry("BW-1", "after reopen"));
  CHECK(next.sequence == 4);
  std::vector<Head> chain = RecomputeChain(*ledger);
  REQUIRE(chain.size() == 4);
  CHECK(chain[3].hash == next.hash);
  CHECK(ledger->Verify().ok);
}

TEST_CASE("concurrent appends are grouped into a gapless chain") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  std::vector<std::vector<Head>> heads(kThreads);
  std::vector<absl::Status> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<Head> h = ledger->Append(Entry("BW-1", absl::StrCat(t, "/", i)));
        if (!h.ok()) {
          errors[t] = h.status();
          return;
        }
        heads[t].push_back(*h);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& e : errors) CHECK(e.ok());

  constexpr uint64_t kTotal = kThreads * kPerThread;
  CHECK(ledger->head().sequence == kTotal);
  // Every sequence handed out once; each head is the chain's at that point.
  std::vector<Head> chain = RecomputeChain(*ledger);
  REQUIRE(chain.size() == kTotal);
  std::set<uint64_t> sequences;
  for (const std::vector<Head>& per_thread : heads) {
    for (size_t i = 0; i < per_thread.size(); ++i) {
      const Head& h = per_thread[i];
      sequences.insert(h.sequence);
      REQUIRE(h.sequence >= 1);
      REQUIRE(h.sequence <= kTotal);
      CHECK(chain[h.sequence - 1].hash == h.hash);
      if (i > 0) CHECK(h.sequence > per_thread[i - 1].sequence);
    }
  }
  CHECK(sequences.size() == kTotal);

  VerifyResult v = ledger->Verify();
  CHECK(v.ok);
  CHECK(v.entries_checked == kTotal);
  // Group commit: fewer fsync'd batches than appends.
  INFO("batches: " << ledger->batches_written());
  CHECK(ledger->batches_written() < kTotal);
  CHECK(ledger->batches_written() > 0);
}

TEST_CASE("on_sequenced sees the entry's sequence and hash") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  const Head h1 = MustAppend(*ledger, Entry("BW-1", "first"));

  Transition t = Entry("BW-1", "received");
  t.record = Record("BW-1", v1::RECEIVED);
  t.seen_message_id = "msg-7";
  Head seen_by_callback;
  t.on_sequenced = [&seen_by_callback](const Head& after, Transition& t) {
    seen_by_callback = after;
    v1::StateChange* change = t.record->add_history();
    change->set_state(v1::RECEIVED);
    change->set_sequence(after.sequence);
    t.seen_value = absl::StrCat("receipt for ", after.sequence, ":", after.hash);
    return absl::OkStatus();
  };
  v1::LedgerEntry expected_entry = t.entry;
  expected_entry.set_sequence(2);
  const Head h2 = MustAppend(*ledger, std::move(t));

  CHECK(seen_by_callback.sequence == 2);
  CHECK(seen_by_callback.hash == h2.hash);
  CHECK(h2.hash == crypto::Sha256(h1.hash + expected_entry.SerializeAsString()));
  absl::StatusOr<std::optional<std::string>> seen = ledger->GetSeen("msg-7");
  REQUIRE(seen.ok());
  CHECK(*seen == std::optional<std::string>(absl::StrCat("receipt for 2:", h2.hash)));
  absl::StatusOr<std::optional<v1::CertificateRecord>> record = ledger->GetCertificate("BW-1");
  REQUIRE(record.ok());
  REQUIRE(record->has_value());
  REQUIRE((*record)->history_size() == 1);
  CHECK((*record)->history(0).sequence() == 2);
}

TEST_CASE("a failing on_sequenced changes nothing") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  MustAppend(*ledger, Entry("BW-1", "first"));
  const Head before = ledger->head();

  Transition t = Entry("BW-2", "doomed");
  t.record = Record("BW-2", v1::RECEIVED);
  t.outbox_put.push_back(Item("m1", kT0));
  t.seen_message_id = "msg-1";
  t.seen_value = "v";
  t.on_sequenced = [](const Head&, Transition&) {
    return absl::FailedPreconditionError("signing failed");
  };
  absl::StatusOr<Head> result = ledger->Append(std::move(t));
  CHECK(result.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(result.status().message() == "signing failed");

  CHECK(ledger->head().sequence == before.sequence);
  CHECK(ledger->head().hash == before.hash);
  absl::StatusOr<std::optional<v1::CertificateRecord>> record = ledger->GetCertificate("BW-2");
  REQUIRE(record.ok());
  CHECK(!record->has_value());
  CHECK(ledger->OutboxSize() == 0);
  CHECK(Due(*ledger, kT0 + absl::Hours(1)).empty());
  absl::StatusOr<std::optional<std::string>> seen = ledger->GetSeen("msg-1");
  REQUIRE(seen.ok());
  CHECK(!seen->has_value());
  CHECK(MustAppend(*ledger, Entry("BW-1", "next")).sequence == 2);
  CHECK(ledger->Verify().ok);
}

TEST_CASE("failing writers inside concurrent groups leave no gap") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::atomic<int> unexpected{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const bool fail = i % 2 == 1;
        Transition tr = Entry("BW-1", absl::StrCat(t, "/", i));
        tr.outbox_put.push_back(Item(absl::StrCat("m", t, "/", i), kT0));
        tr.on_sequenced = [fail](const Head&, Transition&) {
          return fail ? absl::AbortedError("no") : absl::OkStatus();
        };
        absl::StatusOr<Head> h = ledger->Append(std::move(tr));
        if (h.ok() == fail) ++unexpected;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(unexpected == 0);
  constexpr uint64_t kGood = kThreads * kPerThread / 2;
  CHECK(ledger->head().sequence == kGood);
  CHECK(ledger->OutboxSize() == kGood);
  VerifyResult v = ledger->Verify();
  CHECK(v.ok);
  CHECK(v.entries_checked == kGood);
  for (const v1::LedgerEntry& e : Entries(*ledger, 1, kGood)) {
    const std::string& d = e.detail();
    const int i = std::stoi(d.substr(d.find('/') + 1));
    CHECK(i % 2 == 0);
  }
}

// A ledger of five entries, and the heads Append returned.
struct FiveEntries {
  TempDir dir;
  std::unique_ptr<Ledger> ledger;
  std::vector<Head> heads;
  FiveEntries() : ledger(OpenLedger(dir.ledger())) {
    for (int i = 1; i <= 5; ++i) {
      heads.push_back(MustAppend(*ledger, Entry("BW-1", absl::StrCat("e", i))));
    }
  }
  std::string RawRecord(const v1::LedgerEntry& entry, const std::string& hash) {
    v1::LogRecord record;
    record.set_entry(entry.SerializeAsString());
    record.set_hash(hash);
    return record.SerializeAsString();
  }
};

TEST_CASE("Verify finds tampering") {
  FiveEntries f;
  Ledger& ledger = *f.ledger;
  REQUIRE(ledger.Verify().ok);
  v1::LedgerEntry third = Entries(ledger, 3, 1).at(0);

  SECTION("a modified entry is named") {
    third.set_detail("changed");
    REQUIRE(ledger.UnsafePutRawLogRecordForTest(3, f.RawRecord(third, f.heads[2].hash)).ok());
    VerifyResult v = ledger.Verify();
    CHECK(!v.ok);
    CHECK(v.first_bad_sequence == 3);
    CHECK(v.problem == "entry 3 hash mismatch: contents changed");
    CHECK(v.entries_checked == 2);
    CHECK(v.head.sequence == 2);
    CHECK(v.head.hash == f.heads[1].hash);
  }
  SECTION("re-hashing a modified entry is caught at that entry by the Merkle tree") {
    third.set_detail("changed");
    const std::string hash = crypto::Sha256(f.heads[1].hash + third.SerializeAsString());
    REQUIRE(ledger.UnsafePutRawLogRecordForTest(3, f.RawRecord(third, hash)).ok());
    VerifyResult v = ledger.Verify();
    CHECK(!v.ok);
    CHECK(v.first_bad_sequence == 3);
    CHECK(v.problem == "entry 3 does not match the Merkle tree: merkle node (0, 2) differs");
  }
  SECTION("an entry stored under another sequence") {
    third.set_sequence(9);
    const std::string hash = crypto::Sha256(f.heads[1].hash + third.SerializeAsString());
    REQUIRE(ledger.UnsafePutRawLogRecordForTest(3, f.RawRecord(third, hash)).ok());
    VerifyResult v = ledger.Verify();
    CHECK(!v.ok);
    CHECK(v.first_bad_sequence == 3);
    CHECK(v.problem == "entry 3 names sequence 9");
  }
  SECTION("a deleted entry in the middle is named") {
    REQUIRE(ledger.UnsafeDeleteLogRecordForTest(3).ok());
    VerifyResult v = ledger.Verify();
    CHECK(!v.ok);
    CHECK(v.first_bad_sequence == 3);
    CHECK(v.problem == "entry 3 missing");
    CHECK(v.entries_checked == 2);
  }
  SECTION("a garbage record") {
    REQUIRE(ledger.UnsafePutRawLogRecordForTest(2, "\xff\xff\xff").ok());
    VerifyResult v = ledger.Verify();
    CHECK(!v.ok);
    CHECK(v.first_bad_sequence == 2);
    CHECK(v.problem == "entry 2 unreadable");
  }
  SECTION("a truncated tail disagrees with the head") {
    REQUIRE(ledger.UnsafeDeleteLogRecordForTest(5).ok());
    VerifyResult v = ledger.Verify();
    CHECK(!v.ok);
    CHECK(v.first_bad_sequence == 5);
    CHECK(v.problem == "log ends at 4 but head says 5");
    CHECK(v.entries_checked == 4);
  }
  SECTION("an entry appended behind the ledger's back") {
    v1::LedgerEntry sixth = third;
    sixth.set_sequence(6);
    const std::string hash = crypto::Sha256(f.heads[4].hash + sixth.SerializeAsString());
    REQUIRE(ledger.UnsafePutRawLogRecordForTest(6, f.RawRecord(sixth, hash)).ok());
    VerifyResult v = ledger.Verify();
    CHECK(!v.ok);
    CHECK(v.first_bad_sequence == 6);
    CHECK(v.problem == "log ends at 6 but head says 5");
  }
}

TEST_CASE("Verify while appends run sees a consistent ledger") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  std::atomic<bool> stop{false};
  absl::Status appended;
  std::thread appender([&] {
    for (int i = 0; i < 100 && appended.ok(); ++i) {
      appended = ledger->Append(Entry("BW-1", absl::StrCat(i))).status();
    }
    stop = true;
  });
  int runs = 0;
  int bad = 0;
  std::string problem;
  while (!stop) {
    VerifyResult v = ledger->Verify();
    ++runs;
    if (!v.ok) {
      ++bad;
      problem = v.problem;
    }
  }
  appender.join();
  CHECK(appended.ok());
  INFO(problem);
  CHECK(bad == 0);
  CHECK(runs > 0);
  CHECK(ledger->Verify().entries_checked == 100);
}

TEST_CASE("a ledger whose log disagrees with its head refuses appends") {
  TempDir dir;
  {
    FiveEntries f;
    REQUIRE(f.ledger->UnsafeDeleteLogRecordForTest(5).ok());
    f.ledger.reset();
    std::filesystem::rename(f.dir.ledger(), dir.ledger());
  }
  auto ledger = OpenLedger(dir.ledger());
  CHECK(ledger->head().sequence == 5);  // the stored head, not the log's end
  absl::StatusOr<Head> appended = ledger->Append(Entry("BW-1", "more"));
  CHECK(appended.status().code() == absl::StatusCode::kDataLoss);
  CHECK(appended.status().message() ==
        "ledger refuses writes: log ends at 4 but head says 5; run Verify");
  CHECK(ledger->Verify().problem == "log ends at 4 but head says 5");
  CHECK(Entries(*ledger, 1, 4).size() == 4);  // reads still work
}

TEST_CASE("outbox: due order, reschedule, delete, size") {
  TempDir dir;
  {
    auto ledger = OpenLedger(dir.ledger());
    CHECK(!NextDue(*ledger).has_value());
    Transition t1 = Entry("BW-1", "send a, b");
    t1.outbox_put.push_back(Item("a", kT0 + absl::Seconds(3)));
    t1.outbox_put.push_back(Item("b", kT0 + absl::Seconds(1)));
    MustAppend(*ledger, std::move(t1));
    Transition t2 = Entry("BW-1", "send c");
    t2.outbox_put.push_back(Item("c", kT0 + absl::Seconds(2)));
    MustAppend(*ledger, std::move(t2));

    CHECK(ledger->OutboxSize() == 3);
    CHECK(NextDue(*ledger) == kT0 + absl::Seconds(1));
    CHECK(Due(*ledger, kT0).empty());
    CHECK(Ids(Due(*ledger, kT0 + absl::Seconds(2))) ==
          std::vector<std::string>{"b", "c"});  // due exactly now counts
    CHECK(Ids(Due(*ledger, kT0 + absl::Milliseconds(2500), 1)) == std::vector<std::string>{"b"});
    CHECK(Ids(Due(*ledger, kT0 + absl::Hours(1))) == std::vector<std::string>{"b", "c", "a"});

    // Reschedule changes only due_at, attempts and last_error.
    v1::OutboxItem b = Item("b", kT0 + absl::Seconds(10));
    b.set_attempts(1);
    b.set_last_error("peer unreachable");
    b.mutable_message()->set_body("something else");
    b.set_recipient("ZZ");
    REQUIRE(ledger->RescheduleOutbox(b).ok());
    CHECK(ledger->OutboxSize() == 3);
    CHECK(NextDue(*ledger) == kT0 + absl::Seconds(2));
    CHECK(Ids(Due(*ledger, kT0 + absl::Seconds(5))) == std::vector<std::string>{"c", "a"});
    std::vector<v1::OutboxItem> all = Due(*ledger, kT0 + absl::Hours(1));
    REQUIRE(Ids(all) == std::vector<std::string>{"c", "a", "b"});
    CHECK(all[2].attempts() == 1);
    CHECK(all[2].last_error() == "peer unreachable");
    CHECK(all[2].message().body() == "body of b");
    CHECK(all[2].recipient() == "NA");

    // Delivered: removed by the entry that records the receipt.
    Transition t3 = Entry("BW-1", "receipt for c");
    t3.outbox_delete = {"c", "never-queued"};
    MustAppend(*ledger, std::move(t3));
    CHECK(ledger->OutboxSize() == 2);
    CHECK(ledger->RescheduleOutbox(Item("c", kT0)).code() == absl::StatusCode::kNotFound);
    CHECK(Ids(Due(*ledger, kT0 + absl::Hours(1))) == std::vector<std::string>{"a", "b"});

    // Re-queueing an existing id replaces it and its due key.
    Transition t4 = Entry("BW-1", "requeue a");
    t4.outbox_delete = {"a"};
    t4.outbox_put.push_back(Item("a", kT0 + absl::Seconds(20)));
    MustAppend(*ledger, std::move(t4));
    Transition t5 = Entry("BW-1", "requeue a again");
    t5.outbox_put.push_back(Item("a", kT0 + absl::Seconds(30)));
    MustAppend(*ledger, std::move(t5));
    CHECK(ledger->OutboxSize() == 2);
    CHECK(Ids(Due(*ledger, kT0 + absl::Hours(1))) == std::vector<std::string>{"b", "a"});
  }
  // The count is rebuilt on open.
  auto ledger = OpenLedger(dir.ledger());
  CHECK(ledger->OutboxSize() == 2);
  Transition t = Entry("BW-1", "all delivered");
  t.outbox_delete = {"a", "b"};
  MustAppend(*ledger, std::move(t));
  CHECK(ledger->OutboxSize() == 0);
  CHECK(!NextDue(*ledger).has_value());
  CHECK(Due(*ledger, absl::InfiniteFuture()).empty());
}

TEST_CASE("outbox: per-recipient due index, held items, lookup") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  auto to = [](const std::string& id, const std::string& recipient, absl::Time due) {
    v1::OutboxItem item = Item(id, due);
    item.set_recipient(recipient);
    return item;
  };
  Transition t = Entry("BW-1", "send to EU and AE");
  t.outbox_put.push_back(to("e1", "EU", kT0 + absl::Seconds(2)));
  t.outbox_put.push_back(to("a1", "AE", kT0 + absl::Seconds(1)));
  t.outbox_put.push_back(to("e2", "EU", kT0 + absl::Seconds(1)));
  v1::OutboxItem held = to("e3", "EU", kT0);
  held.set_held(true);
  held.set_waits_for("e1");
  t.outbox_put.push_back(held);
  MustAppend(*ledger, std::move(t));

  CHECK(ledger->OutboxSize() == 4);
  CHECK(*ledger->OutboxRecipients() == std::vector<std::string>{"AE", "EU"});
  CHECK(Ids(*ledger->DueOutboxFor("EU", absl::InfiniteFuture(), 10)) ==
        std::vector<std::string>{"e2", "e1"});  // the held one is never due
  CHECK(Ids(*ledger->DueOutboxFor("AE", kT0 + absl::Seconds(1), 10)) ==
        std::vector<std::string>{"a1"});
  CHECK(ledger->DueOutboxFor("ZZ", absl::InfiniteFuture(), 10)->empty());
  CHECK(**ledger->NextDueFor("EU") == kT0 + absl::Seconds(1));
  CHECK(!ledger->NextDueFor("ZZ")->has_value());
  CHECK(Ids(Due(*ledger, absl::InfiniteFuture())) == std::vector<std::string>{"a1", "e2", "e1"});
  CHECK((*ledger->GetOutboxItem("e3"))->waits_for() == "e1");
  CHECK(!ledger->GetOutboxItem("nope")->has_value());

  // Released: put again unheld, it becomes due; a recipient whose items
  // are all gone is no longer listed.
  Transition release = Entry("BW-1", "receipt for e1 and a1");
  release.outbox_delete = {"e1", "a1"};
  v1::OutboxItem unheld = to("e3", "EU", kT0 + absl::Seconds(5));
  release.outbox_put.push_back(unheld);
  MustAppend(*ledger, std::move(release));
  CHECK(*ledger->OutboxRecipients() == std::vector<std::string>{"EU"});
  CHECK(Ids(*ledger->DueOutboxFor("EU", absl::InfiniteFuture(), 10)) ==
        std::vector<std::string>{"e2", "e3"});
  Transition done = Entry("BW-1", "all delivered");
  done.outbox_delete = {"e2", "e3"};
  MustAppend(*ledger, std::move(done));
  CHECK(ledger->OutboxRecipients()->empty());
  CHECK(ledger->OutboxSize() == 0);
}

TEST_CASE("RescheduleOutboxAll rewrites many items in one batch, skipping gone ones") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  Transition t = Entry("BW-1", "send a, b");
  t.outbox_put.push_back(Item("a", kT0));
  t.outbox_put.push_back(Item("b", kT0));
  MustAppend(*ledger, std::move(t));
  const uint64_t batches = ledger->batches_written();
  std::vector<v1::OutboxItem> retries = {Item("a", kT0 + absl::Seconds(5)),
                                         Item("gone", kT0 + absl::Seconds(5)),
                                         Item("b", kT0 + absl::Seconds(7))};
  REQUIRE(ledger->RescheduleOutboxAll(retries).ok());
  CHECK(ledger->batches_written() == batches + 1);
  CHECK(ledger->OutboxSize() == 2);
  CHECK(Due(*ledger, kT0 + absl::Seconds(4)).empty());
  CHECK(Ids(Due(*ledger, kT0 + absl::Seconds(7))) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("a reschedule racing the deleting append never resurrects") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  constexpr int kItems = 20;
  Transition queue = Entry("BW-1", "queue");
  for (int i = 0; i < kItems; ++i) {
    queue.outbox_put.push_back(Item(absl::StrCat("m", i), kT0));
  }
  MustAppend(*ledger, std::move(queue));

  std::atomic<int> unexpected{0};
  std::thread rescheduler([&] {
    for (int i = 0; i < kItems; ++i) {
      v1::OutboxItem item = Item(absl::StrCat("m", i), kT0 + absl::Seconds(1));
      for (int attempt = 1;; ++attempt) {
        item.set_attempts(attempt);
        absl::Status s = ledger->RescheduleOutbox(item);
        if (absl::IsNotFound(s)) break;
        if (!s.ok()) {
          ++unexpected;
          break;
        }
      }
    }
  });
  for (int i = 0; i < kItems; ++i) {
    Transition t = Entry("BW-1", "delivered");
    t.outbox_delete.push_back(absl::StrCat("m", i));
    if (!ledger->Append(std::move(t)).ok()) ++unexpected;
  }
  rescheduler.join();
  CHECK(unexpected == 0);
  CHECK(ledger->OutboxSize() == 0);
  CHECK(Due(*ledger, absl::InfiniteFuture()).empty());
  CHECK(!NextDue(*ledger).has_value());
}

TEST_CASE("ListCertificates pages in number order") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  const v1::CertificateState states[] = {v1::ISSUED, v1::DELIVERED, v1::ISSUED, v1::DELIVERED,
                                         v1::CONFIRMED};
  for (int i = 4; i >= 0; --i) {  // insertion order does not matter
    const std::string number = absl::StrCat("BW-", i);
    Transition t = Entry(number, "issued");
    t.record = Record(number, states[i]);
    MustAppend(*ledger, std::move(t));
  }
  auto numbers = [](const std::vector<v1::CertificateRecord>& records) {
    std::vector<std::string> out;
    for (const auto& r : records) out.push_back(r.certificate().number());
    return out;
  };
  auto all = ledger->ListCertificates("", 10, nullptr);
  REQUIRE(all.ok());
  CHECK(numbers(*all) == std::vector<std::string>{"BW-0", "BW-1", "BW-2", "BW-3", "BW-4"});
  auto page = ledger->ListCertificates("BW-1", 2, nullptr);
  REQUIRE(page.ok());
  CHECK(numbers(*page) == std::vector<std::string>{"BW-2", "BW-3"});
  auto delivered = ledger->ListCertificates(
      "", 1, [](const v1::CertificateRecord& r) { return r.state() == v1::DELIVERED; });
  REQUIRE(delivered.ok());
  CHECK(numbers(*delivered) == std::vector<std::string>{"BW-1"});
  auto past_end = ledger->ListCertificates("BW-4", 10, nullptr);
  REQUIRE(past_end.ok());
  CHECK(past_end->empty());
}

TEST_CASE("WaitForSequence wakes on append and times out otherwise") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  MustAppend(*ledger, Entry("BW-1", "first"));

  // Already there: returns at once.
  CHECK(ledger->WaitForSequence(1, absl::InfinitePast()).sequence == 1);

  absl::Status appended;
  std::thread appender([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    appended = ledger->Append(Entry("BW-1", "second")).status();
  });
  const absl::Time start = absl::Now();
  Head woke = ledger->WaitForSequence(2, start + absl::Seconds(10));
  appender.join();
  CHECK(appended.ok());
  CHECK(woke.sequence == 2);
  CHECK(absl::Now() - start < absl::Seconds(5));

  const absl::Time wait_start = absl::Now();
  Head timed_out = ledger->WaitForSequence(3, wait_start + absl::Milliseconds(100));
  CHECK(timed_out.sequence == 2);
  CHECK(absl::Now() - wait_start >= absl::Milliseconds(100));
}

// ------------------------------------------------------ failed writes (fault_fs)

using testing::FaultFileSystem;

std::unique_ptr<Ledger> OpenLedgerOn(const std::string& dir, std::shared_ptr<FaultFileSystem> fs) {
  LedgerOptions options;
  options.file_system = std::move(fs);
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(dir, options);
  INFO(ledger.status().ToString());
  REQUIRE(ledger.ok());
  return *std::move(ledger);
}

// The detail of every stored entry, in sequence order.
std::vector<std::string> Details(const Ledger& ledger) {
  std::vector<std::string> details;
  for (const v1::LedgerEntry& e : Entries(ledger, 1, 1'000'000)) details.push_back(e.detail());
  return details;
}

TEST_CASE("after a failed sync every write is refused until the ledger is reopened") {
  TempDir dir;
  auto fs = std::make_shared<FaultFileSystem>();
  // Whether the bytes of the failed write reached the disk anyway.
  const bool reached_disk = GENERATE(false, true);
  INFO("failed write reached the disk: " << reached_disk);
  fs->SetOnFailedSync(reached_disk ? FaultFileSystem::OnFailedSync::kKeepUnsynced
                                   : FaultFileSystem::OnFailedSync::kLoseUnsynced);
  Head acknowledged;
  {
    auto ledger = OpenLedgerOn(dir.ledger(), fs);
    Transition first = Entry("BW-1", "acknowledged 1");
    first.record = Record("BW-1", v1::ISSUED);
    first.outbox_put.push_back(Item("m1", kT0));
    MustAppend(*ledger, std::move(first));
    acknowledged = MustAppend(*ledger, Entry("BW-1", "acknowledged 2"));
    REQUIRE(ledger->WriteStatus().ok());

    fs->FailSyncs(true);
    const absl::Status failed = ledger->Append(Entry("BW-1", "failed")).status();
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.message().find("injected sync failure") != absl::string_view::npos);
    CHECK(fs->failed_syncs() == 1);
    fs->FailSyncs(false);

    // The disk works again, but what reached it is unknown: every write is
    // refused with the reason, and none reaches the disk.
    CHECK(ledger->WriteStatus() == failed);
    Transition refused = Entry("BW-1", "refused 1");
    bool sequenced = false;
    refused.on_sequenced = [&](const Head&, Transition&) {
      sequenced = true;
      return absl::OkStatus();
    };
    CHECK(ledger->Append(std::move(refused)).status() == failed);
    CHECK_FALSE(sequenced);  // refused before it is given a sequence
    std::vector<Transition> two;
    two.push_back(Entry("BW-1", "refused 2"));
    two.push_back(Entry("BW-1", "refused 3"));
    CHECK(ledger->AppendAll(std::move(two)).status() == failed);
    const v1::OutboxItem later = Item("m1", kT0 + absl::Hours(1));
    CHECK(ledger->RescheduleOutbox(later) == failed);
    CHECK(ledger->RescheduleOutboxAll(std::span<const v1::OutboxItem>(&later, 1)) == failed);
    CHECK(fs->failed_syncs() == 1);
    CHECK(ledger->WriteStatus() == failed);

    // Reads still work and show what was acknowledged.
    CHECK(ledger->head().sequence == 2);
    CHECK(ledger->head().hash == acknowledged.hash);
    CHECK(Details(*ledger) == std::vector<std::string>{"acknowledged 1", "acknowledged 2"});
    absl::StatusOr<std::optional<v1::CertificateRecord>> record = ledger->GetCertificate("BW-1");
    REQUIRE(record.ok());
    REQUIRE(record->has_value());
    CHECK((*record)->state() == v1::ISSUED);
    CHECK(Ids(Due(*ledger, kT0)) == std::vector<std::string>{"m1"});
    CHECK(ledger->Verify().ok);
  }

  // Reopened on the plain disk: the acknowledged entries, then the failed
  // one only if its bytes reached the disk; none of the refused ones.
  auto ledger = OpenLedger(dir.ledger());
  CHECK(ledger->WriteStatus().ok());
  std::vector<std::string> expected = {"acknowledged 1", "acknowledged 2"};
  if (reached_disk) expected.push_back("failed");
  CHECK(Details(*ledger) == expected);
  CHECK(ledger->head().sequence == expected.size());
  VerifyResult verified = ledger->Verify();
  CHECK(verified.ok);
  CHECK(verified.entries_checked == expected.size());
  std::vector<v1::OutboxItem> due = Due(*ledger, absl::InfiniteFuture());
  REQUIRE(Ids(due) == std::vector<std::string>{"m1"});
  CHECK(due[0].due_at().seconds() == absl::ToUnixSeconds(kT0));  // the reschedule was refused

  // And it writes again.
  CHECK(MustAppend(*ledger, Entry("BW-1", "after reopen")).sequence == expected.size() + 1);
  CHECK(ledger->RescheduleOutbox(Item("m1", kT0 + absl::Hours(2))).ok());
  CHECK(ledger->Verify().ok);
}

TEST_CASE("appends racing a failing sync: acknowledged entries survive, failed ones are absent") {
  TempDir dir;
  auto fs = std::make_shared<FaultFileSystem>();  // a failed sync loses its data
  constexpr int kThreads = 6;
  constexpr int kMaxPerThread = 100'000;  // a bound, in case the failure never came
  std::vector<std::vector<std::string>> acknowledged(kThreads);
  std::vector<std::vector<std::string>> failed(kThreads);
  {
    auto ledger = OpenLedgerOn(dir.ledger(), fs);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      // Each appends until refused twice.
      threads.emplace_back([&, t] {
        for (int i = 0; i < kMaxPerThread && failed[t].size() < 2; ++i) {
          const std::string detail = absl::StrCat(t, "/", i);
          if (ledger->Append(Entry("BW-1", detail)).ok()) {
            acknowledged[t].push_back(detail);
          } else {
            failed[t].push_back(detail);
          }
        }
      });
    }
    // Syncs start failing while the threads are appending.
    CHECK(ledger->WaitForSequence(200, absl::Now() + absl::Seconds(60)).sequence >= 200);
    fs->FailSyncs(true);
    for (std::thread& t : threads) t.join();
    // One synced batch failed (possibly several callers grouped in it);
    // everything after it was refused without touching the disk.
    CHECK(fs->failed_syncs() == 1);
    CHECK_FALSE(ledger->WriteStatus().ok());
  }
  fs->FailSyncs(false);

  auto ledger = OpenLedger(dir.ledger());
  const std::vector<std::string> stored = Details(*ledger);
  const std::set<std::string> stored_set(stored.begin(), stored.end());
  CHECK(stored_set.size() == stored.size());  // no duplicate
  std::set<std::string> expected;
  size_t failures = 0;
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(failed[t].size() == 2);
    failures += failed[t].size();
    expected.insert(acknowledged[t].begin(), acknowledged[t].end());
    for (const std::string& detail : failed[t]) CHECK(stored_set.count(detail) == 0);
  }
  CHECK(stored_set == expected);
  CHECK(ledger->head().sequence == expected.size());
  CHECK(expected.size() >= 200);
  CHECK(failures == 2 * kThreads);
  VerifyResult verified = ledger->Verify();  // gapless chain ending at the head
  CHECK(verified.ok);
  CHECK(verified.entries_checked == expected.size());
  CHECK(MustAppend(*ledger, Entry("BW-1", "after reopen")).sequence == expected.size() + 1);
}

TEST_CASE("ListOutbox pages through the outbox in message id order, read-only") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  Transition t = Entry("BW-1", "send five");
  for (const char* id : {"e", "b", "d", "a", "c"}) {  // due order is not id order
    v1::OutboxItem item = Item(id, kT0 + absl::Seconds(id[0] - 'a'));
    item.set_attempts(id[0] - 'a');
    t.outbox_put.push_back(item);
  }
  MustAppend(*ledger, std::move(t));
  auto page = [&](const std::string& after, size_t limit) {
    absl::StatusOr<std::vector<v1::OutboxItem>> items = ledger->ListOutbox(after, limit);
    INFO(items.status().ToString());
    REQUIRE(items.ok());
    return *items;
  };
  CHECK(Ids(page("", 10)) == std::vector<std::string>{"a", "b", "c", "d", "e"});
  CHECK(Ids(page("", 2)) == std::vector<std::string>{"a", "b"});
  CHECK(Ids(page("b", 2)) == std::vector<std::string>{"c", "d"});
  CHECK(Ids(page("d", 2)) == std::vector<std::string>{"e"});
  CHECK(page("e", 2).empty());
  CHECK(Ids(page("bb", 1)) == std::vector<std::string>{"c"});  // after an absent id
  CHECK(page("", 0).empty());
  const std::vector<v1::OutboxItem> all = page("", 10);
  CHECK(all[3].attempts() == 3);  // whole items, as queued
  CHECK(all[3].message().body() == "body of d");
  // Listing changes nothing: the due index and the count are as before.
  CHECK(ledger->OutboxSize() == 5);
  CHECK(Ids(Due(*ledger, kT0 + absl::Hours(1))) ==
        std::vector<std::string>{"a", "b", "c", "d", "e"});
  Transition done = Entry("BW-1", "delivered c");
  done.outbox_delete.push_back("c");
  MustAppend(*ledger, std::move(done));
  CHECK(Ids(page("b", 2)) == std::vector<std::string>{"d", "e"});
}

}  // namespace
}  // namespace kpx::storage

namespace kpx::storage {
namespace {

TEST_CASE("a restore that fails leaves its target as it was; the retry works",
          "[storage][backup]") {
  TempDir dir;
  const std::string base = dir.ledger() + "-files";
  const std::string backup = base + "/backup";
  std::filesystem::create_directories(base);
  {
    auto ledger = OpenLedger(dir.ledger());
    for (int i = 0; i < 5; ++i) MustAppend(*ledger, Entry(absl::StrCat("BW-", i), "entry"));
    REQUIRE(ledger->Checkpoint(backup).ok());
    // A second checkpoint into the same folder is refused.
    CHECK(ledger->Checkpoint(backup).status().code() == absl::StatusCode::kAlreadyExists);
  }
  // A damaged copy: a truncated table file (copied first: a checkpoint
  // hard-links the live files).
  const std::string damaged = base + "/damaged";
  std::filesystem::copy(backup, damaged, std::filesystem::copy_options::recursive);
  bool truncated = false;
  for (const auto& e : std::filesystem::directory_iterator(damaged)) {
    if (e.path().extension() != ".sst") continue;
    std::filesystem::resize_file(e.path(), e.file_size() / 2);
    truncated = true;
  }
  REQUIRE(truncated);

  SECTION("into a folder that did not exist: it is gone again") {
    const std::string target = base + "/new/ledger";
    absl::StatusOr<VerifyResult> r = Ledger::Restore(damaged, target);
    CHECK(r.status().code() == absl::StatusCode::kDataLoss);
    CHECK_FALSE(std::filesystem::exists(target));
    r = Ledger::Restore(backup, target);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(r->entries_checked == 5);
  }
  SECTION("into an empty folder: it stays, empty") {
    const std::string target = base + "/empty";
    std::filesystem::create_directory(target);
    CHECK(Ledger::Restore(damaged, target).status().code() == absl::StatusCode::kDataLoss);
    REQUIRE(std::filesystem::is_directory(target));
    CHECK(std::filesystem::is_empty(target));
    absl::StatusOr<VerifyResult> r = Ledger::Restore(backup, target);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    CHECK(OpenLedger(target)->head().sequence == 5);
  }
  SECTION("not into a non-empty folder, which is left alone") {
    const std::string target = base + "/full";
    std::filesystem::create_directory(target);
    std::ofstream(target + "/keep") << "x";
    CHECK(Ledger::Restore(backup, target).status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(std::filesystem::exists(target + "/keep"));
  }
}

}  // namespace
}  // namespace kpx::storage

// ---- the ledger as a Merkle tree ------------------------------------------

namespace kpx::storage {
namespace {

// The leaves recomputed from the stored entries, independently of the
// tree's own bookkeeping.
std::vector<std::string> LeafHashes(const Ledger& ledger) {
  std::vector<std::string> hashes;
  for (const v1::LedgerEntry& e : Entries(ledger, 1, 1'000'000)) {
    hashes.push_back(merkle::LeafHash(EncodeLogLeaf(LeafOf(e, e.SerializeAsString()))));
  }
  return hashes;
}

// Appends `n` entries in groups of 1, 2, 3, ... (AppendAll), some with a
// message so their leaf names its digest.
void AppendGroups(Ledger& ledger, int n) {
  for (int done = 0, group = 1; done < n; ++group) {
    std::vector<Transition> ts;
    for (int i = 0; i < group && done < n; ++i, ++done) {
      Transition t = Entry("BW-1", absl::StrCat("e", done));
      if (done % 3 == 0) t.entry.mutable_message()->set_body(absl::StrCat("message ", done));
      ts.push_back(std::move(t));
    }
    REQUIRE(ledger.AppendAll(std::move(ts)).ok());
  }
}

TEST_CASE("the ledger is an RFC 9162 tree: roots and proofs for every size", "[merkle]") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  CHECK(ledger->head().root == merkle::EmptyRoot());
  constexpr int kEntries = 40;
  AppendGroups(*ledger, kEntries);
  const std::vector<std::string> leaves = LeafHashes(*ledger);
  REQUIRE(leaves.size() == kEntries);
  CHECK(ledger->head().root == merkle::RootFromLeaves(leaves));
  for (uint64_t n = 1; n <= kEntries; ++n) {
    INFO("size " << n);
    const std::string root = merkle::RootFromLeaves(std::span(leaves).first(n));
    CHECK(ledger->RootAt(n).value() == root);
    for (uint64_t seq = 1; seq <= n; ++seq) {
      absl::StatusOr<std::vector<std::string>> path = ledger->InclusionProof(seq, n);
      REQUIRE(path.ok());
      CHECK(merkle::VerifyInclusion(leaves[seq - 1], seq - 1, n, *path, root).ok());
    }
    for (uint64_t m = 0; m <= n; ++m) {
      absl::StatusOr<std::vector<std::string>> proof = ledger->ConsistencyProof(m, n);
      REQUIRE(proof.ok());
      const std::string old_root = merkle::RootFromLeaves(std::span(leaves).first(m));
      CHECK(merkle::VerifyConsistency(m, n, old_root, root, *proof).ok());
    }
  }
  // The leaf names the entry and its message.
  const v1::LedgerEntry first = Entries(*ledger, 1, 1)[0];
  absl::StatusOr<LogLeaf> leaf = DecodeLogLeaf(ledger->Leaf(1).value());
  REQUIRE(leaf.ok());
  CHECK(leaf->sequence == 1);
  CHECK(leaf->kind == v1::STATE_CHANGE);
  CHECK(leaf->entry_hash == crypto::Sha256(first.SerializeAsString()));
  CHECK(leaf->message_digest == crypto::Sha256("message 0"));
  CHECK(DecodeLogLeaf(ledger->Leaf(2).value())->message_digest == std::string(32, '\0'));
  // Sizes beyond the head are refused.
  CHECK(absl::IsInvalidArgument(ledger->RootAt(kEntries + 1).status()));
  CHECK(absl::IsInvalidArgument(ledger->InclusionProof(1, kEntries + 1).status()));
  CHECK(absl::IsInvalidArgument(ledger->InclusionProof(0, 3).status()));
  CHECK(absl::IsInvalidArgument(ledger->ConsistencyProof(5, kEntries + 1).status()));
  CHECK(absl::IsNotFound(ledger->Leaf(kEntries + 1).status()));

  // Reopened, it goes on from the same tree.
  const Head before = ledger->head();
  ledger.reset();
  ledger = OpenLedger(dir.ledger());
  CHECK(ledger->head().root == before.root);
  Head h = MustAppend(*ledger, Entry("BW-2", "after reopen"));
  std::vector<std::string> more = LeafHashes(*ledger);
  CHECK(h.root == merkle::RootFromLeaves(more));
  CHECK(h.leaf == ledger->Leaf(h.sequence).value());
  CHECK(ledger->Verify().ok);
}

TEST_CASE("a ledger written before the tree gets it on open", "[merkle]") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  AppendGroups(*ledger, 23);
  const Head before = ledger->head();
  REQUIRE(ledger->UnsafeForgetTreeForTest().ok());
  ledger.reset();
  ledger = OpenLedger(dir.ledger());
  CHECK(ledger->head().root == before.root);
  CHECK(ledger->head().sequence == 23);
  VerifyResult v = ledger->Verify();
  CHECK(v.ok);
  CHECK(v.head.root == before.root);
  CHECK(ledger->InclusionProof(7, 23).ok());
}

TEST_CASE("Verify checks every Merkle node and the kept tree head", "[merkle]") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  AppendGroups(*ledger, 12);
  const std::vector<std::string> leaves = LeafHashes(*ledger);
  auto tree_head = [](uint64_t size, const std::string& root) {
    v1::MessageBody body;
    body.mutable_tree_head()->set_tree_size(size);
    body.mutable_tree_head()->set_root_hash(root);
    v1::SignedMessage m;
    m.set_body(body.SerializeAsString());
    return m;
  };
  SECTION("a kept head of the log verifies; a smaller one does not replace it") {
    REQUIRE(ledger->KeepTreeHead(tree_head(9, ledger->RootAt(9).value()), 9).ok());
    REQUIRE(ledger->KeepTreeHead(tree_head(4, "x"), 4).ok());
    VerifyResult v = ledger->Verify();
    CHECK(v.ok);
    CHECK(v.tree_head_size == 9);
  }
  SECTION("a kept head with another root is reported") {
    REQUIRE(ledger->KeepTreeHead(tree_head(9, std::string(32, 'r')), 9).ok());
    VerifyResult v = ledger->Verify();
    CHECK_FALSE(v.ok);
    CHECK(v.first_bad_sequence == 9);
    CHECK(v.problem == "the signed tree head of 9 entries has another root than the log");
  }
  SECTION("a kept head beyond the log is reported") {
    REQUIRE(ledger->KeepTreeHead(tree_head(20, std::string(32, 'r')), 20).ok());
    CHECK(ledger->Verify().problem == "the signed tree head covers 20 entries but the log has 12");
  }
  SECTION("a changed node is reported at the entry that completes it") {
    REQUIRE(ledger->UnsafePutMerkleNodeForTest(1, 2, std::string(32, 'n')).ok());
    VerifyResult v = ledger->Verify();
    CHECK_FALSE(v.ok);
    CHECK(v.first_bad_sequence == 6);
    CHECK(v.problem == "entry 6 does not match the Merkle tree: merkle node (1, 2) differs");
  }
}

TEST_CASE("peer logs are written with a transition and read back", "[merkle]") {
  TempDir dir;
  auto ledger = OpenLedger(dir.ledger());
  CHECK_FALSE(ledger->GetPeerLog("EU").value().has_value());
  Transition t = Entry("BW-1", "receipt");
  for (const char* code : {"EU", "AE"}) {
    v1::PeerLog& log = t.peer_logs.emplace_back();
    log.set_participant(code);
    log.set_tree_size(7);
  }
  MustAppend(*ledger, std::move(t));
  CHECK(ledger->GetPeerLog("EU").value()->tree_size() == 7);
  std::vector<v1::PeerLog> logs = ledger->ListPeerLogs().value();
  REQUIRE(logs.size() == 2);
  CHECK(logs[0].participant() == "AE");
  Transition bad = Entry("BW-1", "no participant");
  bad.peer_logs.emplace_back();
  CHECK(absl::IsInvalidArgument(ledger->Append(std::move(bad)).status()));
}

}  // namespace
}  // namespace kpx::storage
