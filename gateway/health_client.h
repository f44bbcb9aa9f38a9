// A client of the standard gRPC health-checking protocol
// (grpc.health.v1.Health/Check), as grpc_health_probe and load balancers
// speak it. Used by `kpxctl node health` and the tests.
#ifndef KPX_GATEWAY_HEALTH_CLIENT_H_
#define KPX_GATEWAY_HEALTH_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace kpx::gateway {

enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

// Asks `channel`'s server for the status of `service` ("" = the server as a
// whole). NotFound if the server does not know the service; the RPC's error
// otherwise.
absl::StatusOr<ServingStatus> CheckHealth(const std::shared_ptr<grpc::Channel>& channel,
                                          const std::string& service);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_HEALTH_CLIENT_H_
