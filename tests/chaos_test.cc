// The fault-injection harness (tests/chaos.h), short run: three kpxd
// processes, a few hundred certificates, faults on every kind of link and
// SIGKILLed nodes; nothing acknowledged may be lost, nothing duplicated,
// and both sides of every certificate must end in the same state.
#include "chaos.h"

#include <catch2/catch.hpp>
#include <iostream>

namespace kpx {
namespace {

TEST_CASE("under faults and crashes nothing is lost, duplicated or disagreed on",
          "[chaos][process]") {
  testing::ChaosOptions o;
  o.certificates = 300;
  o.faults = 24;
  o.kills = 3;
  o.seed = 7;
  testing::ChaosReport r = testing::ChaosRun(o).Run();
  std::cout << r.Summary() << std::flush;
  INFO(r.Summary());
  // The schedule did what it claims: traffic through the proxies, faults
  // and kills applied, verbs (crossings too) acknowledged.
  REQUIRE(r.proxy_bytes > 0);
  REQUIRE(r.kills == o.kills);
  REQUIRE(r.submits_acknowledged > o.certificates / 2);
  REQUIRE(r.crossings_acknowledged > 0);
  REQUIRE(r.drained);
  CHECK(r.lost_total() == 0);
  CHECK(r.duplicated_total() == 0);
  CHECK(r.disagreements == 0);
  CHECK(r.ledgers_verified);
}

}  // namespace
}  // namespace kpx
