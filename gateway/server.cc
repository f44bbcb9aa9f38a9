#include "gateway/server.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "gateway/connection_gate.h"
#include "gateway/console_events.h"
#include "gateway/console_pages.h"
#include "gateway/http_api.h"
#include "gateway/http_server.h"
#include "gateway/http_session.h"
#include "gateway/metrics.h"
#include "gateway/tls.h"
#include "gateway/tls_policy.h"
#include "grpc/support/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "node/config.h"
#include "node/log.h"
#include "node/trust_list.h"

namespace kpx::gateway {

// What a node reads from the files its config names; loaded whole before
// anything is replaced, so a bad file changes nothing.
struct Material {
  std::shared_ptr<const node::TrustList> trust;
  std::vector<crypto::PrivateKey> keys;
  TlsIdentity identity;
};

namespace {

absl::StatusOr<Material> LoadMaterial(const v1::NodeConfig& config) {
  Material m;
  absl::StatusOr<std::shared_ptr<const node::TrustList>> trust =
      node::TrustList::FromTextFile(config.trust_list_file());
  if (!trust.ok()) return trust.status();
  m.trust = *std::move(trust);
  std::vector<std::string> key_files = {config.signing_key_file()};
  key_files.insert(key_files.end(), config.additional_signing_key_files().begin(),
                   config.additional_signing_key_files().end());
  // Each is a PEM file or a PKCS#11 URI; errors name it (PIN redacted).
  for (const std::string& file_or_uri : key_files) {
    absl::StatusOr<crypto::PrivateKey> key = crypto::PrivateKey::Load(file_or_uri);
    if (!key.ok()) return key.status();
    m.keys.push_back(*std::move(key));
  }
  absl::StatusOr<TlsIdentity> identity =
      LoadTlsIdentity(config.tls_cert_file(), config.tls_key_file());
  if (!identity.ok()) return identity.status();
  m.identity = *std::move(identity);
  if (absl::StatusOr<std::string> ca = crypto::ReadFile(config.authority_client_ca_file());
      !ca.ok()) {
    return ca.status();
  } else if (absl::StatusOr<crypto::CertificateInfo> info = crypto::ParseCertificatePem(*ca);
             !info.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(config.authority_client_ca_file(), ": ", info.status().message()));
  }
  return m;
}

// Replaces `path` atomically (write a sibling, then rename), so the TLS
// file watcher never reads half a file.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out.flush()) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot replace ", path, ": ", ec.message()));
  return absl::OkStatus();
}

// gRPC's own log lines, in kpx's log format and at most 20 every 10 s:
// some are one per connection a stranger opens ("Handshake timed out").
void GrpcLog(gpr_log_func_args* args) {
  static log::Budget* budget = new log::Budget("grpc", 20, absl::Seconds(10));
  if (!budget->Take()) return;
  const std::string where = absl::StrCat(args->file, ":", args->line);
  std::string message(args->message);
  if (message.size() > 512) message.resize(512);
  if (args->severity == GPR_LOG_SEVERITY_ERROR) {
    log::Error("grpc", {{"at", where}, {"message", message}});
  } else {
    log::Info("grpc", {{"at", where}, {"message", message}});
  }
}

// Server settings from the config's limits: a connection that never
// finishes TLS, sits idle, pings too often or opens too many streams is
// closed; threads (one per call in progress) and buffer memory are capped.
void ApplyLimits(const v1::LimitsConfig& limits, const std::string& name,
                 grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                              static_cast<int>(limits.handshake_timeout_ms()));
  builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                              static_cast<int>(limits.idle_timeout_ms()));
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                              static_cast<int>(limits.max_streams_per_connection()));
  // Our clients ping every 60 s during calls (tls.cc); a client pinging
  // faster than every 30 s without data is told to go away after two.
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 30000);
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  // Find dead clients: ping after 2 minutes of silence, drop after 20 s.
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 120000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  grpc::ResourceQuota quota(absl::StrCat("kpx-", name));
  quota.SetMaxThreads(static_cast<int>(limits.max_threads()));
  quota.Resize(static_cast<size_t>(limits.memory_mib()) << 20);
  builder->SetResourceQuota(quota);
  builder->SetMaxReceiveMessageSize(64 << 20);
}

