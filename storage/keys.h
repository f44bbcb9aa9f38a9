// Internal to storage/: how keys and the head are laid out in RocksDB (see
// the column family table in ledger.h). Big-endian integers so that
// RocksDB's bytewise order is numeric order.
#ifndef KPX_STORAGE_KEYS_H_
#define KPX_STORAGE_KEYS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"
#include "storage/ledger.h"
#include "storage/merkle.h"

namespace kpx::storage::keys {

inline constexpr size_t kHashSize = 32;
inline constexpr char kHeadKey[] = "head";
inline constexpr char kTreeHeadKey[] = "tree_head";
inline constexpr char kOutboxItemPrefix = 'm';
inline constexpr char kOutboxDuePrefix = 'd';
inline constexpr char kOutboxRecipientDuePrefix = 'r';

inline void AppendBigEndian(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

// Reads 8 bytes; the caller checks the length.
inline uint64_t ReadBigEndian(std::string_view b) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(b[i]);
  return v;
}

inline std::string SequenceKey(uint64_t sequence) {
  std::string key;
  AppendBigEndian(sequence, &key);
  return key;
}

// nullopt if `key` is not an 8-byte log key.
// `trust` family: version, then the sequence of the entry that installed it.
inline std::string TrustListKey(uint64_t version, uint64_t sequence) {
  std::string key;
  AppendBigEndian(version, &key);
  AppendBigEndian(sequence, &key);
  return key;
}

inline std::optional<uint64_t> ParseSequenceKey(std::string_view key) {
  if (key.size() != 8) return std::nullopt;
  return ReadBigEndian(key);
}

inline std::string OutboxItemKey(std::string_view message_id) {
  std::string key(1, kOutboxItemPrefix);
  key.append(message_id);
  return key;
}

// Due times before 1970 are indexed as 1970: they are long overdue either
// way, and a negative number would sort after every positive one.
inline uint64_t DueMicros(const v1::OutboxItem& item) {
  const absl::Time due =
      absl::FromUnixSeconds(item.due_at().seconds()) + absl::Nanoseconds(item.due_at().nanos());
  const int64_t micros = absl::ToUnixMicros(due);
  return micros < 0 ? 0 : static_cast<uint64_t>(micros);
}

inline std::string OutboxDueKey(uint64_t due_micros, std::string_view message_id) {
  std::string key(1, kOutboxDuePrefix);
  AppendBigEndian(due_micros, &key);
  key.append(message_id);
  return key;
}

inline std::string OutboxDueKey(const v1::OutboxItem& item) {
  return OutboxDueKey(DueMicros(item), item.message_id());
}

// The per-recipient due index: 'r' + length byte + recipient + big-endian
// due micros + message id. Recipients are Participant codes (short).
inline std::string RecipientDuePrefix(std::string_view recipient) {
  std::string key(1, kOutboxRecipientDuePrefix);
  key.push_back(static_cast<char>(recipient.size() & 0xff));
  key.append(recipient.substr(0, 255));
  return key;
}

inline std::string RecipientDueKey(const v1::OutboxItem& item) {
  std::string key = RecipientDuePrefix(item.recipient());
  AppendBigEndian(DueMicros(item), &key);
  key.append(item.message_id());
  return key;
}

// The recipient a per-recipient due key is for; nullopt if malformed.
inline std::optional<std::string_view> ParseRecipientOfDueKey(std::string_view key) {
  if (key.size() < 2 || key[0] != kOutboxRecipientDuePrefix) return std::nullopt;
  const size_t n = static_cast<unsigned char>(key[1]);
  if (key.size() < 2 + n + 8) return std::nullopt;
  return key.substr(2, n);
}

struct DueKey {
  uint64_t due_micros;
  std::string_view message_id;
};

// Parses "prefix + big-endian due micros + message id" with a prefix of
// `prefix_size` bytes; nullopt if too short.
inline std::optional<DueKey> ParseDueKeyAfter(std::string_view key, size_t prefix_size) {
  if (key.size() < prefix_size + 8) return std::nullopt;
  return DueKey{ReadBigEndian(key.substr(prefix_size, 8)), key.substr(prefix_size + 8)};
}

// nullopt if `key` is not a due-index key.
inline std::optional<DueKey> ParseOutboxDueKey(std::string_view key) {
  if (key.empty() || key[0] != kOutboxDuePrefix) return std::nullopt;
  return ParseDueKeyAfter(key, 1);
}

// The head: sequence, chain hash, Merkle root (8 + 32 + 32 bytes).
inline std::string EncodeHead(const Head& head) {
  std::string value;
  AppendBigEndian(head.sequence, &value);
  value.append(head.hash);
  value.append(head.root);
  return value;
}

// nullopt unless `value` is 8 + 32 + 32 bytes, or 8 + 32 as written before
// the ledger kept a Merkle tree (root then empty: Open builds the tree).
inline std::optional<Head> DecodeHead(std::string_view value) {
  if (value.size() != 8 + kHashSize && value.size() != 8 + 2 * kHashSize) return std::nullopt;
  Head head;
  head.sequence = ReadBigEndian(value);
  head.hash = std::string(value.substr(8, kHashSize));
  head.root = std::string(value.substr(8 + kHashSize));
  return head;
}

inline Head EmptyHead() {
  Head head;
  head.hash = std::string(kHashSize, '\0');
  head.root = merkle::EmptyRoot();
  return head;
}

}  // namespace kpx::storage::keys

#endif  // KPX_STORAGE_KEYS_H_
