// kpxd: runs one Participant's node, and works on its files offline.
//
//   kpxd --config FILE [--log-format text|json]   run the node
//   kpxd --check-config FILE                     check a config, start nothing
//   kpxd restore BACKUP_DIR DATA_DIR             (node stopped) restore a backup
//   kpxd verify --data-dir DIR                   (node stopped) verify a ledger
//   kpxd key-info FILE|PKCS11_URI                print a signing key's trust-list entry
//   kpxd --version | --help
//
// Running, it logs to stderr, one event per line, and logs "listening"
// once both listeners are up. SIGHUP re-reads the trust list, signing keys
// and TLS files (refusing malformed ones and keeping what is in force);
// SIGTERM or SIGINT stop it cleanly. Exits 0 after a clean stop, 1 with
// one line of reason if it cannot start (or a check fails), 2 on bad usage.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "gateway/check_config.h"
#include "gateway/cli.h"
#include "gateway/server.h"
#include "gateway/tls_policy.h"
#include "node/config.h"
#include "node/log.h"
#include "storage/ledger.h"

#ifndef KPX_VERSION
#define KPX_VERSION "unknown"
#endif

namespace {

using kpx::cli::Failure;
using kpx::cli::Invocation;
using kpx::cli::Result;
using kpx::cli::UsageError;

// A failure shown as its message alone ("kpxd: MESSAGE").
Failure Plain(const absl::Status& s) { return Failure{s, 1, std::string(s.message())}; }

// Waits for SIGTERM/SIGINT, reloading on SIGHUP; the signals are blocked.
void Serve(kpx::gateway::NodeServer& s, const sigset_t& signals) {
  while (true) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      (void)s.Reload();  // logs what it did or why it refused
      continue;
    }
    kpx::log::Info("stopping", {{"signal", strsignal(sig)}});
    return;
  }
}

Result RunNode(const std::string& config_path, const std::string& log_format) {
  // Block the signals in every thread; Serve waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  kpx::log::Init(log_format == "json" ? kpx::log::Format::kJson : kpx::log::Format::kText);
  absl::StatusOr<kpx::v1::NodeConfig> config = kpx::node::LoadConfig(config_path);
  if (!config.ok()) return Plain(config.status());
  absl::StatusOr<std::unique_ptr<kpx::gateway::NodeServer>> server =
      kpx::gateway::NodeServer::Start(*config, config_path);
  if (!server.ok()) return Plain(server.status());
  kpx::gateway::NodeServer& s = **server;
  kpx::log::Info(
      "listening",
      {{"participant", config->participant()},
       {"peer", absl::StrCat(config->peer_listen(), " port ", s.peer_port())},
       {"authority", absl::StrCat(config->authority_listen(), " port ", s.authority_port())},
       {"metrics", s.metrics_port() ? absl::StrCat("port ", s.metrics_port()) : "off"},
       {"ledger_head", std::to_string(s.node().ledger().head().sequence)}});
  Serve(s, signals);
  s.Shutdown();
  server->reset();
  kpx::log::Info("stopped", {{"participant", config->participant()}});
  return std::nullopt;
}

Result CheckConfigFile(const std::string& path) {
  const std::vector<std::string> problems = kpx::gateway::CheckConfig(path, absl::Now());
  for (const std::string& p : problems) std::printf("%s\n", p.c_str());
  if (problems.empty()) {
    std::printf("config OK\n");
    return std::nullopt;
  }
  return Plain(
      absl::FailedPreconditionError(absl::StrCat(path, ": ", problems.size(), " problem(s)")));
}

Result Default(const Invocation& inv) {
  if (inv.Has("check-config")) {
    if (inv.Has("config") || inv.Has("log-format")) {
      return UsageError("--check-config FILE runs alone");
    }
    return CheckConfigFile(inv.Get("check-config"));
  }
  if (!inv.Has("config")) return UsageError("give --config FILE");
  const std::string format = inv.Has("log-format") ? inv.Get("log-format") : "text";
  if (format != "text" && format != "json") {
    return UsageError("--log-format takes text or json");
  }
  return RunNode(inv.Get("config"), format);
}

void PrintVerified(const char* what, const kpx::storage::VerifyResult& r) {
  std::printf("%sledger OK: %llu entries, head %llu %s\nMerkle root %s", what,
              static_cast<unsigned long long>(r.entries_checked),
              static_cast<unsigned long long>(r.head.sequence),
              kpx::crypto::HexEncode(r.head.hash).c_str(),
              kpx::crypto::HexEncode(r.head.root).c_str());
  if (r.tree_head_size > 0) {
    std::printf("; the tree head signed last (%llu entries) matches",
                static_cast<unsigned long long>(r.tree_head_size));
  }
  std::printf("\n");
}

