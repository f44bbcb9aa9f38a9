#include "node/rules.h"

#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "node/import_policy.h"
#include "node/problem_field.h"
#include "node/util.h"
#include "re2/re2.h"

namespace kpx::node {
namespace {

// Bounds on what one certificate can make a node store and forward;
// generous for any real shipment.
constexpr size_t kMaxCertificateBytes = 256 * 1024;
constexpr int kMaxLines = 100;
constexpr int kMaxOriginCountries = 64;
constexpr int kMaxSeals = 100;
constexpr int kMaxTransitCountries = 16;
constexpr int kMaxProvenance = 100;
constexpr int kMaxExtensions = 64;
constexpr int32_t kMaxParcels = 1'000'000;
constexpr size_t kMaxNumberChars = 64;
constexpr size_t kMaxNameBytes = 512;  // names, addresses, quality, official
constexpr size_t kMaxIdBytes = 128;    // registration, seals, container, waybill, courier
constexpr size_t kMaxRemarksBytes = 4096;
constexpr size_t kMaxExtensionKeyBytes = 128;
constexpr size_t kMaxExtensionValueBytes = 16 * 1024;
// Far above any real line; with kMaxLines they keep every sum below 10^18,
// so int64 cannot overflow.
constexpr int64_t kMaxLineHundredths = 100'000'000'000'000;  // 10^12 ct
constexpr int64_t kMaxLineCents = 1'000'000'000'000'000;     // USD 10^13

// A refusal of the certificate: "certificate: " + `what`, naming `field`
// (node/problem_field.h).
absl::Status Bad(absl::string_view field, absl::string_view what) {
  return WithField(absl::InvalidArgumentError(absl::StrCat("certificate: ", what)), field);
}

std::string Line(int i) { return absl::StrCat("line ", i + 1, ": "); }
std::string LinePath(int i) { return absl::StrCat("lines.", i, "."); }

// A string field: required or not, at most `max` bytes. `name` is how the
// message calls it, `path` its field.
absl::Status CheckText(const std::string& value, absl::string_view name, absl::string_view path,
                       size_t max, bool required) {
  if (required && value.empty()) return Bad(path, absl::StrCat(name, " is required"));
  if (value.size() > max) return Bad(path, absl::StrCat(name, " is longer than ", max, " bytes"));
  return absl::OkStatus();
}

absl::Status CheckCountry(const std::string& code, absl::string_view name, absl::string_view path) {
  if (!IsParticipantCode(code) || code == "EU") {
    return Bad(path, absl::StrCat(name, " '", code.substr(0, 8),
                                  "' is not an ISO 3166-1 alpha-2 country code"));
  }
  return absl::OkStatus();
}

bool IsNumberChar(char c) {
  return absl::ascii_isupper(c) || absl::ascii_isdigit(c) || c == '-' || c == '/' || c == '.';
}

// The canonical form of a certificate number: no whitespace, upper case.
std::string NormalNumber(const std::string& number) {
  std::string out;
  for (char c : number) {
    if (!absl::ascii_isspace(c)) out += absl::ascii_toupper(c);
  }
  return out;
}

absl::Status CheckNumberFormat(const std::string& number, absl::string_view name,
                               absl::string_view path) {
  if (number.empty() || number.size() > kMaxNumberChars) {
    return Bad(path, absl::StrCat(name, " is required (at most ", kMaxNumberChars, " characters)"));
  }
  for (char c : number) {
    if (!IsNumberChar(c)) {
      return Bad(path,
                 absl::StrCat(name, " '", number, "' may only contain A-Z, 0-9, '-', '/', '.'"));
    }
  }
  return absl::OkStatus();
}

// The number belongs to `exporter`: its number_pattern, or its code and a
// non-letter ("BW-1", "BW2026001"; not "BWX1").
absl::Status CheckNumberOwner(const std::string& number, const std::string& exporter,
                              const TrustList& trust) {
  if (const re2::RE2* re = trust.NumberPattern(exporter); re != nullptr) {
    if (!re2::RE2::FullMatch(number, *re)) {
      return Bad("number",
                 absl::StrCat("number '", number, "' does not match ", exporter,
                              "'s number_pattern '", re->pattern(), "' on the trust list"));
    }
    return absl::OkStatus();
  }
  if (number.size() <= exporter.size() || !absl::StartsWith(number, exporter) ||
      absl::ascii_isalpha(number[exporter.size()])) {
    return Bad(
        "number",
        absl::StrCat("number '", number, "' must start with the exporting Participant's code ",
                     exporter, " followed by a non-letter (e.g. ", exporter, "-2026-0001)"));
  }
  return absl::OkStatus();
}

absl::Status CheckParty(const v1::Party& p, const std::string& role) {
  const std::string at = role + ".";
  if (absl::Status s = CheckText(p.name(), role + " name", at + "name", kMaxNameBytes, true);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckText(p.address(), role + " address", at + "address", kMaxNameBytes, true);
      !s.ok()) {
    return s;
  }
  if (p.country().empty()) return Bad(at + "country", role + " country is required");
  if (absl::Status s = CheckCountry(p.country(), role + " country", at + "country"); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckText(p.registration(), role + " registration", at + "registration",
                                 kMaxIdBytes, false);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckText(p.name_en(), role + " name_en", at + "nameEn", kMaxNameBytes, false);
      !s.ok()) {
    return s;
  }
  return CheckText(p.address_en(), role + " address_en", at + "addressEn", kMaxNameBytes, false);
}

// Each country well-formed, once, with at most one kind of quantity.
// `path` is the line's ("lines.1.").
absl::Status CheckOriginCountries(const v1::Origin& o, const std::string& where,
                                  const std::string& path) {
  const std::string countries = path + "origin.countries";
  if (o.countries_size() > kMaxOriginCountries) {
    return Bad(countries,
               absl::StrCat(where, "more than ", kMaxOriginCountries, " countries of origin"));
  }
  std::set<std::string> seen;
  for (int j = 0; j < o.countries_size(); ++j) {
    const v1::OriginShare& c = o.countries(j);
    const std::string at = absl::StrCat(countries, ".", j, ".");
    if (absl::Status s = CheckCountry(c.country(), where + "origin", at + "country"); !s.ok()) {
      return s;
    }
    if (!seen.insert(c.country()).second) {
      return Bad(at + "country", absl::StrCat(where, "origin ", c.country(), " is listed twice"));
    }
    if (c.carats_hundredths() < 0 || c.carats_hundredths() > kMaxLineHundredths) {
      return Bad(at + "caratsHundredths",
                 absl::StrCat(where, "origin ", c.country(), " carats out of range"));
    }
    if (c.share_basis_points() > 10000) {
      return Bad(at + "shareBasisPoints",
                 absl::StrCat(where, "origin ", c.country(), " share exceeds 10000 basis points"));
    }
    if (c.carats_hundredths() > 0 && c.share_basis_points() > 0) {
      return Bad(at + "shareBasisPoints",
                 absl::StrCat(where, "origin ", c.country(), " gives both carats and a share"));
    }
  }
  return absl::OkStatus();
}

// Quantities: none, or every country's, all of one kind, adding up.
absl::Status CheckOriginQuantities(const v1::Origin& o, int64_t line_carats,
                                   const std::string& where, const std::string& path) {
  int with_carats = 0, with_share = 0;
  int64_t carats = 0, shares = 0;
  for (const v1::OriginShare& c : o.countries()) {
    with_carats += c.carats_hundredths() > 0;
    with_share += c.share_basis_points() > 0;
    carats += c.carats_hundredths();
    shares += c.share_basis_points();
  }
  const int n = o.countries_size();
  const std::string countries = path + "origin.countries";
  if (with_carats == 0 && with_share == 0) return absl::OkStatus();
  if (with_carats != n && with_share != n) {
    return Bad(countries,
               absl::StrCat(where,
                            "origin quantities: give every country's quantity, all in carats or "
                            "all as shares, or none"));
  }
  if (with_carats == n && carats != line_carats) {
    return Bad(countries, absl::StrCat(where, "origin carats add up to ", carats,
                                       " hundredths but the line has ", line_carats));
  }
  if (with_share == n && shares != 10000) {
    return Bad(countries, absl::StrCat(where, "origin shares add up to ", shares,
                                       " basis points, not 10000 (100 %)"));
  }
  return absl::OkStatus();
}

absl::Status CheckOrigin(const v1::Origin& o, int64_t line_carats, const std::string& where,
                         const std::string& path) {
  if (o.mixed_undisclosed()) {
    if (!o.countries().empty()) {
      return Bad(path + "origin", where + "origin is mixed_undisclosed but also lists countries");
    }
    return absl::OkStatus();
  }
  if (o.countries().empty()) {
    return Bad(path + "origin", where + "origin is required (countries, or mixed_undisclosed)");
  }
  if (absl::Status s = CheckOriginCountries(o, where, path); !s.ok()) return s;
  return CheckOriginQuantities(o, line_carats, where, path);
}

absl::Status CheckLine(const v1::CertificateLine& l, int i) {
  const std::string where = Line(i);
  const std::string path = LinePath(i);
  if (!IsRoughDiamondHsCode(l.hs_code())) {
    return Bad(path + "hsCode",
               absl::StrCat(where, "HS code '", l.hs_code().substr(0, 32),
                            "' is not a rough-diamond code (", kRoughDiamondCodes, ")"));
  }
  if (!l.national_code().empty()) {
    if (absl::Status s = CheckNationalCode(l.national_code(), l.hs_code()); !s.ok()) {
      return Bad(path + "nationalCode", absl::StrCat(where, s.message()));
    }
  }
  const std::string carats = path + "caratsHundredths", value = path + "valueUsdCents";
  if (l.carats_hundredths() <= 0) return Bad(carats, where + "carats must be positive");
  if (l.value_usd_cents() <= 0) return Bad(value, where + "value must be positive");
  if (l.carats_hundredths() > kMaxLineHundredths) return Bad(carats, where + "carats exceed 10^12");
  if (l.value_usd_cents() > kMaxLineCents) return Bad(value, where + "value exceeds USD 10^13");
  if (absl::Status s = CheckOrigin(l.origin(), l.carats_hundredths(), where, path); !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckText(l.quality(), where + "quality", path + "quality", kMaxNameBytes, false);
      !s.ok()) {
    return s;
  }
  return CheckText(l.quality_en(), where + "quality_en", path + "qualityEn", kMaxNameBytes, false);
}

// The problems found so far: with `all`, every check runs; without, the
// checks stop at the first problem.
class Problems {
 public:
  explicit Problems(bool all) : all_(all) {}
  // Records `s` if it is a problem; whether to go on checking.
  bool Add(absl::Status s) {
    if (!s.ok()) found_.push_back(std::move(s));
    return all_ || found_.empty();
  }
  std::vector<absl::Status> Take() { return std::move(found_); }

