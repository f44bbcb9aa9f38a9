// Loading a node's configuration (kpx.v1.NodeConfig, protobuf text format).
#ifndef KPX_NODE_CONFIG_H_
#define KPX_NODE_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "kpx/v1/config.pb.h"

namespace kpx::node {

// Reads and checks `path`: parses the text, fills defaults, resolves
// relative paths against the file's folder, and checks that every required
// field is present. Errors are one line naming the file and the field.
// Files named by the config are not read here.
absl::StatusOr<v1::NodeConfig> LoadConfig(const std::string& path);

// Sets every unset field of `config` that has a default to it (the
// defaults are stated in proto/kpx/v1/config.proto). The only place a
// default is set; idempotent.
void ApplyDefaults(v1::NodeConfig* config);

}  // namespace kpx::node

#endif  // KPX_NODE_CONFIG_H_
