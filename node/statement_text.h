// The two official statement wordings of a KP certificate (see
// kpx.v1.StatementWording). Header-only and free of node/ dependencies, so
// kpxctl prints the text without linking the node library; node/rules.h
// includes it.
#ifndef KPX_NODE_STATEMENT_TEXT_H_
#define KPX_NODE_STATEMENT_TEXT_H_

#include "kpx/v1/certificate.pb.h"

namespace kpx::node {

// KPCS core document and EU Reg. 2368/2002.
inline constexpr char kKpcsStatement[] =
    "The rough diamonds in this shipment have been handled in accordance with the provisions of "
    "the Kimberley Process International Certification Scheme for rough diamonds.";
// 31 CFR 592.307: without "International ".
inline constexpr char kUsStatement[] =
    "The rough diamonds in this shipment have been handled in accordance with the provisions of "
    "the Kimberley Process Certification Scheme for rough diamonds.";

// The printed text of a statement wording: kKpcsStatement for KPCS,
// kUsStatement for US, "" for STATEMENT_WORDING_UNSPECIFIED or an unknown
// value.
inline const char* StatementText(v1::StatementWording wording) {
  switch (wording) {
    case v1::KPCS:
      return kKpcsStatement;
    case v1::US:
      return kUsStatement;
    default:
      return "";
  }
}

}  // namespace kpx::node

#endif  // KPX_NODE_STATEMENT_TEXT_H_
