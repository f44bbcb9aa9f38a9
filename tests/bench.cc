// kpx_bench: measures kpx against the performance targets in
// shared/DESIGN.md ("Performance") and prints plain text lines for
// docs/performance.md. Not a ctest test: run it by hand on a quiet machine.
//
//   kpx_bench [--certificates N] [--clients C] [--rate R] [--duration S]
//             [--latency-clients K] [--verify-entries N] [--stages LIST]
//             [--node-log FILE]
//
// Stages (all by default; --stages picks some, e.g. --stages
// throughput,verify). They run in the order latency, throughput, breakdown,
// memory, verify, costs (latency first, before the heavy stages):
//   throughput  Two nodes, BW -> EU, in this process over real gRPC with
//               mutual TLS on 127.0.0.1; the ledgers fsync every batch (as
//               they always do). C threads, each with its own channel,
//               submit N certificates through BW's AuthorityService as fast
//               as they can. Timed from the first submit until BW's ledger
//               holds N DELIVERED entries (each proved by EU's signed tree
//               head of its exchange); prints the signatures per
//               certificate on each side.
//   breakdown   The same load without the network, to show where the time
//               goes: (a) C threads appending Submit-shaped transitions to
//               one ledger; (b) two node::Nodes joined by MemoryTransport
//               (no gRPC, no TLS), C threads calling Node::Submit.
//   latency     A fresh federation. K threads submit at a fixed R per second
//               for S seconds (open loop: each certificate has its start
//               time). Per certificate: from the start of its submit call
//               until its DELIVERED entry is committed in BW's ledger
//               (followed in a separate thread with WaitForSequence +
//               ReadEntries).
//   memory      One kpxd process (BW), idle for 2 s: VmRSS from /proc. Then
//               EU as a second kpxd, N/2 certificates BW -> EU, and BW's
//               VmRSS once all are delivered and it has been idle for 2 s.
//   verify      N ledger entries of a signed certificate each (as Submit
//               writes them, about 750 bytes),
//               appended with AppendAll in batches of 1000; the ledger is
//               reopened and Verify() timed.
//   costs       Unit costs behind the figures above: fdatasync in the temp
//               folder, Ed25519 sign and verify, SHA-256, the peer check
//               every Deliver call makes (TrustList::IdentifyPeer), and
//               starting a thread.
//
// Nodes run with their default settings, metrics endpoint included (as a
// kpxd from deploy/pki.sh's config would). Node logs (in-process nodes) go
// to --node-log (default: a file in a temporary folder, removed at exit), as
// kpxd's stderr would.
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "federation.h"
#include "node/envelope.h"
#include "node/log.h"
#include "node/node.h"
#include "node/transport.h"
#include "node/trust_list.h"
#include "node/util.h"
#include "storage/ledger.h"

namespace kpx {
namespace {

using testing::GrpcFederation;
using testing::TempDir;
using testing::ValidCertificate;

// ------------------------------------------------------------------ output

// One line of results on stdout, flushed at once so progress shows.
__attribute__((format(printf, 1, 2))) void Say(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stdout, fmt, ap);
  va_end(ap);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void Blank() {
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

__attribute__((format(printf, 1, 2))) std::string Fmt(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list again;
  va_copy(again, ap);
  const int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, again);
  va_end(again);
  return out;
}

double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }
double Sec(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// A sample of values (milliseconds) and its percentiles.
class Dist {
 public:
  void Add(double v) { v_.push_back(v); }
  void Merge(const Dist& o) { v_.insert(v_.end(), o.v_.begin(), o.v_.end()); }
  size_t size() const { return v_.size(); }
  double P(double q) {
    if (v_.empty()) return NAN;
    Sort();
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v_.size())));
    return v_[std::min(v_.size() - 1, i == 0 ? 0 : i - 1)];
  }
  double Max() {
    if (v_.empty()) return NAN;
    Sort();
    return v_.back();
  }
  // "p50 1.2 ms, p90 ..., p99 ..., max ... (n=...)"
  std::string Summary(bool with_p999 = false) {
    std::string s = Fmt("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms", P(0.5), P(0.9), P(0.99));
    if (with_p999) s += Fmt(", p99.9 %.1f ms", P(0.999));
    return s + Fmt(", max %.1f ms (n=%zu)", Max(), v_.size());
  }

 private:
  void Sort() {
    if (!sorted_) std::sort(v_.begin(), v_.end());
    sorted_ = true;
  }
  std::vector<double> v_;
  bool sorted_ = false;
};

// ------------------------------------------------------------------ machine

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The value after "key:" on the first line starting with `key`.
std::string FieldOf(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "";
}

std::string LoadAvg() {
  std::string s = ReadAll("/proc/loadavg");
  std::vector<std::string> parts = absl::StrSplit(s, ' ');
  if (parts.size() < 3) return "?";
  return absl::StrCat(parts[0], " ", parts[1], " ", parts[2]);
}

