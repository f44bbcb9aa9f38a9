#include "gateway/console_issue.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/console_pages.h"
#include "gateway/console_text.h"
#include "node/util.h"

namespace kpx::gateway {
namespace {

constexpr int kValidityDays = 30;  // the expiry first shown
const char* const kHsCodes[] = {"7102.10", "7102.21", "7102.31"};

using Mode = IssueFormInput::Mode;

class Writer {
 public:
  explicit Writer(const IssueFormInput& in) : in_(in) {}

  std::string Form() const;

 private:
  std::string T(const char* key) const { return HtmlEscape(Text(in_.lang, key)); }
  // <label>TEXT <input name=certificate.NAME ...></label>
  std::string Input(const char* key, const std::string& name, const std::string& value,
                    const std::string& attributes = "") const {
    return absl::StrCat("<label>", T(key), " <input name=\"certificate.", name, "\" value=\"",
                        HtmlEscape(value), "\" ", attributes, "></label>");
  }
  std::string Select(const char* key, const std::string& name,
                     const std::vector<std::string>& options, const std::string& chosen,
                     const std::string& attributes = "") const;
  std::string Heading() const;
  std::string Dates() const;
  std::string Party(const char* key, const char* name, const v1::Party& p) const;
  std::string LineRow(const std::string& index, const v1::CertificateLine& l) const;
  std::string Goods() const;
  std::string Shipment() const;
  std::string ProvenanceRow(const std::string& index, const v1::CertificateReference& r) const;
  std::string Provenance() const;
  std::string Reason() const;

