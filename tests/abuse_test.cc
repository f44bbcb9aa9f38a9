// The load-and-abuse test: real nodes (gateway::NodeServer) on 127.0.0.1
// under the floods a stranger or a partner can send (docs/security.md, "Bad
// inputs: the network"), a few seconds each. During each flood a
// legitimate certificate still goes from BW's exporting authority to EU;
// after it the node accepts connections again by itself.
//
// The floods come from a forked child process (a stranger's machine: its
// sockets do not count against this process' descriptors) on other
// loopback addresses (127.0.0.2 ...; Linux routes all of 127/8 to lo), so
// the per-client cap applies to it and not to the partners on 127.0.0.1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "federation.h"
#include "gateway/connection_gate.h"
#include "gateway/health_client.h"

namespace kpx {
namespace {

using testing::GrpcFederation;
using testing::ValidCertificate;
using testing::WaitFor;
using Clock = std::chrono::steady_clock;

// Small limits, so that floods of a few hundred connections reach them.
constexpr char kLimits[] = R"(limits {
  max_connections: 200
  max_connections_per_client: 32
  handshake_timeout_ms: 2000
  max_watch_streams: 8
  max_watch_streams_per_client: 4
})";

// The resident memory of this process, in MiB.
// Whether this build runs under AddressSanitizer (gcc and clang spell it
// differently).
#if defined(__SANITIZE_ADDRESS__)
#define KPX_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KPX_UNDER_ASAN 1
#endif
#endif
#ifndef KPX_UNDER_ASAN
#define KPX_UNDER_ASAN 0
#endif

double RssMib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024;
  }
  return -1;
}

sockaddr_in Loopback(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// A TCP connection from `source_ip` to 127.0.0.1:`port`; -1 on failure.
int ConnectFrom(const std::string& source_ip, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in src = Loopback(source_ip, 0), dst = Loopback("127.0.0.1", port);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

// Seconds until the server closes `fd` (EOF or reset), at most `limit`.
double SecondsUntilClosed(int fd, double limit) {
  const auto start = Clock::now();
  char buf[256];
  for (;;) {
    const double spent = std::chrono::duration<double>(Clock::now() - start).count();
    if (spent >= limit) return limit;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0 && ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0) return spent;
  }
}

// Whether a new connection from `source_ip` is let in: it stays open for
// half a second (the node waits for a TLS ClientHello) instead of being
// reset at once.
bool LetIn(const std::string& source_ip, int port) {
  const int fd = ConnectFrom(source_ip, port);
  if (fd < 0) return false;
  const bool open = SecondsUntilClosed(fd, 0.5) >= 0.5;
  ::close(fd);
  return open;
}

// The first 64 bytes of a TLS ClientHello that announces 512 bytes.
std::string PartialClientHello() {
  std::string hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  hello.resize(64, 'r');
  return hello;
}

enum class Flood {
  kPlain,       // connect and say nothing
  kPartialTls,  // send the start of a ClientHello, then nothing
  kTrickle,     // a ClientHello, one byte every 200 ms
};

// A stranger in a child process keeping `connections` connections open to
// 127.0.0.1:`port`, spread over `sources` (loopback addresses), opening a
// new one whenever the node closes one. Killed on destruction.
class Flooder {
 public:
  Flooder(Flood mode, std::vector<std::string> sources, int port, int connections)
      : mode_(mode), fds_(connections, -1), sent_(connections, 0), polls_(connections) {
    for (const std::string& s : sources) sources_.push_back(Loopback(s, 0));
    dst_ = Loopback("127.0.0.1", port);
    hello_ = PartialClientHello();
    hello_.resize(512, 'r');
    pid_ = ::fork();
    if (pid_ == 0) Run();  // never returns
  }
  ~Flooder() { Stop(); }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  // In the child: system calls only (async-signal-safe), no allocation.
  [[noreturn]] void Run() {
    for (int round = 0;; ++round) {
      if (::getppid() == 1) ::_exit(0);  // the test is gone
      for (size_t i = 0; i < fds_.size(); ++i) {
        if (fds_[i] < 0) Open(i);
        polls_[i] = {fds_[i], POLLIN, 0};
      }
      ::poll(polls_.data(), polls_.size(), 100);
      for (size_t i = 0; i < fds_.size(); ++i) {
        char buf[256];
        if ((polls_[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
            ::recv(fds_[i], buf, sizeof(buf), MSG_DONTWAIT) <= 0) {
          ::close(fds_[i]);  // the node closed it: open another
          fds_[i] = -1;
          continue;
        }
        Send(i, round);
      }
    }
  }
  void Open(size_t i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return;
    const sockaddr_in& src = sources_[i % sources_.size()];
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof(src)) != 0 ||
        (::connect(fd, reinterpret_cast<const sockaddr*>(&dst_), sizeof(dst_)) != 0 &&
         errno != EINPROGRESS)) {
      ::close(fd);
      return;
    }
    fds_[i] = fd;
    sent_[i] = 0;
  }
  void Send(size_t i, int round) {
    size_t want = 0;
    if (mode_ == Flood::kPartialTls) want = 64;
    if (mode_ == Flood::kTrickle) want = round % 2 == 0 ? sent_[i] + 1 : sent_[i];
    if (want > hello_.size()) want = hello_.size();
    if (want <= sent_[i]) return;
    const ssize_t n =
        ::send(fds_[i], hello_.data() + sent_[i], want - sent_[i], MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) sent_[i] += static_cast<size_t>(n);
  }

  const Flood mode_;
  std::vector<sockaddr_in> sources_;
  sockaddr_in dst_;
  std::string hello_;
  std::vector<int> fds_;
  std::vector<size_t> sent_;
  std::vector<pollfd> polls_;
  pid_t pid_ = -1;
};

// GET /metrics from 127.0.0.1:`port`: the body, or "" if no answer came
// within `seconds`. *took is set to how long the answer took.
std::string Scrape(int port, double seconds = 60, double* took = nullptr) {
  const auto start = Clock::now();
  const int fd = ConnectFrom("127.0.0.1", port);
  if (fd < 0) return "";
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  std::string out;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
    char buf[4096];
    for (;;) {
      const double left = seconds - std::chrono::duration<double>(Clock::now() - start).count();
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left * 1000) + 1) <= 0) break;
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  if (took != nullptr) *took = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

