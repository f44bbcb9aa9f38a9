#include "node/findings.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "node/hs_code.h"
#include "node/trust_list.h"
#include "node/util.h"

namespace kpx::node {
namespace {

constexpr int kMaxFoundLines = 3;  // one per KP code
constexpr int32_t kMaxParcels = 1'000'000;
constexpr int64_t kMaxHundredths = 100'000'000'000'000;  // 10^12 ct, as on a certificate line
constexpr int64_t kMaxCents = 1'000'000'000'000'000;     // USD 10^13
constexpr size_t kMaxNameBytes = 512;
constexpr size_t kMaxRemarksBytes = 4096;

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("confirmation: ", what));
}

absl::Status CheckTexts(const std::string& remarks, const std::string& remarks_en,
                        const std::string& official) {
  if (remarks.size() > kMaxRemarksBytes || remarks_en.size() > kMaxRemarksBytes) {
    return Bad(absl::StrCat("remarks are longer than ", kMaxRemarksBytes, " bytes"));
  }
  if (official.empty()) return Bad("the confirming official's name is required");
  if (official.size() > kMaxNameBytes) {
    return Bad(absl::StrCat("official is longer than ", kMaxNameBytes, " bytes"));
  }
  return absl::OkStatus();
}

// Checks found lines in canonical form (no two with one code, bounded).
absl::Status CheckLines(const google::protobuf::RepeatedPtrField<v1::FoundLine>& lines,
                        int32_t parcels) {
  if (parcels < 0 || parcels > kMaxParcels) {
    return Bad(absl::StrCat("number_of_parcels must be 0 to ", kMaxParcels));
  }
  if (lines.size() > kMaxFoundLines) return Bad("at most one line per HS code");
  std::set<std::string> codes;
  for (int i = 0; i < lines.size(); ++i) {
    const v1::FoundLine& l = lines.Get(i);
    const std::string where = absl::StrCat("line ", i + 1, ": ");
    if (!IsRoughDiamondHsCode(l.hs_code())) {
      return Bad(
          absl::StrCat(where, "HS code '", l.hs_code(), "' is not one of ", kRoughDiamondCodes));
    }
    if (!codes.insert(l.hs_code()).second) {
      return Bad(absl::StrCat(where, "HS code ", l.hs_code(), " is given twice"));
    }
    if (l.carats_hundredths() < 0 || l.carats_hundredths() > kMaxHundredths ||
        l.value_usd_cents() < 0 || l.value_usd_cents() > kMaxCents) {
      return Bad(absl::StrCat(where, "carats and value must be 0 to 10^12 ct / USD 10^13"));
    }
  }
  return absl::OkStatus();
}

// The certificate's lines summed per KP code.
std::map<std::string, v1::FoundLine> Declared(const v1::Certificate& cert) {
  std::map<std::string, v1::FoundLine> by_code;
  for (const v1::CertificateLine& l : cert.lines()) {
    v1::FoundLine& f = by_code[l.hs_code()];
    f.set_hs_code(l.hs_code());
    f.set_carats_hundredths(f.carats_hundredths() + l.carats_hundredths());
    f.set_value_usd_cents(f.value_usd_cents() + l.value_usd_cents());
  }
  return by_code;
}

void FillFound(const v1::CertificateRecord& rec, const v1::ImportFindings& f,
               v1::ImportConfirmation& c) {
  if (f.as_declared()) {
    c.set_number_of_parcels(rec.certificate().number_of_parcels());
    for (auto& [code, line] : Declared(rec.certificate())) *c.add_lines() = line;
    return;
  }
  c.set_number_of_parcels(f.number_of_parcels());
  for (const v1::FoundLine& l : f.lines()) {
    v1::FoundLine* out = c.add_lines();
    *out = l;
    if (absl::StatusOr<HsCode> code = ParseHsCode(l.hs_code()); code.ok()) {
      out->set_hs_code(code->kp_code);
    }  // else left as given, and CheckLines names it
  }
}

std::string Hundredths(int64_t v) {
  return absl::StrCat(v / 100, ".", absl::Dec(v % 100, absl::kZeroPad2));
}

}  // namespace

