// The printed KP certificate (docs/console.md "The printed certificate"):
// one A4 PDF (more pages when the goods run long) laid out as a KP
// certificate with every field, its labels in English and in the officer's
// language, and the QR code of its signed attestation (node/attestation.h)
// with the short code beside it.
//
// Drawn with cairo and pango (any script, right to left included, through
// HarfBuzz and fontconfig's DejaVu Sans) and libqrencode. The same record
// and language give the same bytes: the PDF's dates are the certificate's
// issue time, and nothing else in it depends on when it is printed.
//
// Pure; thread-safe (each call has its own cairo surface).
#ifndef KPX_GATEWAY_CERTIFICATE_PDF_H_
#define KPX_GATEWAY_CERTIFICATE_PDF_H_

#include <string>

#include "absl/status/statusor.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/service.pb.h"

namespace kpx::gateway {

struct PrintRequest {
  v1::CertificateRecord record;
  v1::AttestationResponse attestation;  // its QR payload and short code
  std::string lang;                     // the second language; "en": English only
};

// The PDF's bytes. Internal if cairo or libqrencode fail.
absl::StatusOr<std::string> CertificatePdf(const PrintRequest& request);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_CERTIFICATE_PDF_H_