 private:
  const bool all_;
  std::vector<absl::Status> found_;
};

// Lines, parcels and totals; each line checked on its own.
bool CheckGoods(const v1::Certificate& cert, Problems& problems) {
  if (cert.lines().empty()) return problems.Add(Bad("lines", "at least one line is required"));
  if (cert.lines_size() > kMaxLines) {
    return problems.Add(Bad("lines", absl::StrCat("at most ", kMaxLines, " lines")));
  }
  int64_t carats = 0, cents = 0;
  bool lines_ok = true;
  for (int i = 0; i < cert.lines_size(); ++i) {
    absl::Status s = CheckLine(cert.lines(i), i);
    lines_ok = lines_ok && s.ok();
    if (!problems.Add(std::move(s))) return false;
    carats += cert.lines(i).carats_hundredths();
    cents += cert.lines(i).value_usd_cents();
  }
  if (cert.number_of_parcels() < 1 || cert.number_of_parcels() > kMaxParcels) {
    if (!problems.Add(
            Bad("numberOfParcels", absl::StrCat("number_of_parcels is ", cert.number_of_parcels(),
                                                "; it must be 1 to ", kMaxParcels)))) {
      return false;
    }
  }
  if (!lines_ok) return true;  // sums of lines out of bounds are not worth adding
  if (cert.total_carats_hundredths() != carats) {
    if (!problems.Add(
            Bad("totalCaratsHundredths",
                absl::StrCat("total_carats_hundredths is ", cert.total_carats_hundredths(),
                             " but the lines add up to ", carats)))) {
      return false;
    }
  }
  if (cert.total_value_usd_cents() != cents) {
    return problems.Add(Bad("totalValueUsdCents",
                            absl::StrCat("total_value_usd_cents is ", cert.total_value_usd_cents(),
                                         " but the lines add up to ", cents)));
  }
  return true;
}

absl::Status CheckShipment(const v1::Shipment& s) {
  if (s.seal_numbers_size() > kMaxSeals) {
    return Bad("shipment.sealNumbers",
               absl::StrCat("shipment: at most ", kMaxSeals, " seal numbers"));
  }
  for (int i = 0; i < s.seal_numbers_size(); ++i) {
    if (absl::Status st = CheckText(s.seal_numbers(i), "shipment seal number",
                                    absl::StrCat("shipment.sealNumbers.", i), kMaxIdBytes, true);
        !st.ok()) {
      return st;
    }
  }
  for (const auto& [value, name, path] :
       {std::tuple{&s.container(), "shipment container", "shipment.container"},
        std::tuple{&s.transport_document(), "shipment transport_document",
                   "shipment.transportDocument"},
        std::tuple{&s.courier(), "shipment courier", "shipment.courier"}}) {
    if (absl::Status st = CheckText(*value, name, path, kMaxIdBytes, false); !st.ok()) return st;
  }
  if (s.transit_countries_size() > kMaxTransitCountries) {
    return Bad("shipment.transitCountries",
               absl::StrCat("shipment: at most ", kMaxTransitCountries, " transit countries"));
  }
  for (int i = 0; i < s.transit_countries_size(); ++i) {
    if (absl::Status st = CheckCountry(s.transit_countries(i), "shipment transit country",
                                       absl::StrCat("shipment.transitCountries.", i));
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

// Type, replaces and provenance.
absl::Status CheckLinks(const v1::Certificate& cert) {
  if (cert.type() == v1::CERTIFICATE_TYPE_UNSPECIFIED ||
      !v1::CertificateType_IsValid(cert.type())) {
    return Bad("type", "type is required (STANDARD, REPLACEMENT or TECHNICAL)");
  }
  if (cert.type() == v1::REPLACEMENT) {
    if (cert.replaces().empty()) {
      return Bad("replaces", "a REPLACEMENT certificate must name what it replaces");
    }
    if (absl::Status s = CheckNumberFormat(cert.replaces(), "replaces", "replaces"); !s.ok()) {
      return s;
    }
    if (cert.replaces() == cert.number()) {
      return Bad("replaces", "a certificate cannot replace itself");
    }
  } else if (!cert.replaces().empty()) {
    return Bad("replaces", "replaces is only allowed on a REPLACEMENT certificate");
  }
  if (cert.provenance_size() > kMaxProvenance) {
    return Bad("provenance", absl::StrCat("at most ", kMaxProvenance, " provenance certificates"));
  }
  for (int i = 0; i < cert.provenance_size(); ++i) {
    const v1::CertificateReference& r = cert.provenance(i);
    const std::string at = absl::StrCat("provenance.", i, ".");
    if (absl::Status s = CheckNumberFormat(r.number(), "provenance number", at + "number");
        !s.ok()) {
      return s;
    }
    if (!IsParticipantCode(r.participant())) {
      return Bad(at + "participant",
                 absl::StrCat("provenance ", r.number(), ": participant '",
                              r.participant().substr(0, 8), "' is not a Participant code"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckTextsAndExtensions(const v1::Certificate& cert) {
  if (absl::Status s = CheckText(cert.remarks(), "remarks", "remarks", kMaxRemarksBytes, false);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckText(cert.remarks_en(), "remarks_en", "remarksEn", kMaxRemarksBytes, false);
      !s.ok()) {
    return s;
  }
  if (cert.extensions_size() > kMaxExtensions) {
    return Bad("extensions", absl::StrCat("at most ", kMaxExtensions, " extensions"));
  }
  for (const auto& [key, value] : cert.extensions()) {
    if (key.empty() || key.size() > kMaxExtensionKeyBytes) {
      return Bad("extensions",
                 absl::StrCat("extension keys must be 1 to ", kMaxExtensionKeyBytes, " bytes"));
    }
    if (value.size() > kMaxExtensionValueBytes) {
      return Bad("extensions", absl::StrCat("extension '", key, "' is longer than ",
                                            kMaxExtensionValueBytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

// Title, statement and number: fixed or canonical forms.
absl::Status CheckForm(const v1::Certificate& cert) {
  if (cert.title() != kKpTitle) {
    return Bad("title", absl::StrCat("title must be \"", kKpTitle, "\""));
  }
  if (StatementText(cert.statement())[0] == '\0') {
    return Bad("statement", "statement must be one of the official wordings (KPCS, US)");
  }
  return CheckNumberFormat(cert.number(), "number", "number");
}

// Issue and expiry.
absl::Status CheckDates(const v1::Certificate& cert) {
  if (!IsSet(cert.issued_at())) return Bad("issuedAt", "issued_at is required");
  if (!IsSet(cert.expires_at())) return Bad("expiresAt", "expires_at is required");
  if (FromTimestamp(cert.expires_at()) <= FromTimestamp(cert.issued_at())) {
    return Bad("expiresAt", "expires_at must be after issued_at");
  }
  return absl::OkStatus();
}

// Who issues it, for whom, when, at which office.
bool CheckIssue(const v1::Certificate& cert, const std::string& exporter, const TrustList& trust,
                absl::Time now, Problems& problems) {
  if (cert.exporting_participant() != exporter) {
    return problems.Add(Bad("exportingParticipant",
                            absl::StrCat("exporting_participant is '", cert.exporting_participant(),
                                         "', expected ", exporter)));
  }
  const v1::Participant* issuer = trust.Find(exporter);
  if (issuer == nullptr) {
    return problems.Add(absl::FailedPreconditionError(
        absl::StrCat("certificate: exporter ", exporter, " is not on the trust list")));
  }
  if (!problems.Add(CheckNumberOwner(cert.number(), exporter, trust))) return false;
  const std::string& importer = cert.importing_participant();
  absl::Status who = absl::OkStatus();
  if (importer.empty()) {
    who = Bad("importingParticipant", "importing_participant is required");
  } else if (importer == exporter) {
    who = Bad("importingParticipant", "importing_participant must differ from the exporter");
  } else if (absl::Status s = trust.CheckActive(importer, now); !s.ok()) {
    who = WithField(absl::FailedPreconditionError(
                        absl::StrCat("certificate: importing_participant: ", s.message(),
                                     "; the KP forbids trade with non-Participants")),
                    "importingParticipant");
  }
  if (!problems.Add(std::move(who)) || !problems.Add(CheckDates(cert))) return false;
  if (FindOffice(*issuer, cert.issuing_office()) == nullptr) {
    if (!problems.Add(
            Bad("issuingOffice",
                absl::StrCat("issuing_office '", cert.issuing_office().substr(0, 32),
                             "' is not an office of ", exporter,
                             " on the trust list (offices: ", OfficeCodes(*issuer), ")")))) {
      return false;
    }
  }
  return problems.Add(CheckText(cert.validating_official(), "validating_official",
                                "validatingOfficial", kMaxNameBytes, true));
}

absl::Status NormalizeLine(v1::CertificateLine* l, int i) {
  absl::StatusOr<HsCode> code = ParseHsCode(l->hs_code());
  if (!code.ok())
    return Bad(LinePath(i) + "hsCode", absl::StrCat(Line(i), code.status().message()));
  const std::string national = HsDigits(l->national_code());
  if (!national.empty() && !code->national_code.empty() && national != code->national_code) {
    return Bad(LinePath(i) + "nationalCode",
               absl::StrCat(Line(i), "national_code '", national.substr(0, 32),
                            "' differs from the digits of hs_code '", l->hs_code(), "'"));
  }
  l->set_hs_code(code->kp_code);
  l->set_national_code(national.empty() ? code->national_code : national);
  for (v1::OriginShare& o : *l->mutable_origin()->mutable_countries()) {
    o.set_country(absl::AsciiStrToUpper(o.country()));
  }
  return absl::OkStatus();
}

// Every rule in order; see ValidateCertificate and CertificateProblems.
std::vector<absl::Status> Check(const v1::Certificate& cert, const std::string& exporter,
                                const TrustList& trust, absl::Time now, bool all) {
  Problems problems(all);
  if (cert.ByteSizeLong() > kMaxCertificateBytes) {
    problems.Add(Bad("", absl::StrCat("larger than ", kMaxCertificateBytes, " bytes")));
    return problems.Take();  // nothing more is worth reading
  }
  const bool go_on = problems.Add(CheckForm(cert)) && problems.Add(CheckLinks(cert)) &&
                     CheckIssue(cert, exporter, trust, now, problems) &&
                     problems.Add(CheckParty(cert.exporter(), "exporter")) &&
                     problems.Add(CheckParty(cert.importer(), "importer")) &&
                     CheckGoods(cert, problems) && problems.Add(CheckShipment(cert.shipment())) &&
                     problems.Add(CheckTextsAndExtensions(cert));
  // The importer's own rules, as they stand on this node's trust list: the
  // exporter's node refuses at submit what the importer would refuse, and
  // the importer's node, running this on receipt, enforces its policy. Only
  // for an importer that is an active Participant.
  const v1::Participant* importer = trust.Find(cert.importing_participant());
  if (!go_on || importer == nullptr || cert.importing_participant() == exporter ||
      !trust.CheckActive(cert.importing_participant(), now).ok()) {
    return problems.Take();
  }
  if (!problems.Add(CheckImportPolicy(cert, *importer))) return problems.Take();
  // How far each side is onboarded (live from, directions, types).
  problems.Add(
      WithField(trust.CheckOnboarded(exporter, cert.importing_participant(), cert.type(), now),
                "importingParticipant"));
  return problems.Take();
}

}  // namespace

absl::Status NormalizeCertificate(v1::Certificate* cert) {
  std::vector<absl::Status> problems = NormalizeAll(cert);
  return problems.empty() ? absl::OkStatus() : problems.front();
}

std::vector<absl::Status> NormalizeAll(v1::Certificate* cert) {
  if (cert->title().empty()) cert->set_title(kKpTitle);
  if (cert->statement() == v1::STATEMENT_WORDING_UNSPECIFIED) cert->set_statement(v1::KPCS);
  if (cert->type() == v1::CERTIFICATE_TYPE_UNSPECIFIED) cert->set_type(v1::STANDARD);
  cert->set_number(NormalNumber(cert->number()));
  cert->set_replaces(NormalNumber(cert->replaces()));
  for (v1::CertificateReference& r : *cert->mutable_provenance()) {
    r.set_number(NormalNumber(r.number()));
    r.set_participant(absl::AsciiStrToUpper(r.participant()));
  }
  cert->mutable_exporter()->set_country(absl::AsciiStrToUpper(cert->exporter().country()));
  cert->mutable_importer()->set_country(absl::AsciiStrToUpper(cert->importer().country()));
  for (std::string& c : *cert->mutable_shipment()->mutable_transit_countries()) {
    absl::AsciiStrToUpper(&c);
  }
  std::vector<absl::Status> problems;
  for (int i = 0; i < cert->lines_size(); ++i) {
    if (absl::Status s = NormalizeLine(cert->mutable_lines(i), i); !s.ok()) {
      problems.push_back(std::move(s));
    }
  }
  return problems;
}

absl::Status ValidateCertificate(const v1::Certificate& cert, const std::string& exporter,
                                 const TrustList& trust, absl::Time now) {
  std::vector<absl::Status> problems = Check(cert, exporter, trust, now, /*all=*/false);
  return problems.empty() ? absl::OkStatus() : problems.front();
}

std::vector<absl::Status> CertificateProblems(const v1::Certificate& cert,
                                              const std::string& exporter, const TrustList& trust,
                                              absl::Time now) {
  return Check(cert, exporter, trust, now, /*all=*/true);
}

}  // namespace kpx::node
