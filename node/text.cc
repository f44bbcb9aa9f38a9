#include "node/text.h"

#include <cstdint>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace kpx::node {
namespace {

// Decodes the UTF-8 character at s[i]: its code point and length, or
// length 0 if the bytes there are not well-formed UTF-8.
struct Decoded {
  uint32_t code = 0;
  size_t length = 0;
};

Decoded DecodeAt(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return {b0, 1};
  size_t n = 0;
  uint32_t code = 0;
  uint32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    n = 2, code = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, code = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, code = b0 & 0x07, min = 0x10000;
  } else {
    return {};
  }
  if (i + n > s.size()) return {};
  for (size_t k = 1; k < n; ++k) {
    if ((byte(k) & 0xC0) != 0x80) return {};
    code = (code << 6) | (byte(k) & 0x3F);
  }
  if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return {};
  return {code, n};
}

bool IsControl(uint32_t c) {
  return c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F) || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069);
}

void AppendEscape(std::string& out, uint32_t c, bool byte) {
  char buf[16];
  switch (c) {
    case '\n':
      out += "\\n";
      return;
    case '\t':
      out += "\\t";
      return;
    case '\r':
      out += "\\r";
      return;
    default:
      break;
  }
  if (byte) {
    std::snprintf(buf, sizeof(buf), "\\x%02X", static_cast<unsigned>(c));
  } else {
    std::snprintf(buf, sizeof(buf), "\\u{%04X}", static_cast<unsigned>(c));
  }
  out += buf;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const Decoded d = DecodeAt(s, i);
    if (d.length == 0) return false;
    i += d.length;
  }
  return true;
}

absl::Status CheckText(std::string_view s, size_t max_bytes, Lines lines, const std::string& what) {
  if (s.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", s.size(), " bytes; at most ", max_bytes, " are allowed"));
  }
  for (size_t i = 0; i < s.size();) {
    const Decoded d = DecodeAt(s, i);
    if (d.length == 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, " is not UTF-8 (byte ", i, ")"));
    }
    const bool allowed_space = lines == Lines::kMany && (d.code == '\n' || d.code == '\t');
    if (IsControl(d.code) && !allowed_space) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " holds a control character (byte ", i, ")"));
    }
    i += d.length;
  }
  return absl::OkStatus();
}

std::string Printable(std::string_view s, size_t max_bytes) {
  std::string out;
  const size_t shown = s.size() < max_bytes ? s.size() : max_bytes;
  out.reserve(shown);
  size_t i = 0;
  while (i < shown) {
    const Decoded d = DecodeAt(s, i);
    if (d.length == 0 || i + d.length > shown) {
      if (d.length != 0) break;  // a character cut by the bound: stop before it
      AppendEscape(out, static_cast<unsigned char>(s[i]), /*byte=*/true);
      ++i;
      continue;
    }
    if (IsControl(d.code)) {
      AppendEscape(out, d.code, /*byte=*/d.code < 0x80);
    } else {
      out.append(s.substr(i, d.length));
    }
    i += d.length;
  }
  if (i < s.size()) absl::StrAppend(&out, "…[+", s.size() - i, " bytes]");
  return out;
}

}  // namespace kpx::node
