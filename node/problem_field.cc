#include "node/problem_field.h"

#include "absl/strings/cord.h"

namespace kpx::node {
namespace {

constexpr char kFieldPayload[] = "type.kpx.dev/kpx.v1.ProblemField";

}  // namespace

absl::Status WithField(absl::Status s, absl::string_view field) {
  if (!s.ok()) s.SetPayload(kFieldPayload, absl::Cord(field));
  return s;
}

std::string ProblemField(const absl::Status& s) {
  auto field = s.GetPayload(kFieldPayload);  // absl::optional<absl::Cord>
  return field.has_value() ? std::string(*field) : std::string();
}

}  // namespace kpx::node
