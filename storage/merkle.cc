// RFC 9162 Merkle tree: hashing, incremental append, proofs from stored
// perfect subtrees, and the RFC's iterative verifiers.
#include "storage/merkle.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "crypto/crypto.h"

namespace kpx::storage::merkle {
namespace {

// No path in a tree of up to 2^64 - 1 leaves is longer.
constexpr size_t kMaxDepth = 64;

// Leaves [begin, end) of the tree.
struct Range {
  uint64_t begin;
  uint64_t end;
};

// The largest power of two strictly smaller than n (n > 1): RFC 9162's k.
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

absl::StatusOr<std::string> GetNode(const NodeStore& store, int level, uint64_t index) {
  absl::StatusOr<std::string> hash = store.Get(level, index);
  if (absl::IsNotFound(hash.status())) {
    return absl::DataLossError(
        absl::StrCat("merkle node (", level, ", ", index, ") is missing from the store"));
  }
  if (!hash.ok()) return hash.status();
  if (hash->size() != kHashSize) {
    return absl::DataLossError(absl::StrCat("merkle node (", level, ", ", index, ") has ",
                                            hash->size(), " bytes, not ", kHashSize));
  }
  return hash;
}

// MTH of leaves [begin, end), composed from the stored perfect subtrees that
// tile it left to right (largest first). Every range the RFC's recursion
// visits is aligned so that those subtrees exist: at most log2(n) + 1 reads.
absl::StatusOr<std::string> RangeHash(const NodeStore& store, Range r) {
  std::vector<std::string> pieces;
  pieces.reserve(kMaxDepth);
  for (uint64_t pos = r.begin; pos < r.end;) {
    const uint64_t width = std::bit_floor(r.end - pos);
    if (pos % width != 0) {
      return absl::InternalError(
          absl::StrCat("merkle range [", r.begin, ", ", r.end, ") is not made of stored subtrees"));
    }
    const int level = std::countr_zero(width);
    absl::StatusOr<std::string> piece = GetNode(store, level, pos >> level);
    if (!piece.ok()) return piece.status();
    pieces.push_back(*std::move(piece));
    pos += width;
  }
  std::string hash = pieces.back();
  for (size_t i = pieces.size() - 1; i-- > 0;) hash = NodeHash(pieces[i], hash);
  return hash;
}

// The subtrees whose hashes make up PATH(index, D[0:size]), root side first.
std::vector<Range> InclusionRanges(uint64_t index, uint64_t size) {
  std::vector<Range> ranges;
  ranges.reserve(kMaxDepth);
  Range node{0, size};
  while (node.end - node.begin > 1) {
    const uint64_t mid = node.begin + SplitPoint(node.end - node.begin);
    if (index < mid) {
      ranges.push_back({mid, node.end});
      node.end = mid;
    } else {
      ranges.push_back({node.begin, mid});
      node.begin = mid;
    }
  }
  return ranges;
}

// The subtrees whose hashes make up PROOF(old_size, D[0:new_size]), root
// side first (0 < old_size <= new_size).
std::vector<Range> ConsistencyRanges(uint64_t old_size, uint64_t new_size) {
  std::vector<Range> ranges;
  ranges.reserve(kMaxDepth + 1);
  Range node{0, new_size};
  bool whole_old_tree = true;  // SUBPROOF's b: still on the old tree's root
  while (old_size != node.end) {
    const uint64_t mid = node.begin + SplitPoint(node.end - node.begin);
    if (old_size <= mid) {
      ranges.push_back({mid, node.end});
      node.end = mid;
    } else {
      ranges.push_back({node.begin, mid});
      node.begin = mid;
      whole_old_tree = false;
    }
  }
  if (!whole_old_tree) ranges.push_back(node);
  return ranges;
}

absl::StatusOr<std::vector<std::string>> HashesOf(const NodeStore& store,
                                                  const std::vector<Range>& ranges) {
  std::vector<std::string> proof;
  proof.reserve(ranges.size());
  for (auto it = ranges.rbegin(); it != ranges.rend(); ++it) {
    absl::StatusOr<std::string> hash = RangeHash(store, *it);
    if (!hash.ok()) return hash.status();
    proof.push_back(*std::move(hash));
  }
  return proof;
}

absl::Status CheckHash(std::string_view hash, absl::string_view what) {
  if (hash.size() == kHashSize) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " has ", hash.size(), " bytes, not ", kHashSize));
}

absl::Status CheckProof(std::span<const std::string> proof, size_t expected,
                        absl::string_view what) {
  if (proof.size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", proof.size(), " hashes, not ", expected));
  }
  for (size_t i = 0; i < proof.size(); ++i) {
    if (proof[i].size() != kHashSize) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " element ", i, " has ", proof[i].size(), " bytes, not ", kHashSize));
    }
  }
  return absl::OkStatus();
}