absl::StatusOr<v1::ImportConfirmation> BuildConfirmation(const v1::CertificateRecord& rec,
                                                         const v1::ImportFindings& findings,
                                                         absl::Time arrived_at,
                                                         const v1::Participant& importer,
                                                         const std::string& authority) {
  if (!findings.as_declared() && findings.lines().empty()) {
    return Bad("record what was found (parcels and each HS line), or that it was as declared");
  }
  if (findings.as_declared() && (!findings.lines().empty() || findings.number_of_parcels() != 0)) {
    return Bad("as_declared excludes found figures");
  }
  const std::string office_code = findings.office().empty() && importer.offices_size() > 0
                                      ? importer.offices(0).code()
                                      : findings.office();
  const v1::Office* office = FindOffice(importer, office_code);
  if (office == nullptr) {
    return Bad(absl::StrCat("office '", office_code, "' is not one of ", importer.code(),
                            "'s offices (", OfficeCodes(importer), ")"));
  }
  v1::ImportConfirmation c;
  c.set_certificate_number(rec.certificate().number());
  c.set_certificate_digest(rec.certificate_digest());
  *c.mutable_arrived_at() = ToTimestamp(arrived_at);
  FillFound(rec, findings, c);
  c.set_seals_intact(!findings.seals_broken());
  c.set_remarks(findings.remarks());
  c.set_remarks_en(findings.remarks_en());
  c.set_office(office->code());
  c.set_office_name(office->name());
  c.set_official(findings.official());
  c.set_importing_authority(authority);
  if (absl::Status s = CheckConfirmation(c, importer); !s.ok()) return s;
  return c;
}

absl::Status CheckConfirmation(const v1::ImportConfirmation& c, const v1::Participant& importer) {
  if (!IsSet(c.arrived_at())) return Bad("arrived_at is required");
  if (absl::Status s = CheckLines(c.lines(), c.number_of_parcels()); !s.ok()) return s;
  if (absl::Status s = CheckTexts(c.remarks(), c.remarks_en(), c.official()); !s.ok()) return s;
  if (FindOffice(importer, c.office()) == nullptr) {
    return Bad(absl::StrCat("office '", c.office(), "' is not one of ", importer.code(),
                            "'s offices (", OfficeCodes(importer), ")"));
  }
  if (c.office_name().size() > kMaxNameBytes || c.importing_authority().size() > kMaxNameBytes) {
    return Bad(
        absl::StrCat("office_name and importing_authority are at most ", kMaxNameBytes, " bytes"));
  }
  return absl::OkStatus();
}

std::vector<v1::Discrepancy> CompareFindings(const v1::Certificate& cert,
                                             const v1::ImportConfirmation& found) {
  std::vector<v1::Discrepancy> out;
  auto add = [&out](std::string field, std::string declared, std::string got) {
    v1::Discrepancy& d = out.emplace_back();
    d.set_field(std::move(field));
    d.set_declared(std::move(declared));
    d.set_found(std::move(got));
  };
  if (cert.number_of_parcels() != found.number_of_parcels()) {
    add("number_of_parcels", absl::StrCat(cert.number_of_parcels()),
        absl::StrCat(found.number_of_parcels()));
  }
  std::map<std::string, v1::FoundLine> declared = Declared(cert);
  std::map<std::string, v1::FoundLine> got;
  for (const v1::FoundLine& l : found.lines()) got[l.hs_code()] = l;
  std::set<std::string> codes;
  for (auto& [code, l] : declared) codes.insert(code);
  for (auto& [code, l] : got) codes.insert(code);
  for (const std::string& code : codes) {
    const v1::FoundLine d = declared.count(code) ? declared[code] : v1::FoundLine();
    const v1::FoundLine g = got.count(code) ? got[code] : v1::FoundLine();
    if (d.carats_hundredths() != g.carats_hundredths()) {
      add(absl::StrCat(code, " carats"), Hundredths(d.carats_hundredths()),
          Hundredths(g.carats_hundredths()));
    }
    if (d.value_usd_cents() != g.value_usd_cents()) {
      add(absl::StrCat(code, " value"), absl::StrCat("USD ", Hundredths(d.value_usd_cents())),
          absl::StrCat("USD ", Hundredths(g.value_usd_cents())));
    }
  }
  if (!found.seals_intact()) add("seals", "intact", "broken");
  return out;
}

}  // namespace kpx::node
