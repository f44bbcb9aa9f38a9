#include "node/log.h"

#include <atomic>
#include <mutex>

#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"
#include "node/text.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace kpx::log {
namespace {

std::atomic<Format> g_format{Format::kText};

// Any one value in a line is at most this long (escaped, then cut).
constexpr size_t kMaxValueBytes = 1024;

// `s` in double quotes, `"` and `\` escaped. `s` is Printable's output,
// so it holds no control character left to escape.
void AppendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

// A value escaped and cut once (node::Printable), then quoted as JSON.
void AppendJsonString(std::string& out, std::string_view raw) {
  AppendQuoted(out, kpx::node::Printable(raw, kMaxValueBytes));
}

// Text values with spaces or quotes are quoted so that lines stay parseable
// as key=value pairs.
void AppendTextValue(std::string& out, std::string_view raw) {
  const std::string s = kpx::node::Printable(raw, kMaxValueBytes);
  bool plain = !s.empty();
  for (unsigned char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') plain = false;
  }
  if (plain) {
    out += s;
  } else {
    AppendQuoted(out, s);
  }
}

// libprotobuf's own complaints (for one, "invalid UTF-8" while parsing a
// body that is not yet verified) become kpx events: escaped, bounded, and
// at most kProtobufLinesPerMinute a minute, with a count of the rest.
constexpr int kProtobufLinesPerMinute = 10;

void ProtobufLog(google::protobuf::LogLevel level, const char* /*file*/, int /*line*/,
                 const std::string& message) {
  static std::mutex mu;
  static absl::Time window_start;
  static int in_window = 0;
  static int suppressed = 0;
  int report_suppressed = 0;
  {
    std::lock_guard<std::mutex> l(mu);
    const absl::Time now = absl::Now();
    if (now - window_start > absl::Minutes(1)) {
      report_suppressed = suppressed;
      window_start = now;
      in_window = 0;
      suppressed = 0;
    }
    if (++in_window > kProtobufLinesPerMinute) {
      ++suppressed;
      return;
    }
  }
  if (report_suppressed > 0) {
    Warn("protobuf_lines_suppressed", {{"count", std::to_string(report_suppressed)}});
  }
  const auto lvl =
      level >= google::protobuf::LOGLEVEL_ERROR ? spdlog::level::err : spdlog::level::warn;
  Event(lvl, "protobuf", {{"message", std::string_view(message).substr(0, 256)}});
}

}  // namespace

void Init(Format format) {
  google::protobuf::SetLogHandler(&ProtobufLog);
  g_format = format;
  auto logger = spdlog::stderr_logger_mt("kpx");
  if (format == Format::kJson) {
    logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %l %v", spdlog::pattern_time_type::utc);
  }
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

void Event(spdlog::level::level_enum level, std::string_view event,
           std::initializer_list<Field> fields) {
  std::string line;
  if (g_format == Format::kJson) {
    line += "\"event\":";
    AppendJsonString(line, event);
    for (const Field& f : fields) {
      line += ',';
      AppendJsonString(line, f.key);
      line += ':';
      AppendJsonString(line, f.value);
    }
  } else {
    line += event;
    for (const Field& f : fields) {
      line += ' ';
      line += f.key;
      line += '=';
      AppendTextValue(line, f.value);
    }
  }
  spdlog::log(level, "{}", line);
}

bool Budget::Take() {
  uint64_t left_out = 0;
  {
    absl::MutexLock l(&mu_);
    const absl::Time now = absl::Now();
    if (now - started_ >= window_) {
      started_ = now;
      used_ = 0;
      left_out = left_out_;
      left_out_ = 0;
    }
    if (++used_ > lines_) {
      ++left_out_;
      return false;
    }
  }
  if (left_out > 0) {
    Warn("log_suppressed", {{"event", event_}, {"lines", std::to_string(left_out)}});
  }
  return true;
}

}  // namespace kpx::log