  const IssueFormInput& in_;
};

std::string Date(absl::Time t) { return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()); }

std::string Writer::Select(const char* key, const std::string& name,
                           const std::vector<std::string>& options, const std::string& chosen,
                           const std::string& attributes) const {
  std::string out =
      absl::StrCat("<label>", T(key), " <select name=\"certificate.", name, "\" ", attributes, ">");
  for (const std::string& o : options) {
    absl::StrAppend(&out, "<option", o == chosen ? " selected" : "", ">", HtmlEscape(o),
                    "</option>");
  }
  return out + "</select></label>";
}

std::string Writer::Heading() const {
  const v1::Certificate& c = in_.from;
  std::vector<std::string> importers, offices;
  for (const v1::Participant& p : in_.trust.participants()) {
    if (p.code() != in_.participant && p.status() == v1::ACTIVE) importers.push_back(p.code());
    if (p.code() != in_.participant) continue;
    for (const v1::Office& o : p.offices()) offices.push_back(o.code());
  }
  const bool same_number = in_.mode == Mode::kAmend;
  // A replacement goes to the same importer; an amendment keeps it too.
  if (in_.mode != Mode::kIssue) importers = {c.importing_participant()};
  std::string out = absl::StrCat(
      "<fieldset><legend>", T("issue.certificate"), "</legend>",
      "<input type=\"hidden\" name=\"certificate.exportingParticipant\" value=\"",
      HtmlEscape(in_.participant), "\">",
      Input("issue.number", "number", same_number ? c.number() : "",
            absl::StrCat("required maxlength=\"64\" placeholder=\"", HtmlEscape(in_.participant),
                         "-", absl::FormatTime("%Y", in_.today, absl::UTCTimeZone()), "-0001\"",
                         same_number ? " readonly" : "")));
  if (in_.mode == Mode::kReplace) {
    absl::StrAppend(&out,
                    "<input type=\"hidden\" name=\"certificate.type\" value=\"REPLACEMENT\">"
                    "<input type=\"hidden\" name=\"certificate.replaces\" value=\"",
                    HtmlEscape(c.number()), "\"><p class=\"note\">", T("issue.replacing"), " ",
                    HtmlEscape(c.number()), "</p>");
  } else if (in_.mode == Mode::kAmend) {
    absl::StrAppend(&out, "<input type=\"hidden\" name=\"certificate.type\" value=\"",
                    v1::CertificateType_Name(c.type()), "\">");
    if (!c.replaces().empty()) {
      absl::StrAppend(&out, "<input type=\"hidden\" name=\"certificate.replaces\" value=\"",
                      HtmlEscape(c.replaces()), "\">");
    }
  }
  const std::string office = c.issuing_office().empty() ? in_.office : c.issuing_office();
  absl::StrAppend(
      &out, Select("cert.importer", "importingParticipant", importers, c.importing_participant()),
      Select("cert.office", "issuingOffice", offices, office), Dates(),
      Input("cert.official", "validatingOfficial",
            c.validating_official().empty() ? in_.official : c.validating_official(),
            "required maxlength=\"512\""),
      "</fieldset>");
  return out;
}

std::string Writer::Dates() const {
  const v1::Certificate& c = in_.from;
  const bool keep = in_.mode == Mode::kAmend;
  const absl::Time issued = keep ? node::FromTimestamp(c.issued_at()) : in_.today;
  const absl::Time expires =
      keep ? node::FromTimestamp(c.expires_at()) : in_.today + absl::Hours(24 * kValidityDays);
  return absl::StrCat(Input("cert.issued", "issuedAt", Date(issued),
                            "type=\"date\" data-type=\"date-start\" required"),
                      Input("cert.expires", "expiresAt", Date(expires),
                            "type=\"date\" data-type=\"date-end\" required"));
}

std::string Writer::Party(const char* key, const char* name, const v1::Party& p) const {
  const std::string at = absl::StrCat(name, ".");
  return absl::StrCat(
      "<fieldset><legend>", T(key), "</legend>",
      Input("issue.name", at + "name", p.name(), "required maxlength=\"512\""),
      Input("issue.address", at + "address", p.address(), "required maxlength=\"512\""),
      Input("issue.country", at + "country", p.country(),
            "required maxlength=\"2\" size=\"3\" pattern=\"[A-Za-z]{2}\""),
      Input("issue.registration", at + "registration", p.registration(), "maxlength=\"128\""),
      "</fieldset>");
}

// One goods line; `index` is a number, or __i__ in the template rows are
// made from.
std::string Writer::LineRow(const std::string& index, const v1::CertificateLine& l) const {
  const std::string at = absl::StrCat("certificate.lines.", index, ".");
  std::string hs =
      absl::StrCat("<select name=\"", at, "hsCode\" aria-label=\"", T("cert.hs"), "\">");
  for (const char* code : kHsCodes) {
    absl::StrAppend(&hs, "<option", l.hs_code() == code ? " selected" : "", ">", code, "</option>");
  }
  auto cell = [&](const char* field, const char* label, const std::string& value,
                  const char* attributes) {
    return absl::StrCat("<td><input name=\"", at, field, "\" aria-label=\"", T(label),
                        "\" value=\"", HtmlEscape(value), "\" ", attributes, "></td>");
  };
  auto amount = [](int64_t v) { return v > 0 ? Hundredths(v) : std::string(); };
  return absl::StrCat(
      "<tr><td>", hs, "</select></td>",
      cell("caratsHundredths", "cert.carats", amount(l.carats_hundredths()),
           "data-type=\"hundredths\" inputmode=\"decimal\" size=\"10\""),
      cell("valueUsdCents", "cert.value", amount(l.value_usd_cents()),
           "data-type=\"hundredths\" inputmode=\"decimal\" size=\"12\""),
      cell("origin", "issue.origin", OriginText(l.origin(), "*"),
           "data-type=\"origin\" size=\"18\" placeholder=\"BW 75%, NA 25%\""),
      cell("quality", "issue.quality", l.quality(), "maxlength=\"512\" size=\"14\""), "</tr>");
}

std::string Writer::Goods() const {
  std::string rows;
  int n = 0;
  for (const v1::CertificateLine& l : in_.from.lines()) rows += LineRow(absl::StrCat(n++), l);
  if (n == 0) rows = LineRow(absl::StrCat(n++), {});
  const int parcels = in_.from.number_of_parcels();
  return absl::StrCat(
      "<fieldset><legend>", T("cert.goods"), "</legend><table class=\"goods\"><thead><tr><th>",
      T("cert.hs"), "</th><th>", T("cert.carats"), "</th><th>", T("cert.value"), "</th><th>",
      T("issue.origin"), "</th><th>", T("issue.quality"), "</th></tr></thead>",
      "<tbody data-rows=\"certificate.lines\" data-field=\"certificate.lines\">", rows,
      "</tbody></table><template data-row=\"certificate.lines\">", LineRow("__i__", {}),
      "</template><button type=\"button\" data-add=\"certificate.lines\">", T("issue.add_line"),
      "</button><p class=\"hint\">", T("issue.origin_hint"), "</p><p class=\"totals\">",
      T("issue.totals"), " <output data-sum=\"caratsHundredths\"></output> ct · USD ",
      "<output data-sum=\"valueUsdCents\"></output></p>",
      Input("cert.parcels", "numberOfParcels", parcels > 0 ? absl::StrCat(parcels) : "",
            "type=\"number\" min=\"1\" data-type=\"int\" required"),
      "</fieldset>");
}

std::string Writer::Shipment() const {
  const v1::Shipment& s = in_.from.shipment();
  std::string seals, transit;
  for (const std::string& seal : s.seal_numbers()) absl::StrAppend(&seals, seal, "\n");
  for (const std::string& c : s.transit_countries()) {
    absl::StrAppend(&transit, transit.empty() ? "" : ", ", c);
  }
  return absl::StrCat(
      "<fieldset><legend>", T("issue.shipment"), "</legend><label>", T("issue.seals"),
      " <textarea name=\"certificate.shipment.sealNumbers\" data-type=\"lines\" rows=\"3\">",
      HtmlEscape(seals), "</textarea></label>",
      Input("issue.transit", "shipment.transitCountries", transit,
            "data-type=\"codes\" placeholder=\"ZA, AE\""),
      Input("issue.container", "shipment.container", s.container(), "maxlength=\"128\""),
      Input("issue.waybill", "shipment.transportDocument", s.transport_document(),
            "maxlength=\"128\""),
      Input("issue.courier", "shipment.courier", s.courier(), "maxlength=\"128\""), "</fieldset>");
}

std::string Writer::ProvenanceRow(const std::string& index,
                                  const v1::CertificateReference& r) const {
  const std::string at = absl::StrCat("certificate.provenance.", index, ".");
  return absl::StrCat("<tr><td><input name=\"", at, "number\" aria-label=\"", T("issue.number"),
                      "\" value=\"", HtmlEscape(r.number()), "\" maxlength=\"64\"></td>",
                      "<td><input name=\"", at, "participant\" aria-label=\"", T("issue.issued_by"),
                      "\" value=\"", HtmlEscape(r.participant()),
                      "\" maxlength=\"2\" size=\"3\"></td></tr>");
}

std::string Writer::Provenance() const {
  std::string rows;
  int n = 0;
  for (const v1::CertificateReference& r : in_.from.provenance()) {
    rows += ProvenanceRow(absl::StrCat(n++), r);
  }
  if (n == 0) rows = ProvenanceRow("0", {});
  return absl::StrCat("<fieldset><legend>", T("issue.provenance"), "</legend><p class=\"hint\">",
                      T("issue.provenance_hint"), "</p><table><thead><tr><th>", T("issue.number"),
                      "</th><th>", T("issue.issued_by"),
                      "</th></tr></thead><tbody data-rows=\"certificate.provenance\" "
                      "data-field=\"certificate.provenance\">",
                      rows, "</tbody></table><template data-row=\"certificate.provenance\">",
                      ProvenanceRow("__i__", {}),
                      "</template><button type=\"button\" "
                      "data-add=\"certificate.provenance\">",
                      T("issue.add_provenance"), "</button></fieldset>");
}

// An amendment's reason, which the node requires.
std::string Writer::Reason() const {
  std::string out = absl::StrCat("<fieldset><legend>", T("issue.amend_reason"), "</legend><label>",
                                 T("act.reason_code"), " <select name=\"reasonCode\">");
  for (v1::ReasonCode r :
       {v1::CLERICAL_ERROR, v1::SHIPMENT_CHANGED, v1::DOCUMENTS_MISMATCH, v1::OTHER}) {
    absl::StrAppend(&out, "<option value=\"", v1::ReasonCode_Name(r), "\">",
                    HtmlEscape(Text(in_.lang, absl::StrCat("reason.", v1::ReasonCode_Name(r)))),
                    "</option>");
  }
  return absl::StrCat(out, "</select></label><label>", T("act.reason"),
                      " <input name=\"reason\" required maxlength=\"2048\"></label></fieldset>");
}

std::string Writer::Form() const {
  std::string api = "/api/v1/certificates";
  std::string check = " data-check=\"/api/v1/certificates:check\"";
  const char* submit = "issue.submit";
  if (in_.mode == Mode::kAmend) {
    api = absl::StrCat(api, "/", PathNumber(in_.from.number()), ":amend");
    check.clear();  // the check would find the number taken: by this very certificate
    submit = "issue.submit_amend";
  }
  return absl::StrCat(
      "<form class=\"card issue\" method=\"post\" data-request-id data-totals "
      "data-next-certificate data-api=\"",
      api, "\"", check, " data-not-a-number=\"", T("issue.not_a_number"), "\" data-problems=\"",
      T("issue.problems"), "\">", Heading(),
      Party("issue.exporter_party", "exporter", in_.from.exporter()),
      Party("issue.importer_party", "importer", in_.from.importer()), Goods(), Shipment(),
      Provenance(), "<label>", T("issue.remarks"),
      " <textarea name=\"certificate.remarks\" maxlength=\"4096\" rows=\"3\">",
      HtmlEscape(in_.from.remarks()), "</textarea></label>",
      in_.mode == Mode::kAmend ? Reason() : std::string(), "<button type=\"submit\">", T(submit),
      "</button><div class=\"result\" hidden></div></form>");
}

}  // namespace

std::string IssueForm(const IssueFormInput& in) { return Writer(in).Form(); }

}  // namespace kpx::gateway