// The value of the sample `series` (name and labels, as printed) in the
// metrics of `code`'s node; -1 if absent.
double Metric(GrpcFederation& fed, const std::string& code, const std::string& series) {
  const std::string text = Scrape(fed.MetricsPort(code));
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

std::string Refused(const std::string& reason) {
  return absl::StrCat("kpx_connections_refused_total{listener=\"peer\",reason=\"", reason, "\"}");
}

// Two nodes with the small limits, and the authority clients the tests
// use, connected before any flood (a flood in this process counts against
// this process' descriptors, which both nodes share).
struct Nodes {
  Nodes() : fed({"BW", "EU"}, /*metrics=*/true) {
    for (const char* c : {"BW", "EU"}) {
      fed.AppendConfig(c, kLimits);
      fed.StartInProcess(c);
    }
    exporter = fed.Authority("BW", "exporter");
    auditor = fed.Authority("EU", "auditor");
    Legitimate("BW-A-0");  // BW's channel to EU exists from here on
  }

  grpc::Status Submit(const v1::Certificate& cert) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::SubmitCertificateRequest req;
    *req.mutable_certificate() = cert;
    v1::CertificateRecord rec;
    return exporter->SubmitCertificate(&ctx, req, &rec);
  }

  // A legitimate certificate, submitted at BW, reaches EU.
  void Legitimate(const std::string& number) {
    INFO("certificate " << number);
    REQUIRE(Submit(ValidCertificate(number, "BW", "EU")).ok());
    REQUIRE(WaitFor([&] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      v1::GetCertificateRequest req;
      req.set_number(number);
      v1::CertificateRecord rec;
      return auditor->GetCertificate(&ctx, req, &rec).ok() && rec.state() == v1::RECEIVED;
    }));
  }

  GrpcFederation fed;
  std::unique_ptr<v1::AuthorityService::Stub> exporter;  // BW's
  std::unique_ptr<v1::AuthorityService::Stub> auditor;   // EU's
};

// A partner's new connection (a fresh channel from 127.0.0.1) is served.
bool PartnerServed(GrpcFederation& fed) {
  auto peer = fed.Peer("BW", "EU");
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::DeliverRequest req;
  v1::DeliverResponse resp;
  return peer->Deliver(&ctx, req, &resp).ok();
}

