// Small helpers shared by node/ and gateway/: time conversion and ids.
#ifndef KPX_NODE_UTIL_H_
#define KPX_NODE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace kpx::node {

google::protobuf::Timestamp ToTimestamp(absl::Time t);
// An unset Timestamp (0, 0) maps to absl::UnixEpoch().
absl::Time FromTimestamp(const google::protobuf::Timestamp& ts);
bool IsSet(const google::protobuf::Timestamp& ts);
// RFC 3339 UTC, e.g. "2026-11-27T18:00:00Z".
std::string FormatRfc3339(absl::Time t);

// Parses protobuf text format into `msg`. InvalidArgument naming `what`
// and the first error's line otherwise (nothing goes to libprotobuf's own
// log, which would bypass kpx's structured logs).
absl::Status ParseTextProto(const std::string& text, const std::string& what,
                            google::protobuf::Message* msg);

// A new random message id: 32 lowercase hex characters (128 bits).
std::string NewMessageId();
// True if `id` has the shape NewMessageId produces.
bool IsValidMessageId(const std::string& id);

}  // namespace kpx::node

#endif  // KPX_NODE_UTIL_H_
