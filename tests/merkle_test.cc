// storage/merkle.h: RFC 9162 hashing, the incremental tree, and inclusion and
// consistency proofs, against published vectors and against a second,
// recursive implementation of the RFC's definitions written here.
#include "storage/merkle.h"

#include <bit>
#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"

namespace kpx::storage::merkle {
namespace {

using Hashes = std::vector<std::string>;

std::string Hex(const char* h) { return absl::HexStringToBytes(h); }

// --- The RFC 9162 section 2.1 definitions, written directly -------------
// Over leaf hashes [lo, hi); SHA-256 with the RFC's prefixes spelled
// out, independent of merkle.cc.

std::string RefLeaf(std::string_view d) {
  return crypto::Sha256(std::string(1, '\0') + std::string(d));
}

// The RFC's MTH, PATH and PROOF over fixed leaf hashes. MTH is memoized per
// range so that comparing every proof for 1..100 leaves stays fast.
class Reference {
 public:
  explicit Reference(Hashes leaves) : leaves_(std::move(leaves)) {}

  std::string Mth(uint64_t lo, uint64_t hi) {
    const uint64_t n = hi - lo;
    if (n == 0) return crypto::Sha256("");
    if (n == 1) return leaves_[lo];
    std::string& memo = mth_[{lo, hi}];
    if (memo.empty()) memo = crypto::Sha256("\x01" + Mth(lo, lo + K(n)) + Mth(lo + K(n), hi));
    return memo;
  }

  // PATH(m, D[lo:hi]), m relative to lo.
  Hashes Path(uint64_t m, uint64_t lo, uint64_t hi) {
    const uint64_t n = hi - lo;
    if (n == 1) return {};
    const uint64_t k = K(n);
    Hashes path = m < k ? Path(m, lo, lo + k) : Path(m - k, lo + k, hi);
    path.push_back(m < k ? Mth(lo + k, hi) : Mth(lo, lo + k));
    return path;
  }

  // SUBPROOF(m, D[lo:hi], b).
  Hashes Subproof(uint64_t m, uint64_t lo, uint64_t hi, bool b) {
    const uint64_t n = hi - lo;
    if (m == n) return b ? Hashes{} : Hashes{Mth(lo, hi)};
    const uint64_t k = K(n);
    Hashes proof = m <= k ? Subproof(m, lo, lo + k, b) : Subproof(m - k, lo + k, hi, false);
    proof.push_back(m <= k ? Mth(lo + k, hi) : Mth(lo, lo + k));
    return proof;
  }

 private:
  // The largest power of two smaller than n (n > 1).
  static uint64_t K(uint64_t n) {
    uint64_t k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  }

