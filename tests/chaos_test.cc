// The fault-injection harness (tests/chaos.h), short run: three kpxd
// processes, a few hundred certificates (some replaced, some voided),
// faults on every kind of link and SIGKILLed nodes; nothing acknowledged
// may be lost, nothing duplicated, and both sides of every certificate
// must end in the same state with the same replacement links.
#include "chaos.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <iostream>
#include <string>

#include "absl/time/clock.h"
#include "fault_proxy.h"

namespace kpx {
namespace {

using testing::FaultProxy;

// A blocking loopback socket whose reads give up after 2 s.
int Socket() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

// A listening target for a proxy to forward to.
struct Target {
  int fd = Socket();
  int port = 0;
  Target() {
    sockaddr_in a = Loopback(0);
    socklen_t len = sizeof(a);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
  }
  ~Target() { ::close(fd); }
  int Accept() const {
    const int c = ::accept(fd, nullptr, nullptr);
    timeval tv{2, 0};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return c;
  }
};

int Dial(int port) {
  const int fd = Socket();
  sockaddr_in a = Loopback(port);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  return fd;
}

void Send(int fd, const std::string& s) {
  REQUIRE(::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
}

// What arrives before EOF or the socket's read timeout, up to `want` bytes.
std::string Receive(int fd, size_t want) {
  std::string got;
  char buf[256];
  while (got.size() < want) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Polls `done` for up to 2 s.
bool Eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 200; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

TEST_CASE("FaultProxy forwards, delays, swallows and cuts on command", "[chaos][proxy]") {
  Target target;
  FaultProxy proxy(target.port);
  const int client = Dial(proxy.port());
  const int server = target.Accept();
  REQUIRE(server >= 0);

  Send(client, "ping");
  CHECK(Receive(server, 4) == "ping");
  Send(server, "pong");
  CHECK(Receive(client, 4) == "pong");
  CHECK(proxy.connections() == 1);
  // The counters move just after the bytes are written: wait on them.
  CHECK(Eventually([&] { return proxy.bytes_to_target() == 4; }));
  CHECK(Eventually([&] { return proxy.bytes_from_target() == 4; }));

  proxy.Delay(absl::Milliseconds(300));
  const absl::Time sent = absl::Now();
  Send(client, "slow");
  CHECK(Receive(server, 4) == "slow");
  CHECK(absl::Now() - sent >= absl::Milliseconds(300));

  // Open connections stay up but silent; leaving the blackhole cuts them.
  proxy.Blackhole();
  Send(client, "lost");
  timeval short_wait{0, 300000};
  ::setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof(short_wait));
  CHECK(Receive(server, 4).empty());
  proxy.Pass();
  CHECK(Receive(client, 1).empty());  // EOF
  ::close(client);
  ::close(server);

  // CutAll closes open connections mid-stream; the mode stays Pass.
  const int c2 = Dial(proxy.port());
  const int s2 = target.Accept();
  Send(c2, "a");
  CHECK(Receive(s2, 1) == "a");
  proxy.CutAll();
  CHECK(proxy.open_connections() == 0);
  CHECK(Receive(c2, 1).empty());
  CHECK(Receive(s2, 1).empty());
  CHECK(proxy.mode() == FaultProxy::Mode::kPass);
  ::close(c2);
  ::close(s2);

  // Refused connections are accepted and closed at once.
  proxy.Refuse();
  const int c3 = Dial(proxy.port());
  CHECK(Receive(c3, 1).empty());
  ::close(c3);
  CHECK(proxy.connections() == 3);
}

TEST_CASE("under faults and crashes nothing is lost, duplicated or disagreed on",
          "[chaos][process]") {
  // About 2 minutes on 2 cores: 300 steps of 300 ms, then the drain.
  testing::ChaosOptions o;
  o.certificates = 300;
  o.faults = 30;
  o.kills = 4;
  o.seed = 7;
  o.step = absl::Milliseconds(300);
  testing::ChaosReport r = testing::ChaosRun(o).Run();
  std::cout << r.Summary() << std::flush;
  // The schedule did what it claims: traffic through the proxies, faults
  // and kills applied, verbs (crossings too) acknowledged.
  REQUIRE(r.proxy_bytes > 0);
  REQUIRE(r.kills == o.kills);
  REQUIRE(r.submits_acknowledged > o.certificates / 2);
  REQUIRE(r.crossings_acknowledged > 0);
  // Replacements, some crossing the importer's decision (DISPUTED, then
  // resolved), and voids of confirmed certificates.
  REQUIRE(r.replacements_reflected > 0);
  REQUIRE(r.replacements_crossed > 0);
  REQUIRE(r.verbs_acknowledged["void"] > 0);
  REQUIRE(r.resolutions_acknowledged > 0);
  REQUIRE(r.drained);
  CHECK(r.lost_total() == 0);
  CHECK(r.duplicated_total() == 0);
  CHECK(r.disagreements == 0);
  CHECK(r.link_disagreements == 0);
  CHECK(r.ledgers_verified);
}

}  // namespace
}  // namespace kpx
