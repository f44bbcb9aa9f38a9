// Structured event logging on top of spdlog (Debian's libspdlog-dev).
//
// Every line is one event with named fields. Text (default):
//   2026-11-27T18:00:00.123456Z info delivered message=ab12... certificate=BW-1 partner=EU
// JSON lines (kpxd --log-format json):
//   {"time":"2026-11-27T18:00:00.123456Z","level":"info","event":"delivered",
//    "message":"ab12...","certificate":"BW-1","partner":"EU"}
//
// Callers log ids, numbers, codes and reasons only: never key material or
// whole certificates.
//
// Thread-safe: spdlog's default logger serializes writes.
#ifndef KPX_NODE_LOG_H_
#define KPX_NODE_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

namespace kpx::log {

enum class Format { kText, kJson };

// Installs the process-wide logger writing to stderr in `format`. Call once
// from main() before starting threads; without it events go to spdlog's
// default logger as text.
void Init(Format format);

// One named value. Accepts std::string, C strings and both string_view
// types (Debian's Abseil has its own absl::string_view).
struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v) {}
  Field(std::string_view k, const char* v) : key(k), value(v) {}
  Field(std::string_view k, absl::string_view v) : key(k), value(v.data(), v.size()) {}
  std::string_view key;
  std::string_view value;
};

// Logs `event` with its fields at `level`.
void Event(spdlog::level::level_enum level, std::string_view event,
           std::initializer_list<Field> fields);

inline void Info(std::string_view event, std::initializer_list<Field> fields) {
  Event(spdlog::level::info, event, fields);
}
inline void Warn(std::string_view event, std::initializer_list<Field> fields) {
  Event(spdlog::level::warn, event, fields);
}
inline void Error(std::string_view event, std::initializer_list<Field> fields) {
  Event(spdlog::level::err, event, fields);
}

// At most `lines` lines of one event per `window`, for events a stranger
// can cause at will (a refused request, a cut connection). Take() says
// whether a line may be written now; the first line of a new window first
// logs `log_suppressed event=... lines=N` for those left out. Thread-safe.
class Budget {
 public:
  Budget(std::string_view event, int lines, absl::Duration window)
      : event_(event), lines_(lines), window_(window) {}
  bool Take();

 private:
  const std::string event_;
  const int lines_;
  const absl::Duration window_;
  absl::Mutex mu_;
  absl::Time started_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int used_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t left_out_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kpx::log

#endif  // KPX_NODE_LOG_H_
