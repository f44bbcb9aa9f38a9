// The Prometheus text endpoint of a node (prometheus-cpp, Debian's
// prometheus-cpp-dev: a maintained client with its own small HTTP server,
// so kpx writes no HTTP code). Plain HTTP on its own listener, loopback by
// default; GET /metrics. A client that connects and sends nothing holds
// one of its few worker threads for at most a second (request timeout),
// so idle connections cannot hold up a scrape for long.
//
// Counters are fed by node::Observer callbacks; gauges are computed from
// the node and its ledger when scraped. Metric names: docs/operations.md.
#ifndef KPX_GATEWAY_METRICS_H_
#define KPX_GATEWAY_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kpx/v1/config.pb.h"
#include "node/node.h"
#include "node/observer.h"

namespace prometheus {
class Exposer;
class Registry;
template <typename T>
class Family;
class Counter;
class Histogram;
}  // namespace prometheus

namespace kpx::gateway {

class ConnectionGate;
class HttpGuard;

class Metrics : public node::Observer {
 public:
  // Starts serving on config.metrics_listen. `node` must outlive this.
  static absl::StatusOr<std::unique_ptr<Metrics>> Start(const v1::NodeConfig& config,
                                                        node::Node* node);
  ~Metrics() override;

  int port() const { return port_; }

  // Adds the listeners' connection gauges and counters, read from `gates`
  // at each scrape (kpx_connections_open, kpx_connections_refused_total,
  // kpx_shedding_load). Call once, before the first scrape matters.
  void WatchGates(std::vector<std::shared_ptr<const ConnectionGate>> gates);
  // Adds the HTTPS console's figures, read at each scrape:
  // kpx_http_connections_open, kpx_http_connections_refused_total{reason},
  // kpx_http_connections_cut_total{reason}, kpx_console_sessions (from
  // `sessions`, which must stay callable while this lives).
  void WatchConsole(std::shared_ptr<const HttpGuard> guard, std::function<size_t()> sessions);

  void Delivered(const std::string& partner, const std::string& kind,
                 absl::Duration latency) override;
  void DeliveryRefused(const std::string& partner, absl::StatusCode code) override;
  void Received(const std::string& partner, const std::string& kind) override;
  void Refused(const std::string& partner, absl::StatusCode code) override;
  void LedgerWriteFailed(const std::string& step) override;

 private:
  class Gauges;
  class GateGauges;
  class ConsoleGauges;
  Metrics() = default;

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<Gauges> gauges_;
  std::shared_ptr<GateGauges> gate_gauges_;
  std::shared_ptr<ConsoleGauges> console_gauges_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* sent_ = nullptr;
  prometheus::Family<prometheus::Counter>* received_ = nullptr;
  prometheus::Family<prometheus::Counter>* refused_ = nullptr;
  prometheus::Family<prometheus::Counter>* delivery_refused_ = nullptr;
  prometheus::Family<prometheus::Histogram>* latency_ = nullptr;
  prometheus::Family<prometheus::Counter>* write_failures_ = nullptr;
  int port_ = 0;
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_METRICS_H_
