#include "node/hs_code.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kpx::node {
namespace {

bool AllDigits(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(c)) return false;
  }
  return !s.empty();
}

absl::Status NotRough(absl::string_view input) {
  return absl::InvalidArgumentError(
      absl::StrCat("HS code '", input, "' is not a rough-diamond code (", kRoughDiamondCodes, ")"));
}

}  // namespace

std::string HsDigits(absl::string_view input) {
  std::string out;
  for (char c : input) {
    if (c != ' ' && c != '.') out += c;
  }
  return out;
}

bool IsRoughDiamondHsCode(absl::string_view hs_code) {
  return hs_code == "7102.10" || hs_code == "7102.21" || hs_code == "7102.31";
}

absl::StatusOr<HsCode> ParseHsCode(absl::string_view input) {
  if (input.size() > 32) return NotRough(absl::StrCat(input.substr(0, 32), "..."));
  const std::string digits = HsDigits(input);
  if (!AllDigits(digits) || digits.size() < 6 || digits.size() == 7 || digits.size() > 10) {
    return NotRough(input);
  }
  HsCode out;
  out.kp_code = absl::StrCat(digits.substr(0, 4), ".", digits.substr(4, 2));
  if (!IsRoughDiamondHsCode(out.kp_code)) return NotRough(input);
  if (digits.size() > 6) out.national_code = digits;
  return out;
}

absl::Status CheckNationalCode(absl::string_view national_code, absl::string_view kp_code) {
  const std::string six = HsDigits(kp_code);
  if (national_code.size() < 8 || national_code.size() > 10 || !AllDigits(national_code) ||
      national_code.substr(0, 6) != six) {
    return absl::InvalidArgumentError(absl::StrCat("national code '", national_code.substr(0, 32),
                                                   "' must be 8 to 10 digits starting with ", six));
  }
  return absl::OkStatus();
}

}  // namespace kpx::node
