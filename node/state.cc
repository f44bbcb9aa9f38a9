#include "node/state.h"

#include "absl/strings/str_cat.h"
#include "node/util.h"

namespace kpx::node {

bool IsFinal(v1::CertificateState s) {
  return s == v1::CONFIRMED || s == v1::REJECTED || s == v1::CANCELLED || s == v1::EXPIRED;
}

bool IsOverdue(const v1::CertificateRecord& r, absl::Time now, absl::Duration after) {
  const bool waiting = (r.side() == v1::EXPORTING && r.state() == v1::DELIVERED) ||
                       (r.side() == v1::IMPORTING && r.state() == v1::RECEIVED);
  return waiting && IsSet(r.delivered_at()) && now - FromTimestamp(r.delivered_at()) > after;
}

absl::Status CheckTransition(v1::Side side, v1::CertificateState from, v1::CertificateState to) {
  bool ok = false;
  if (side == v1::EXPORTING) {
    switch (to) {
      case v1::DELIVERED:
        ok = from == v1::ISSUED;
        break;
      case v1::CONFIRMED:
      case v1::REJECTED:
      case v1::CANCELLED:
      case v1::EXPIRED:
        ok = from == v1::ISSUED || from == v1::DELIVERED;
        break;
      default:
        break;
    }
  } else if (side == v1::IMPORTING) {
    ok = from == v1::RECEIVED &&
         (to == v1::CONFIRMED || to == v1::REJECTED || to == v1::CANCELLED || to == v1::EXPIRED);
  }
  if (ok) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("certificate is ", v1::CertificateState_Name(from), "; it cannot become ",
                   v1::CertificateState_Name(to),
                   side == v1::IMPORTING ? " on the importing side" : " on the exporting side"));
}

}  // namespace kpx::node
