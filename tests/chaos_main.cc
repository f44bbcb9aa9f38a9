// kpx_chaos: the fault-injection harness (tests/chaos.h) from the command
// line, for long runs. Prints the summary; exits 1 if anything acknowledged
// was lost, anything duplicated, any certificate disagreed on, a ledger
// failed to verify or the outboxes did not drain; 2 on bad arguments.
//   kpx_chaos --certificates 10000 --faults 300 --kills 20 --seed 1
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "absl/strings/numbers.h"
#include "chaos.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: kpx_chaos [--certificates N] [--faults M] [--kills K] [--seed S]\n"
               "                 [--step-ms MS] [--drain-s SECONDS] [--verbose]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  kpx::testing::ChaosOptions o;
  o.kills = -1;  // default below: one per 500 certificates, at least 3
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--verbose") {
      o.verbose = true;
      continue;
    }
    if (i + 1 >= argc) return Usage();
    const std::string value = argv[++i];
    int64_t n = 0;
    if (!absl::SimpleAtoi(value, &n) || n < 0) return Usage();
    if (flag == "--certificates" && n > 0) {
      o.certificates = static_cast<int>(n);
    } else if (flag == "--faults") {
      o.faults = static_cast<int>(n);
    } else if (flag == "--kills") {
      o.kills = static_cast<int>(n);
    } else if (flag == "--seed") {
      o.seed = static_cast<uint64_t>(n);
    } else if (flag == "--step-ms" && n > 0) {
      o.step = absl::Milliseconds(n);
    } else if (flag == "--drain-s" && n > 0) {
      o.drain_deadline = absl::Seconds(n);
    } else {
      return Usage();
    }
  }
  if (o.kills < 0) o.kills = std::max(3, o.certificates / 500);
  try {
    kpx::testing::ChaosReport r = kpx::testing::ChaosRun(o).Run();
    std::printf("%s", r.Summary().c_str());
    return r.ok() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kpx_chaos: %s\n", e.what());
    return 1;
  }
}
