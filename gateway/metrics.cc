#include "gateway/metrics.h"

#include <sys/stat.h>

#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "crypto/crypto.h"
#include "gateway/connection_gate.h"
#include "gateway/http_guard.h"
#include "node/log.h"
#include "node/state.h"
#include "node/util.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace kpx::gateway {

// Gauges read from the node at scrape time, on a prometheus-cpp (civetweb)
// worker thread whose stack is small (about 100 KiB): nothing here may put
// a large buffer on the stack. Counting certificates by state scans the
// certificate index, so the result is cached for a few seconds: a scraper
// polling fast cannot turn into a full scan per request. The TLS
// certificates' expiry is read from their files at most once a minute, or
// sooner when a file is replaced (its inode, size or mtime changes).
class Metrics::Gauges : public prometheus::Collectable {
 public:
  Gauges(node::Node* node, const v1::NodeConfig& config)
      : node_(node),
        tls_files_{{"node", TlsFile{config.tls_cert_file()}},
                   {"authority_client_ca", TlsFile{config.authority_client_ca_file()}}} {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const absl::Time now = absl::Now();
    std::vector<prometheus::MetricFamily> out;
    AddLedgerGauges(now, out);
    out.push_back(Gauge("kpx_outbox_stuck",
                        "Messages queued longer than delivery.stuck_after_hours (still retried).",
                        {{{}, static_cast<double>(node_->StuckMessages())}}));
    out.push_back(Gauge("kpx_node_healthy", "1 while the node can sign and write its ledger.",
                        {{{}, node_->Health().ok() ? 1.0 : 0.0}}));
    AddCertificateGauges(now, out);
    out.push_back(Gauge("kpx_tls_certificate_expiry_days",
                        "Days until a TLS certificate of this node expires.", TlsExpiry(now)));
    out.push_back(Gauge("kpx_signing_key_expiry_days",
                        "Days until a signing key of this Participant leaves its window.",
                        SigningKeyExpiry(now)));
    return out;
  }

 private:
  struct Sample {
    std::map<std::string, std::string> labels;
    double value;
  };
  using Counts = node::CertificateCounts;
  // What identifies one version of a file without reading it.
  struct FileStamp {
    ino_t inode = 0;
    off_t size = -1;
    struct timespec mtime = {};
    bool operator==(const FileStamp& o) const {
      return inode == o.inode && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
             mtime.tv_nsec == o.mtime.tv_nsec;
    }
  };
  // A TLS certificate file and what was last read from it.
  struct TlsFile {
    explicit TlsFile(std::string p) : path(std::move(p)) {}
    std::string path;
    std::optional<FileStamp> stamp;  // of the version last read
    absl::Time read_at = absl::InfinitePast();
    std::optional<absl::Time> not_after;  // none: missing or unreadable
  };
  static constexpr absl::Duration kTlsRereadEvery = absl::Minutes(1);

  static double Days(absl::Duration d) { return absl::ToDoubleHours(d) / 24; }

  static prometheus::MetricFamily Gauge(const std::string& name, const std::string& help,
                                        const std::vector<Sample>& samples) {
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = prometheus::MetricType::Gauge;
    for (const Sample& s : samples) {
      prometheus::ClientMetric m;
      for (const auto& [k, v] : s.labels) m.label.push_back({k, v});
      m.gauge.value = s.value;
      f.metric.push_back(std::move(m));
    }
    return f;
  }

