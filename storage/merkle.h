// kpx/storage: an RFC 9162 (Certificate Transparency v2) Merkle tree over an
// append-only log, kept incrementally in a key-value store.
//
// Hashing (RFC 9162 section 2.1.1), SHA-256 throughout:
//   LeafHash(d)    = SHA-256(0x00 || d)
//   NodeHash(l, r) = SHA-256(0x01 || l || r)
//   MTH({})        = SHA-256("")
//   MTH(D[n])      = NodeHash(MTH(D[0:k]), MTH(D[k:n])), k the largest power
//                    of two smaller than n (n > 1); MTH({d}) = LeafHash(d).
//
// What is stored: the hash of every *perfect* subtree that is complete, keyed
// by (level, index): node (L, i) is MTH of leaves [i * 2^L, (i + 1) * 2^L).
// Level 0 holds the leaf hashes. Appending leaf n writes (0, n) and one node
// per level that leaf completes: 1 + (trailing zero bits of n + 1) values,
// never more than floor(log2(n + 1)) + 1. Right-edge subtrees that are not
// perfect are never stored; roots and proofs compose them from at most
// log2(n) + 1 stored nodes, so a root or proof for a tree of n leaves reads
// O(log n) values. Nodes are never rewritten: the hashes for any earlier
// tree size stay derivable, which is what consistency proofs need.
//
// Storage is the caller's: reads go through NodeStore; Append returns the
// writes, which the caller puts into its own (atomic) batch together with
// the entry. The caller owns the tree size (e.g. the ledger's head) and must
// only ask about sizes whose nodes it has written.
//
// Errors: InvalidArgument for a malformed request or proof (a hash not 32
// bytes, an index or size out of range, a proof of the wrong length);
// FailedPrecondition when a well-formed proof does not lead to the given
// root(s) (the claim is false: for a peer's consistency proof, a fork);
// DataLoss when the store lacks a node it should hold; anything else a
// NodeStore returns is passed on.
//
// Thread safety: the free functions hold no state and may be called from any
// thread; they are as thread-safe as the NodeStore they are given.
// MemoryNodeStore is not thread-safe.
#ifndef KPX_STORAGE_MERKLE_H_
#define KPX_STORAGE_MERKLE_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kpx::storage::merkle {

inline constexpr size_t kHashSize = 32;

std::string LeafHash(std::string_view entry_bytes);
// Both arguments are 32-byte hashes (not checked).
std::string NodeHash(std::string_view left, std::string_view right);
// SHA-256("") = e3b0c442...b855, the root of the empty tree.
std::string EmptyRoot();

// MTH over leaf hashes (not entry bytes), computed directly from the RFC's
// recursive definition: O(n) hashing. For tests and offline verification.
std::string RootFromLeaves(std::span<const std::string> leaf_hashes);

// Read access to stored nodes. Get returns the 32-byte hash of node
// (level, index), NotFound if it was never written, or another error.
class NodeStore {
 public:
  virtual ~NodeStore() = default;
  virtual absl::StatusOr<std::string> Get(int level, uint64_t index) const = 0;
};

// One value to store: node (level, index) has `hash`.
struct NodeWrite {
  int level = 0;
  uint64_t index = 0;
  std::string hash;
};

// A suggested key for a node in a bytewise-ordered store: one level byte and
// the big-endian index (9 bytes), so one level's nodes are contiguous.
std::string NodeKey(int level, uint64_t index);

struct AppendResult {
  std::vector<NodeWrite> writes;  // in the order they were computed
  std::string root;               // MTH of the tree after the append
};

// Appends `leaf_hashes` (each 32 bytes) to a tree of `tree_size` leaves whose
// nodes are in `store`. Returns the nodes to write and the new root; nothing
// is written here. Several leaves at once (one batch) see each other's nodes
// before they are stored. InvalidArgument for a hash of the wrong size.
absl::StatusOr<AppendResult> Append(const NodeStore& store, uint64_t tree_size,
                                    std::span<const std::string> leaf_hashes);

// The right edge of a tree of `size()` leaves: the roots of the perfect
// subtrees that tile its leaves left to right, largest first (one per set
// bit of the size). It is all an appender needs: adding a leaf merges it
// with the edge like a carry in binary addition, and the merges are exactly
// the nodes the leaf completes; the root folds the edge right to left. A
// copyable value; not thread-safe.
class Frontier {
 public:
  Frontier() = default;
  // The edge of the tree of `tree_size` leaves whose nodes are in `store`
  // (popcount(tree_size) reads).
  static absl::StatusOr<Frontier> Load(const NodeStore& store, uint64_t tree_size);

  uint64_t size() const { return size_; }
  // Adds leaf `size()` with `leaf_hash` (32 bytes, not checked); returns the
  // nodes to store, the leaf itself first, as Append would.
  std::vector<NodeWrite> Add(std::string leaf_hash);
  // MTH of the tree; EmptyRoot() when empty.
  std::string Root() const;

 private:
  uint64_t size_ = 0;
  std::vector<std::string> edge_;  // largest subtree first
};

// MTH of the first `tree_size` leaves; EmptyRoot() for 0.
absl::StatusOr<std::string> Root(const NodeStore& store, uint64_t tree_size);

// The audit path of leaf `leaf_index` in the tree of the first `tree_size`
// leaves (RFC 9162 2.1.3.1), deepest sibling first. InvalidArgument unless
// leaf_index < tree_size.
absl::StatusOr<std::vector<std::string>> InclusionProof(const NodeStore& store, uint64_t leaf_index,
                                                        uint64_t tree_size);

// The consistency proof between the trees of the first `old_size` and
// `new_size` leaves (RFC 9162 2.1.4.1). Empty when old_size is 0 or equal to
// new_size. InvalidArgument if old_size > new_size.
absl::StatusOr<std::vector<std::string>> ConsistencyProof(const NodeStore& store, uint64_t old_size,
                                                          uint64_t new_size);

// RFC 9162 2.1.3.2: OK if `proof` shows that `leaf_hash` is leaf `leaf_index`
// of the tree of `tree_size` leaves whose root is `root`.
absl::Status VerifyInclusion(std::string_view leaf_hash, uint64_t leaf_index, uint64_t tree_size,
                             std::span<const std::string> proof, std::string_view root);

// RFC 9162 2.1.4.2: OK if `proof` shows that the tree (old_size, old_root) is
// a prefix of the tree (new_size, new_root). Sizes equal: the proof must be
// empty and the roots equal. old_size 0: the proof must be empty and old_root
// must be EmptyRoot() (every tree extends the empty one).
absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size, std::string_view old_root,
                               std::string_view new_root, std::span<const std::string> proof);

// NodeStore in a std::map, for tests and tools. Counts Gets so tests can check
// how many reads a proof costs.
class MemoryNodeStore : public NodeStore {
 public:
  absl::StatusOr<std::string> Get(int level, uint64_t index) const override;
  void Apply(std::span<const NodeWrite> writes);
  size_t size() const { return nodes_.size(); }
  uint64_t gets() const { return gets_; }
  void ResetGets() { gets_ = 0; }

 private:
  std::map<std::pair<int, uint64_t>, std::string> nodes_;
  mutable uint64_t gets_ = 0;
};

}  // namespace kpx::storage::merkle

#endif  // KPX_STORAGE_MERKLE_H_
