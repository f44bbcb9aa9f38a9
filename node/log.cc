#include "node/log.h"

#include <atomic>
#include <cstdio>

#include "spdlog/sinks/stdout_sinks.h"

namespace kpx::log {
namespace {

std::atomic<Format> g_format{Format::kText};

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

// Text values with spaces or quotes are quoted so that lines stay parseable
// as key=value pairs.
void AppendTextValue(std::string& out, std::string_view s) {
  bool plain = !s.empty();
  for (unsigned char c : s) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\') plain = false;
  }
  if (plain) {
    out += s;
  } else {
    AppendJsonString(out, s);
  }
}

}  // namespace

void Init(Format format) {
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

}  // namespace kpx::log