  void AddLedgerGauges(absl::Time now, std::vector<prometheus::MetricFamily>& out) const {
    storage::Ledger& ledger = node_->ledger();
    out.push_back(Gauge("kpx_ledger_head_sequence", "Sequence of the last ledger entry.",
                        {{{}, static_cast<double>(ledger.head().sequence)}}));
    out.push_back(Gauge("kpx_ledger_size_bytes", "Approximate ledger size on disk.",
                        {{{}, static_cast<double>(ledger.ApproximateSizeBytes())}}));
    out.push_back(Gauge("kpx_outbox_depth", "Messages waiting for delivery.",
                        {{{}, static_cast<double>(ledger.OutboxSize())}}));
    double oldest = 0;
    if (absl::StatusOr<std::vector<v1::OutboxItem>> due = ledger.DueOutbox(now, 1);
        due.ok() && !due->empty()) {
      oldest = absl::ToDoubleSeconds(now - node::FromTimestamp((*due)[0].queued_at()));
    }
    out.push_back(Gauge("kpx_outbox_oldest_due_age_seconds",
                        "Age of the earliest due outbox message (0 when none is due).",
                        {{{}, oldest}}));
    std::vector<Sample> forks;
    if (absl::StatusOr<std::vector<v1::PeerLog>> logs = ledger.ListPeerLogs(); logs.ok()) {
      for (const v1::PeerLog& l : *logs) {
        forks.push_back({{{"partner", l.participant()}}, l.inconsistent() ? 1.0 : 0.0});
      }
    }
    out.push_back(Gauge("kpx_peer_log_inconsistent",
                        "1 for a peer whose log did not extend what it showed before (a fork).",
                        forks));
    out.push_back(Gauge("kpx_trust_list_version", "Version of the trust list in force.",
                        {{{}, static_cast<double>(node_->trust_list()->version())}}));
    out.push_back(Gauge("kpx_messages_resigned",
                        "Queued messages signed again since start because their key was "
                        "retired, revoked or left the trust list.",
                        {{{}, static_cast<double>(node_->MessagesResigned())}}));
    out.push_back(Gauge("kpx_messages_resign_failed",
                        "Passes since start that could not sign withdrawn-key messages again "
                        "(no key valid now, or a ledger error).",
                        {{{}, static_cast<double>(node_->ResignFailures())}}));
    out.push_back(Gauge("kpx_trust_list_refused",
                        "Refusals of a trust-list version a peer offered, since start (each "
                        "poll that offers one counts): not the next version, or not signed "
                        "by the threshold.",
                        {{{}, static_cast<double>(node_->TrustListsRefused())}}));
  }

  void AddCertificateGauges(absl::Time now, std::vector<prometheus::MetricFamily>& out) const {
    Counts c = CertificateCounts(now);
    std::vector<Sample> by_state;
    for (int s = v1::ISSUED; s <= v1::REFUSED; ++s) {
      const auto state = static_cast<v1::CertificateState>(s);
      by_state.push_back(
          {{{"state", v1::CertificateState_Name(state)}}, static_cast<double>(c.by_state[state])});
    }
    out.push_back(Gauge("kpx_certificates", "Certificates by current state.", by_state));
    out.push_back(Gauge("kpx_certificates_overdue",
                        "Certificates waiting for the importing authority longer than "
                        "overdue_days.",
                        {{{}, static_cast<double>(c.overdue)}}));
    out.push_back(Gauge("kpx_certificates_with_discrepancies",
                        "Confirmed certificates whose import confirmation differs from them.",
                        {{{}, static_cast<double>(c.discrepancies)}}));
  }

  Counts CertificateCounts(absl::Time now) const {
    absl::MutexLock l(&mu_);
    if (now - counted_at_ < absl::Seconds(10)) return counts_;
    absl::StatusOr<Counts> c = node_->CountCertificates();
    if (!c.ok()) {
      log::Error("ledger_read_failed", {{"step", "metrics"}, {"reason", c.status().message()}});
      return counts_;  // the last good counts
    }
    counts_ = *c;
    counted_at_ = now;
    return *std::move(c);
  }

  static std::optional<FileStamp> Stamp(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    return FileStamp{st.st_ino, st.st_size, st.st_mtim};
  }

  // Re-reads `f` if it changed or was last read a minute ago or more.
  static void Refresh(TlsFile& f, absl::Time now) {
    std::optional<FileStamp> stamp = Stamp(f.path);
    if (stamp == f.stamp && now - f.read_at < kTlsRereadEvery) return;
    f.stamp = stamp;
    f.read_at = now;
    f.not_after.reset();
    if (!stamp.has_value()) return;
    absl::StatusOr<std::string> pem = crypto::ReadFile(f.path);
    if (!pem.ok()) return;
    absl::StatusOr<crypto::CertificateInfo> info = crypto::ParseCertificatePem(*pem);
    if (info.ok()) f.not_after = info->not_after;
  }

  std::vector<Sample> TlsExpiry(absl::Time now) const {
    absl::MutexLock l(&tls_mu_);
    std::vector<Sample> out;
    for (auto& [label, file] : tls_files_) {
      Refresh(file, now);
      if (file.not_after.has_value()) {
        out.push_back({{{"certificate", label}}, Days(*file.not_after - now)});
      }
    }
    return out;
  }

