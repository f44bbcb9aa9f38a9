// A node's configuration (kpx.v1.NodeConfig, protobuf text format): loading
// it and the one place its defaults are set.
#ifndef KPX_NODE_CONFIG_H_
#define KPX_NODE_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "kpx/v1/config.pb.h"

namespace kpx::node {

// Most messages one Deliver call may carry: receivers refuse more, so a
// larger delivery.batch_size is cut to this.
inline constexpr uint32_t kMaxDeliveryBatchSize = 1000;

// Fills every unset (empty or zero) field that has a default with it, as
// documented in proto/kpx/v1/config.proto and docs/operations.md, and cuts
// delivery.batch_size to kMaxDeliveryBatchSize. Fields already set are kept.
// authority_name defaults to "<participant> KP authority" and stays empty
// while participant is. Paths are not resolved. Idempotent. The only place
// a default is set: LoadConfig, the gateway and the node all call it.
void ApplyDefaults(v1::NodeConfig* config);

// Reads and checks `path`: parses the text, fills defaults (ApplyDefaults),
// resolves relative paths against the file's folder, and checks that every
// required field is present. Errors are one line naming the file and the
// field. Files named by the config are not read here.
absl::StatusOr<v1::NodeConfig> LoadConfig(const std::string& path);

}  // namespace kpx::node

#endif  // KPX_NODE_CONFIG_H_