TEST_CASE("plain TCP floods beyond the caps leave the node serving", "[abuse]") {
  Nodes n;
  GrpcFederation& fed = n.fed;
  const int port = fed.PeerPort("EU");
  {
    Flooder flood(Flood::kPlain, {"127.0.0.2"}, port, 300);
    REQUIRE(WaitFor([&] { return Metric(fed, "EU", Refused("per_client")) > 0; }));
    // A user sees the node degraded, not down.
    auto channel = fed.AuthorityChannel("EU", "auditor");
    CHECK(WaitFor([&] {
      return gateway::CheckHealth(channel, "kpx.v1.Capacity").value() ==
             gateway::ServingStatus::kNotServing;
    }));
    CHECK(gateway::CheckHealth(channel, "").value() == gateway::ServingStatus::kServing);
    CHECK(Metric(fed, "EU", "kpx_shedding_load{listener=\"peer\"}") == 1);
    CHECK(Metric(fed, "EU", "kpx_connections_open{listener=\"peer\"}") <= 32 + 4);
    n.Legitimate("BW-A-1");
    CHECK(PartnerServed(fed));  // a new connection from another client
    CHECK_FALSE(LetIn("127.0.0.2", port));
  }
  // The flood stops: the flooding address is let in again, and health
  // clears by itself.
  CHECK(WaitFor([&] { return LetIn("127.0.0.2", port); }, 15));
  auto channel = fed.AuthorityChannel("EU", "auditor");
  CHECK(WaitFor([&] {
    return gateway::CheckHealth(channel, "kpx.v1.Capacity").value() ==
           gateway::ServingStatus::kServing;
  }));
  const double refused = Metric(fed, "EU", Refused("per_client"));
  std::printf("plain flood: %.0f connections refused (per_client)\n", refused);
  CHECK(Metric(fed, "EU", "kpx_shedding_load{listener=\"peer\"}") == 0);
  CHECK(Metric(fed, "EU", Refused("per_client")) == refused);  // none since
}