  std::vector<Sample> SigningKeyExpiry(absl::Time now) const {
    std::vector<Sample> keys;
    std::shared_ptr<const node::TrustList> trust = node_->trust_list();
    if (const v1::Participant* p = trust->Find(node_->participant()); p != nullptr) {
      for (const v1::SigningKey& k : p->signing_keys()) {
        if (!node::IsSet(k.not_after())) continue;  // no expiry
        keys.push_back({{{"participant", p->code()}, {"key_id", k.key_id()}},
                        Days(node::FromTimestamp(k.not_after()) - now)});
      }
    }
    return keys;
  }

  node::Node* const node_;
  mutable absl::Mutex mu_;
  mutable Counts counts_ ABSL_GUARDED_BY(mu_);
  mutable absl::Time counted_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  mutable absl::Mutex tls_mu_;
  // Label value ("node", "authority_client_ca") -> its file.
  mutable std::map<std::string, TlsFile> tls_files_ ABSL_GUARDED_BY(tls_mu_);
};

// An empty family of samples, for the collectors that compute theirs at
// scrape time.
static prometheus::MetricFamily Family(const std::string& name, const std::string& help,
                                       prometheus::MetricType type) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

// The listeners' connection figures, read from their gates at scrape time.
class Metrics::GateGauges : public prometheus::Collectable {
 public:
  explicit GateGauges(std::vector<std::shared_ptr<const ConnectionGate>> gates)
      : gates_(std::move(gates)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily open = Family(
        "kpx_connections_open", "Connections open on a listener.", prometheus::MetricType::Gauge);
    prometheus::MetricFamily refused =
        Family("kpx_connections_refused_total",
               "Connections a listener closed at once, by reason (descriptors, listener_full, "
               "per_client).",
               prometheus::MetricType::Counter);
    prometheus::MetricFamily shedding =
        Family("kpx_shedding_load", "1 while a listener has refused a connection in the last 5 s.",
               prometheus::MetricType::Gauge);
    for (const std::shared_ptr<const ConnectionGate>& g : gates_) {
      const ConnectionGate::Stats st = g->stats();
      open.metric.push_back(Gauge({{"listener", g->name()}}, st.open));
      shedding.metric.push_back(Gauge({{"listener", g->name()}}, st.shedding ? 1 : 0));
      const std::pair<const char*, uint64_t> reasons[] = {
          {"descriptors", st.refused_descriptors},
          {"listener_full", st.refused_listener_full},
          {"per_client", st.refused_per_client}};
      for (const auto& [reason, n] : reasons) {
        prometheus::ClientMetric m;
        m.label = {{"listener", g->name()}, {"reason", reason}};
        m.counter.value = static_cast<double>(n);
        refused.metric.push_back(std::move(m));
      }
    }
    return {open, refused, shedding};
  }

 private:
  static prometheus::ClientMetric Gauge(std::vector<prometheus::ClientMetric::Label> labels,
                                        double value) {
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = value;
    return m;
  }

  const std::vector<std::shared_ptr<const ConnectionGate>> gates_;
};

// The HTTPS console's connection figures and open sessions, read at
// scrape time.
class Metrics::ConsoleGauges : public prometheus::Collectable {
 public:
  ConsoleGauges(std::shared_ptr<const HttpGuard> guard, std::function<size_t()> sessions)
      : guard_(std::move(guard)), sessions_(std::move(sessions)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const HttpGuard::Stats st = guard_->stats();
    prometheus::MetricFamily open =
        Family("kpx_http_connections_open", "HTTPS console connections being served.", kGauge);
    open.metric.push_back(Value({}, st.serving, kGauge));
    prometheus::MetricFamily refused =
        Family("kpx_http_connections_refused_total",
               "HTTPS console connections closed as they started, by reason (listener_full, "
               "per_client).",
               kCounter);
    refused.metric.push_back(
        Value({{"reason", "listener_full"}}, st.refused_listener_full, kCounter));
    refused.metric.push_back(Value({{"reason", "per_client"}}, st.refused_per_client, kCounter));
    prometheus::MetricFamily cut =
        Family("kpx_http_connections_cut_total",
               "HTTPS console connections cut, by reason (too_slow, over_budget).", kCounter);
    cut.metric.push_back(Value({{"reason", "too_slow"}}, st.cut_too_slow, kCounter));
    cut.metric.push_back(Value({{"reason", "over_budget"}}, st.cut_over_budget, kCounter));
    prometheus::MetricFamily sessions =
        Family("kpx_console_sessions", "Officers' console sessions open.", kGauge);
    sessions.metric.push_back(Value({}, static_cast<double>(sessions_()), kGauge));
    return {open, refused, cut, sessions};
  }