// Right-shifts fn and sn together until LSB(fn) is set or fn is 0.
void ShiftWhileEven(uint64_t& fn, uint64_t& sn) {
  while ((fn & 1) == 0 && fn != 0) {
    fn >>= 1;
    sn >>= 1;
  }
}

// Reads fall through to `base` except for nodes written earlier in the same
// Append.
class PendingStore : public NodeStore {
 public:
  explicit PendingStore(const NodeStore& base) : base_(base) {}
  absl::StatusOr<std::string> Get(int level, uint64_t index) const override {
    auto it = pending_.find({level, index});
    if (it != pending_.end()) return it->second;
    return base_.Get(level, index);
  }
  void Put(const NodeWrite& w) { pending_[{w.level, w.index}] = w.hash; }

 private:
  const NodeStore& base_;
  std::map<std::pair<int, uint64_t>, std::string> pending_;
};

}  // namespace

std::string LeafHash(std::string_view entry_bytes) {
  std::string input(1, '\x00');
  input.append(entry_bytes);
  return crypto::Sha256(input);
}

std::string NodeHash(std::string_view left, std::string_view right) {
  char input[1 + 2 * kHashSize];
  if (left.size() != kHashSize || right.size() != kHashSize) {
    std::string long_input(1, '\x01');
    long_input.append(left).append(right);
    return crypto::Sha256(long_input);
  }
  input[0] = '\x01';
  left.copy(input + 1, kHashSize);
  right.copy(input + 1 + kHashSize, kHashSize);
  return crypto::Sha256(std::string_view(input, sizeof input));
}

std::string EmptyRoot() { return crypto::Sha256(""); }

std::string RootFromLeaves(std::span<const std::string> leaf_hashes) {
  if (leaf_hashes.empty()) return EmptyRoot();
  if (leaf_hashes.size() == 1) return leaf_hashes[0];
  const size_t k = SplitPoint(leaf_hashes.size());
  return NodeHash(RootFromLeaves(leaf_hashes.first(k)), RootFromLeaves(leaf_hashes.subspan(k)));
}

std::string NodeKey(int level, uint64_t index) {
  std::string key(1, static_cast<char>(level));
  for (int shift = 56; shift >= 0; shift -= 8) {
    key.push_back(static_cast<char>((index >> shift) & 0xff));
  }
  return key;
}

absl::StatusOr<AppendResult> Append(const NodeStore& store, uint64_t tree_size,
                                    std::span<const std::string> leaf_hashes) {
  for (const std::string& leaf : leaf_hashes) {
    if (absl::Status s = CheckHash(leaf, "leaf hash"); !s.ok()) return s;
  }
  PendingStore pending(store);
  AppendResult result;
  for (const std::string& leaf : leaf_hashes) {
    NodeWrite w{0, tree_size, leaf};
    // Each odd index completes its parent: climb while it is a right child.
    while (true) {
      pending.Put(w);
      result.writes.push_back(w);
      if ((w.index & 1) == 0) break;
      absl::StatusOr<std::string> left = GetNode(pending, w.level, w.index - 1);
      if (!left.ok()) return left.status();
      w = NodeWrite{w.level + 1, w.index >> 1, NodeHash(*left, w.hash)};
    }
    ++tree_size;
  }
  absl::StatusOr<std::string> root = Root(pending, tree_size);
  if (!root.ok()) return root.status();
  result.root = *std::move(root);
  return result;
}

absl::StatusOr<Frontier> Frontier::Load(const NodeStore& store, uint64_t tree_size) {
  Frontier f;
  for (uint64_t pos = 0; pos < tree_size;) {
    const uint64_t width = std::bit_floor(tree_size - pos);
    const int level = std::countr_zero(width);
    absl::StatusOr<std::string> hash = GetNode(store, level, pos >> level);
    if (!hash.ok()) return hash.status();
    f.edge_.push_back(*std::move(hash));
    pos += width;
  }
  f.size_ = tree_size;
  return f;
}

std::vector<NodeWrite> Frontier::Add(std::string leaf_hash) {
  std::vector<NodeWrite> writes;
  NodeWrite w{0, size_, std::move(leaf_hash)};
  // Each odd index completes its parent with the edge's smallest subtree.
  while (true) {
    writes.push_back(w);
    if ((w.index & 1) == 0) break;
    w = NodeWrite{w.level + 1, w.index >> 1, NodeHash(edge_.back(), w.hash)};
    edge_.pop_back();
  }
  edge_.push_back(w.hash);
  ++size_;
  return writes;
}

std::string Frontier::Root() const {
  if (edge_.empty()) return EmptyRoot();
  std::string hash = edge_.back();
  for (size_t i = edge_.size() - 1; i-- > 0;) hash = NodeHash(edge_[i], hash);
  return hash;
}

absl::StatusOr<std::string> Root(const NodeStore& store, uint64_t tree_size) {
  if (tree_size == 0) return EmptyRoot();
  return RangeHash(store, {0, tree_size});
}

