#include "storage/log_leaf.h"

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "storage/keys.h"

namespace kpx::storage {

LogLeaf LeafOf(const v1::LedgerEntry& entry, std::string_view entry_bytes) {
  LogLeaf leaf;
  leaf.sequence = entry.sequence();
  leaf.kind = entry.kind();
  leaf.entry_hash = crypto::Sha256(entry_bytes);
  leaf.message_digest = entry.has_message() ? crypto::Sha256(entry.message().body())
                                            : std::string(keys::kHashSize, '\0');
  return leaf;
}

std::string EncodeLogLeaf(const LogLeaf& leaf) {
  std::string out;
  out.reserve(kLogLeafSize);
  keys::AppendBigEndian(leaf.sequence, &out);
  out.push_back(static_cast<char>(static_cast<uint8_t>(leaf.kind)));
  out.append(leaf.entry_hash);
  out.append(leaf.message_digest);
  return out;
}

absl::StatusOr<LogLeaf> DecodeLogLeaf(std::string_view bytes) {
  if (bytes.size() != kLogLeafSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("log leaf has ", bytes.size(), " bytes, not ", kLogLeafSize));
  }
  LogLeaf leaf;
  leaf.sequence = keys::ReadBigEndian(bytes);
  if (leaf.sequence == 0) return absl::InvalidArgumentError("log leaf names sequence 0");
  leaf.kind = static_cast<v1::EntryKind>(static_cast<uint8_t>(bytes[8]));
  leaf.entry_hash = std::string(bytes.substr(9, keys::kHashSize));
  leaf.message_digest = std::string(bytes.substr(9 + keys::kHashSize, keys::kHashSize));
  return leaf;
}

}  // namespace kpx::storage