 private:
  static constexpr prometheus::MetricType kGauge = prometheus::MetricType::Gauge;
  static constexpr prometheus::MetricType kCounter = prometheus::MetricType::Counter;
  static prometheus::ClientMetric Value(std::vector<prometheus::ClientMetric::Label> labels,
                                        double value, prometheus::MetricType type) {
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    if (type == prometheus::MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    return m;
  }

  const std::shared_ptr<const HttpGuard> guard_;
  const std::function<size_t()> sessions_;
};

void Metrics::WatchConsole(std::shared_ptr<const HttpGuard> guard,
                           std::function<size_t()> sessions) {
  console_gauges_ = std::make_shared<ConsoleGauges>(std::move(guard), std::move(sessions));
  exposer_->RegisterCollectable(console_gauges_);
}

void Metrics::WatchGates(std::vector<std::shared_ptr<const ConnectionGate>> gates) {
  gate_gauges_ = std::make_shared<GateGauges>(std::move(gates));
  exposer_->RegisterCollectable(gate_gauges_);
}

absl::StatusOr<std::unique_ptr<Metrics>> Metrics::Start(const v1::NodeConfig& config,
                                                        node::Node* node) {
  std::unique_ptr<Metrics> m(new Metrics);
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->sent_ = &prometheus::BuildCounter()
                  .Name("kpx_messages_sent_total")
                  .Help("Messages delivered to a partner with a valid signed receipt.")
                  .Register(*m->registry_);
  m->received_ = &prometheus::BuildCounter()
                      .Name("kpx_messages_received_total")
                      .Help("Messages accepted from a partner.")
                      .Register(*m->registry_);
  m->refused_ = &prometheus::BuildCounter()
                     .Name("kpx_messages_refused_total")
                     .Help("Messages from a partner that this node refused, by reason.")
                     .Register(*m->registry_);
  m->delivery_refused_ = &prometheus::BuildCounter()
                              .Name("kpx_deliveries_refused_total")
                              .Help("Messages of ours that a partner refused for good.")
                              .Register(*m->registry_);
  m->latency_ = &prometheus::BuildHistogram()
                     .Name("kpx_delivery_latency_seconds")
                     .Help("From queueing a message to its partner's signed receipt.")
                     .Register(*m->registry_);
  m->write_failures_ = &prometheus::BuildCounter()
                            .Name("kpx_ledger_write_failures_total")
                            .Help("Ledger writes that failed on a background path, by step.")
                            .Register(*m->registry_);
  m->gauges_ = std::make_shared<Gauges>(node, config);
  try {
    // prometheus-cpp reports a failed bind by throwing; keep that inside.
    // civetweb's defaults let two silent connections hold both worker
    // threads for 30 s each; a scrape then waits behind them. A request
    // must arrive within a second, and a few more workers serve the rest.
    m->exposer_ = std::make_unique<prometheus::Exposer>(
        std::vector<std::string>{"listening_ports", config.metrics_listen(), "num_threads", "4",
                                 "request_timeout_ms", "1000", "enable_keep_alive", "no"});
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", config.metrics_listen(), ": ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->registry_);
  m->exposer_->RegisterCollectable(m->gauges_);
  std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? 0 : ports[0];
  return m;
}

Metrics::~Metrics() = default;

void Metrics::Delivered(const std::string& partner, const std::string& kind,
                        absl::Duration latency) {
  sent_->Add({{"partner", partner}, {"kind", kind}}).Increment();
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600};
  latency_->Add({{"partner", partner}}, kBuckets).Observe(absl::ToDoubleSeconds(latency));
}

void Metrics::DeliveryRefused(const std::string& partner, absl::StatusCode code) {
  delivery_refused_->Add({{"partner", partner}, {"reason", absl::StatusCodeToString(code)}})
      .Increment();
}

void Metrics::Received(const std::string& partner, const std::string& kind) {
  received_->Add({{"partner", partner}, {"kind", kind}}).Increment();
}

void Metrics::LedgerWriteFailed(const std::string& step) {
  write_failures_->Add({{"step", step}}).Increment();
}

void Metrics::Refused(const std::string& partner, absl::StatusCode code) {
  refused_->Add({{"partner", partner}, {"reason", absl::StatusCodeToString(code)}}).Increment();
}

}  // namespace kpx::gateway
