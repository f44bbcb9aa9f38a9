// kpxd: runs one Participant's node.
//
//   kpxd --config FILE [--log-format text|json]
//
// Logs to stderr, one event per line. Logs "listening" once both listeners
// are up. SIGHUP re-reads the trust list, signing keys and TLS files
// (refusing malformed ones and keeping what is in force); SIGTERM or SIGINT
// stop it cleanly. Exits 0 after a clean stop, 1 with one line of reason if
// it cannot start, 2 on bad usage.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "gateway/server.h"
#include "node/config.h"
#include "node/log.h"

namespace {

int Usage() {
  std::fprintf(stderr, "usage: kpxd --config FILE [--log-format text|json]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::string log_format = "text";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const std::string& flag, std::string* out) {
      if (arg == flag && i + 1 < argc) {
        *out = argv[++i];
        return true;
      }
      if (arg.rfind(flag + "=", 0) == 0) {
        *out = arg.substr(flag.size() + 1);
        return true;
      }
      return false;
    };
    if (!value("--config", &config_path) && !value("--log-format", &log_format)) return Usage();
  }
  if (config_path.empty() || (log_format != "text" && log_format != "json")) return Usage();

  // Block the signals in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  kpx::log::Init(log_format == "json" ? kpx::log::Format::kJson : kpx::log::Format::kText);
  absl::StatusOr<kpx::v1::NodeConfig> config = kpx::node::LoadConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "kpxd: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<kpx::gateway::NodeServer>> server =
      kpx::gateway::NodeServer::Start(*config, config_path);
  if (!server.ok()) {
    std::fprintf(stderr, "kpxd: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  kpx::gateway::NodeServer& s = **server;
  kpx::log::Info(
      "listening",
      {{"participant", config->participant()},
       {"peer", absl::StrCat(config->peer_listen(), " port ", s.peer_port())},
       {"authority", absl::StrCat(config->authority_listen(), " port ", s.authority_port())},
       {"metrics", s.metrics_port() ? absl::StrCat("port ", s.metrics_port()) : "off"},
       {"ledger_head", std::to_string(s.node().ledger().head().sequence)}});

  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      (void)s.Reload();  // logs what it did or why it refused
      continue;
    }
    kpx::log::Info("stopping", {{"signal", strsignal(sig)}});
    break;
  }
  s.Shutdown();
  server->reset();
  kpx::log::Info("stopped", {{"participant", config->participant()}});
  return 0;
}
