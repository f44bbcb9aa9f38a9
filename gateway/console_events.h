// Live activity for the console (docs/console.md): the node's ledger
// entries as Server-Sent Events, GET /api/v1/events.
//
// Each event is one ledger entry, `id` its sequence, `event: entry`, and
// `data` a JSON object {"sequence", "kind", "certificate", "partner",
// "state", "at", "text"}, `text` a line in the caller's console language
// ("12:04 UTC BW/2026/0042 Received (BW)"). Only certificates' steps; no
// signed bytes or certificate contents. A stream starts after the entry
// its Last-Event-ID header names (so a browser's EventSource resumes where
// it was after a reconnect), else at `from_sequence`, else after the
// newest entry.
//
// Any role may follow (a client certificate or an officer's session).
// Each stream holds one of the console's threads, so there are at most
// kMaxStreams at once and kMaxStreamsPerCaller per caller (503 beyond); a
// stream ends with the connection's lifetime (HttpGuard) and the browser
// reconnects. A comment line every 15 s keeps proxies from closing it.
//
// Thread-safe. Stop() ends every stream within a second.
#ifndef KPX_GATEWAY_CONSOLE_EVENTS_H_
#define KPX_GATEWAY_CONSOLE_EVENTS_H_

#include <httplib.h>

#include <atomic>
#include <string>

#include "gateway/authority.h"
#include "gateway/http_guard.h"
#include "gateway/http_session.h"
#include "gateway/stream_slots.h"
#include "node/node.h"

namespace kpx::gateway {

class ConsoleEvents {
 public:
  static constexpr int kMaxStreams = 8;
  static constexpr int kMaxStreamsPerCaller = 2;

  // All must outlive this.
  ConsoleEvents(node::Node* node, const Authority* authority, ConsoleSessions* sessions,
                HttpGuard* guard)
      : node_(node),
        authority_(authority),
        sessions_(sessions),
        guard_(guard),
        slots_(kMaxStreams, kMaxStreamsPerCaller) {}

  void Register(httplib::Server* server);
  void Stop() { stopping_ = true; }

  // One entry as the event a stream sends (tests).
  static std::string EventOf(const v1::LedgerEntry& e, const std::string& lang);

 private:
  void Follow(const httplib::Request& req, httplib::Response& res);

  node::Node* const node_;
  const Authority* const authority_;
  ConsoleSessions* const sessions_;
  HttpGuard* const guard_;
  StreamSlots slots_;
  std::atomic<bool> stopping_{false};
};

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_CONSOLE_EVENTS_H_
