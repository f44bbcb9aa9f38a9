// kpxd: runs one Participant's node until SIGTERM or SIGINT.
//
//   kpxd --config FILE
//
// Prints "kpxd <code> listening peer=<addr> authority=<addr>" once both
// listeners are up; exits 0 after a clean stop, 1 with one line of reason
// if it cannot start.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "gateway/server.h"
#include "node/config.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace {

int Usage() {
  std::fprintf(stderr, "usage: kpxd --config FILE\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else {
      return Usage();
    }
  }
  if (config_path.empty()) return Usage();

  // Block the stop signals in every thread; main waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  spdlog::set_default_logger(spdlog::stderr_color_mt("kpxd"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l kpxd %v", spdlog::pattern_time_type::utc);
  absl::StatusOr<kpx::v1::NodeConfig> config = kpx::node::LoadConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "kpxd: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<kpx::gateway::NodeServer>> server =
      kpx::gateway::NodeServer::Start(*config);
  if (!server.ok()) {
    std::fprintf(stderr, "kpxd: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  spdlog::info("kpxd {} listening peer={} (port {}) authority={} (port {}) ledger_head={}",
               config->participant(), config->peer_listen(), (*server)->peer_port(),
               config->authority_listen(), (*server)->authority_port(),
               (*server)->node().ledger().head().sequence);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("kpxd {} stopping on {}", config->participant(), strsignal(sig));
  (*server)->Shutdown();
  server->reset();
  spdlog::info("kpxd {} stopped", config->participant());
  return 0;
}