Result Restore(const Invocation& inv) {
  const std::string& data_dir = inv.args[1];
  std::error_code ec;
  const bool existed = std::filesystem::exists(data_dir, ec);
  absl::StatusOr<kpx::storage::VerifyResult> r = kpx::storage::Ledger::Restore(
      inv.args[0], (std::filesystem::path(data_dir) / "ledger").string());
  if (!r.ok()) {
    // Restore removed its own copy; remove DATA_DIR too if it made it (and
    // it is empty), so that a failed restore leaves nothing behind.
    if (!existed) std::filesystem::remove(data_dir, ec);
    return Plain(absl::Status(r.status().code(), absl::StrCat("restore: ", r.status().message())));
  }
  PrintVerified(absl::StrCat("restored into ", data_dir, ": ").c_str(), *r);
  return std::nullopt;
}

Result Verify(const Invocation& inv) {
  if (inv.Get("data-dir").empty()) return UsageError("kpxd verify needs --data-dir DIR");
  const std::filesystem::path dir = std::filesystem::path(inv.Get("data-dir")) / "ledger";
  std::error_code ec;
  // Open would create an empty ledger: refuse a folder that holds none.
  if (!std::filesystem::exists(dir / "CURRENT", ec)) {
    return Plain(absl::NotFoundError(absl::StrCat("verify: no ledger in ", dir.string())));
  }
  absl::StatusOr<std::unique_ptr<kpx::storage::Ledger>> ledger =
      kpx::storage::Ledger::Open(dir.string());
  if (!ledger.ok()) {
    return Plain(absl::Status(
        ledger.status().code(),
        absl::StrCat("verify: ", ledger.status().message(), " (is kpxd still running on it?)")));
  }
  const kpx::storage::VerifyResult r = (*ledger)->Verify();
  if (!r.ok) {
    return Plain(
        absl::DataLossError(absl::StrCat("ledger BROKEN at entry ", r.first_bad_sequence, ": ",
                                         r.problem, " (", r.entries_checked, " entries checked)")));
  }
  PrintVerified("", r);
  return std::nullopt;
}

// The trust-list `signing_keys` entry for a signing key in a PEM file or a
// PKCS#11 token (opened, and checked with a test signature, as at start).
Result KeyInfo(const Invocation& inv) {
  absl::StatusOr<kpx::crypto::PrivateKey> key = kpx::crypto::PrivateKey::Load(inv.args[0]);
  if (!key.ok()) return Plain(key.status());
  const std::string pem = key->public_key().ToPem();
  std::string lines;
  for (size_t at = 0; at < pem.size();) {
    const size_t nl = pem.find('\n', at);
    const size_t end = nl == std::string::npos ? pem.size() : nl;
    absl::StrAppend(&lines, "      \"", pem.substr(at, end - at), "\\n\"\n");
    at = end + 1;
  }
  std::printf(
      "signing_keys {\n  key_id: \"%s\"\n  algorithm: %s\n  public_key_pem:\n%s}\n",
      key->key_id().c_str(),
      key->algorithm() == kpx::crypto::Algorithm::kEd25519 ? "ED25519" : "ECDSA_P256_SHA256",
      lines.c_str());
  return std::nullopt;
}

kpx::cli::Program MakeProgram() {
  kpx::cli::Program p;
  p.name = "kpxd";
  p.version = KPX_VERSION;
  p.summary = "runs one kpx Participant's node";
  p.commands = {
      {{},
       "run the node (--config), or only check its config (--check-config)",
       {},
       {{"config", "FILE", "the node's config (kpx.v1.NodeConfig, text format)"},
        {"log-format", "text|json", "log line format (default text)"},
        {"check-config", "FILE",
         "check FILE and every file it names, the trust list entry, addresses and data_dir; "
         "print each problem or 'config OK'; start nothing"}},
       "Signals: SIGHUP reloads trust list, signing keys and TLS files; SIGTERM/SIGINT stop.",
       Default},
      {{"restore"},
       "(node stopped) copy a backup into DATA_DIR/ledger, absent or empty, and verify it",
       {{"BACKUP_DIR"}, {"DATA_DIR"}},
       {},
       "BACKUP_DIR is a folder written by 'kpxctl node backup'. Run as the node's user.",
       Restore},
      {{"verify"},
       "(node stopped) re-check the hash chain of the ledger in DIR/ledger",
       {},
       {{"data-dir", "DIR", "the node's data folder (data_dir)"}},
       "Exits 1 if the ledger is broken. A running node: use 'kpxctl ledger verify'.",
       Verify},
      {{"key-info"},
       "print the trust-list signing_keys entry (key id, algorithm, public key) of a key",
       {{"FILE|PKCS11_URI"}},
       {},
       "A PEM file or a PKCS#11 URI (pkcs11:token=...;object=...?module-path=...&pin-source=...),"
       " as signing_key_file takes. The private key is never printed.",
       KeyInfo},
  };
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  // TLS 1.3 only, before any TLS exists (gateway/tls_policy.h).
  if (absl::Status s = kpx::gateway::EnforceTls13Only(); !s.ok()) {
    std::fprintf(stderr, "kpxd: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return kpx::cli::Main(MakeProgram(), argc, argv);
}
