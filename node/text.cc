#include "node/text.h"

#include <cstdint>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"

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
    if (d.length == 0) {  // not UTF-8: the byte itself
      AppendEscape(out, static_cast<unsigned char>(s[i]), /*byte=*/true);
      ++i;
      continue;
    }
    if (i + d.length > shown) break;  // a character cut by the bound: stop before it
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

void EscapeStrings(google::protobuf::Message* m, size_t max_bytes) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection& r = *m->GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r.ListFields(*m, &fields);
  for (const FieldDescriptor* f : fields) {
    const int n = f->is_repeated() ? r.FieldSize(*m, f) : 1;
    for (int i = 0; i < n; ++i) {
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        EscapeStrings(f->is_repeated() ? r.MutableRepeatedMessage(m, f, i) : r.MutableMessage(m, f),
                      max_bytes);
      } else if (f->type() == FieldDescriptor::TYPE_STRING) {
        const std::string v = f->is_repeated() ? r.GetRepeatedString(*m, f, i) : r.GetString(*m, f);
        std::string shown = Printable(v, max_bytes);
        if (shown == v) continue;
        if (f->is_repeated()) {
          r.SetRepeatedString(m, f, i, std::move(shown));
        } else {
          r.SetString(m, f, std::move(shown));
        }
      }
    }
  }
}

std::string EscapeJsonControls(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size();) {
    const Decoded d = DecodeAt(json, i);
    if (d.length == 0) {  // not UTF-8: kept as it is (protobuf's JSON is UTF-8)
      out += json[i++];
      continue;
    }
    if (d.code >= 0x80 && IsControl(d.code)) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "\\u%04X", static_cast<unsigned>(d.code));
      out += buf;
    } else {
      out.append(json.substr(i, d.length));
    }
    i += d.length;
  }
  return out;
}

}  // namespace kpx::node
