// Text that came from elsewhere (a partner, an authority, a file), made
// safe to store and to show.
//
// Two jobs, one rule set:
//   CheckText    refuses, at an entrance, a string that is not valid UTF-8,
//                is longer than a bound, or holds a control character: C0
//                (below U+0020), DEL, C1 (U+0080..U+009F), or the Unicode
//                bidirectional controls (U+202A..U+202E, U+2066..U+2069)
//                that make a terminal or a page show text in another order.
//                Multi-line fields may hold '\n' and '\t'.
//   Printable    escapes, at an exit (the CLI, the log), whatever CheckText
//                would refuse, and bounds the length, so that no stored or
//                received text can add a line, move the cursor or recolour
//                a terminal.
//
// Pure functions; thread-safe.
#ifndef KPX_NODE_TEXT_H_
#define KPX_NODE_TEXT_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace kpx::node {

enum class Lines { kOne, kMany };

// OK, or InvalidArgument naming `what` and the first problem (its byte
// offset, never the text itself).
absl::Status CheckText(std::string_view s, size_t max_bytes, Lines lines, const std::string& what);

// True if `s` is well-formed UTF-8 (no overlong forms, no surrogates, at
// most U+10FFFF).
bool IsValidUtf8(std::string_view s);

// `s` with every character CheckText refuses (in one-line form) written
// as an escape: \n, \t, \r, and \xNN for other bytes below 0x20, 0x7F
// and bytes of invalid UTF-8; \u{NNNN} for C1 and bidi controls. At most
// `max_bytes` of `s` are shown, then "…[+N bytes]". Printable(s) == s for
// every one-line text CheckText accepts.
std::string Printable(std::string_view s, size_t max_bytes = 4096);

// Replaces every string field of `m` and of the messages in it (bytes
// fields excepted) by Printable(value, max_bytes): a copy safe to lay out
// as text, whatever a partner or an old ledger put in it.
void EscapeStrings(google::protobuf::Message* m, size_t max_bytes = 4096);

// `json` with every C1 or bidirectional control character (which JSON
// allows raw) written as a \uXXXX escape; still the same JSON value.
std::string EscapeJsonControls(std::string_view json);

}  // namespace kpx::node

#endif  // KPX_NODE_TEXT_H_