std::string FileSystemOf(const std::string& path) {
  struct statfs st;
  if (::statfs(path.c_str(), &st) != 0) return "?";
  switch (static_cast<unsigned long>(st.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs (fsync is free: figures not meaningful)";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794C7630:
      return "overlayfs";
    default:
      return Fmt("f_type 0x%lx", static_cast<unsigned long>(st.f_type));
  }
}

void SetThreadName(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

// CPU seconds (user + system) of every live thread of this process, by tid,
// with the thread's name.
struct ThreadCpu {
  std::string name;
  double seconds = 0;
};
std::map<int, ThreadCpu> SampleThreads() {
  std::map<int, ThreadCpu> out;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& d : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const std::string dir = d.path().string();
    std::string name = ReadAll(dir + "/comm");
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    const std::string stat = ReadAll(dir + "/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(stat.substr(paren + 2), ' ');
    // After "pid (comm) ": field 3 (state) is f[0]; utime is 14, stime 15.
    if (f.size() < 13) continue;
    ThreadCpu t;
    t.name = name;
    t.seconds = (std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr)) / tick;
    out[std::atoi(d.path().filename().c_str())] = t;
  }
  return out;
}

// "name 1.2 s, name 0.8 s, ..." for the threads' CPU between two samples,
// grouped by thread name, largest first. Threads that ended meanwhile are
// not seen.
std::string ThreadCpuDelta(const std::map<int, ThreadCpu>& before,
                           const std::map<int, ThreadCpu>& after, size_t top) {
  std::map<std::string, std::pair<double, int>> by_name;
  for (const auto& [tid, t] : after) {
    double base = 0;
    if (auto it = before.find(tid); it != before.end()) base = it->second.seconds;
    auto& [sec, n] = by_name[t.name];
    sec += t.seconds - base;
    ++n;
  }
  std::vector<std::pair<double, std::string>> sorted;
  for (const auto& [name, v] : by_name) {
    if (v.first >= 0.005)
      sorted.emplace_back(v.first, Fmt("%s (%d) %.2f s", name.c_str(), v.second, v.first));
  }
  std::sort(sorted.rbegin(), sorted.rend());
  std::string s;
  for (size_t i = 0; i < sorted.size() && i < top; ++i) {
    if (i > 0) s += ", ";
    s += sorted[i].second;
  }
  return s;
}

double ProcessCpuSeconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Busy and total CPU time of the whole machine so far, in seconds
// (/proc/stat "cpu" line; idle, iowait and steal count as not busy).
struct MachineCpu {
  double busy = 0;
  double total = 0;
  double steal = 0;  // taken by the hypervisor for other guests
};
MachineCpu SampleMachineCpu() {
  std::istringstream in(ReadAll("/proc/stat"));
  std::string cpu;
  in >> cpu;
  double v[10] = {};
  for (double& x : v) in >> x;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  MachineCpu m;
  for (int i = 0; i < 8; ++i) m.total += v[i];  // guest time is already in user
  m.busy = (m.total - v[3] - v[4] - v[7]) / tick;
  m.total /= tick;
  m.steal = v[7] / tick;
  return m;
}

// How busy the machine was since `before`: in all, by this program, by other
// processes, and what the hypervisor took (steal).
std::string MachineBusy(const MachineCpu& before, double own_cpu_seconds, double wall_seconds) {
  const MachineCpu after = SampleMachineCpu();
  const double busy = (after.busy - before.busy) / wall_seconds;
  const double own = own_cpu_seconds / wall_seconds;
  const double steal = (after.steal - before.steal) / wall_seconds;
  return Fmt(
      "machine: %.2f of %ld cores busy on average, %.2f by this program, %.2f by other "
      "processes; %.2f cores stolen by the hypervisor",
      busy, ::sysconf(_SC_NPROCESSORS_ONLN), own, std::max(0.0, busy - own), steal);
}

// ------------------------------------------------------------------ flags

struct Flags {
  int64_t certificates = 20000;
  int clients = 32;
  double rate = 500;
  double duration_s = 10;
  int latency_clients = 8;
  int64_t verify_entries = 200000;
  std::set<std::string> stages = {"throughput", "breakdown", "latency",
                                  "memory",     "verify",    "costs"};
  std::string node_log;
};

const char kUsage[] =
    "usage: kpx_bench [--certificates N] [--clients C] [--rate R] [--duration S]\n"
    "                 [--latency-clients K] [--verify-entries N]\n"
    "                 [--stages throughput,breakdown,latency,memory,verify,costs]\n"
    "                 [--node-log FILE]\n";

bool ParseFlags(int argc, char** argv, Flags* f, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *error = "";
      return false;
    }
    std::string value;
    const size_t eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      *error = "missing value for " + arg;
      return false;
    }
    char* end = nullptr;
    const double num = std::strtod(value.c_str(), &end);
    const bool numeric = end != value.c_str() && *end == '\0';
    auto positive = [&](const char* what) {
      if (!numeric || num <= 0) {
        *error = absl::StrCat(what, " needs a positive number, got '", value, "'");
        return false;
      }
      return true;
    };
    if (arg == "--certificates") {
      if (!positive("--certificates")) return false;
      f->certificates = static_cast<int64_t>(num);
    } else if (arg == "--clients") {
      if (!positive("--clients")) return false;
      f->clients = static_cast<int>(num);
    } else if (arg == "--rate") {
      if (!positive("--rate")) return false;
      f->rate = num;
    } else if (arg == "--duration") {
      if (!positive("--duration")) return false;
      f->duration_s = num;
    } else if (arg == "--latency-clients") {
      if (!positive("--latency-clients")) return false;
      f->latency_clients = static_cast<int>(num);
    } else if (arg == "--verify-entries") {
      if (!positive("--verify-entries")) return false;
      f->verify_entries = static_cast<int64_t>(num);
    } else if (arg == "--stages") {
      f->stages.clear();
      for (absl::string_view s : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        const std::string stage(s);
        if (stage != "throughput" && stage != "breakdown" && stage != "latency" &&
            stage != "memory" && stage != "verify" && stage != "costs") {
          *error = "unknown stage '" + stage + "'";
          return false;
        }
        f->stages.insert(stage);
      }
    } else if (arg == "--node-log") {
      f->node_log = value;
    } else {
      *error = "unknown flag " + arg;
      return false;
    }
  }
  return true;
}

// ------------------------------------------------------------------ helpers

grpc::Status Submit(v1::AuthorityService::Stub& stub, const v1::Certificate& cert) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::SubmitCertificateRequest req;
  *req.mutable_certificate() = cert;
  v1::CertificateRecord rec;
  return stub.SubmitCertificate(&ctx, req, &rec);
}

