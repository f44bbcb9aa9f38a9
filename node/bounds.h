// The bounds every message and request meets before anything of it is
// stored or logged, whoever sent it: a partner's node (each MessageBody,
// once its signature holds, and each receipt) or a local authority (each
// request, at the service edge). The same rules hold for both, so that
// what an authority may submit a partner may send, and nothing else.
//
// CheckBounds walks the message by reflection, so a field added to the
// schema later is bounded too:
//   strings    CheckText (node/text.h): UTF-8, no control characters, one
//              line, at most 1,024 bytes; except fields named "remarks" or
//              "remarks_en" (4,096 bytes, several lines), "reason" (2,048
//              bytes, one line) and certificate extension values (16 KiB,
//              several lines)
//   bytes      at most 1,024 (digests, hashes)
//   repeated   at most 1,000 elements (maps too)
//   enums      a value the schema declares
//   timestamps unset (0, 0), or nanos in [0, 10^9) and a time in
//              [2000-01-01, 2100-01-01): inside protobuf's range, so JSON
//              output never fails, and plausible for a KP document
//   unknown    none: a field this node does not know is refused, not kept
// Field-specific rules (KP rules, shapes of ids) come on top, elsewhere.
//
// Pure; thread-safe.
#ifndef KPX_NODE_BOUNDS_H_
#define KPX_NODE_BOUNDS_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"

namespace kpx::node {

// The plausible window of every timestamp that enters.
inline constexpr int kEarliestYear = 2000;
inline constexpr int kLatestYear = 2099;
absl::Time EarliestTime();
absl::Time LatestTime();  // exclusive: 2100-01-01T00:00:00Z

// OK, or InvalidArgument naming the field's path ("certificate.lines[2].
// quality") and the rule it breaks.
absl::Status CheckBounds(const google::protobuf::Message& m);

// OK unless `m` or a message inside it holds a field this build does not
// know; InvalidArgument naming the first such field's number otherwise.
absl::Status CheckNoUnknownFields(const google::protobuf::Message& m);

}  // namespace kpx::node

#endif  // KPX_NODE_BOUNDS_H_
