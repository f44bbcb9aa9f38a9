// `kpxd --check-config`: everything NodeServer::Start would check before a
// node can run, without opening the ledger or listening.
#ifndef KPX_GATEWAY_CHECK_CONFIG_H_
#define KPX_GATEWAY_CHECK_CONFIG_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace kpx::gateway {

// Loads the node config at `path` and checks, as of `now`:
//  - the config parses and has every required field (node::LoadConfig);
//  - every file it names exists and parses: the TLS certificate and key
//    (and the key matches the certificate), the authority client CA, the
//    signing keys, the trust list;
//  - the participant is active on the trust list, and at least one of the
//    signing keys is one of its trust-list keys valid at `now`;
//  - peer_listen and authority_listen are host:port with a port 0-65535,
//    metrics_listen too or "off";
//  - data_dir is a writable folder, or its parent is one.
// Returns one line per problem found; empty if there is none. Reads files
// only; changes nothing.
std::vector<std::string> CheckConfig(const std::string& path, absl::Time now);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_CHECK_CONFIG_H_
