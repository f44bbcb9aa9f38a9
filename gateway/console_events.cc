#include "gateway/console_events.h"

#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gateway/console_pages.h"
#include "gateway/console_text.h"
#include "gateway/http_api.h"
#include "node/util.h"

namespace kpx::gateway {
namespace {

constexpr size_t kEntriesPerRead = 16;
constexpr absl::Duration kHeartbeat = absl::Seconds(15);

}  // namespace

std::string ConsoleEvents::EventOf(const v1::LedgerEntry& e, const std::string& lang) {
  const std::string at = absl::FormatTime(
      "%Y-%m-%dT%H:%M:%SZ", node::FromTimestamp(e.recorded_at()), absl::UTCTimeZone());
  std::string text = absl::StrCat(
      absl::FormatTime("%H:%M UTC", node::FromTimestamp(e.recorded_at()), absl::UTCTimeZone()), " ",
      e.certificate_number());
  if (e.state() != v1::CERTIFICATE_STATE_UNSPECIFIED) {
    absl::StrAppend(&text, " ",
                    Text(lang, absl::StrCat("state.", v1::CertificateState_Name(e.state()))));
  }
  if (!e.partner().empty()) absl::StrAppend(&text, " (", e.partner(), ")");
  return absl::StrCat("id: ", e.sequence(), "\nevent: entry\ndata: {\"sequence\":", e.sequence(),
                      ",\"kind\":", JsonString(v1::EntryKind_Name(e.kind())),
                      ",\"certificate\":", JsonString(e.certificate_number()),
                      ",\"partner\":", JsonString(e.partner()),
                      ",\"state\":", JsonString(v1::CertificateState_Name(e.state())),
                      ",\"at\":", JsonString(at), ",\"text\":", JsonString(text), "}\n\n");
}

void ConsoleEvents::Follow(const httplib::Request& req, httplib::Response& res) {
  absl::StatusOr<ConsoleSessions::Visitor> who = sessions_->Visit(req);
  if (!who.ok()) return ReplyError(res, who.status());
  if (absl::Status s = authority_->Authorize(who->caller, "Watch", kAnyRole); !s.ok()) {
    return ReplyError(res, s);
  }
  // Where to start: after the entry the browser saw last (Last-Event-ID),
  // else at from_sequence, else after the newest entry.
  uint64_t start = 0;
  if (uint64_t seen = 0; absl::SimpleAtoi(req.get_header_value("Last-Event-ID"), &seen)) {
    start = seen + 1;
  } else if (!absl::SimpleAtoi(req.get_param_value("from_sequence"), &start) &&
             !absl::SimpleAtoi(req.get_param_value("fromSequence"), &start)) {
    start = node_->ledger().head().sequence + 1;
  }
  int held = 0;
  if (slots_.Take(who->caller.name, &held) != StreamSlots::Refusal::kNone) {
    return ReplyError(res, absl::UnavailableError("too many live streams open: try again later"));
  }
  const std::string caller = who->caller.name;
  const std::string lang = PageLanguage(req);
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, next = std::max<uint64_t>(start, 1), lang](size_t, httplib::DataSink& sink) mutable {
        guard_->KeepAlive(absl::Hours(24));  // until the connection's lifetime ends
        static constexpr char kHello[] = ": connected\n\n";
        if (!sink.write(kHello, sizeof(kHello) - 1)) return false;
        absl::Time beat = absl::Now() + kHeartbeat;
        while (!stopping_ && sink.is_writable()) {
          absl::StatusOr<std::vector<v1::LedgerEntry>> entries =
              node_->ledger().ReadEntries(next, kEntriesPerRead);
          if (!entries.ok()) return false;
          for (const v1::LedgerEntry& e : *entries) {
            next = e.sequence() + 1;
            if (e.certificate_number().empty()) continue;  // not a certificate's step
            const std::string event = EventOf(e, lang);
            if (!sink.write(event.data(), event.size())) return false;
          }
          if (!entries->empty()) continue;
          if (absl::Now() >= beat) {
            static constexpr char kBeat[] = ": still here\n\n";
            if (!sink.write(kBeat, sizeof(kBeat) - 1)) return false;
            beat = absl::Now() + kHeartbeat;
          }
          node_->ledger().WaitForSequence(next, absl::Now() + absl::Seconds(1));
        }
        return false;
      },
      [this, caller](bool) { slots_.Give(caller); });
}

void ConsoleEvents::Register(httplib::Server* server) {
  server->Get("/api/v1/events",
              [this](const httplib::Request& req, httplib::Response& res) { Follow(req, res); });
}

}  // namespace kpx::gateway