// One listener: a ConnectionGate bound to `address` that hands what it
// lets in to a gRPC server with health checking and reflection; fails if
// the address cannot be bound.
absl::Status Listen(const std::string& name, const std::string& address,
                    const v1::LimitsConfig& limits, std::shared_ptr<grpc::ServerCredentials> creds,
                    grpc::Service* service, std::shared_ptr<ConnectionGate>* gate,
                    std::unique_ptr<grpc::Server>* server) {
  GateLimits gate_limits;
  gate_limits.max_connections = static_cast<int>(limits.max_connections());
  gate_limits.max_connections_per_client = static_cast<int>(limits.max_connections_per_client());
  gate_limits.descriptor_headroom = static_cast<int>(limits.descriptor_headroom());
  absl::StatusOr<std::unique_ptr<ConnectionGate>> bound =
      ConnectionGate::Bind(name, address, gate_limits);
  if (!bound.ok()) return bound.status();
  grpc::ServerBuilder builder;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor =
      builder.experimental().AddExternalConnectionAcceptor(
          grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
          std::move(creds));
  builder.RegisterService(service);
  ApplyLimits(limits, name, &builder);
  *server = builder.BuildAndStart();
  if (*server == nullptr) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  (*bound)->Start(std::move(acceptor));
  *gate = *std::move(bound);
  return absl::OkStatus();
}

constexpr char kPeerService[] = "kpx.v1.PeerService";
constexpr char kAuthorityService[] = "kpx.v1.AuthorityService";
constexpr char kCapacity[] = "kpx.v1.Capacity";

}  // namespace

absl::StatusOr<std::unique_ptr<NodeServer>> NodeServer::Start(const v1::NodeConfig& given,
                                                              const std::string& config_path) {
  // LoadConfig has filled the defaults already; a config built by hand (in
  // tests) gets them here.
  if (absl::Status st = EnforceTls13Only(); !st.ok()) return st;  // gateway/tls_policy.h
  v1::NodeConfig config = given;
  node::ApplyDefaults(&config);
  absl::StatusOr<Material> material = LoadMaterial(config);
  if (!material.ok()) return material.status();

  std::unique_ptr<NodeServer> s(new NodeServer);
  s->config_ = config;
  s->config_path_ = config_path;
  if (absl::Status st = s->OpenData(*material); !st.ok()) return st;
  if (absl::Status st = s->BuildNode(*material); !st.ok()) return st;
  if (absl::Status st = s->StartListeners(); !st.ok()) return st;
  s->node_->StartDelivery();
  NodeServer* self = s.get();
  s->health_thread_ = std::thread([self] { self->WatchHealth(); });
  return s;
}

absl::Status NodeServer::OpenData(const Material& material) {
  std::error_code ec;
  const std::filesystem::path data(config_.data_dir());
  std::filesystem::create_directories(data / "tls", ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", (data / "tls").string(), ": ", ec.message()));
  }
  peer_roots_file_ = (data / "tls" / "peer-roots.pem").string();
  if (absl::Status st = WriteFileAtomically(peer_roots_file_, material.trust->AllCasPem());
      !st.ok()) {
    return st;
  }
  absl::StatusOr<std::unique_ptr<storage::Ledger>> ledger =
      storage::Ledger::Open((data / "ledger").string());
  if (!ledger.ok()) return ledger.status();
  ledger_ = *std::move(ledger);
  return absl::OkStatus();
}