absl::StatusOr<std::vector<std::string>> InclusionProof(const NodeStore& store, uint64_t leaf_index,
                                                        uint64_t tree_size) {
  if (leaf_index >= tree_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf ", leaf_index, " is not in a tree of ", tree_size, " leaves"));
  }
  return HashesOf(store, InclusionRanges(leaf_index, tree_size));
}

absl::StatusOr<std::vector<std::string>> ConsistencyProof(const NodeStore& store, uint64_t old_size,
                                                          uint64_t new_size) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("no consistency proof from ", old_size, " leaves back to ", new_size));
  }
  if (old_size == 0) return std::vector<std::string>{};
  return HashesOf(store, ConsistencyRanges(old_size, new_size));
}

absl::Status VerifyInclusion(std::string_view leaf_hash, uint64_t leaf_index, uint64_t tree_size,
                             std::span<const std::string> proof, std::string_view root) {
  if (leaf_index >= tree_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf ", leaf_index, " is not in a tree of ", tree_size, " leaves"));
  }
  if (absl::Status s = CheckHash(leaf_hash, "leaf hash"); !s.ok()) return s;
  if (absl::Status s = CheckHash(root, "root"); !s.ok()) return s;
  const size_t expected = InclusionRanges(leaf_index, tree_size).size();
  if (absl::Status s = CheckProof(proof, expected, "inclusion proof"); !s.ok()) return s;
  uint64_t fn = leaf_index;
  uint64_t sn = tree_size - 1;
  std::string r(leaf_hash);
  for (const std::string& p : proof) {
    if (sn == 0) return absl::InvalidArgumentError("inclusion proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      r = NodeHash(p, r);
      ShiftWhileEven(fn, sn);
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::InvalidArgumentError("inclusion proof is too short");
  if (r != root) {
    return absl::FailedPreconditionError(absl::StrCat("inclusion proof for leaf ", leaf_index,
                                                      " of ", tree_size,
                                                      " does not lead to the given root"));
  }
  return absl::OkStatus();
}

namespace {

// VerifyConsistency when the sizes are equal or the old tree is empty.
absl::Status VerifyTrivialConsistency(uint64_t old_size, uint64_t new_size,
                                      std::string_view old_root, std::string_view new_root,
                                      std::span<const std::string> proof) {
  if (!proof.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("consistency proof from ", old_size, " to ",
                                                   new_size, " must be empty, has ", proof.size(),
                                                   " hashes"));
  }
  if (old_size == 0 && old_root != EmptyRoot()) {
    return absl::FailedPreconditionError("the root of an empty tree is not SHA-256(\"\")");
  }
  if (old_size == new_size && old_root != new_root) {
    return absl::FailedPreconditionError(
        absl::StrCat("two different roots for the same tree size ", old_size));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status VerifyConsistency(uint64_t old_size, uint64_t new_size, std::string_view old_root,
                               std::string_view new_root, std::span<const std::string> proof) {
  if (old_size > new_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree size went back from ", old_size, " to ", new_size));
  }
  if (absl::Status s = CheckHash(old_root, "old root"); !s.ok()) return s;
  if (absl::Status s = CheckHash(new_root, "new root"); !s.ok()) return s;
  if (old_size == 0 || old_size == new_size) {
    return VerifyTrivialConsistency(old_size, new_size, old_root, new_root, proof);
  }
  const size_t expected = ConsistencyRanges(old_size, new_size).size();
  if (absl::Status s = CheckProof(proof, expected, "consistency proof"); !s.ok()) return s;
  // RFC step 2: a power-of-two old tree is itself the first node.
  std::vector<std::string_view> path;
  path.reserve(proof.size() + 1);
  if (std::has_single_bit(old_size)) path.push_back(old_root);
  path.insert(path.end(), proof.begin(), proof.end());
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  std::string fr(path[0]);
  std::string sr(path[0]);
  for (size_t i = 1; i < path.size(); ++i) {
    if (sn == 0) return absl::InvalidArgumentError("consistency proof is too long");
    if ((fn & 1) != 0 || fn == sn) {
      fr = NodeHash(path[i], fr);
      sr = NodeHash(path[i], sr);
      ShiftWhileEven(fn, sn);
    } else {
      sr = NodeHash(sr, path[i]);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return absl::InvalidArgumentError("consistency proof is too short");
  if (fr != old_root || sr != new_root) {
    return absl::FailedPreconditionError(
        absl::StrCat("tree of ", new_size, " leaves does not extend the tree of ", old_size,
                     fr != old_root ? " (old root differs)" : " (new root differs)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryNodeStore::Get(int level, uint64_t index) const {
  ++gets_;
  auto it = nodes_.find({level, index});
  if (it == nodes_.end()) {
    return absl::NotFoundError(absl::StrCat("no node (", level, ", ", index, ")"));
  }
  return it->second;
}

void MemoryNodeStore::Apply(std::span<const NodeWrite> writes) {
  for (const NodeWrite& w : writes) nodes_[{w.level, w.index}] = w.hash;
}

}  // namespace kpx::storage::merkle
