// kpx::testing::ChaosRun: the fault-injection scenario driver. Three real
// kpxd processes deliver to each other through one FaultProxy per ordered
// link (A->B goes through a proxy in front of B's peer port, so a fault is
// per link). A seeded std::mt19937_64 drives a paced schedule: submits from
// every side to random partners; importer confirms and rejects and
// exporter cancels, some of them deliberately crossing (the exporter
// cancels while the importer confirms or rejects, at the same moment);
// replacements of delivered, open certificates, some deliberately crossing
// the importer's confirm or reject of the old one (the new one then ends
// DISPUTED, and a later step resolves some: exporter cancel, importer
// confirm or reject); voids of certificates the exporter shows CONFIRMED;
// faults on random links (refuse, blackhole, delay, cut mid-call,
// partition of a pair) and SIGKILLs of random nodes, restarted a few steps
// later. Only calls the node acknowledged (OK) count; a retry after
// UNAVAILABLE is counted only when the node then shows exactly that
// change. Afterwards every link is healed, every node runs, the outboxes
// are drained (polled until empty, under a deadline) and the run checks:
//   lost           acknowledged submits missing at exporter or importer,
//                  acknowledged verbs neither reflected nor superseded,
//                  acknowledged replacements whose old certificate is
//                  neither REPLACED by it on both sides nor (crossed)
//                  decided alike with the new one DISPUTED at the importer;
//   duplicated     message ids SENT twice or RECEIVED_MESSAGE twice;
//   disagreements  certificates whose state differs between exporter and
//                  importer (DELIVERED at the exporter agrees with
//                  RECEIVED at the importer), or that one side lacks;
//   links          replaced_by / replaces differing between the sides, or
//                  a REPLACED record whose successor does not name it;
//   ledgers        VerifyLedger on every node.
// Used by tests/chaos_test.cc (short run) and tests/chaos_main.cc
// (kpx_chaos, long runs).
//
// Threads: Run() is called from one thread; it starts short-lived threads
// for the calls of each step and joins them before the next. The run owns
// its federation (temporary folder, kpxd processes) and proxies, all
// stopped when it is destroyed.
#ifndef KPX_TESTS_CHAOS_H_
#define KPX_TESTS_CHAOS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kpx/v1/certificate.pb.h"

namespace kpx::testing {

struct ChaosOptions {
  int certificates = 300;  // one submit per step
  int faults = 20;         // spread evenly over the schedule
  int kills = 3;           // SIGKILLs, each followed by a restart
  uint64_t seed = 1;
  // Pace of the schedule (one step per interval); sleeps only pace.
  absl::Duration step = absl::Milliseconds(150);
  // The drain after healing must finish within this, or the run fails.
  absl::Duration drain_deadline = absl::Minutes(3);
  std::vector<std::string> codes = {"BW", "EU", "AE"};
  bool verbose = false;  // log every fault and kill to stderr
};

// One certificate whose two sides ended in different states.
struct Disagreement {
  std::string number;
  std::string exporter, importer;              // Participant codes
  std::string exporter_state, importer_state;  // "MISSING" when absent
  std::string exporter_history, importer_history;
  std::string kind;               // "exporter X / importer Y after cancel+confirm"
  std::string delivery_failures;  // its DELIVERY_FAILED entries, both nodes
};

struct ChaosReport {
  int certificates = 0;          // submits attempted
  int submits_acknowledged = 0;  // of which via an honest retry:
  int submits_by_retry = 0;
  std::map<std::string, int> verbs_attempted;     // confirm, reject, cancel
  std::map<std::string, int> verbs_acknowledged;  // same keys
  int crossings_attempted = 0;
  int crossings_acknowledged = 0;  // both sides' verbs acknowledged
  // Replacements (submits of type REPLACEMENT of a delivered, open one);
  // deliberate crossings start the importer's confirm or reject of the old
  // one at the same moment.
  int replacements_attempted = 0, replacements_acknowledged = 0;
  int replacement_crossings_attempted = 0, replacement_crossings_acknowledged = 0;
  // Acknowledged ones: old REPLACED on both sides, or (crossed) old
  // decided alike on both sides and the new one DISPUTED at the importer.
  int replacements_reflected = 0, replacements_crossed = 0;
  // Agreed certificates that were DISPUTED on either side, and of those the
  // ones no longer DISPUTED at the end.
  int disputed = 0, resolved = 0;
  // Certificates the exporter showed DISPUTED on which a resolving verb
  // (exporter cancel, importer confirm or reject) was planned / acknowledged.
  int resolutions_attempted = 0, resolutions_acknowledged = 0;
  std::map<std::string, int> faults;  // by kind
  int kills = 0;
  uint64_t proxy_connections = 0, proxy_bytes = 0;

  int lost_submits = 0, lost_verbs = 0, lost_replacements = 0;
  int verbs_reflected = 0, verbs_superseded = 0;
  std::vector<std::string> lost;  // up to 20, described
  int duplicated_sent = 0, duplicated_received = 0;
  std::vector<std::string> duplicated;  // up to 20
  int disagreements = 0;
  std::map<std::string, int> disagreement_kinds;
  std::vector<Disagreement> disagreement_details;  // up to 20
  std::map<std::string, int> final_states;         // agreed certificates by state
  // replaced_by / replaces differing between the two sides, or a REPLACED
  // record whose successor does not name it back on the same node.
  int link_disagreements = 0;
  std::vector<std::string> link_problems;            // up to 20
  int delivery_failed = 0;                           // DELIVERY_FAILED entries, all nodes
  std::map<std::string, int> delivery_failed_kinds;  // by message kind
  std::vector<std::string> delivery_failures;        // up to 20, with the refusal
  bool ledgers_verified = false;
  std::vector<std::string> ledger_problems;
  bool drained = false;
  std::vector<std::string> outbox_left;  // when not drained, up to 20
  absl::Duration drain_time, wall_time;

  int lost_total() const { return lost_submits + lost_verbs + lost_replacements; }
  int duplicated_total() const { return duplicated_sent + duplicated_received; }
  // Nothing lost or duplicated, no disagreement, drained, ledgers verified.
  bool ok() const;
  std::string Summary() const;
};

// The one place the harness builds certificates (the format is changing):
// valid for 30 days from now, so expiry does not interfere.
v1::Certificate ChaosCertificate(const std::string& number, const std::string& exporter,
                                 const std::string& importer);

class ChaosRun {
 public:
  // Generates the PKI, writes per-node trust lists through the proxies
  // and starts the kpxd processes. Throws std::runtime_error on failure.
  explicit ChaosRun(ChaosOptions options);
  ~ChaosRun();
  ChaosRun(const ChaosRun&) = delete;
  ChaosRun& operator=(const ChaosRun&) = delete;

  // Runs the schedule, heals, drains and checks. Call once.
  ChaosReport Run();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kpx::testing

#endif  // KPX_TESTS_CHAOS_H_