TEST_CASE("a flood never takes the descriptors the node needs", "[abuse]") {
  Nodes n;
  GrpcFederation& fed = n.fed;
  const int port = fed.PeerPort("EU");
  // An open-files limit the flood can reach past the caps: about 150
  // connections above what the nodes hold now, plus the 256 kept free.
  struct rlimit saved;
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  const int base = gateway::ConnectionGate::OpenDescriptors();
  struct rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(base + 150 + 256);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  int most = 0;
  {
    Flooder flood(Flood::kPlain,
                  {"127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.8",
                   "127.0.0.9", "127.0.0.10"},
                  port, 256);
    REQUIRE(WaitFor([&] {
      most = std::max(most, gateway::ConnectionGate::OpenDescriptors());
      return Metric(fed, "EU", Refused("descriptors")) > 0;
    }));
    for (int i = 0; i < 20; ++i) {
      most = std::max(most, gateway::ConnectionGate::OpenDescriptors());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // The ledger still writes (a new entry at both ends) over the partner
    // connection made before the flood.
    n.Legitimate("BW-A-2");
    most = std::max(most, gateway::ConnectionGate::OpenDescriptors());
  }
  INFO("most descriptors open " << most << ", limit " << low.rlim_cur);
  // A few may be opened by other threads between the gate's counts.
  CHECK(most <= static_cast<int>(low.rlim_cur) - 256 + 16);
  CHECK(WaitFor([&] { return LetIn("127.0.0.3", port); }, 15));
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
}

TEST_CASE("unfinished and slow TLS handshakes are cut off at the deadline", "[abuse]") {
  Nodes n;
  GrpcFederation& fed = n.fed;
  const int port = fed.PeerPort("EU");
  for (Flood mode : {Flood::kPartialTls, Flood::kTrickle}) {
    const std::string number = mode == Flood::kTrickle ? "BW-A-4" : "BW-A-3";
    INFO("flood " << number);
    Flooder flood(mode, {"127.0.0.2", "127.0.0.3"}, port, 300);
    // One such client of our own: the node closes it after the 2 s
    // handshake deadline even though it keeps sending.
    const int fd = ConnectFrom("127.0.0.11", port);
    REQUIRE(fd >= 0);
    const std::string hello = PartialClientHello();
    REQUIRE(::send(fd, hello.data(), 16, MSG_NOSIGNAL) == 16);
    n.Legitimate(number);
    CHECK(PartnerServed(fed));
    const double closed_after = SecondsUntilClosed(fd, 30);
    ::close(fd);
    CHECK(closed_after < 10);
    flood.Stop();
    CHECK(WaitFor([&] { return LetIn("127.0.0.2", port); }, 15));
  }
}

TEST_CASE("Watch streams are capped per client and in all, and give their memory back", "[abuse]") {
  Nodes n;
  GrpcFederation& fed = n.fed;
  // Large entries: 20 certificates of about 240 KiB (15 extensions of 16 KiB).
  for (int i = 0; i < 20; ++i) {
    v1::Certificate c = ValidCertificate(absl::StrCat("BW-W-", i), "BW", "EU");
    for (int k = 0; k < 15; ++k) {
      (*c.mutable_extensions())[absl::StrCat("x", k)] = std::string(16 * 1024, 'a' + k);
    }
    REQUIRE(n.Submit(c).ok());
  }
  const double before = RssMib();
  const uint64_t head = fed.server("BW").node().ledger().head().sequence;
  // 40 streams from the node's three authority clients (4 each at most,
  // 8 in all), each reading the whole ledger and then following it.
  struct Watcher {
    grpc::ClientContext ctx;
    grpc::Status status;
    std::atomic<uint64_t> last{0};
    std::atomic<bool> finished{false};  // status is set
    std::thread thread;
  };
  std::vector<std::unique_ptr<Watcher>> watchers;
  const char* roles[] = {"exporter", "importer", "auditor"};
  std::vector<std::unique_ptr<v1::AuthorityService::Stub>> stubs;
  for (const char* r : roles) stubs.push_back(fed.Authority("BW", r));
  for (int i = 0; i < 40; ++i) {
    auto w = std::make_unique<Watcher>();
    Watcher* p = w.get();
    v1::AuthorityService::Stub* stub = stubs[i % 3].get();
    p->thread = std::thread([p, stub] {
      v1::WatchRequest req;
      auto reader = stub->Watch(&p->ctx, req);
      v1::LedgerEntry e;
      while (reader->Read(&e)) p->last = e.sequence();
      p->status = reader->Finish();
      p->finished = true;
    });
    watchers.push_back(std::move(w));
  }
  auto count = [&](auto pred) {
    return std::count_if(watchers.begin(), watchers.end(),
                         [&](const std::unique_ptr<Watcher>& w) { return pred(*w); });
  };
  // 8 read up to the head; the 32 others were refused.
  REQUIRE(WaitFor([&] { return count([&](Watcher& w) { return w.last >= head; }) == 8; }));
  REQUIRE(WaitFor([&] {
    return count([](Watcher& w) {
             return w.finished && w.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
           }) == 32;
  }));
  for (auto& w : watchers) {
    if (w->finished && w->status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      CHECK_THAT(w->status.error_message(), Catch::Contains("Watch streams"));
    }
  }
  const double during = RssMib();
  // A certificate goes through, and the open streams see it.
  n.Legitimate("BW-A-5");
  CHECK(WaitFor([&] { return count([&](Watcher& w) { return w.last > head; }) == 8; }));
  for (auto& w : watchers) w->ctx.TryCancel();
  for (auto& w : watchers) w->thread.join();
  watchers.clear();
  // The slots come back (as each stream notices its cancellation): a new
  // stream is served.
  CHECK(WaitFor([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::WatchRequest req;
    req.set_from_sequence(head);
    auto reader = stubs[2]->Watch(&ctx, req);
    v1::LedgerEntry e;
    const bool served = reader->Read(&e);
    ctx.TryCancel();
    reader->Finish();
    return served;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // trim once more
  const double after = RssMib();
  std::printf(
      "watch memory: RSS %.0f MiB before, %.0f MiB with 8 streams open (32 refused), "
      "%.0f MiB after\n",
      before, during, after);
  CHECK(during - before < 200);
#if !KPX_UNDER_ASAN
  // Under AddressSanitizer freed memory sits in its quarantine (256 MiB by
  // default) instead of going back: only the plain build can see it return.
  CHECK(after - before < 100);
#endif
}

TEST_CASE("idle connections do not hold up a metrics scrape", "[abuse]") {
  GrpcFederation fed({"BW"}, /*metrics=*/true);
  fed.StartInProcess("BW");
  const int port = fed.MetricsPort("BW");
  std::vector<int> idle;
  for (int i = 0; i < 6; ++i) {
    const int fd = ConnectFrom("127.0.0.1", port);
    REQUIRE(fd >= 0);
    idle.push_back(fd);
  }
  double took = 0;
  const std::string text = Scrape(port, 60, &took);
  for (int fd : idle) ::close(fd);
  INFO("scrape took " << took << " s");
  CHECK_THAT(text, Catch::Contains("kpx_node_healthy 1"));
  CHECK(took < 5);  // civetweb's default: 30 s per idle connection
}

}  // namespace
}  // namespace kpx
