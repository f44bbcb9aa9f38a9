// kpx/storage: the leaf each ledger entry adds to the ledger's RFC 9162
// Merkle tree (storage/merkle.h), in a fixed layout another implementation
// can rebuild (docs/protocol.md "Merkle tree"):
//
//   offset size
//        0    8  sequence, big-endian (the leaf's index is sequence - 1)
//        8    1  the entry's kind (kpx.v1.EntryKind)
//        9   32  SHA-256 of the entry bytes, as stored and chained
//       41   32  SHA-256 of the body of the signed message the entry holds
//                (its MessageDigest), or 32 zero bytes if it holds none
//
// The tree hashes LeafHash(leaf) = SHA-256(0x00 || leaf). The leaf is small
// and names the message, so a peer can check that our log holds its message
// without seeing our entry; whoever holds the entry can check entry_hash.
//
// Thread safety: pure functions.
#ifndef KPX_STORAGE_LOG_LEAF_H_
#define KPX_STORAGE_LOG_LEAF_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "kpx/v1/ledger.pb.h"

namespace kpx::storage {

inline constexpr size_t kLogLeafSize = 73;

struct LogLeaf {
  uint64_t sequence = 0;
  v1::EntryKind kind = v1::ENTRY_KIND_UNSPECIFIED;
  std::string entry_hash;      // 32 bytes
  std::string message_digest;  // 32 bytes, zeros if no message
};

// The leaf of `entry`, serialized as `entry_bytes` (the stored bytes).
LogLeaf LeafOf(const v1::LedgerEntry& entry, std::string_view entry_bytes);

std::string EncodeLogLeaf(const LogLeaf& leaf);
// InvalidArgument unless `bytes` is kLogLeafSize long with sequence >= 1.
absl::StatusOr<LogLeaf> DecodeLogLeaf(std::string_view bytes);

}  // namespace kpx::storage

#endif  // KPX_STORAGE_LOG_LEAF_H_