absl::Status NodeServer::BuildNode(const Material& material) {
  // The transport asks the node for the trust list in force, so a reload
  // reaches both. The node is set before delivery starts, and the
  // transport is only used by the node's delivery threads, which stop
  // before the node and the transport are destroyed.
  std::shared_ptr<const node::TrustList> initial = material.trust;
  transport_ = std::make_unique<GrpcTransport>(
      material.identity, [this, initial]() { return node_ ? node_->trust_list() : initial; },
      absl::Milliseconds(config_.delivery().rpc_timeout_ms()));

  node::NodeOptions opts;
  opts.participant = config_.participant();
  opts.authority_name = config_.authority_name();
  opts.trust_list = material.trust;
  opts.signing_keys = material.keys;
  opts.ledger = ledger_.get();
  opts.transport = transport_.get();
  opts.delivery = config_.delivery();
  opts.overdue_days = config_.overdue_days();
  opts.confirm_grace_days = config_.confirm_grace_days();
  opts.limits = config_.limits();
  opts.trust_poll_seconds = config_.trust_poll_seconds();
  // A version put in force without a reload (from a peer, or published)
  // brings its CAs to the peer listener through the watched roots file.
  // A failure is logged by WritePeerRoots; the listener keeps the roots it has.
  opts.on_trust_list = [this](const node::TrustList& trust) {
    WritePeerRoots(trust).IgnoreError();
  };
  absl::StatusOr<std::unique_ptr<node::Node>> node = node::Node::Create(std::move(opts));
  if (!node.ok()) return node.status();
  node_ = *std::move(node);
  // The version in force may be a newer one the ledger holds.
  if (node_->trust_list()->digest() != material.trust->digest()) {
    if (absl::Status s = WritePeerRoots(*node_->trust_list()); !s.ok()) return s;
  }

  if (config_.metrics_listen() != "off") {
    absl::StatusOr<std::unique_ptr<Metrics>> metrics = Metrics::Start(config_, node_.get());
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);
    node_->SetObserver(metrics_.get());
  }
  return absl::OkStatus();
}

absl::Status NodeServer::StartListeners() {
  peer_service_ = std::make_unique<PeerServiceImpl>(node_.get());
  OperatorHooks hooks;
  hooks.reload = [this] { return Reload(); };
  hooks.backup = [this](const std::string& dir) { return Backup(dir); };
  authority_ = std::make_unique<Authority>(node_.get(), config_, std::move(hooks));
  authority_service_ =
      std::make_unique<AuthorityServiceImpl>(node_.get(), authority_.get(), config_);

  // Standard health checking and reflection on both listeners, so that
  // ordinary gRPC tools can probe and explore a node.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // TLS files are watched (re-read every few seconds): a renewed node
  // certificate, a new authority client CA or new peer roots after a
  // trust-list reload take effect without a restart.
  // The listeners refuse connections that would leave fewer than
  // limits.descriptor_headroom descriptors: give them all the process may.
  const uint64_t nofile = ConnectionGate::RaiseDescriptorLimit();
  gpr_set_log_function(GrpcLog);
  log::Info("descriptor_limit", {{"open_files", std::to_string(nofile)}});
  if (absl::Status st =
          Listen("peer", config_.peer_listen(), config_.limits(),
                 WatchedMutualTlsServerCredentials(config_.tls_key_file(), config_.tls_cert_file(),
                                                   peer_roots_file_),
                 peer_service_.get(), &peer_gate_, &peer_server_);
      !st.ok()) {
    return st;
  }
  peer_port_ = peer_gate_->port();
  if (absl::Status st =
          Listen("authority", config_.authority_listen(), config_.limits(),
                 WatchedMutualTlsServerCredentials(config_.tls_key_file(), config_.tls_cert_file(),
                                                   config_.authority_client_ca_file()),
                 authority_service_.get(), &authority_gate_, &authority_server_);
      !st.ok()) {
    return st;
  }
  authority_port_ = authority_gate_->port();
  if (metrics_) metrics_->WatchGates({peer_gate_, authority_gate_});
  return StartConsole();
}

absl::Status NodeServer::StartConsole() {
  if (config_.console_listen() == "off") return absl::OkStatus();
  const v1::ConsoleConfig& c = config_.console();
  HttpsOptions options;
  options.address = config_.console_listen();
  options.cert_file = c.tls_cert_file();
  options.key_file = c.tls_key_file();
  options.client_ca_file = config_.authority_client_ca_file();
  options.limits.max_connections = static_cast<int>(c.max_connections());
  options.limits.max_connections_per_client = static_cast<int>(c.max_connections_per_client());
  options.limits.max_body_bytes = size_t{c.max_body_kib()} * 1024;
  absl::StatusOr<std::unique_ptr<HttpServer>> https = HttpServer::Bind(options);
  if (!https.ok()) return https.status();
  https_ = *std::move(https);
  sessions_ = std::make_unique<ConsoleSessions>(authority_.get(), &node_->officers());
  http_api_ = std::make_unique<HttpApi>(authority_.get(), sessions_.get());
  events_ = std::make_unique<ConsoleEvents>(node_.get(), authority_.get(), sessions_.get(),
                                            &https_->guard());
  events_->Register(&https_->server());  // before the API's catch-all
  http_api_->Register(&https_->server());
  pages_ = std::make_unique<ConsolePages>(authority_.get(), sessions_.get());
  pages_->Register(&https_->server());
  if (metrics_) {
    // The sessions outlive the metrics (~NodeServer).
    ConsoleSessions* sessions = sessions_.get();
    metrics_->WatchConsole(https_->shared_guard(),
                           [sessions] { return sessions->sessions().size(); });
  }
  https_->Start();
  log::Info("console_listening",
            {{"address", config_.console_listen()}, {"port", std::to_string(https_->port())}});
  return absl::OkStatus();
}

