#include "node/rules.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "node/util.h"

namespace kpx::node {
namespace {

constexpr int kMaxParcels = 1000;
constexpr size_t kMaxCertificateBytes = 256 * 1024;
constexpr int64_t kMaxParcelHundredths = 100'000'000'000'000;  // 10^12 ct
constexpr int64_t kMaxParcelCents = 1'000'000'000'000'000;     // USD 10^13

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("certificate: ", what));
}

bool IsNumberChar(char c) {
  return absl::ascii_isupper(c) || absl::ascii_isdigit(c) || c == '-' || c == '/' || c == '.';
}

absl::Status CheckParty(const v1::Party& p, absl::string_view role) {
  if (p.name().empty()) return Bad(absl::StrCat(role, " name is required"));
  if (p.address().empty()) return Bad(absl::StrCat(role, " address is required"));
  return absl::OkStatus();
}

}  // namespace

void FillFixedTexts(v1::Certificate& cert) {
  if (cert.title().empty()) cert.set_title(kKpTitle);
  if (cert.statement().empty()) cert.set_statement(kKpStatement);
}

bool IsRoughDiamondHsCode(const std::string& hs_code) {
  return hs_code == "7102.10" || hs_code == "7102.21" || hs_code == "7102.31";
}

absl::Status ValidateCertificate(const v1::Certificate& cert, const std::string& exporter,
                                 const TrustList& trust, absl::Time now) {
  // Bounds what one certificate can make a node store and forward;
  // generous for any real shipment (1,000 parcels, a few extension fields).
  if (cert.ByteSizeLong() > kMaxCertificateBytes) {
    return Bad(absl::StrCat("larger than ", kMaxCertificateBytes, " bytes"));
  }
  if (cert.title() != kKpTitle) {
    return Bad(absl::StrCat("title must be \"", kKpTitle, "\""));
  }
  if (cert.statement() != kKpStatement) {
    return Bad("statement must be the fixed KPCS statement");
  }
  const std::string& number = cert.number();
  if (number.empty() || number.size() > 64) {
    return Bad("number is required (at most 64 characters)");
  }
  for (char c : number) {
    if (!IsNumberChar(c)) {
      return Bad(absl::StrCat("number '", number, "' may only contain A-Z, 0-9, '-', '/', '.'"));
    }
  }
  if (!absl::StartsWith(number, exporter)) {
    return Bad(absl::StrCat("number '", number,
                            "' must start with the exporting Participant's code ", exporter));
  }
  if (cert.exporting_participant() != exporter) {
    return Bad(absl::StrCat("exporting_participant is '", cert.exporting_participant(),
                            "', expected ", exporter));
  }
  const std::string& importer = cert.importing_participant();
  if (importer.empty()) return Bad("importing_participant is required");
  if (importer == exporter) {
    return Bad("importing_participant must differ from the exporter");
  }
  if (absl::Status s = trust.CheckActive(importer, now); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate: importing_participant: ", s.message(),
                     "; the KP forbids trade with non-Participants"));
  }
  if (cert.origin_countries().empty()) {
    return Bad("origin_countries is required (one country, or mixed_origin)");
  }
  if (cert.origin_countries_size() > 1 && !cert.mixed_origin()) {
    return Bad("several origin_countries require mixed_origin");
  }
  for (const std::string& o : cert.origin_countries()) {
    if (!IsParticipantCode(o)) {
      return Bad(absl::StrCat("origin '", o, "' is not a 2-letter country code"));
    }
  }
  if (!IsSet(cert.issued_at())) return Bad("issued_at is required");
  if (!IsSet(cert.expires_at())) return Bad("expires_at is required");
  if (FromTimestamp(cert.expires_at()) <= FromTimestamp(cert.issued_at())) {
    return Bad("expires_at must be after issued_at");
  }
  if (cert.issuing_authority().empty()) return Bad("issuing_authority is required");
  if (absl::Status s = CheckParty(cert.exporter(), "exporter"); !s.ok()) return s;
  if (absl::Status s = CheckParty(cert.importer(), "importer"); !s.ok()) return s;

  if (cert.parcels().empty()) return Bad("at least one parcel is required");
  if (cert.parcels_size() > kMaxParcels) {
    return Bad(absl::StrCat("at most ", kMaxParcels, " parcels"));
  }
  int64_t carats = 0, cents = 0;
  for (int i = 0; i < cert.parcels_size(); ++i) {
    const v1::Parcel& p = cert.parcels(i);
    const std::string where = absl::StrCat("parcel ", i + 1, ": ");
    if (!IsRoughDiamondHsCode(p.hs_code())) {
      return Bad(absl::StrCat(where, "HS code '", p.hs_code(),
                              "' is not a rough-diamond code (7102.10, 7102.21, 7102.31)"));
    }
    if (p.carats_hundredths() <= 0) return Bad(absl::StrCat(where, "carats must be positive"));
    if (p.value_usd_cents() <= 0) return Bad(absl::StrCat(where, "value must be positive"));
    // Far above any real parcel; with kMaxParcels they keep the sums below
    // 10^18, so int64 cannot overflow.
    if (p.carats_hundredths() > kMaxParcelHundredths) {
      return Bad(absl::StrCat(where, "carats exceed 10^12"));
    }
    if (p.value_usd_cents() > kMaxParcelCents) {
      return Bad(absl::StrCat(where, "value exceeds USD 10^13"));
    }
    carats += p.carats_hundredths();
    cents += p.value_usd_cents();
  }
  if (cert.number_of_parcels() != cert.parcels_size()) {
    return Bad(absl::StrCat("number_of_parcels is ", cert.number_of_parcels(), " but ",
                            cert.parcels_size(), " parcels are listed"));
  }
  if (cert.total_carats_hundredths() != carats) {
    return Bad(absl::StrCat("total_carats_hundredths is ", cert.total_carats_hundredths(),
                            " but the parcels add up to ", carats));
  }
  if (cert.total_value_usd_cents() != cents) {
    return Bad(absl::StrCat("total_value_usd_cents is ", cert.total_value_usd_cents(),
                            " but the parcels add up to ", cents));
  }
  return absl::OkStatus();
}

}  // namespace kpx::node