  const Hashes leaves_;
  std::map<std::pair<uint64_t, uint64_t>, std::string> mth_;
};

// --- Fixtures -----------------------------------------------------------

// The leaf inputs of the RFC 6962 reference test data, as published in
// github.com/transparency-dev/merkle testonly/constants.go (LeafInputs).
Hashes CtEntries() {
  return {"",
          Hex("00"),
          Hex("10"),
          Hex("2021"),
          Hex("3031"),
          Hex("40414243"),
          Hex("5051525354555657"),
          Hex("606162636465666768696a6b6c6d6e6f")};
}

// 100 distinct entries: the eight CT inputs, then "entry 8" ... "entry 99".
Hashes Entries() {
  Hashes entries = CtEntries();
  for (int i = 8; i < 100; ++i) entries.push_back(absl::StrCat("entry ", i));
  return entries;
}

Hashes LeafHashes(const Hashes& entries) {
  Hashes leaves;
  for (const std::string& e : entries) leaves.push_back(LeafHash(e));
  return leaves;
}

// A store holding the tree of all `leaves`, appended one at a time.
MemoryNodeStore Build(const Hashes& leaves) {
  MemoryNodeStore store;
  for (uint64_t i = 0; i < leaves.size(); ++i) {
    absl::StatusOr<AppendResult> r = Append(store, i, std::span(&leaves[i], 1));
    REQUIRE(r.ok());
    store.Apply(r->writes);
  }
  return store;
}

int CeilLog2(uint64_t n) { return n <= 1 ? 0 : std::bit_width(n - 1); }

std::string FlippedHash(std::string h) {
  h[0] ^= 1;
  return h;
}

// --- Hashing and published vectors -------------------------------------

TEST_CASE("hashes follow RFC 9162 2.1.1", "[merkle]") {
  CHECK(crypto::HexEncode(EmptyRoot()) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(RootFromLeaves({}) == EmptyRoot());
  CHECK(LeafHash("abc") == RefLeaf("abc"));
  const std::string a = LeafHash("a"), b = LeafHash("b");
  CHECK(NodeHash(a, b) == crypto::Sha256("\x01" + a + b));
  CHECK(NodeHash(a, b) != NodeHash(b, a));
  // A leaf and a node over the same bytes never collide (domain separation).
  CHECK(LeafHash(a + b) != NodeHash(a, b));
}

// Roots of the trees of the first 0..8 CT leaf inputs, from
// github.com/transparency-dev/merkle testonly/constants.go (RootHashes), the
// RFC 6962 reference data also used by certificate-transparency and trillian.
TEST_CASE("roots match the published RFC 6962 test vectors", "[merkle]") {
  const Hashes want = {"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                       "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                       "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                       "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
                       "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                       "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
                       "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
                       "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
                       "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  const Hashes leaves = LeafHashes(CtEntries());
  const MemoryNodeStore store = Build(leaves);
  for (uint64_t n = 0; n <= 8; ++n) {
    INFO("size " << n);
    CHECK(crypto::HexEncode(RootFromLeaves(std::span(leaves).first(n))) == want[n]);
    absl::StatusOr<std::string> root = Root(store, n);
    REQUIRE(root.ok());
    CHECK(crypto::HexEncode(*root) == want[n]);
  }
}

std::vector<std::string> HexAll(const absl::StatusOr<Hashes>& proof) {
  REQUIRE(proof.ok());
  std::vector<std::string> out;
  for (const std::string& h : *proof) out.push_back(crypto::HexEncode(h));
  return out;
}

// Proofs from github.com/transparency-dev/merkle proof/verify_test.go
// (inclusionProofs, with its 1-based leaf numbers made 0-based, and
// consistencyProofs), over the same eight CT leaf inputs.
TEST_CASE("proofs match the published RFC 6962 test vectors", "[merkle]") {
  const MemoryNodeStore store = Build(LeafHashes(CtEntries()));
  const std::string h96 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7";
  const std::string h5f = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e";
  const std::string h6b = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4";
  const std::string hbc = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b";
  const std::string hca = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0";
  const std::string hd3 = "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7";
  const std::string h0e = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a";
  const std::string hb0 = "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f";
  const std::string hfa = "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125";
  const std::string h6e = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
  CHECK(HexAll(InclusionProof(store, 0, 1)).empty());
  CHECK(HexAll(InclusionProof(store, 0, 8)) == Hashes{h96, h5f, h6b});
  CHECK(HexAll(InclusionProof(store, 5, 8)) == Hashes{hbc, hca, hd3});
  CHECK(HexAll(InclusionProof(store, 2, 3)) == Hashes{hfa});
  CHECK(HexAll(InclusionProof(store, 1, 5)) == Hashes{h6e, h5f, hbc});
  CHECK(HexAll(ConsistencyProof(store, 1, 1)).empty());
  CHECK(HexAll(ConsistencyProof(store, 1, 8)) == Hashes{h96, h5f, h6b});
  CHECK(HexAll(ConsistencyProof(store, 6, 8)) == Hashes{h0e, hca, hd3});
  CHECK(HexAll(ConsistencyProof(store, 2, 5)) == Hashes{h5f, hbc});
  CHECK(HexAll(ConsistencyProof(store, 6, 7)) == Hashes{h0e, hb0, hd3});
}

// --- Exhaustive, 1..100 leaves -----------------------------------------

TEST_CASE("incremental roots equal MTH for 1..100 leaves; appends write O(log n)", "[merkle]") {
  const Hashes entries = Entries();
  const Hashes leaves = LeafHashes(entries);
  Hashes ref_leaves;
  for (const std::string& e : entries) ref_leaves.push_back(RefLeaf(e));
  REQUIRE(ref_leaves == leaves);
  Reference ref(leaves);
  MemoryNodeStore store;
  for (uint64_t n = 1; n <= leaves.size(); ++n) {
    INFO("size " << n);
    absl::StatusOr<AppendResult> r = Append(store, n - 1, std::span(&leaves[n - 1], 1));
    REQUIRE(r.ok());
    CHECK(r->writes.size() <= static_cast<size_t>(CeilLog2(n) + 1));
    CHECK(r->writes.size() == static_cast<size_t>(1 + std::countr_zero(n)));
    store.Apply(r->writes);
    const std::string want = ref.Mth(0, n);
    CHECK(r->root == want);
    CHECK(RootFromLeaves(std::span(leaves).first(n)) == want);
    store.ResetGets();
    CHECK(Root(store, n).value() == want);
    CHECK(store.gets() == static_cast<uint64_t>(std::popcount(n)));
  }
  // Every perfect subtree, and nothing else: 2n - popcount(n) nodes.
  CHECK(store.size() == 2 * 100 - std::popcount(100u));
}

TEST_CASE("appending in batches stores the same nodes as one at a time", "[merkle]") {
  const Hashes leaves = LeafHashes(Entries());
  const MemoryNodeStore single = Build(leaves);
  MemoryNodeStore batched;
  uint64_t size = 0;
  for (uint64_t chunk = 1; size < leaves.size(); chunk = chunk % 7 + 1) {
    const uint64_t take = std::min<uint64_t>(chunk, leaves.size() - size);
    absl::StatusOr<AppendResult> r = Append(batched, size, std::span(leaves).subspan(size, take));
    REQUIRE(r.ok());
    batched.Apply(r->writes);
    size += take;
    CHECK(r->root == RootFromLeaves(std::span(leaves).first(size)));
  }
  REQUIRE(batched.size() == single.size());
  for (int level = 0; level < 7; ++level) {
    for (uint64_t i = 0; (i + 1) << level <= 100; ++i) {
      CHECK(batched.Get(level, i).value() == single.Get(level, i).value());
    }
  }
}

TEST_CASE("a frontier appends the same nodes and roots as Append, and loads at every size",
          "[merkle]") {
  const Hashes leaves = LeafHashes(Entries());
  Reference ref(leaves);
  MemoryNodeStore store;
  Frontier edge;
  for (uint64_t n = 1; n <= leaves.size(); ++n) {
    INFO("size " << n);
    absl::StatusOr<AppendResult> r = Append(store, n - 1, std::span(&leaves[n - 1], 1));
    REQUIRE(r.ok());
    const std::vector<NodeWrite> writes = edge.Add(leaves[n - 1]);
    REQUIRE(writes.size() == r->writes.size());
    for (size_t i = 0; i < writes.size(); ++i) {
      CHECK(writes[i].level == r->writes[i].level);
      CHECK(writes[i].index == r->writes[i].index);
      CHECK(writes[i].hash == r->writes[i].hash);
    }
    store.Apply(r->writes);
    CHECK(edge.size() == n);
    CHECK(edge.Root() == ref.Mth(0, n));
    store.ResetGets();
    absl::StatusOr<Frontier> loaded = Frontier::Load(store, n);
    REQUIRE(loaded.ok());
    CHECK(store.gets() == static_cast<uint64_t>(std::popcount(n)));
    CHECK(loaded->Root() == edge.Root());
  }
  CHECK(Frontier().Root() == EmptyRoot());
  CHECK(absl::IsDataLoss(Frontier::Load(MemoryNodeStore(), 3).status()));
}

// What `verify` must refuse of a valid `proof`: a bit flipped in each
// element in turn (FailedPrecondition: it no longer leads to the root), and
// the wrong length (InvalidArgument): `extra` appended, or the last element
// dropped while more than `keep` remain.
void CheckAlteredProof(Hashes proof, const std::string& extra, size_t keep,
                       const std::function<absl::Status(const Hashes&)>& verify) {
  for (std::string& element : proof) {
    element[7] ^= 0x20;
    CHECK(absl::IsFailedPrecondition(verify(proof)));
    element[7] ^= 0x20;
  }
  Hashes longer = proof;
  longer.push_back(extra);
  CHECK(absl::IsInvalidArgument(verify(longer)));
  if (proof.size() > keep) {
    const Hashes shorter(proof.begin(), proof.end() - 1);
    CHECK(absl::IsInvalidArgument(verify(shorter)));
  }
}

// Each altered claim about leaf m of the tree of n leaves is refused. (A
// different size with the same root is not among them: the verifier takes
// the (size, root) pair as given by a signed tree head.)
void CheckInclusionRefusals(const Hashes& leaves, const Hashes& roots, uint64_t m, uint64_t n,
                            Hashes proof) {
  const std::string& leaf = leaves[m];
  const std::string& root = roots[n];
  for (uint64_t other : {m - 1, m + 1}) {
    if (other < n && other != m) CHECK_FALSE(VerifyInclusion(leaf, other, n, proof, root).ok());
  }
  CHECK(absl::IsFailedPrecondition(VerifyInclusion(leaves[(m + 1) % 100], m, n, proof, root)));
  // The root of the next smaller tree (of the empty tree for n = 1).
  CHECK(absl::IsFailedPrecondition(VerifyInclusion(leaf, m, n, proof, roots[n - 1])));
  CheckAlteredProof(proof, root, 0,
                    [&](const Hashes& p) { return VerifyInclusion(leaf, m, n, p, root); });
  if (!proof.empty()) {
    Hashes cut = proof;
    cut[0].pop_back();
    CHECK(absl::IsInvalidArgument(VerifyInclusion(leaf, m, n, cut, root)));
  }
}

TEST_CASE("every inclusion proof for 1..100 leaves verifies, and no altered one", "[merkle]") {
  const Hashes leaves = LeafHashes(Entries());
  MemoryNodeStore store = Build(leaves);
  Reference ref(leaves);
  Hashes roots;
  for (uint64_t n = 0; n <= 100; ++n) roots.push_back(ref.Mth(0, n));
  for (uint64_t n = 1; n <= 100; ++n) {
    for (uint64_t m = 0; m < n; ++m) {
      INFO("leaf " << m << " of " << n);
      store.ResetGets();
      absl::StatusOr<Hashes> proof = InclusionProof(store, m, n);
      REQUIRE(proof.ok());
      CHECK(store.gets() <= static_cast<uint64_t>(2 * CeilLog2(n) + 1));
      CHECK(proof->size() <= static_cast<size_t>(CeilLog2(n)));
      REQUIRE(*proof == ref.Path(m, 0, n));
      REQUIRE(VerifyInclusion(leaves[m], m, n, *proof, roots[n]).ok());
      CheckInclusionRefusals(leaves, roots, m, n, *proof);
    }
  }
}

void CheckConsistencyRefusals(const Hashes& roots, uint64_t m, uint64_t n, Hashes proof) {
  const std::string& r1 = roots[m];
  const std::string& r2 = roots[n];
  if (m > 1) CHECK_FALSE(VerifyConsistency(m - 1, n, r1, r2, proof).ok());
  if (m < n) {
    CHECK_FALSE(VerifyConsistency(m + 1, n, r1, r2, proof).ok());
    CHECK(absl::IsFailedPrecondition(VerifyConsistency(m, n, r2, r1, proof)));
    CHECK(absl::IsInvalidArgument(VerifyConsistency(m, n, r1, r2, {})));
  }
  CHECK(absl::IsFailedPrecondition(VerifyConsistency(m, n, FlippedHash(r1), r2, proof)));
  CHECK(absl::IsFailedPrecondition(VerifyConsistency(m, n, r1, FlippedHash(r2), proof)));
  CheckAlteredProof(proof, r2, 1,
                    [&](const Hashes& p) { return VerifyConsistency(m, n, r1, r2, p); });
}

TEST_CASE("every consistency proof for 1 <= m <= n <= 100 verifies, and no altered one",
          "[merkle]") {
  const Hashes leaves = LeafHashes(Entries());
  MemoryNodeStore store = Build(leaves);
  Reference ref(leaves);
  Hashes roots;
  for (uint64_t n = 0; n <= 100; ++n) roots.push_back(ref.Mth(0, n));
  for (uint64_t n = 1; n <= 100; ++n) {
    for (uint64_t m = 1; m <= n; ++m) {
      INFO("from " << m << " to " << n);
      store.ResetGets();
      absl::StatusOr<Hashes> proof = ConsistencyProof(store, m, n);
      REQUIRE(proof.ok());
      CHECK(store.gets() <= static_cast<uint64_t>(2 * CeilLog2(n) + 2));
      REQUIRE(*proof == ref.Subproof(m, 0, n, true));
      REQUIRE(VerifyConsistency(m, n, roots[m], roots[n], *proof).ok());
      CheckConsistencyRefusals(roots, m, n, *proof);
    }
    // From the empty tree: no proof, and the old root must be SHA-256("").
    CHECK(ConsistencyProof(store, 0, n).value().empty());
    CHECK(VerifyConsistency(0, n, EmptyRoot(), roots[n], {}).ok());
    CHECK(absl::IsFailedPrecondition(VerifyConsistency(0, n, roots[1], roots[n], {})));
  }
}

// --- Bad requests -------------------------------------------------------

TEST_CASE("bad requests are refused with a clear status", "[merkle]") {
  const Hashes leaves = LeafHashes(CtEntries());
  MemoryNodeStore store = Build(leaves);
  const std::string root = Root(store, 8).value();
  // Beyond what was written: the store lacks nodes.
  CHECK(absl::IsDataLoss(Root(store, 9).status()));
  CHECK(absl::IsDataLoss(InclusionProof(store, 0, 9).status()));
  CHECK(absl::IsInvalidArgument(InclusionProof(store, 8, 8).status()));
  CHECK(absl::IsInvalidArgument(InclusionProof(store, 0, 0).status()));
  CHECK(absl::IsInvalidArgument(ConsistencyProof(store, 5, 4).status()));
  // A leaf of the wrong size is refused and nothing is returned to write.
  const std::string short_leaf(31, 'x');
  absl::StatusOr<AppendResult> bad = Append(store, 8, std::span(&short_leaf, 1));
  CHECK(absl::IsInvalidArgument(bad.status()));
  const Hashes proof = InclusionProof(store, 3, 8).value();
  CHECK(absl::IsInvalidArgument(VerifyInclusion(leaves[3], 8, 8, proof, root)));
  CHECK(absl::IsInvalidArgument(VerifyInclusion(leaves[3], 3, 8, proof, root.substr(1))));
  CHECK(absl::IsInvalidArgument(VerifyInclusion("short", 3, 8, proof, root)));
  CHECK(absl::IsInvalidArgument(VerifyConsistency(8, 4, root, root, {})));
  CHECK(absl::IsInvalidArgument(VerifyConsistency(4, 4, root, root, proof)));
  CHECK(absl::IsFailedPrecondition(VerifyConsistency(4, 4, root, FlippedHash(root), {})));
  CHECK(VerifyConsistency(4, 4, root, root, {}).ok());
}

TEST_CASE("node keys sort by level, then index", "[merkle]") {
  CHECK(NodeKey(0, 1).size() == 9);
  CHECK(NodeKey(0, 255) < NodeKey(0, 256));
  CHECK(NodeKey(0, ~uint64_t{0}) < NodeKey(1, 0));
  CHECK(crypto::HexEncode(NodeKey(2, 0x0102)) == "020000000000000102");
}

}  // namespace
}  // namespace kpx::storage::merkle
