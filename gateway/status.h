// Mapping between absl::Status (inside kpx) and grpc::Status (the edges).
// The numeric codes are the same canonical codes on both sides.
#ifndef KPX_GATEWAY_STATUS_H_
#define KPX_GATEWAY_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace kpx::gateway {

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

inline absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_STATUS_H_