int NodeServer::console_port() const { return https_ ? https_->port() : 0; }

void NodeServer::WatchHealth() {
  bool last_ok = true;
  bool first = true;
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(health_mu_) { return stopping_; };
  for (;;) {
    {
      // health_mu_ guards only stopping_: it is held while waiting (up to
      // a second between checks, none before the first) and never while
      // the node is asked or the servers are told.
      absl::MutexLock l(&health_mu_);
      if (first ? stopping_
                : health_mu_.AwaitWithTimeout(absl::Condition(&stopping), absl::Seconds(1))) {
        return;
      }
    }
    const absl::Status health = node_->Health();
    const bool ok = health.ok();
    // Degraded, not down: while a listener refuses connections (a flood,
    // or more clients than its limits), kpx.v1.Capacity is NOT_SERVING.
    const bool room = !peer_gate_->stats().shedding && !authority_gate_->stats().shedding;
    for (grpc::Server* server : {peer_server_.get(), authority_server_.get()}) {
      grpc::HealthCheckServiceInterface* hc = server->GetHealthCheckService();
      if (hc == nullptr) continue;
      hc->SetServingStatus(ok);
      hc->SetServingStatus(kPeerService, ok);
      hc->SetServingStatus(kAuthorityService, ok);
      hc->SetServingStatus(kCapacity, room);
    }
    if (first || ok != last_ok) {
      if (ok) {
        log::Info("health", {{"status", "SERVING"}});
      } else {
        log::Error("health", {{"status", "NOT_SERVING"}, {"reason", health.message()}});
      }
    }
    first = false;
    last_ok = ok;
  }
}

absl::Status NodeServer::WritePeerRoots(const node::TrustList& trust) {
  absl::Status s = WriteFileAtomically(peer_roots_file_, trust.AllCasPem());
  if (!s.ok()) log::Error("peer_roots_not_written", {{"reason", s.message()}});
  return s;
}

absl::StatusOr<v1::ReloadResponse> NodeServer::Reload() {
  absl::MutexLock l(&reload_mu_);
  v1::NodeConfig config = config_;
  if (!config_path_.empty()) {
    // Listeners and the data folder stay as started; the files a reload
    // covers may be renamed or added (the next signing key, for one).
    absl::StatusOr<v1::NodeConfig> fresh = node::LoadConfig(config_path_);
    if (!fresh.ok()) {
      log::Error("reload_refused", {{"reason", fresh.status().message()}});
      return absl::FailedPreconditionError(
          absl::StrCat("reload refused, keeping the files in force: ", fresh.status().message()));
    }
    config.set_trust_list_file(fresh->trust_list_file());
    config.set_signing_key_file(fresh->signing_key_file());
    *config.mutable_additional_signing_key_files() = fresh->additional_signing_key_files();
  }
  absl::StatusOr<Material> material = LoadMaterial(config);
  if (!material.ok()) {
    log::Error("reload_refused", {{"reason", material.status().message()}});
    return absl::FailedPreconditionError(
        absl::StrCat("reload refused, keeping the files in force: ", material.status().message()));
  }
  if (absl::Status s = node_->Reconfigure(material->trust, material->keys); !s.ok()) {
    log::Error("reload_refused", {{"reason", s.message()}});
    return absl::FailedPreconditionError(
        absl::StrCat("reload refused, keeping the files in force: ", s.message()));
  }
  transport_->SetIdentity(material->identity);
  config_ = config;
  std::shared_ptr<const node::TrustList> in_force = node_->trust_list();
  if (absl::Status s = WritePeerRoots(*in_force); !s.ok()) {
    log::Error("reload_partial", {{"reason", s.message()}});
    return s;
  }
  v1::ReloadResponse resp;
  resp.set_trust_list_version(in_force->version());
  resp.set_participants(in_force->proto().participants_size());
  log::Info("reloaded", {{"trust_list_version", std::to_string(resp.trust_list_version())},
                         {"participants", std::to_string(resp.participants())},
                         {"signing_key", node_->CurrentKeyId().value_or("none")}});
  return resp;
}

