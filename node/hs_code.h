// HS codes of rough diamonds, as certificates write them: "7102.31",
// "710231", "7102 31", "7102.31.00" and national 8-10 digit codes all name
// the six-digit KP code 7102.31. Pure functions, no state.
#ifndef KPX_NODE_HS_CODE_H_
#define KPX_NODE_HS_CODE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kpx::node {

// The three KP codes in canonical form, as one text for error messages:
// "7102.10, 7102.21, 7102.31".
inline constexpr char kRoughDiamondCodes[] = "7102.10, 7102.21, 7102.31";

struct HsCode {
  std::string kp_code;        // "7102.31"
  std::string national_code;  // the input's digits when it had more than six, else ""
};

// Parses `input` (digits with optional spaces and dots; 6, 8, 9 or 10
// digits) into its KP code. InvalidArgument (message without a field name;
// the caller adds it) when it is not a rough-diamond code or not a code.
absl::StatusOr<HsCode> ParseHsCode(absl::string_view input);

// True for "7102.10", "7102.21" and "7102.31" exactly.
bool IsRoughDiamondHsCode(absl::string_view hs_code);

// OK if `national_code` is 8-10 digits starting with the six digits of
// `kp_code` (a canonical KP code); InvalidArgument otherwise.
absl::Status CheckNationalCode(absl::string_view national_code, absl::string_view kp_code);

// `input` without spaces and dots ("7102.31.00" -> "71023100").
std::string HsDigits(absl::string_view input);

}  // namespace kpx::node

#endif  // KPX_NODE_HS_CODE_H_
