#include "tests/ledger_rewrite.h"

#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "storage/ledger.h"

namespace kpx::testing {
namespace {

// The dedup mark the inbox writes: the entry's sequence, big-endian.
std::string SeenValue(uint64_t sequence) {
  std::string v(8, '\0');
  for (int i = 7; i >= 0; --i, sequence >>= 8) v[i] = static_cast<char>(sequence & 0xff);
  return v;
}

struct Contents {
  std::vector<v1::LedgerEntry> entries;
  std::map<std::string, v1::CertificateRecord> records;
  std::vector<v1::OutboxItem> outbox;
  std::vector<v1::PeerLog> peer_logs;
  std::map<uint64_t, v1::TrustListRecord> trust_lists;  // by sequence
};

absl::StatusOr<Contents> ReadAll(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger = storage::Ledger::Open(dir);
  if (!ledger.ok()) return ledger.status();
  Contents c;
  absl::StatusOr<std::vector<v1::LedgerEntry>> entries =
      (*ledger)->ReadEntries(1, (*ledger)->head().sequence);
  if (!entries.ok()) return entries.status();
  c.entries = *std::move(entries);
  absl::StatusOr<std::vector<v1::CertificateRecord>> records =
      (*ledger)->ListCertificates("", 1'000'000, nullptr);
  if (!records.ok()) return records.status();
  for (v1::CertificateRecord& r : *records) c.records[r.certificate().number()] = std::move(r);
  absl::StatusOr<std::vector<v1::OutboxItem>> outbox = (*ledger)->ListOutbox("", 1'000'000);
  if (!outbox.ok()) return outbox.status();
  c.outbox = *std::move(outbox);
  absl::StatusOr<std::vector<v1::PeerLog>> logs = (*ledger)->ListPeerLogs();
  if (!logs.ok()) return logs.status();
  c.peer_logs = *std::move(logs);
  absl::StatusOr<std::vector<v1::TrustListRecord>> lists = (*ledger)->ListTrustLists(0, 1'000'000);
  if (!lists.ok()) return lists.status();
  for (v1::TrustListRecord& r : *lists) c.trust_lists[r.sequence()] = std::move(r);
  return c;
}

}  // namespace

absl::StatusOr<int> RewriteLedger(const std::string& dir,
                                  const std::function<bool(v1::LedgerEntry&)>& edit) {
  absl::StatusOr<Contents> c = ReadAll(dir);
  if (!c.ok()) return c.status();
  std::map<std::string, size_t> last_of;  // certificate -> index of its last entry
  for (size_t i = 0; i < c->entries.size(); ++i) {
    if (!c->entries[i].certificate_number().empty())
      last_of[c->entries[i].certificate_number()] = i;
  }
  std::vector<storage::Transition> transitions;
  int changed = 0;
  for (size_t i = 0; i < c->entries.size(); ++i) {
    storage::Transition t;
    t.entry = c->entries[i];
    if (edit(t.entry)) ++changed;
    const std::string& number = t.entry.certificate_number();
    if (!number.empty() && last_of[number] == i && c->records.count(number) > 0) {
      t.record = c->records[number];
    }
    if (auto it = c->trust_lists.find(i + 1); it != c->trust_lists.end()) {
      t.trust_list = it->second;
    }
    if (t.entry.kind() == v1::RECEIVED_MESSAGE) {
      t.seen_message_id = t.entry.message_id();
      t.seen_value = SeenValue(i + 1);
    }
    transitions.push_back(std::move(t));
  }
  if (!transitions.empty()) {
    transitions.back().outbox_put = c->outbox;
    transitions.back().peer_logs = c->peer_logs;
  }
  const std::string rebuilt = dir + ".rewritten";
  {
    absl::StatusOr<std::unique_ptr<storage::Ledger>> out = storage::Ledger::Open(rebuilt);
    if (!out.ok()) return out.status();
    absl::StatusOr<std::vector<storage::Head>> heads = (*out)->AppendAll(std::move(transitions));
    if (!heads.ok()) return heads.status();
  }
  std::filesystem::remove_all(dir);
  std::filesystem::rename(rebuilt, dir);
  return changed;
}

}  // namespace kpx::testing