namespace {

constexpr size_t kMaxBackupPathBytes = 1024;

// Whether `inner` is `outer` or below it, comparing the paths as they
// resolve (symbolic links followed, "." and ".." gone); an error if either
// cannot be resolved.
absl::StatusOr<bool> Inside(const std::filesystem::path& inner,
                            const std::filesystem::path& outer) {
  std::error_code ec;
  const std::filesystem::path in = std::filesystem::weakly_canonical(inner, ec);
  if (!ec) {
    const std::filesystem::path out = std::filesystem::weakly_canonical(outer, ec);
    if (!ec) return std::mismatch(out.begin(), out.end(), in.begin(), in.end()).first == out.end();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("cannot resolve the backup folder path: ", ec.message()));
}

// INVALID_ARGUMENT (one line, never echoing a path that could break it)
// unless `directory` is a folder a backup may be written to: absolute, at
// most kMaxBackupPathBytes, no control characters, outside `data_dir`.
absl::Status CheckBackupFolder(const std::string& directory, const std::string& data_dir) {
  if (directory.size() > kMaxBackupPathBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup folder path is longer than ", kMaxBackupPathBytes, " bytes"));
  }
  for (unsigned char c : directory) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("backup folder path contains a control character");
    }
  }
  if (!std::filesystem::path(directory).is_absolute()) {
    return absl::InvalidArgumentError("backup folder must be an absolute path on the node");
  }
  absl::StatusOr<bool> inside = Inside(directory, data_dir);
  if (!inside.ok()) return inside.status();
  if (*inside) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backup folder ", directory, " is inside the node's data folder; choose one outside it"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::BackupResponse> NodeServer::Backup(const std::string& directory) {
  if (absl::Status s = CheckBackupFolder(directory, config_.data_dir()); !s.ok()) return s;
  absl::StatusOr<storage::Head> head = ledger_->Checkpoint(directory);
  if (!head.ok()) return head.status();
  v1::BackupResponse resp;
  resp.set_directory(directory);
  resp.set_head_sequence(head->sequence);
  resp.set_head_hash(head->hash);
  log::Info("backup", {{"directory", directory}, {"head", std::to_string(head->sequence)}});
  return resp;
}

int NodeServer::metrics_port() const { return metrics_ ? metrics_->port() : 0; }

void NodeServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock l(&health_mu_);
    stopping_ = true;
  }
  if (health_thread_.joinable()) health_thread_.join();
  if (authority_service_) authority_service_->Stop();
  if (events_) events_->Stop();  // live streams end within a second
  if (https_) https_->Stop();
  // The gates first: gRPC must not be handed a connection once shut down.
  for (ConnectionGate* gate : {peer_gate_.get(), authority_gate_.get()}) {
    if (gate != nullptr) gate->Stop();
  }
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
  if (authority_server_) authority_server_->Shutdown(deadline);
  if (peer_server_) peer_server_->Shutdown(deadline);
  if (node_) node_->StopDelivery();
}

NodeServer::~NodeServer() {
  Shutdown();
  // Reverse order of use: servers and services before the node, metrics
  // (an observer of the node) after the delivery thread stopped, the node
  // before the transport and the ledger.
  https_.reset();
  http_api_.reset();
  pages_.reset();
  events_.reset();
  authority_server_.reset();
  peer_server_.reset();
  authority_service_.reset();
  peer_service_.reset();
  if (node_) node_->SetObserver(nullptr);
  metrics_.reset();
  sessions_.reset();  // after the metrics, which count them
  authority_.reset();
  node_.reset();
  transport_.reset();
  ledger_.reset();
}

}  // namespace kpx::gateway
