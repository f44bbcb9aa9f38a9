#include "node/state.h"

#include "absl/strings/str_cat.h"
#include "node/util.h"

namespace kpx::node {
namespace {

using S = v1::CertificateState;

bool In(S s, std::initializer_list<S> set) {
  for (S x : set) {
    if (s == x) return true;
  }
  return false;
}

bool ExporterMay(S from, S to) {
  switch (to) {
    case v1::DELIVERED:
    case v1::REFUSED:
      return from == v1::ISSUED;
    case v1::ISSUED:  // re-sent after a refusal
      return from == v1::REFUSED;
    case v1::CANCELLED:
      return In(from, {v1::ISSUED, v1::DELIVERED, v1::DISPUTED, v1::REFUSED});
    case v1::CONFIRMED:
    case v1::REJECTED:
    case v1::EXPIRED:
      return In(from, {v1::ISSUED, v1::DELIVERED, v1::DISPUTED});
    case v1::DISPUTED:
      return In(from, {v1::ISSUED, v1::DELIVERED});
    case v1::REPLACED:
      return In(from, {v1::DELIVERED, v1::DISPUTED});
    case v1::VOIDED:
      return from == v1::CONFIRMED;
    default:
      return false;
  }
}

bool ImporterMay(S from, S to) {
  switch (to) {
    case v1::DISPUTED:  // an amendment crossed our decision
      return In(from, {v1::CONFIRMED, v1::REJECTED, v1::EXPIRED});
    case v1::CONFIRMED:
    case v1::REJECTED:
    case v1::CANCELLED:
    case v1::EXPIRED:
      return In(from, {v1::RECEIVED, v1::DISPUTED});
    case v1::REPLACED:
      return In(from, {v1::RECEIVED, v1::DISPUTED});
    case v1::VOIDED:
      return from == v1::CONFIRMED;
    default:
      return false;
  }
}

}  // namespace

bool IsFinal(v1::CertificateState s) {
  return In(s, {v1::REJECTED, v1::CANCELLED, v1::EXPIRED, v1::REPLACED, v1::VOIDED});
}

bool IsOpen(const v1::CertificateRecord& r) {
  return r.side() == v1::EXPORTING
             ? In(r.state(), {v1::ISSUED, v1::DELIVERED, v1::DISPUTED, v1::REFUSED})
             : In(r.state(), {v1::RECEIVED, v1::DISPUTED});
}

bool IsOverdue(const v1::CertificateRecord& r, absl::Time now, absl::Duration after) {
  const bool waiting = (r.side() == v1::EXPORTING && r.state() == v1::DELIVERED) ||
                       (r.side() == v1::IMPORTING && r.state() == v1::RECEIVED);
  return waiting && IsSet(r.delivered_at()) && now - FromTimestamp(r.delivered_at()) > after;
}

absl::Status CheckTransition(v1::Side side, v1::CertificateState from, v1::CertificateState to) {
  const bool ok = side == v1::EXPORTING   ? ExporterMay(from, to)
                  : side == v1::IMPORTING ? ImporterMay(from, to)
                                          : false;
  if (ok) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("certificate is ", v1::CertificateState_Name(from), "; it cannot become ",
                   v1::CertificateState_Name(to),
                   side == v1::IMPORTING ? " on the importing side" : " on the exporting side"));
}

}  // namespace kpx::node
