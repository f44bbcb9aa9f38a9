#include "node/config.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "node/trust_list.h"
#include "node/util.h"

namespace kpx::node {
namespace {

// Makes a relative path absolute under `base`. A PKCS#11 URI (a signing key
// in a token, "pkcs11:...") is not a path and is left alone.
void Resolve(const std::filesystem::path& base, std::string* path) {
  if (path->rfind("pkcs11:", 0) == 0) return;
  if (!path->empty() && std::filesystem::path(*path).is_relative()) {
    *path = (base / *path).lexically_normal().string();
  }
}

}  // namespace

void ApplyDefaults(v1::NodeConfig* config) {
  if (config->data_dir().empty()) config->set_data_dir("data");
  if (config->peer_listen().empty()) config->set_peer_listen("127.0.0.1:7400");
  if (config->authority_listen().empty()) config->set_authority_listen("127.0.0.1:7401");
  if (config->metrics_listen().empty()) config->set_metrics_listen("127.0.0.1:9464");
  if (config->console_listen().empty()) config->set_console_listen("127.0.0.1:8443");
  v1::ConsoleConfig* console = config->mutable_console();
  if (console->tls_cert_file().empty()) console->set_tls_cert_file(config->tls_cert_file());
  if (console->tls_key_file().empty()) console->set_tls_key_file(config->tls_key_file());
  if (console->max_connections() == 0) console->set_max_connections(32);
  if (console->max_connections_per_client() == 0) console->set_max_connections_per_client(8);
  if (console->max_body_kib() == 0) console->set_max_body_kib(1024);
  if (config->overdue_days() == 0) config->set_overdue_days(15);
  if (config->confirm_grace_days() == 0) config->set_confirm_grace_days(30);
  if (config->trust_poll_seconds() == 0) config->set_trust_poll_seconds(60);
  if (config->authority_name().empty() && !config->participant().empty()) {
    config->set_authority_name(absl::StrCat(config->participant(), " KP authority"));
  }
  v1::DeliveryConfig* d = config->mutable_delivery();
  if (d->initial_backoff_ms() == 0) d->set_initial_backoff_ms(500);
  if (d->max_backoff_ms() == 0) d->set_max_backoff_ms(60000);
  if (d->batch_size() == 0) d->set_batch_size(256);
  d->set_batch_size(std::min(d->batch_size(), kMaxDeliveryBatchSize));
  if (d->rpc_timeout_ms() == 0) d->set_rpc_timeout_ms(10000);
  if (d->stuck_after_hours() == 0) d->set_stuck_after_hours(168);
  v1::LimitsConfig* l = config->mutable_limits();
  if (l->max_connections() == 0) l->set_max_connections(1024);
  if (l->max_connections_per_client() == 0) l->set_max_connections_per_client(64);
  if (l->descriptor_headroom() == 0) l->set_descriptor_headroom(256);
  if (l->handshake_timeout_ms() == 0) l->set_handshake_timeout_ms(10000);
  if (l->idle_timeout_ms() == 0) l->set_idle_timeout_ms(300000);
  if (l->max_streams_per_connection() == 0) l->set_max_streams_per_connection(64);
  if (l->max_threads() == 0) l->set_max_threads(128);
  if (l->memory_mib() == 0) l->set_memory_mib(512);
  if (l->max_watch_streams() == 0) l->set_max_watch_streams(32);
  if (l->max_watch_streams_per_client() == 0) l->set_max_watch_streams_per_client(4);
  if (l->partner_mib_per_hour() == 0) l->set_partner_mib_per_hour(64);
}

absl::StatusOr<v1::NodeConfig> LoadConfig(const std::string& path) {
  absl::StatusOr<std::string> text = crypto::ReadFile(path);
  if (!text.ok()) return text.status();
  v1::NodeConfig config;
  if (absl::Status s = ParseTextProto(*text, path, &config); !s.ok()) return s;
  auto missing = [&](absl::string_view field) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, " is required"));
  };
  if (!IsParticipantCode(config.participant())) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": participant must be a 2-letter code, got '", config.participant(), "'"));
  }
  if (config.tls_cert_file().empty()) return missing("tls_cert_file");
  if (config.tls_key_file().empty()) return missing("tls_key_file");
  if (config.authority_client_ca_file().empty()) return missing("authority_client_ca_file");
  if (config.signing_key_file().empty()) return missing("signing_key_file");
  if (config.trust_list_file().empty()) return missing("trust_list_file");
  for (const v1::AuthorityClient& c : config.authority_clients()) {
    if (c.common_name().empty() || c.roles().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": every authority_clients entry needs common_name and roles"));
    }
  }
  ApplyDefaults(&config);
  const std::filesystem::path base = std::filesystem::absolute(path).parent_path();
  Resolve(base, config.mutable_data_dir());
  Resolve(base, config.mutable_tls_cert_file());
  Resolve(base, config.mutable_tls_key_file());
  Resolve(base, config.mutable_authority_client_ca_file());
  Resolve(base, config.mutable_signing_key_file());
  Resolve(base, config.mutable_trust_list_file());
  Resolve(base, config.mutable_console()->mutable_tls_cert_file());
  Resolve(base, config.mutable_console()->mutable_tls_key_file());
  for (std::string& f : *config.mutable_additional_signing_key_files()) Resolve(base, &f);
  return config;
}

}  // namespace kpx::node
