// Which field of a request a refusal is about, carried inside the
// absl::Status itself (as a payload), so the HTTP API can point the console
// at the input to correct. The field is a protobuf-JSON path relative to
// the certificate: "lines.1.origin.countries.0.shareBasisPoints" (a number
// indexes a list, counting from 0), "exporter.name", "expiresAt".
// Pure functions; any thread.
#ifndef KPX_NODE_PROBLEM_FIELD_H_
#define KPX_NODE_PROBLEM_FIELD_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kpx::node {

// `s` (not OK) naming `field`; an OK `s` is returned unchanged.
absl::Status WithField(absl::Status s, absl::string_view field);

// The field `s` names, or "" when it names none.
std::string ProblemField(const absl::Status& s);

}  // namespace kpx::node

#endif  // KPX_NODE_PROBLEM_FIELD_H_