// Starts `code` in this process from a thread named "<code>-node", so the
// threads the node starts (delivery, health) carry that name in the
// per-thread CPU figures.
gateway::NodeServer& StartNamed(GrpcFederation& fed, const std::string& code) {
  gateway::NodeServer* server = nullptr;
  std::exception_ptr error;
  std::thread t([&] {
    SetThreadName(code + "-node");
    try {
      server = &fed.StartInProcess(code);
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
  return *server;
}

// Waits until `ledger`'s outbox is empty; false after `timeout`.
bool WaitOutboxEmpty(storage::Ledger& ledger, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (ledger.OutboxSize() > 0) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// Follows a ledger from sequence `from` in its own thread, calling `fn` for
// every committed entry with the time its commit was seen: the thread wakes
// when the head moves (WaitForSequence) and reads only up to the head it
// woke for, so the time is that of the commit, not of a later read.
class Follower {
 public:
  using Fn = std::function<void(const v1::LedgerEntry&, absl::Time)>;
  Follower(storage::Ledger& ledger, uint64_t from, Fn fn)
      : ledger_(ledger), next_(from), fn_(std::move(fn)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Follower() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t read_errors() const { return errors_; }

 private:
  void Run() {
    SetThreadName("bench-follow");
    while (!stop_) {
      const storage::Head head =
          ledger_.WaitForSequence(next_, absl::Now() + absl::Milliseconds(100));
      const absl::Time seen = absl::Now();
      if (head.sequence < next_) continue;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(head.sequence - next_ + 1, 1000));
      absl::StatusOr<std::vector<v1::LedgerEntry>> entries = ledger_.ReadEntries(next_, n);
      if (!entries.ok()) {
        ++errors_;
        absl::SleepFor(absl::Milliseconds(10));
        continue;
      }
      for (const v1::LedgerEntry& e : *entries) {
        fn_(e, seen);
        next_ = e.sequence() + 1;
      }
    }
  }

  storage::Ledger& ledger_;
  uint64_t next_;
  Fn fn_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> errors_{0};
  std::thread thread_;
};

std::string Verdict(bool met) { return met ? "MET" : "NOT MET"; }

// ------------------------------------------------------------------ 1. throughput

// Threads and processes created on the whole machine since boot
// (/proc/stat "processes"); a delta shows thread churn.
uint64_t ForksSinceBoot() {
  std::istringstream in(ReadAll("/proc/stat"));
  std::string key;
  uint64_t value = 0;
  while (in >> key) {
    if (key == "processes") {
      in >> value;
      return value;
    }
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

// Submits one certificate as client thread `client`.
using SubmitFn = std::function<absl::Status(int client, const v1::Certificate& cert)>;

// `c` threads submit `n` certificates BW -> EU through `submit` as fast as
// they can; measured until BW's ledger holds n DELIVERED entries. Prints
// the results; returns the delivered rate (0 if it stalled).
double DriveThroughput(int64_t n, int c, const std::string& prefix, storage::Ledger& bw_ledger,
                       storage::Ledger& eu_ledger, const SubmitFn& submit) {
  const uint64_t from = bw_ledger.head().sequence + 1;
  const uint64_t eu_from = eu_ledger.head().sequence + 1;
  const uint64_t bw_batches0 = bw_ledger.batches_written();
  const uint64_t eu_batches0 = eu_ledger.batches_written();

  std::atomic<int64_t> delivered{0};
  std::atomic<int64_t> delivery_failed{0};
  absl::Mutex done_mu;
  absl::Time all_delivered = absl::InfinitePast();
  Follower follower(bw_ledger, from, [&](const v1::LedgerEntry& e, absl::Time seen) {
    if (e.kind() == v1::RECEIPT && e.state() == v1::DELIVERED) {
      if (++delivered == n) {
        absl::MutexLock l(&done_mu);
        all_delivered = seen;
      }
    } else if (e.kind() == v1::DELIVERY_FAILED) {
      ++delivery_failed;
    }
  });

  absl::Notification go;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> submitted{0};
  std::atomic<int64_t> refused{0};
  std::atomic<int64_t> client_cpu_ns{0};
  std::string first_error;
  absl::Mutex error_mu;
  std::vector<Dist> rpc(c);
  std::vector<absl::Time> last_return(c, absl::InfinitePast());
  std::vector<std::thread> clients;
  for (int k = 0; k < c; ++k) {
    clients.emplace_back([&, k] {
      SetThreadName("bench-client");
      go.WaitForNotification();
      timespec cpu0{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
      while (true) {
        const int64_t i = next++;
        if (i >= n) break;
        const v1::Certificate cert = ValidCertificate(
            Fmt("%s%07lld", prefix.c_str(), static_cast<long long>(i)), "BW", "EU");
        const absl::Time start = absl::Now();
        absl::Status s = submit(k, cert);
        last_return[k] = absl::Now();
        rpc[k].Add(Ms(last_return[k] - start));
        if (s.ok()) {
          ++submitted;
        } else {
          ++refused;
          absl::MutexLock l(&error_mu);
          if (first_error.empty()) first_error = std::string(s.message());
        }
      }
      timespec cpu1{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
      client_cpu_ns += (cpu1.tv_sec - cpu0.tv_sec) * 1000000000LL + (cpu1.tv_nsec - cpu0.tv_nsec);
    });
  }

  const auto threads0 = SampleThreads();
  const double cpu0 = ProcessCpuSeconds();
  const MachineCpu machine0 = SampleMachineCpu();
  const uint64_t forks0 = ForksSinceBoot();
  const absl::Time t0 = absl::Now();
  go.Notify();

  // Progress once a second; stop when all are delivered or nothing moves
  // for 30 s.
  std::vector<std::string> progress;
  int64_t last_delivered = -1;
  absl::Time last_change = t0;
  bool stalled = false;
  for (int second = 1; delivered < n; ++second) {
    absl::SleepFor(t0 + absl::Seconds(second) - absl::Now());
    const int64_t d = delivered;
    progress.push_back(Fmt("%ds %lld/%lld/%llu", second, static_cast<long long>(submitted.load()),
                           static_cast<long long>(d),
                           static_cast<unsigned long long>(bw_ledger.OutboxSize())));
    if (d != last_delivered) {
      last_delivered = d;
      last_change = absl::Now();
    } else if (absl::Now() - last_change > absl::Seconds(30)) {
      stalled = true;
      break;
    }
  }
  // Exact end: when the follower saw the last DELIVERED entry committed.
  absl::Time end;
  {
    absl::MutexLock l(&done_mu);
    end = stalled ? absl::Now() : all_delivered;
  }
  const double cpu = ProcessCpuSeconds() - cpu0;
  const std::string machine = MachineBusy(machine0, cpu, Sec(absl::Now() - t0));
  const uint64_t forks = ForksSinceBoot() - forks0;
  const auto threads1 = SampleThreads();
  for (std::thread& t : clients) t.join();
  follower.Stop();

  absl::Time submit_end = t0;
  Dist rpc_all;
  for (int k = 0; k < c; ++k) {
    submit_end = std::max(submit_end, last_return[k]);
    rpc_all.Merge(rpc[k]);
  }
  const double submit_s = Sec(submit_end - t0);
  const double total_s = Sec(end - t0);
  const uint64_t bw_batches = bw_ledger.batches_written() - bw_batches0;
  const uint64_t eu_batches = eu_ledger.batches_written() - eu_batches0;
  const uint64_t bw_entries = bw_ledger.head().sequence - from + 1;
  const uint64_t eu_entries = eu_ledger.head().sequence - eu_from + 1;
  const double per_cert = 1e6 / static_cast<double>(std::max<int64_t>(delivered, 1));

  Say("submitted: %lld of %lld accepted, %lld refused%s%s",
      static_cast<long long>(submitted.load()), static_cast<long long>(n),
      static_cast<long long>(refused.load()),
      first_error.empty() ? "" : "; first refusal: ", first_error.c_str());
  Say("submit rate: %lld in %.2f s = %.0f submits/s (one submit call: %s)",
      static_cast<long long>(submitted.load()), submit_s, static_cast<double>(submitted) / submit_s,
      rpc_all.Summary().c_str());
  if (stalled) {
    Say("delivery STALLED: %lld of %lld DELIVERED after %.1f s (%lld delivery failures)",
        static_cast<long long>(delivered.load()), static_cast<long long>(n), total_s,
        static_cast<long long>(delivery_failed.load()));
  }
  const double rate = static_cast<double>(delivered) / total_s;
  Say("delivered with a signed tree head and proof: %lld in %.2f s from first submit = %.0f "
      "certificates/s",
      static_cast<long long>(delivered.load()), total_s, rate);
  Say("progress each second (submitted/DELIVERED/BW outbox): %s",
      absl::StrJoin(progress, ", ").c_str());
  Say("group commit: BW %llu entries in %llu synced batches (%.1f entries/batch), "
      "EU %llu entries in %llu batches (%.1f entries/batch)",
      static_cast<unsigned long long>(bw_entries), static_cast<unsigned long long>(bw_batches),
      bw_batches ? static_cast<double>(bw_entries) / static_cast<double>(bw_batches) : 0.0,
      static_cast<unsigned long long>(eu_entries), static_cast<unsigned long long>(eu_batches),
      eu_batches ? static_cast<double>(eu_entries) / static_cast<double>(eu_batches) : 0.0);
  const double client_cpu = static_cast<double>(client_cpu_ns) / 1e9;
  Say("CPU of this process: %.1f s over %.1f s = %.2f of %u cores busy = %.0f us per "
      "certificate: %.0f us in the submitting threads, %.0f us in the nodes' own threads",
      cpu, total_s, cpu / total_s, std::thread::hardware_concurrency(), cpu * per_cert,
      client_cpu * per_cert, (cpu - client_cpu) * per_cert);
  Say("CPU by thread name (live threads) over the run: %s; threads that ended during the run "
      "(not listed) used about %.1f s",
      ThreadCpuDelta(threads0, threads1, 8).c_str(), [&] {
        double listed = 0;
        for (const auto& [tid, t] : threads1) {
          auto it = threads0.find(tid);
          listed += t.seconds - (it == threads0.end() ? 0 : it->second.seconds);
        }
        return std::max(0.0, cpu - listed - client_cpu);
      }());
  Say("threads/processes created on the machine during the run: %llu (%.2f per certificate)",
      static_cast<unsigned long long>(forks), static_cast<double>(forks) * per_cert / 1e6);
  Say("%s", machine.c_str());
  return stalled ? 0 : rate;
}

void Throughput(const Flags& f) {
  const int64_t n = f.certificates;
  const int c = f.clients;
  Blank();
  Say("== 1. Throughput: %lld certificates BW -> EU over gRPC + mutual TLS, %d client "
      "threads (load average %s)",
      static_cast<long long>(n), c, LoadAvg().c_str());
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/true);  // on, as in a default kpxd
  gateway::NodeServer& bw = StartNamed(fed, "BW");
  gateway::NodeServer& eu = StartNamed(fed, "EU");
  storage::Ledger& bw_ledger = bw.node().ledger();

  std::vector<std::unique_ptr<v1::AuthorityService::Stub>> stubs;
  for (int i = 0; i < c; ++i) stubs.push_back(fed.Authority("BW", "exporter"));
  // Warm up: one certificate per client over its own channel (TLS
  // handshakes, peer channel BW -> EU), all delivered before timing starts.
  {
    std::atomic<int> failed{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < c; ++i) {
      ts.emplace_back([&, i] {
        if (!Submit(*stubs[i], ValidCertificate(Fmt("BW-W-%05d", i), "BW", "EU")).ok()) ++failed;
      });
    }
    for (std::thread& t : ts) t.join();
    if (failed > 0 || !WaitOutboxEmpty(bw_ledger, absl::Seconds(30))) {
      Say("warm-up failed (%d submits refused, outbox %llu): see the node log", failed.load(),
          static_cast<unsigned long long>(bw_ledger.OutboxSize()));
      return;
    }
  }
  const uint64_t heads_before = eu.node().TreeHeadsSigned();
  const double rate = DriveThroughput(n, c, "BW-T-", bw_ledger, eu.node().ledger(),
                                      [&](int k, const v1::Certificate& cert) -> absl::Status {
                                        grpc::Status s = Submit(*stubs[k], cert);
                                        if (s.ok()) return absl::OkStatus();
                                        return absl::UnknownError(s.error_message());
                                      });
  Say("target 5,000 certificates/s delivered with receipts: %s (%.0f%% of target)",
      Verdict(rate >= 5000).c_str(), rate / 50.0);
  // Receipts are EU's signed tree heads, one per Deliver exchange (before
  // tree heads: one signed receipt per message, 1.00). BW signs each
  // certificate once and verifies one head per exchange.
  const double heads = static_cast<double>(eu.node().TreeHeadsSigned() - heads_before);
  Say("signatures per delivered certificate: %.2f by BW (the certificate) + %.3f by EU "
      "(tree heads: %.0f for %lld certificates; a signed receipt per certificate before: 1.00)",
      1.0, heads / static_cast<double>(n), heads, static_cast<long long>(n));
  // The delivery thread also sweeps for expired certificates once a minute
  // (BackgroundLoop -> Sweeper::ExpireDue), reading every certificate record;
  // deliveries wait meanwhile.
  const absl::Time e0 = absl::Now();
  const size_t expired = bw.node().ExpireDue();
  Say("one expiry sweep (Node::ExpireDue, run every minute on the delivery thread) over BW's "
      "%lld certificate records: %.1f ms (%zu expired)",
      static_cast<long long>(n + c), Ms(absl::Now() - e0), expired);
}

// ------------------------------------------------------------------ 1b. breakdown

// Where throughput goes, without the network: (a) the ledger alone taking
// Submit-shaped transitions from C threads; (b) two Nodes joined by
// node::MemoryTransport (no gRPC, no TLS), C threads calling Node::Submit.
void Breakdown(const Flags& f) {
  const int64_t n = f.certificates;
  const int c = f.clients;
  Blank();
  Say("== 1b. Breakdown without gRPC: %lld certificates, %d threads (load average %s)",
      static_cast<long long>(n), c, LoadAvg().c_str());
  TempDir dir;
  std::map<std::string, crypto::PrivateKey> keys;
  v1::TrustList trust_proto;
  trust_proto.set_version(1);
  for (const char* code : {"BW", "EU"}) {
    keys.emplace(code,
                 kpx::testing::Must(crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519)));
    v1::Participant* p = trust_proto.add_participants();
    p->set_code(code);
    p->set_name(std::string("Participant ") + code);
    p->set_status(v1::ACTIVE);
    kpx::testing::AddOffices(*p);
    kpx::testing::ListSigningKey(*p, keys.at(code));
  }
  absl::StatusOr<std::shared_ptr<const node::TrustList>> trust =
      node::TrustList::FromProto(trust_proto);
  if (!trust.ok()) {
    Say("trust list: %s", std::string(trust.status().message()).c_str());
    return;
  }

  // (a) Ledger only: Submit-shaped transitions (SENT entry with the signed
  // certificate, the record, the outbox item), built and signed before
  // timing.
  {
    absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger =
        storage::Ledger::Open(dir.Sub("ledger-only"));
    if (!ledger.ok()) return;
    node::Signer signer("BW", keys.at("BW"));
    std::vector<storage::Transition> ts(n);
    for (int64_t i = 0; i < n; ++i) {
      const absl::Time now = absl::Now();
      const std::string number = Fmt("BW-A-%07lld", static_cast<long long>(i));
      v1::MessageBody body;
      v1::Header* h = body.mutable_header();
      h->set_message_id(node::NewMessageId());
      h->set_sender("BW");
      h->set_recipient("EU");
      *h->mutable_created_at() = node::ToTimestamp(now);
      h->set_kind(v1::CERTIFICATE);
      *body.mutable_certificate() = ValidCertificate(number, "BW", "EU", now);
      v1::SignedMessage msg = kpx::testing::Must(signer.Sign(body));
      storage::Transition& t = ts[i];
      t.entry.set_kind(v1::SENT);
      t.entry.set_certificate_number(number);
      t.entry.set_partner("EU");
      t.entry.set_state(v1::ISSUED);
      *t.entry.mutable_recorded_at() = node::ToTimestamp(now);
      t.entry.set_message_id(h->message_id());
      *t.entry.mutable_message() = msg;
      v1::CertificateRecord rec;
      *rec.mutable_certificate() = body.certificate();
      rec.set_state(v1::ISSUED);
      rec.set_side(v1::EXPORTING);
      rec.set_partner("EU");
      rec.set_certificate_message_id(h->message_id());
      rec.set_certificate_digest(node::MessageDigest(msg));
      t.record = std::move(rec);
      v1::OutboxItem item;
      item.set_message_id(h->message_id());
      item.set_recipient("EU");
      item.set_certificate_number(number);
      *item.mutable_message() = msg;
      *item.mutable_due_at() = node::ToTimestamp(now + absl::Hours(1));
      *item.mutable_queued_at() = node::ToTimestamp(now);
      t.outbox_put.push_back(std::move(item));
    }
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> failed{0};
    const double cpu0 = ProcessCpuSeconds();
    const absl::Time t0 = absl::Now();
    std::vector<std::thread> threads;
    for (int k = 0; k < c; ++k) {
      threads.emplace_back([&] {
        for (int64_t i = next++; i < n; i = next++) {
          if (!(*ledger)->Append(std::move(ts[i])).ok()) ++failed;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const double took = Sec(absl::Now() - t0);
    const double cpu = ProcessCpuSeconds() - cpu0;
    const uint64_t batches = (*ledger)->batches_written();
    Say("(a) ledger only, %d threads calling Append: %lld transitions in %.2f s = %.0f/s, "
        "%llu synced batches (%.1f per batch), %.0f us CPU each%s",
        c, static_cast<long long>(n), took, static_cast<double>(n) / took,
        static_cast<unsigned long long>(batches),
        static_cast<double>(n) / static_cast<double>(std::max<uint64_t>(batches, 1)),
        cpu / static_cast<double>(n) * 1e6, failed ? " (SOME FAILED)" : "");
  }

  // (b) Two nodes in this process over MemoryTransport.
  {
    node::MemoryTransport::Network network;
    std::map<std::string, std::unique_ptr<storage::Ledger>> ledgers;
    std::map<std::string, std::unique_ptr<node::MemoryTransport>> transports;
    std::map<std::string, std::unique_ptr<node::Node>> nodes;
    for (const char* code : {"BW", "EU"}) {
      absl::StatusOr<std::unique_ptr<storage::Ledger>> l = storage::Ledger::Open(dir.Sub(code));
      if (!l.ok()) return;
      ledgers[code] = *std::move(l);
      transports[code] = std::make_unique<node::MemoryTransport>(&network, code);
      node::NodeOptions o;
      o.participant = code;
      o.trust_list = *trust;
      o.signing_keys = {keys.at(code)};
      o.ledger = ledgers[code].get();
      o.transport = transports[code].get();
      absl::StatusOr<std::unique_ptr<node::Node>> nd = node::Node::Create(std::move(o));
      if (!nd.ok()) {
        Say("node %s: %s", code, std::string(nd.status().message()).c_str());
        return;
      }
      nodes[code] = *std::move(nd);
      network.Register(code, nodes[code].get());
    }
    // Started from named threads, like the in-process servers.
    for (const char* code : {"BW", "EU"}) {
      std::thread([&, code] {
        SetThreadName(std::string(code) + "-node");
        nodes[code]->StartDelivery();
      }).join();
    }
    Say("(b) two Nodes over node::MemoryTransport (no gRPC, no TLS), %d threads calling "
        "Node::Submit:",
        c);
    node::Node& bw = *nodes["BW"];
    DriveThroughput(n, c, "BW-M-", *ledgers["BW"], *ledgers["EU"],
                    [&](int, const v1::Certificate& cert) { return bw.Submit(cert).status(); });
    for (auto& [code, nd] : nodes) nd->StopDelivery();
  }
}

// ------------------------------------------------------------------ 2. latency

void Latency(const Flags& f) {
  const int64_t m = std::llround(f.rate * f.duration_s);
  const int k = f.latency_clients;
  Blank();
  Say("== 2. Latency: %.0f certificates/s for %.0f s (%lld), %d submitting threads "
      "(load average %s)",
      f.rate, f.duration_s, static_cast<long long>(m), k, LoadAvg().c_str());
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/true);  // on, as in a default kpxd
  gateway::NodeServer& bw = StartNamed(fed, "BW");
  gateway::NodeServer& eu = StartNamed(fed, "EU");
  storage::Ledger& bw_ledger = bw.node().ledger();
  storage::Ledger& eu_ledger = eu.node().ledger();

  std::vector<std::unique_ptr<v1::AuthorityService::Stub>> stubs;
  for (int i = 0; i < k; ++i) stubs.push_back(fed.Authority("BW", "exporter"));
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < 5; ++j) {
      (void)Submit(*stubs[i], ValidCertificate(Fmt("BW-W-%03d-%d", i, j), "BW", "EU"));
    }
  }
  if (!WaitOutboxEmpty(bw_ledger, absl::Seconds(30))) {
    Say("warm-up certificates were not delivered: see the node log");
    return;
  }

  constexpr char kPrefix[] = "BW-L-";
  auto index_of = [&](const std::string& number) -> int64_t {
    if (number.rfind(kPrefix, 0) != 0) return -1;
    const int64_t i = std::atoll(number.c_str() + sizeof(kPrefix) - 1);
    return i >= 0 && i < m ? i : -1;
  };
  // Per certificate. From the ledgers: when Node::Submit began (the SENT
  // entry's recorded_at), when BW's delivery pass for it began (the RECEIPT
  // entry's recorded_at), when EU's Node::Receive began (its entry's
  // recorded_at); and when each of those entries was seen committed.
  const absl::Time never = absl::InfinitePast();
  std::vector<absl::Time> started(m, never), issued(m, never);  // submit call
  std::vector<absl::Time> submit_began(m, never), sent_committed(m, never);
  std::vector<absl::Time> pass_began(m, never), delivered_at(m, never);
  std::vector<absl::Time> receive_began(m, never), received(m, never);
  std::atomic<int64_t> delivered{0};
  Follower bw_follow(bw_ledger, bw_ledger.head().sequence + 1,
                     [&](const v1::LedgerEntry& e, absl::Time seen) {
                       const int64_t i = index_of(e.certificate_number());
                       if (i < 0) return;
                       if (e.kind() == v1::SENT) {
                         submit_began[i] = node::FromTimestamp(e.recorded_at());
                         sent_committed[i] = seen;
                       } else if (e.kind() == v1::RECEIPT && e.state() == v1::DELIVERED) {
                         pass_began[i] = node::FromTimestamp(e.recorded_at());
                         delivered_at[i] = seen;
                         ++delivered;
                       }
                     });
  Follower eu_follow(eu_ledger, eu_ledger.head().sequence + 1,
                     [&](const v1::LedgerEntry& e, absl::Time seen) {
                       if (e.kind() != v1::RECEIVED_MESSAGE || e.state() != v1::RECEIVED) return;
                       if (int64_t i = index_of(e.certificate_number()); i >= 0) {
                         receive_began[i] = node::FromTimestamp(e.recorded_at());
                         received[i] = seen;
                       }
                     });

  std::atomic<int64_t> late{0};
  std::atomic<int64_t> refused{0};
  const double cpu0 = ProcessCpuSeconds();
  const MachineCpu machine0 = SampleMachineCpu();
  const absl::Time measure0 = absl::Now();
  const absl::Duration interval = absl::Seconds(1) / f.rate;
  const absl::Time t0 = absl::Now() + absl::Milliseconds(100);
  std::vector<std::thread> threads;
  for (int t = 0; t < k; ++t) {
    threads.emplace_back([&, t] {
      SetThreadName("bench-client");
      for (int64_t i = t; i < m; i += k) {
        const absl::Time due = t0 + interval * i;
        const absl::Duration wait = due - absl::Now();
        if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
        const v1::Certificate cert =
            ValidCertificate(Fmt("%s%07lld", kPrefix, static_cast<long long>(i)), "BW", "EU");
        started[i] = absl::Now();
        if (started[i] - due > absl::Milliseconds(1)) ++late;
        grpc::Status s = Submit(*stubs[t], cert);
        issued[i] = absl::Now();
        if (!s.ok()) ++refused;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const absl::Time submit_end = absl::Now();
  const absl::Time deadline = submit_end + absl::Seconds(30);
  while (delivered + refused < m && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  const std::string machine =
      MachineBusy(machine0, ProcessCpuSeconds() - cpu0, Sec(absl::Now() - measure0));
  bw_follow.Stop();
  eu_follow.Stop();

  Dist total, call;
  // The path of one certificate, in order; the phases add up to the total.
  const char* phase_names[] = {
      "submit call -> Node::Submit begins (RPC in)",
      "-> SENT committed (validate, sign, group commit + fsync)",
      "-> BW delivery pass begins (outbox wait)",
      "-> EU Node::Receive begins (Deliver RPC in)",
      "-> RECEIVED committed at EU (verify, fsync)",
      "-> DELIVERED committed at BW (tree head signed, reply, proofs checked, fsync)"};
  Dist phases[6];
  for (int64_t i = 0; i < m; ++i) {
    if (delivered_at[i] == never) continue;
    total.Add(Ms(delivered_at[i] - started[i]));
    call.Add(Ms(issued[i] - started[i]));
    const absl::Time points[] = {started[i],     submit_began[i],  sent_committed[i],
                                 pass_began[i],  receive_began[i], received[i],
                                 delivered_at[i]};
    if (std::find(std::begin(points), std::end(points), never) != std::end(points)) continue;
    for (int p = 0; p < 6; ++p) phases[p].Add(Ms(points[p + 1] - points[p]));
  }
  Say("submitted %lld at %.0f/s over %.2f s (%lld started >1 ms late, %lld refused); "
      "%zu DELIVERED",
      static_cast<long long>(m), f.rate, Sec(submit_end - t0), static_cast<long long>(late.load()),
      static_cast<long long>(refused.load()), total.size());
  Say("submit -> DELIVERED at BW: %s", total.Summary(true).c_str());
  Say("  the SubmitCertificate call itself (returns once ISSUED is synced): p50 %.1f ms, "
      "p99 %.1f ms",
      call.P(0.5), call.P(0.99));
  for (int p = 0; p < 6; ++p) {
    Say("  phase %d %s: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms", p + 1, phase_names[p],
        phases[p].P(0.5), phases[p].P(0.9), phases[p].P(0.99));
  }
  Say("%s", machine.c_str());
  const uint64_t bw_batches = bw_ledger.batches_written();
  Say("BW ledger: %llu entries in %llu synced batches since start",
      static_cast<unsigned long long>(bw_ledger.head().sequence),
      static_cast<unsigned long long>(bw_batches));
  const bool complete = static_cast<int64_t>(total.size()) == m;
  Say("target p99 under 20 ms at 500/s: %s (p99 %.1f ms%s%s)",
      Verdict(complete && f.rate >= 500 && total.P(0.99) < 20).c_str(), total.P(0.99),
      complete ? "" : "; not all delivered", f.rate < 500 ? "; rate below the target's 500/s" : "");
}

// ------------------------------------------------------------------ 3. memory

void Memory(const Flags& f) {
  Blank();
  Say("== 3. Idle memory: one kpxd process (BW), idle 2 s after it listens (load average %s)",
      LoadAvg().c_str());
  GrpcFederation fed({"BW", "EU"}, /*metrics=*/true);  // on, as in a default kpxd
  fed.StartProcess("BW");
  const int pid = fed.Pid("BW");
  absl::SleepFor(absl::Seconds(2));
  const std::string status = ReadAll(Fmt("/proc/%d/status", pid));
  auto kib = [&](const char* key) { return std::atoll(FieldOf(status, key).c_str()); };
  const double rss_mib = static_cast<double>(kib("VmRSS:")) / 1024.0;
  Say("kpxd VmRSS %.1f MiB (RssAnon %.1f MiB, RssFile %.1f MiB), VmHWM %.1f MiB, "
      "VmSize %.1f MiB, %s threads",
      rss_mib, static_cast<double>(kib("RssAnon:")) / 1024.0,
      static_cast<double>(kib("RssFile:")) / 1024.0, static_cast<double>(kib("VmHWM:")) / 1024.0,
      static_cast<double>(kib("VmSize:")) / 1024.0, FieldOf(status, "Threads:").c_str());
  Say("target under 64 MiB resident when idle: %s (%.0f%% of the limit)",
      Verdict(rss_mib > 0 && rss_mib < 64).c_str(), rss_mib / 64.0 * 100.0);

  // Idle again after work: EU joins as a process too, BW takes a burst of
  // certificates, and is measured once all are delivered and 2 s passed.
  const int64_t burst = std::max<int64_t>(1, f.certificates / 2);
  fed.StartProcess("EU");
  constexpr int kClients = 8;
  std::vector<std::unique_ptr<v1::AuthorityService::Stub>> stubs;
  for (int i = 0; i < kClients; ++i) stubs.push_back(fed.Authority("BW", "exporter"));
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> refused{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < kClients; ++k) {
    threads.emplace_back([&, k] {
      for (int64_t i = next++; i < burst; i = next++) {
        if (!Submit(*stubs[k],
                    ValidCertificate(Fmt("BW-R-%07lld", static_cast<long long>(i)), "BW", "EU"))
                 .ok()) {
          ++refused;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  auto auditor = fed.Authority("BW", "auditor");
  bool all_delivered = false;
  for (int i = 0; i < 600 && !all_delivered; ++i) {
    grpc::ClientContext ctx;
    v1::ListCertificatesRequest req;
    req.set_state(v1::ISSUED);
    req.set_page_size(1);
    v1::ListCertificatesResponse resp;
    all_delivered = auditor->ListCertificates(&ctx, req, &resp).ok() && resp.certificates().empty();
    if (!all_delivered) absl::SleepFor(absl::Milliseconds(100));
  }
  absl::SleepFor(absl::Seconds(2));
  const std::string after = ReadAll(Fmt("/proc/%d/status", pid));
  auto kib_after = [&](const char* key) { return std::atoll(FieldOf(after, key).c_str()); };
  const double after_mib = static_cast<double>(kib_after("VmRSS:")) / 1024.0;
  Say("after %lld certificates to EU (%s, %lld refused) and 2 s idle: kpxd VmRSS %.1f MiB "
      "(RssAnon %.1f MiB), VmHWM %.1f MiB: %s the 64 MiB target",
      static_cast<long long>(burst), all_delivered ? "all delivered" : "NOT all delivered",
      static_cast<long long>(refused.load()), after_mib,
      static_cast<double>(kib_after("RssAnon:")) / 1024.0,
      static_cast<double>(kib_after("VmHWM:")) / 1024.0, after_mib < 64 ? "within" : "OVER");
  // The same node restarted on the same ledger: RocksDB flushes what it
  // recovers from its write-ahead log at open, so memory that came back
  // was held in memtables (or the allocator), not leaked.
  fed.KillProcess("BW", /*crash=*/false);
  fed.StartProcess("BW");
  absl::SleepFor(absl::Seconds(2));
  const std::string restarted = ReadAll(Fmt("/proc/%d/status", fed.Pid("BW")));
  Say("the same node restarted on that ledger, idle 2 s: kpxd VmRSS %.1f MiB (RssAnon %.1f MiB)",
      static_cast<double>(std::atoll(FieldOf(restarted, "VmRSS:").c_str())) / 1024.0,
      static_cast<double>(std::atoll(FieldOf(restarted, "RssAnon:").c_str())) / 1024.0);
  fed.KillProcess("BW", /*crash=*/false);
  fed.KillProcess("EU", /*crash=*/false);
}

// ------------------------------------------------------------------ 4. verify

void Verify(const Flags& f) {
  const int64_t n = f.verify_entries;
  constexpr int64_t kBatch = 1000;
  Blank();
  Say("== 4. Ledger verification: %lld entries (load average %s)", static_cast<long long>(n),
      LoadAvg().c_str());
  TempDir dir;
  const std::string path = dir.Sub("ledger");
  absl::StatusOr<crypto::PrivateKey> key =
      crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519);
  if (!key.ok()) {
    Say("cannot make a key: %s", std::string(key.status().message()).c_str());
    return;
  }
  node::Signer signer("BW", *key);
  uint64_t entry_bytes = 0;
  absl::Duration signing;
  absl::Duration appending;
  {
    absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger = storage::Ledger::Open(path);
    if (!ledger.ok()) {
      Say("cannot open the ledger: %s", std::string(ledger.status().message()).c_str());
      return;
    }
    for (int64_t b = 0; b < n; b += kBatch) {
      const absl::Time s0 = absl::Now();
      std::vector<storage::Transition> batch;
      for (int64_t i = b; i < std::min(n, b + kBatch); ++i) {
        // As Node::Submit writes it: a SENT entry carrying the signed
        // certificate message.
        const absl::Time now = absl::Now();
        const std::string number = Fmt("BW-V-%07lld", static_cast<long long>(i));
        v1::MessageBody body;
        v1::Header* h = body.mutable_header();
        h->set_message_id(node::NewMessageId());
        h->set_sender("BW");
        h->set_recipient("EU");
        *h->mutable_created_at() = node::ToTimestamp(now);
        h->set_kind(v1::CERTIFICATE);
        *body.mutable_certificate() = ValidCertificate(number, "BW", "EU", now);
        absl::StatusOr<v1::SignedMessage> msg = signer.Sign(body);
        if (!msg.ok()) {
          Say("signing failed: %s", std::string(msg.status().message()).c_str());
          return;
        }
        storage::Transition t;
        t.entry.set_kind(v1::SENT);
        t.entry.set_certificate_number(number);
        t.entry.set_partner("EU");
        t.entry.set_state(v1::ISSUED);
        *t.entry.mutable_recorded_at() = node::ToTimestamp(now);
        t.entry.set_message_id(h->message_id());
        *t.entry.mutable_message() = *std::move(msg);
        entry_bytes += t.entry.ByteSizeLong() + 3;  // + the sequence field
        batch.push_back(std::move(t));
      }
      const absl::Time s1 = absl::Now();
      absl::StatusOr<std::vector<storage::Head>> heads = (*ledger)->AppendAll(std::move(batch));
      if (!heads.ok()) {
        Say("AppendAll failed: %s", std::string(heads.status().message()).c_str());
        return;
      }
      signing += s1 - s0;
      appending += absl::Now() - s1;
    }
    Say("wrote %lld entries, %.0f bytes each on average: building + signing %.1f s, "
        "AppendAll (batches of %lld, synced) %.1f s = %.0f entries/s",
        static_cast<long long>(n), static_cast<double>(entry_bytes) / static_cast<double>(n),
        Sec(signing), static_cast<long long>(kBatch), Sec(appending),
        static_cast<double>(n) / Sec(appending));
  }
  uint64_t on_disk = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(path, ec)) {
    if (e.is_regular_file(ec)) on_disk += e.file_size(ec);
  }
  const absl::Time o0 = absl::Now();
  absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger = storage::Ledger::Open(path);
  if (!ledger.ok()) {
    Say("cannot reopen the ledger: %s", std::string(ledger.status().message()).c_str());
    return;
  }
  const absl::Duration open = absl::Now() - o0;
  double first_rate = 0;
  for (int run = 1; run <= 2; ++run) {
    const double cpu0 = ProcessCpuSeconds();
    const absl::Time v0 = absl::Now();
    storage::VerifyResult r = (*ledger)->Verify();
    const absl::Duration took = absl::Now() - v0;
    const double cpu = ProcessCpuSeconds() - cpu0;
    const double rate = static_cast<double>(r.entries_checked) / Sec(took);
    if (run == 1) first_rate = rate;
    Say("Verify() run %d%s: %s, %llu entries in %.3f s = %.0f entries/s (%.0f MiB/s, "
        "%.2f s CPU)",
        run, run == 1 ? " after reopen" : " again", r.ok ? "ok" : r.problem.c_str(),
        static_cast<unsigned long long>(r.entries_checked), Sec(took), rate,
        static_cast<double>(entry_bytes) / Sec(took) / (1 << 20), cpu);
    if (!r.ok || static_cast<int64_t>(r.entries_checked) != n) {
      Say("verification did not check every entry: figures invalid");
      return;
    }
  }
  Say("(ledger folder %.1f MiB; reopen took %.0f ms; its files were in the OS page cache, "
      "written just before)",
      static_cast<double>(on_disk) / (1 << 20), Ms(open));
  Say("target over 200,000 entries/s: %s (%.0f%% of target)", Verdict(first_rate > 200000).c_str(),
      first_rate / 2000.0);
}

// ------------------------------------------------------------------ 5. costs

void Costs(const Flags&) {
  Blank();
  Say("== 5. Unit costs (load average %s)", LoadAvg().c_str());
  TempDir dir;
  {
    const std::string file = dir.Sub("fsync-probe");
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::string block(4096, 'x');
    Dist d;
    for (int i = 0; i < 200 && fd >= 0; ++i) {
      if (::write(fd, block.data(), block.size()) != static_cast<ssize_t>(block.size())) break;
      const absl::Time t = absl::Now();
      ::fdatasync(fd);
      d.Add(Ms(absl::Now() - t));
    }
    if (fd >= 0) ::close(fd);
    Say("fdatasync after a 4 KiB append (%s): %s", FileSystemOf(dir.path()).c_str(),
        d.Summary().c_str());
  }
  absl::StatusOr<crypto::PrivateKey> key =
      crypto::PrivateKey::Generate(crypto::Algorithm::kEd25519);
  if (!key.ok()) return;
  v1::MessageBody body;
  body.mutable_header()->set_message_id(node::NewMessageId());
  *body.mutable_certificate() = ValidCertificate("BW-C-1", "BW", "EU");
  const std::string bytes = body.SerializeAsString();
  constexpr int kOps = 2000;
  std::string sig;
  absl::Time t = absl::Now();
  for (int i = 0; i < kOps; ++i) sig = kpx::testing::Must(key->Sign(bytes));
  const double sign_us = absl::ToDoubleMicroseconds(absl::Now() - t) / kOps;
  t = absl::Now();
  int bad = 0;
  for (int i = 0; i < kOps; ++i) bad += !key->public_key().Verify(bytes, sig).ok();
  const double verify_us = absl::ToDoubleMicroseconds(absl::Now() - t) / kOps;
  std::string kib(1024, 'k');
  constexpr int kHashes = 100000;
  t = absl::Now();
  for (int i = 0; i < kHashes; ++i) kib[0] = crypto::Sha256(kib)[0];
  const double sha_us = absl::ToDoubleMicroseconds(absl::Now() - t) / kHashes;
  Say("Ed25519 (OpenSSL) on a %zu-byte certificate body: sign %.1f us, verify %.1f us%s; "
      "SHA-256 of 1 KiB: %.2f us",
      bytes.size(), sign_us, verify_us, bad ? " (VERIFY FAILED)" : "", sha_us);
  {
    // What every Deliver call does before anything else
    // (gateway/services.cc: IdentifyPeer on the caller's TLS certificate).
    GrpcFederation fed({"BW", "EU"});
    absl::StatusOr<std::shared_ptr<const node::TrustList>> trust =
        node::TrustList::FromTextFile(fed.Config("EU").trust_list_file());
    absl::StatusOr<std::string> pem = crypto::ReadFile(fed.dir() + "/BW/node.pem");
    if (trust.ok() && pem.ok()) {
      // The same list grown to the Kimberley Process's size: more
      // Participants (EU's entry copied under other codes).
      v1::TrustList big = (*trust)->proto();
      const v1::Participant eu = *(*trust)->Find("EU");
      for (char a = 'A'; big.participants_size() < 60; ++a) {
        for (char b = 'A'; b <= 'Z' && big.participants_size() < 60; ++b) {
          const std::string code = {a, b};
          if ((*trust)->Find(code) != nullptr) continue;
          v1::Participant* p = big.add_participants();
          *p = eu;
          p->set_code(code);
        }
      }
      // Each round builds the list afresh (not timed), then times a first
      // call (a certificate the list has not seen) and a second one (the
      // same certificate again, as on every later Deliver from that peer).
      const v1::TrustList* lists[] = {&(*trust)->proto(), &big};
      for (const v1::TrustList* proto : lists) {
        constexpr int kRounds = 20;
        absl::Duration first, again;
        int wrong = 0;
        for (int i = 0; i < kRounds; ++i) {
          absl::StatusOr<std::shared_ptr<const node::TrustList>> list =
              node::TrustList::FromProto(*proto);
          if (!list.ok()) break;
          absl::Time t0 = absl::Now();
          absl::StatusOr<std::string> who = (*list)->IdentifyPeer(*pem, absl::Now());
          first += absl::Now() - t0;
          t0 = absl::Now();
          absl::StatusOr<std::string> who2 = (*list)->IdentifyPeer(*pem, absl::Now());
          again += absl::Now() - t0;
          wrong += !who.ok() || *who != "BW" || !who2.ok() || *who2 != "BW";
        }
        Say("TrustList::IdentifyPeer (every Deliver call) with %d Participants on the list: "
            "%.0f us for a certificate not seen before, %.0f us for the same one again%s",
            proto->participants_size(), absl::ToDoubleMicroseconds(first) / kRounds,
            absl::ToDoubleMicroseconds(again) / kRounds, wrong ? " (WRONG ANSWER)" : "");
      }
    }
  }
  constexpr int kThreads = 2000;
  t = absl::Now();
  for (int i = 0; i < kThreads; ++i) std::thread([] {}).join();
  Say("creating and joining a thread: %.0f us (gRPC's synchronous server starts and ends "
      "threads as concurrent calls come and go)",
      absl::ToDoubleMicroseconds(absl::Now() - t) / kThreads);
  Say("per delivered certificate the two nodes sign twice (certificate, receipt) and verify "
      "twice (EU the certificate, BW the receipt): %.0f us of one core",
      2 * sign_us + 2 * verify_us);
}

}  // namespace
}  // namespace kpx

int main(int argc, char** argv) {
  using namespace kpx;
  Flags flags;
  std::string error;
  if (!ParseFlags(argc, argv, &flags, &error)) {
    if (error.empty()) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "kpx_bench: %s\n%s", error.c_str(), kUsage);
    return 2;
  }

  std::string command = "kpx_bench";
  for (int i = 1; i < argc; ++i) absl::StrAppend(&command, " ", argv[i]);
  Say("command: %s", command.c_str());
  Say("effective: --certificates %lld --clients %d --rate %g --duration %g "
      "--latency-clients %d --verify-entries %lld",
      static_cast<long long>(flags.certificates), flags.clients, flags.rate, flags.duration_s,
      flags.latency_clients, static_cast<long long>(flags.verify_entries));
  const std::string cpuinfo = ReadAll("/proc/cpuinfo");
  const std::string meminfo = ReadAll("/proc/meminfo");
  utsname u{};
  ::uname(&u);
  const std::string tmp = std::filesystem::temp_directory_path().string();
  Say("machine: nproc %ld, %s, MemTotal %s, Linux %s; temp folder %s on %s",
      ::sysconf(_SC_NPROCESSORS_ONLN), FieldOf(cpuinfo, "model name").c_str(),
      FieldOf(meminfo, "MemTotal").c_str(), u.release, tmp.c_str(), FileSystemOf(tmp).c_str());
#if defined(__OPTIMIZE__) && defined(NDEBUG)
  Say("build: optimized, NDEBUG");
#else
  Say("build: NOT optimized or with assertions: figures are not representative");
#endif

  // In-process nodes log as kpxd does (one line per event, flushed), to a
  // file instead of this program's stderr.
  TempDir log_dir;
  const std::string node_log = flags.node_log.empty() ? log_dir.Sub("nodes.log") : flags.node_log;
  const int saved_stderr = ::dup(2);
  const int log_fd = ::open(node_log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (log_fd < 0) {
    std::fprintf(stderr, "kpx_bench: cannot open %s\n", node_log.c_str());
    return 1;
  }
  ::dup2(log_fd, 2);
  ::close(log_fd);
  log::Init(log::Format::kText);
  Say("node log (in-process nodes): %s", node_log.c_str());

  int failures = 0;
  bool first_stage = true;
  auto run = [&](const char* stage, void (*fn)(const Flags&)) {
    if (!flags.stages.count(stage)) return;
    // Let the previous stage's writes and deletions reach the disk first.
    if (!first_stage) {
      ::sync();
      absl::SleepFor(absl::Seconds(2));
    }
    first_stage = false;
    try {
      fn(flags);
    } catch (const std::exception& e) {
      ++failures;
      Say("stage %s failed: %s", stage, e.what());
    }
  };
  // Latency first: it is the most sensitive to what ran before it (on the
  // 2-core VM it was developed on, p99 read a few ms higher right after the
  // throughput stages, even when measured in a new process).
  run("latency", Latency);
  run("throughput", Throughput);
  run("breakdown", Breakdown);
  run("memory", Memory);
  run("verify", Verify);
  run("costs", Costs);
  std::error_code ec;
  Blank();
  Say("node log: %llu bytes",
      static_cast<unsigned long long>(std::filesystem::file_size(node_log, ec)));
  ::dup2(saved_stderr, 2);
  return failures == 0 ? 0 : 1;
}
