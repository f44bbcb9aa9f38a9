#include "gateway/console_pages.h"

#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "gateway/certificate_pdf.h"
#include "gateway/console_assets.h"
#include "gateway/console_issue.h"
#include "gateway/console_text.h"
#include "gateway/http_api.h"
#include "gateway/sessions.h"
#include "node/util.h"

namespace kpx::gateway {
namespace {

constexpr char kLangCookie[] = "kpx-lang";
constexpr uint32_t kPageSize = 50;

const v1::CertificateState kStates[] = {v1::ISSUED,   v1::DELIVERED, v1::RECEIVED, v1::CONFIRMED,
                                        v1::REJECTED, v1::CANCELLED, v1::EXPIRED,  v1::REPLACED,
                                        v1::VOIDED,   v1::DISPUTED,  v1::REFUSED};

std::string When(const google::protobuf::Timestamp& t) {
  if (!node::IsSet(t)) return "";
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", node::FromTimestamp(t), absl::UTCTimeZone());
}

std::string StateText(const std::string& lang, v1::CertificateState s) {
  return HtmlEscape(Text(lang, absl::StrCat("state.", v1::CertificateState_Name(s))));
}

std::string CertificateLink(const std::string& number) {
  return absl::StrCat("/console/certificates/", PathNumber(number));
}

// The whole page around `body`.
std::string Page(const std::string& lang, const std::string& title,
                 const ConsoleSessions::Visitor* who, const std::string& body) {
  const Language& l = FindLanguage(lang);
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  std::string html = absl::StrCat("<!doctype html>\n<html lang=\"", l.code, "\" dir=\"",
                                  l.right_to_left ? "rtl" : "ltr",
                                  "\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
                                  "content=\"width=device-width, initial-scale=1\">");
  if (who != nullptr && !who->csrf_token.empty()) {
    absl::StrAppend(&html, "<meta name=\"csrf-token\" content=\"", HtmlEscape(who->csrf_token),
                    "\">");
  }
  absl::StrAppend(&html, "<title>", HtmlEscape(title), " · kpx</title>",
                  "<link rel=\"stylesheet\" href=\"/console/style.css\">",
                  "<script src=\"/console/app.js\" defer></script></head><body><header>",
                  "<strong class=\"brand\">kpx</strong> <span>", t("app.title"), "</span>");
  if (who != nullptr) {
    absl::StrAppend(
        &html, "<nav><a href=\"/console/\">", t("nav.dashboard"),
        "</a> <a href=\"/console/certificates\">", t("nav.certificates"), "</a>",
        who->caller.roles.count(v1::EXPORTER)
            ? absl::StrCat(" <a href=\"/console/issue\">", t("nav.issue"), "</a>")
            : std::string(),
        " <a href=\"/console/partners\">", t("nav.partners"), "</a>",
        who->caller.roles.count(v1::OPERATOR) || who->caller.roles.count(v1::AUDITOR)
            ? absl::StrCat(" <a href=\"/console/officers\">", t("nav.officers"), "</a>")
            : std::string(),
        "</nav>", "<span class=\"who\">", t("who.signed_in"), " ",
        HtmlEscape(who->caller.full_name.empty() ? who->caller.name : who->caller.full_name));
    if (!who->caller.office.empty())
      absl::StrAppend(&html, " (", HtmlEscape(who->caller.office), ")");
    absl::StrAppend(&html, "</span>");
    if (!who->csrf_token.empty()) {
      absl::StrAppend(&html,
                      "<form class=\"inline\" method=\"post\" data-api=\"/api/v1/session\" "
                      "data-method=\"DELETE\" "
                      "data-next=\"/console/sign-in\"><button>",
                      t("nav.sign_out"), "</button></form>");
    }
  }
  absl::StrAppend(&html, "<span class=\"langs\" aria-label=\"", t("nav.language"), "\">");
  for (const Language& other : Languages()) {
    absl::StrAppend(&html, "<a href=\"?lang=", other.code, "\" lang=\"", other.code, "\">",
                    HtmlEscape(other.name), "</a> ");
  }
  absl::StrAppend(&html, "</span></header><main><h1>", HtmlEscape(title), "</h1>", body,
                  "</main></body></html>\n");
  return html;
}

void Html(const httplib::Request& req, httplib::Response& res, std::string html) {
  // Remember the language asked for.
  if (req.has_param("lang")) {
    res.set_header("Set-Cookie",
                   absl::StrCat(kLangCookie, "=", PageLanguage(req),
                                "; Path=/; Secure; SameSite=Strict; Max-Age=31536000"));
  }
  res.set_content(std::move(html), "text/html; charset=utf-8");
}

void ErrorPage(const httplib::Request& req, httplib::Response& res, const absl::Status& s) {
  const std::string lang = PageLanguage(req);
  res.status = HttpStatus(s.code());
  Html(req, res,
       Page(lang, Text(lang, "error.title"), nullptr,
            absl::StrCat("<p class=\"error\">", HtmlEscape(std::string(s.message())), "</p>",
                         "<p><a href=\"/console/\">", HtmlEscape(Text(lang, "nav.dashboard")),
                         "</a></p>")));
}

// The visitor, or a redirect to the sign-in page (false).
bool Visit(ConsoleSessions& sessions, const httplib::Request& req, httplib::Response& res,
           ConsoleSessions::Visitor* who) {
  absl::StatusOr<ConsoleSessions::Visitor> v = sessions.Visit(req);
  if (v.ok()) {
    *who = *std::move(v);
    return true;
  }
  if (v.status().code() == absl::StatusCode::kUnauthenticated) {
    res.status = 303;
    res.set_header("Location", "/console/sign-in");
    return false;
  }
  ErrorPage(req, res, v.status());
  return false;
}

std::string SignInForm(const std::string& lang) {
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  return absl::StrCat(
      "<form class=\"card\" method=\"post\" data-api=\"/api/v1/session\" data-next=\"/console/\">",
      "<label>", t("signin.name"),
      " <input name=\"name\" autocomplete=\"username\" required></label>", "<label>",
      t("signin.password"),
      " <input name=\"password\" type=\"password\" autocomplete=\"current-password\" "
      "required></label>",
      "<label>", t("signin.code"),
      " <input name=\"code\" inputmode=\"numeric\" pattern=\"[0-9]{6}\" maxlength=\"6\" "
      "autocomplete=\"one-time-code\" required></label>",
      "<button>", t("signin.submit"), "</button><p class=\"result\" hidden></p></form>");
}

bool Holds(const Caller& c, v1::Role r) { return c.roles.count(r) > 0; }

// The forms of what `who` may do to `rec` now.
// The fields of a confirmation with what was found: the parcels, and per
// HS code the carats and value, filled in with what the certificate
// declares for the officer to correct.
std::string FoundFields(const std::string& lang, const v1::Certificate& c) {
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  std::map<std::string, std::pair<int64_t, int64_t>> by_hs;  // carats, value
  for (const v1::CertificateLine& l : c.lines()) {
    by_hs[l.hs_code()].first += l.carats_hundredths();
    by_hs[l.hs_code()].second += l.value_usd_cents();
  }
  std::string out = absl::StrCat(
      "<label>", t("act.parcels_found"),
      " <input name=\"findings.numberOfParcels\" data-type=\"int\" type=\"number\" min=\"0\" "
      "required value=\"",
      c.number_of_parcels(), "\"></label><table class=\"goods\"><tr><th>", t("cert.hs"),
      "</th><th>", t("act.carats_found"), "</th><th>", t("act.value_found"), "</th></tr>");
  int i = 0;
  for (const auto& [hs, declared] : by_hs) {
    const std::string line = absl::StrCat("findings.lines.", i++, ".");
    absl::StrAppend(&out, "<tr><td>", HtmlEscape(hs), "<input type=\"hidden\" name=\"", line,
                    "hsCode\" value=\"", HtmlEscape(hs), "\"></td><td><input name=\"", line,
                    "caratsHundredths\" data-type=\"hundredths\" inputmode=\"decimal\" required "
                    "value=\"",
                    Hundredths(declared.first), "\"></td><td><input name=\"", line,
                    "valueUsdCents\" data-type=\"hundredths\" inputmode=\"decimal\" required "
                    "value=\"",
                    Hundredths(declared.second), "\"></td></tr>");
  }
  absl::StrAppend(&out,
                  "</table><label><input type=\"checkbox\" name=\"findings.sealsBroken\" "
                  "value=\"true\" data-type=\"bool\"> ",
                  t("act.seals_broken"), "</label><label>", t("act.remarks"),
                  " <textarea name=\"findings.remarks\" maxlength=\"4096\"></textarea></label>");
  return out;
}

std::string Actions(const std::string& lang, const Caller& who, const v1::CertificateRecord& rec) {
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  const std::string api =
      absl::StrCat("/api/v1/certificates/", PathNumber(rec.certificate().number()));
  auto form = [&](const char* verb, const char* title, const std::string& fields) {
    return absl::StrCat("<form class=\"card action\" method=\"post\" data-request-id data-api=\"",
                        api, ":", verb, "\">", "<h3>", t(title), "</h3>", fields, "<button>",
                        t(title), "</button><p class=\"result\" hidden></p></form>");
  };
  const std::string reason =
      absl::StrCat("<label>", t("act.reason"),
                   " <input name=\"reason\" required maxlength=\"2048\">", "</label>");
  std::string out;
  const v1::CertificateState s = rec.state();
  if (rec.side() == v1::IMPORTING && s == v1::RECEIVED && Holds(who, v1::IMPORTER)) {
    absl::StrAppend(&out,
                    form("confirm", "act.confirm",
                         absl::StrCat("<input type=\"hidden\" name=\"findings.asDeclared\" "
                                      "value=\"true\" data-type=\"bool\"><label>",
                                      t("act.remarks"),
                                      " <textarea name=\"findings.remarks\" maxlength=\"4096\">"
                                      "</textarea></label>")),
                    form("confirm", "act.confirm_found", FoundFields(lang, rec.certificate())),
                    form("reject", "act.reject", reason));
  }
  if (rec.side() != v1::EXPORTING || !Holds(who, v1::EXPORTER)) return out;
  const std::string number = PathNumber(rec.certificate().number());
  auto link = [&](const char* query, const char* title) {
    return absl::StrCat("<p><a class=\"action\" href=\"/console/issue?", query, "=", number, "\">",
                        t(title), "</a></p>");
  };
  if (s == v1::ISSUED || s == v1::DELIVERED) absl::StrAppend(&out, link("amend", "act.amend"));
  if ((s == v1::DELIVERED || s == v1::DISPUTED) && node::IsSet(rec.delivered_at())) {
    absl::StrAppend(&out, link("replaces", "act.replace"));
  }
  if (s == v1::ISSUED || s == v1::DELIVERED || s == v1::DISPUTED || s == v1::REFUSED) {
    absl::StrAppend(&out, form("cancel", "act.cancel", reason));
  }
  if (s == v1::CONFIRMED) {
    std::string codes =
        absl::StrCat("<label>", t("act.reason_code"), " <select name=\"reasonCode\">");
    for (v1::ReasonCode r : {v1::CLERICAL_ERROR, v1::SUSPECTED_FRAUD, v1::LEGAL_ORDER, v1::OTHER}) {
      absl::StrAppend(&codes, "<option value=\"", v1::ReasonCode_Name(r), "\">",
                      HtmlEscape(Text(lang, absl::StrCat("reason.", v1::ReasonCode_Name(r)))),
                      "</option>");
    }
    absl::StrAppend(&out,
                    form("void", "act.void", absl::StrCat(codes, "</select></label>", reason)));
  }
  return out;
}

std::string Journey(const std::string& lang, const v1::CertificateRecord& rec) {
  std::string out =
      absl::StrCat("<h2>", HtmlEscape(Text(lang, "cert.journey")), "</h2><ol class=\"journey\">");
  for (const v1::StateChange& h : rec.history()) {
    absl::StrAppend(&out, "<li><time>", When(h.at()), "</time> <strong>",
                    StateText(lang, h.state()), "</strong>");
    if (!h.actor().name().empty()) {
      absl::StrAppend(
          &out, " ", HtmlEscape(Text(lang, "cert.by")), " ",
          HtmlEscape(h.actor().full_name().empty() ? h.actor().name() : h.actor().full_name()));
      if (!h.actor().office().empty())
        absl::StrAppend(&out, " (", HtmlEscape(h.actor().office()), ")");
    }
    if (!h.detail().empty()) absl::StrAppend(&out, "<br><span>", HtmlEscape(h.detail()), "</span>");
    absl::StrAppend(&out, "</li>");
  }
  return out + "</ol>";
}

std::string Fields(const std::string& lang, const v1::CertificateRecord& rec) {
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  const v1::Certificate& c = rec.certificate();
  auto row = [&](const char* key, const std::string& value) {
    return absl::StrCat("<tr><th>", t(key), "</th><td>", value, "</td></tr>");
  };
  std::string out = absl::StrCat(
      "<p class=\"state state-", v1::CertificateState_Name(rec.state()), "\">",
      StateText(lang, rec.state()), "</p><table class=\"fields\">",
      row("cert.exporter", HtmlEscape(c.exporting_participant())),
      row("cert.importer", HtmlEscape(c.importing_participant())),
      row("cert.issued", When(c.issued_at())), row("cert.expires", When(c.expires_at())),
      row("cert.office", HtmlEscape(c.issuing_office())),
      row("cert.official", HtmlEscape(c.validating_official())),
      row("cert.parcels", absl::StrCat(c.number_of_parcels())));
  if (!c.replaces().empty()) {
    absl::StrAppend(
        &out, row("cert.replaces", absl::StrCat("<a href=\"", CertificateLink(c.replaces()), "\">",
                                                HtmlEscape(c.replaces()), "</a>")));
  }
  if (!rec.replaced_by().empty()) {
    absl::StrAppend(
        &out, row("cert.replaced_by", absl::StrCat("<a href=\"", CertificateLink(rec.replaced_by()),
                                                   "\">", HtmlEscape(rec.replaced_by()), "</a>")));
  }
  absl::StrAppend(&out, "</table><h2>", t("cert.goods"), "</h2><table class=\"goods\"><tr><th>",
                  t("cert.hs"), "</th><th>", t("cert.carats"), "</th><th>", t("cert.value"),
                  "</th></tr>");
  for (const v1::CertificateLine& l : c.lines()) {
    absl::StrAppend(&out, "<tr><td>", HtmlEscape(l.hs_code()), "</td><td>",
                    Hundredths(l.carats_hundredths()), "</td><td>", Hundredths(l.value_usd_cents()),
                    "</td></tr>");
  }
  absl::StrAppend(&out, "</table>");
  if (rec.discrepancies_size() > 0) {
    absl::StrAppend(&out, "<h2>", t("cert.discrepancies"), "</h2><ul class=\"discrepancies\">");
    for (const v1::Discrepancy& d : rec.discrepancies()) {
      absl::StrAppend(&out, "<li>", HtmlEscape(d.field()), ": ", HtmlEscape(d.declared()), " → ",
                      HtmlEscape(d.found()), "</li>");
    }
    absl::StrAppend(&out, "</ul>");
  }
  return out;
}

}  // namespace

std::string Hundredths(int64_t v) {
  return absl::StrFormat("%s%d.%02d", v < 0 ? "-" : "", std::abs(v) / 100, std::abs(v) % 100);
}

std::string PathNumber(const std::string& number) {
  std::string encoded;
  for (char c : number) encoded += c == '/' ? std::string("%2F") : std::string(1, c);
  return HtmlEscape(encoded);
}

std::string OriginText(const v1::Origin& o, const char* mixed) {
  if (o.mixed_undisclosed()) return mixed;
  std::string out;
  for (const v1::OriginShare& c : o.countries()) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", c.country());
    if (c.share_basis_points() > 0) {
      absl::StrAppend(&out, " ", Hundredths(c.share_basis_points()), "%");
    } else if (c.carats_hundredths() > 0) {
      absl::StrAppend(&out, " ", Hundredths(c.carats_hundredths()), " ct");
    }
  }
  return out;
}

std::string PageLanguage(const httplib::Request& req) {
  std::string code = req.get_param_value("lang");
  if (code.empty()) code = CookieValue(req.get_header_value("Cookie"), kLangCookie);
  return FindLanguage(code).code;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void ConsolePages::Dashboard(const httplib::Request& req, httplib::Response& res) const {
  ConsoleSessions::Visitor who;
  if (!Visit(*sessions_, req, res, &who)) return;
  const std::string lang = PageLanguage(req);
  // One pass over the records, as the metrics count them.
  absl::StatusOr<node::CertificateCounts> counts = authority_->CountCertificates(who.caller);
  if (!counts.ok()) return ErrorPage(req, res, counts.status());
  std::string body =
      absl::StrCat("<section class=\"card\"><h2>", HtmlEscape(Text(lang, "dash.by_state")),
                   "</h2><table class=\"counts\">");
  for (v1::CertificateState s : kStates) {
    absl::StrAppend(&body,
                    "<tr><th><a href=\"/console/certificates?state=", v1::CertificateState_Name(s),
                    "\">", StateText(lang, s), "</a></th><td>", counts->by_state[s], "</td></tr>");
  }
  absl::StrAppend(&body, "</table></section><section class=\"card\"><table class=\"counts\">",
                  "<tr><th>", HtmlEscape(Text(lang, "dash.overdue")), "</th><td>", counts->overdue,
                  "</td></tr><tr><th>", HtmlEscape(Text(lang, "dash.discrepancies")), "</th><td>",
                  counts->discrepancies, "</td></tr></table></section>",
                  "<section class=\"card\"><h2>", HtmlEscape(Text(lang, "dash.activity")),
                  "</h2><ul id=\"activity\" data-events=\"/api/v1/events\"></ul></section>");
  Html(req, res, Page(lang, Text(lang, "dash.title"), &who, body));
}

void ConsolePages::List(const httplib::Request& req, httplib::Response& res) const {
  ConsoleSessions::Visitor who;
  if (!Visit(*sessions_, req, res, &who)) return;
  const std::string lang = PageLanguage(req);
  v1::ListCertificatesRequest r;
  r.set_page_size(kPageSize);
  r.set_page_token(req.get_param_value("page_token"));
  v1::CertificateState state = v1::CERTIFICATE_STATE_UNSPECIFIED;
  const std::string state_name = req.get_param_value("state");
  if (!state_name.empty() && !v1::CertificateState_Parse(state_name, &state)) {
    return ErrorPage(req, res, absl::InvalidArgumentError("no such state"));
  }
  r.set_state(state);
  r.set_partner(req.get_param_value("partner"));
  r.set_overdue(req.get_param_value("overdue") == "1");
  r.set_discrepancies(req.get_param_value("discrepancies") == "1");
  absl::StatusOr<v1::ListCertificatesResponse> list = authority_->List(who.caller, r);
  if (!list.ok()) return ErrorPage(req, res, list.status());
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  auto checkbox = [&](const char* name, const char* key, bool on) {
    return absl::StrCat("<label><input type=\"checkbox\" name=\"", name, "\" value=\"1\"",
                        on ? " checked" : "", "> ", t(key), "</label> ");
  };
  std::string body =
      absl::StrCat("<form class=\"filters\" method=\"get\"><label>", t("list.state"),
                   " <select name=\"state\"><option value=\"\">", t("list.all"), "</option>");
  for (v1::CertificateState s : kStates) {
    absl::StrAppend(&body, "<option value=\"", v1::CertificateState_Name(s), "\"",
                    s == state ? " selected" : "", ">", StateText(lang, s), "</option>");
  }
  absl::StrAppend(&body, "</select></label> <label>", t("list.partner"),
                  " <input name=\"partner\" size=\"3\" maxlength=\"2\" value=\"",
                  HtmlEscape(r.partner()), "\"></label> ",
                  checkbox("overdue", "dash.overdue", r.overdue()),
                  checkbox("discrepancies", "dash.discrepancies", r.discrepancies()), "<button>",
                  t("list.show"), "</button></form>");
  if (list->certificates().empty()) {
    absl::StrAppend(&body, "<p>", t("list.none"), "</p>");
  } else {
    absl::StrAppend(&body, "<table class=\"list\"><tr><th>", t("list.number"), "</th><th>",
                    t("list.partner"), "</th><th>", t("list.state"), "</th><th>", t("list.issued"),
                    "</th></tr>");
    for (const v1::CertificateRecord& c : list->certificates()) {
      absl::StrAppend(&body, "<tr><td><a href=\"", CertificateLink(c.certificate().number()), "\">",
                      HtmlEscape(c.certificate().number()), "</a></td><td>",
                      HtmlEscape(c.partner()), "</td><td>", StateText(lang, c.state()), "</td><td>",
                      When(c.certificate().issued_at()), "</td></tr>");
    }
    absl::StrAppend(&body, "</table>");
  }
  if (!list->next_page_token().empty()) {
    absl::StrAppend(&body, "<p><a href=\"?state=", HtmlEscape(state_name),
                    "&amp;partner=", HtmlEscape(r.partner()), r.overdue() ? "&amp;overdue=1" : "",
                    r.discrepancies() ? "&amp;discrepancies=1" : "",
                    "&amp;page_token=", HtmlEscape(list->next_page_token()), "\">", t("list.next"),
                    "</a></p>");
  }
  Html(req, res, Page(lang, Text(lang, "list.title"), &who, body));
}

void ConsolePages::Certificate(const httplib::Request& req, httplib::Response& res) const {
  ConsoleSessions::Visitor who;
  if (!Visit(*sessions_, req, res, &who)) return;
  const std::string lang = PageLanguage(req);
  v1::GetCertificateRequest r;
  r.set_number(req.matches[1]);
  absl::StatusOr<v1::CertificateRecord> rec = authority_->Get(who.caller, r);
  if (!rec.ok()) return ErrorPage(req, res, rec.status());
  std::string body = absl::StrCat(
      Fields(lang, *rec), Journey(lang, *rec), "<p><a href=\"/api/v1/certificates/",
      PathNumber(rec->certificate().number()), ":evidence\" download=\"evidence.json\">",
      HtmlEscape(Text(lang, "cert.evidence")), "</a></p>");
  if (rec->side() == v1::EXPORTING) {  // only the exporter signs the paper
    absl::StrAppend(&body, "<p><a class=\"action print\" href=\"/console/print/",
                    PathNumber(rec->certificate().number()), "\">",
                    HtmlEscape(Text(lang, "act.print")), "</a></p>");
  }
  absl::StrAppend(&body, Actions(lang, who.caller, *rec));
  Html(req, res,
       Page(lang, absl::StrCat(Text(lang, "cert.title"), " ", rec->certificate().number()), &who,
            body));
}

void ConsolePages::Officers(const httplib::Request& req, httplib::Response& res) const {
  ConsoleSessions::Visitor who;
  if (!Visit(*sessions_, req, res, &who)) return;
  const std::string lang = PageLanguage(req);
  absl::StatusOr<v1::ListOfficersResponse> list = authority_->ListOfficers(who.caller, {});
  if (!list.ok()) return ErrorPage(req, res, list.status());
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  const bool manage = who.caller.roles.count(v1::OPERATOR) > 0;
  // Where a form shows the credentials the node answers with, once.
  const std::string shown =
      absl::StrCat("<p class=\"result\" hidden data-label=\"", t("officers.shown_once"), "\"></p>");
  std::string body =
      absl::StrCat("<table class=\"list\"><tr><th>", t("officers.login"), "</th><th>",
                   t("officers.full_name"), "</th><th>", t("officers.office"), "</th><th>",
                   t("officers.roles"), "</th><th>", t("officers.status"), "</th><th></th></tr>");
  for (const v1::Officer& o : list->officers()) {
    std::string roles;
    for (int r : o.roles()) {
      absl::StrAppend(&roles, roles.empty() ? "" : ", ",
                      HtmlEscape(Text(lang, absl::StrCat("role.", v1::Role_Name(r)))));
    }
    const std::string api = absl::StrCat("/api/v1/officers/", HtmlEscape(o.name()));
    std::string actions;
    if (manage) {
      actions = absl::StrCat(
          "<form class=\"inline\" method=\"post\" data-api=\"", api,
          ":setDisabled\"><input type=\"hidden\" name=\"disabled\" data-type=\"bool\" value=\"",
          o.disabled() ? "false" : "true", "\"><button>",
          o.disabled() ? t("officers.enable") : t("officers.disable"),
          "</button></form> <form class=\"inline\" method=\"post\" data-show=\"credentials\" "
          "data-api=\"",
          api, ":reset\"><button>", t("officers.reset"), "</button>", shown, "</form>");
    }
    absl::StrAppend(&body, "<tr><td>", HtmlEscape(o.name()), "</td><td>", HtmlEscape(o.full_name()),
                    "</td><td>", HtmlEscape(o.office()), "</td><td>", roles, "</td><td>",
                    o.disabled() ? t("officers.disabled") : t("officers.active"), "</td><td>",
                    actions, "</td></tr>");
  }
  absl::StrAppend(&body, "</table>");
  if (manage) {
    absl::StrAppend(
        &body,
        "<form class=\"card\" method=\"post\" data-show=\"credentials\" "
        "data-api=\"/api/v1/officers\"><h2>",
        t("officers.add"), "</h2><label>", t("officers.login"),
        " <input name=\"officer.name\" required pattern=\"[a-z0-9._\\-]{3,32}\"></label><label>",
        t("officers.full_name"),
        " <input name=\"officer.fullName\" required maxlength=\"128\"></label><label>",
        t("officers.office"),
        " <input name=\"officer.office\" required maxlength=\"16\"></label><fieldset><legend>",
        t("officers.roles"), "</legend>");
    for (v1::Role r : {v1::EXPORTER, v1::IMPORTER, v1::AUDITOR, v1::OPERATOR}) {
      absl::StrAppend(&body,
                      "<label><input type=\"checkbox\" name=\"officer.roles\" data-type=\"list\" "
                      "value=\"",
                      v1::Role_Name(r), "\"> ",
                      HtmlEscape(Text(lang, absl::StrCat("role.", v1::Role_Name(r)))), "</label>");
    }
    absl::StrAppend(&body, "</fieldset><button>", t("officers.add"), "</button>", shown, "</form>");
  }
  Html(req, res, Page(lang, Text(lang, "officers.title"), &who, body));
}

absl::StatusOr<v1::TrustListRecord> ConsolePages::InForce(const Caller& caller,
                                                          v1::TrustList* trust) const {
  absl::StatusOr<v1::ListTrustListsResponse> lists = authority_->ListTrustLists(caller, {});
  if (!lists.ok()) return lists.status();
  if (lists->versions().empty() ||
      !trust->ParseFromString(lists->versions().rbegin()->signed_list().trust_list())) {
    return absl::InternalError("no trust list in force");
  }
  return *lists->versions().rbegin();
}

void ConsolePages::Issue(const httplib::Request& req, httplib::Response& res) const {
  ConsoleSessions::Visitor who;
  if (!Visit(*sessions_, req, res, &who)) return;
  const std::string lang = PageLanguage(req);
  if (absl::Status s = authority_->Authorize(who.caller, "SubmitCertificate", {v1::EXPORTER});
      !s.ok()) {
    return ErrorPage(req, res, s);
  }
  IssueFormInput in;
  in.lang = lang;
  in.participant = authority_->participant();
  in.official = who.caller.full_name;
  in.office = who.caller.office;
  in.today = absl::Now();
  if (absl::StatusOr<v1::TrustListRecord> r = InForce(who.caller, &in.trust); !r.ok()) {
    return ErrorPage(req, res, r.status());
  }
  const char* title = "issue.title";
  for (const auto& [param, mode, key] :
       {std::tuple{"replaces", IssueFormInput::Mode::kReplace, "issue.title_replace"},
        std::tuple{"amend", IssueFormInput::Mode::kAmend, "issue.title_amend"}}) {
    if (!req.has_param(param)) continue;
    v1::GetCertificateRequest get;
    get.set_number(req.get_param_value(param));
    absl::StatusOr<v1::CertificateRecord> rec = authority_->Get(who.caller, get);
    if (!rec.ok()) return ErrorPage(req, res, rec.status());
    if (rec->side() != v1::EXPORTING) {
      return ErrorPage(req, res, absl::FailedPreconditionError("only our own certificates"));
    }
    in.mode = mode;
    in.from = rec->certificate();
    title = key;
  }
  std::string heading = Text(lang, title);
  if (in.mode != IssueFormInput::Mode::kIssue) absl::StrAppend(&heading, " ", in.from.number());
  Html(req, res, Page(lang, heading, &who, IssueForm(in)));
}

void ConsolePages::Print(const httplib::Request& req, httplib::Response& res) const {
  ConsoleSessions::Visitor who;
  if (!Visit(*sessions_, req, res, &who)) return;
  PrintRequest print;
  print.lang = PageLanguage(req);
  v1::GetCertificateRequest get;
  get.set_number(req.matches[1]);
  absl::StatusOr<v1::CertificateRecord> rec = authority_->Get(who.caller, get);
  if (!rec.ok()) return ErrorPage(req, res, rec.status());
  print.record = *std::move(rec);
  v1::GetAttestationRequest attest;
  attest.set_number(get.number());
  absl::StatusOr<v1::AttestationResponse> a = authority_->GetAttestation(who.caller, attest);
  if (!a.ok()) return ErrorPage(req, res, a.status());
  print.attestation = *std::move(a);
  absl::StatusOr<std::string> pdf = CertificatePdf(print);
  if (!pdf.ok()) return ErrorPage(req, res, pdf.status());
  std::string file = get.number();
  for (char& c : file) {
    if (c == '/') c = '-';
  }
  res.set_header("Content-Disposition", absl::StrCat("inline; filename=\"KP-", file, ".pdf\""));
  res.set_content(*std::move(pdf), "application/pdf");
}

std::string ConsolePages::VerifyResult(const std::string& lang, const node::PaperCheck& c,
                                       bool by_code) {
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  if (!c.authentic) {
    return absl::StrCat("<section class=\"card verdict bad\"><p><strong>",
                        t("verify.not_authentic"), "</strong> ", HtmlEscape(c.why_not),
                        "</p></section>");
  }
  const v1::Attestation& a = c.attestation;
  auto row = [&](const char* key, const std::string& value) {
    return absl::StrCat("<tr><th>", t(key), "</th><td>", HtmlEscape(value), "</td></tr>");
  };
  std::string state = t("verify.not_recorded");
  if (c.recorded) {
    const bool in_force =
        c.state == v1::ISSUED || c.state == v1::DELIVERED || c.state == v1::RECEIVED;
    state = in_force ? t("verify.valid") : StateText(lang, c.state);
    if (!c.current_version) absl::StrAppend(&state, " · ", t("verify.old_version"));
  }
  return absl::StrCat(
      "<section class=\"card verdict good\"><p><strong>",
      by_code ? t("verify.matches") : t("verify.authentic"),
      "</strong></p><table class=\"fields\">", row("print.number", a.number()),
      row("cert.exporter", a.exporter()), row("cert.importer", a.importer()),
      row("cert.issued", When(a.issued_at())), row("cert.expires", When(a.expires_at())),
      row("cert.carats", Hundredths(a.total_carats_hundredths())),
      row("cert.value", Hundredths(a.total_value_usd_cents())),
      row("cert.parcels", absl::StrCat(a.number_of_parcels())), "<tr><th>", t("verify.state"),
      "</th><td class=\"verified-state\">", state, "</td></tr></table></section>");
}

void ConsolePages::Verify(const httplib::Request& req, httplib::Response& res) const {
  const std::string lang = PageLanguage(req);
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  const std::string qr = req.get_param_value("qr"), number = req.get_param_value("number"),
                    code = req.get_param_value("code");
  std::string body = absl::StrCat(
      "<p>", t("verify.intro"), "</p><form class=\"card\" method=\"get\" action=\"/verify\">",
      "<label>", t("verify.qr"), " <textarea name=\"qr\" rows=\"3\" maxlength=\"1024\">",
      "</textarea></label><button>", t("verify.submit"), "</button></form>",
      "<form class=\"card\" method=\"get\" action=\"/verify\"><label>", t("print.number"),
      " <input name=\"number\" maxlength=\"64\"></label><label>", t("verify.code"),
      " <input name=\"code\" maxlength=\"16\" autocomplete=\"off\"></label><button>",
      t("verify.submit"), "</button></form>");
  if (!qr.empty() || !number.empty()) {
    if (!verify_tries_.Allow(req.remote_addr, absl::Now())) {
      res.status = 429;
      return Html(req, res,
                  Page(lang, Text(lang, "verify.title"), nullptr,
                       absl::StrCat("<p class=\"error\">", t("verify.too_many"), "</p>")));
    }
    absl::StatusOr<node::PaperCheck> check =
        !qr.empty() ? authority_->CheckPaper(qr) : authority_->CheckPaperCode(number, code);
    if (!check.ok()) return ErrorPage(req, res, check.status());
    body = absl::StrCat(VerifyResult(lang, *check, qr.empty()), body);
  }
  Html(req, res, Page(lang, Text(lang, "verify.title"), nullptr, body));
}

void ConsolePages::Partners(const httplib::Request& req, httplib::Response& res) const {
  ConsoleSessions::Visitor who;
  if (!Visit(*sessions_, req, res, &who)) return;
  const std::string lang = PageLanguage(req);
  v1::TrustList trust;
  absl::StatusOr<v1::TrustListRecord> in_force_or = InForce(who.caller, &trust);
  if (!in_force_or.ok()) return ErrorPage(req, res, in_force_or.status());
  const v1::TrustListRecord& in_force = *in_force_or;
  auto t = [&](const char* key) { return HtmlEscape(Text(lang, key)); };
  std::string body = absl::StrCat(
      "<p>", t("partners.version"), " ", trust.version(), " · ", t("partners.in_force"), " ",
      When(in_force.installed_at()), " (", HtmlEscape(in_force.source()), ")</p>",
      "<table class=\"list\"><tr><th>", t("partners.participant"), "</th><th>",
      t("partners.status"), "</th><th>", t("partners.live_from"), "</th><th>",
      t("partners.offices"), "</th><th>", t("partners.policy"), "</th></tr>");
  for (const v1::Participant& p : trust.participants()) {
    std::string status = p.status() == v1::SUSPENDED
                             ? absl::StrCat(t("partners.suspended"), " ", When(p.suspended_from()))
                             : t("partners.active");
    if (p.onboarding().directions() == v1::SENDS_ONLY) {
      absl::StrAppend(&status, "; ", t("partners.sends_only"));
    } else if (p.onboarding().directions() == v1::RECEIVES_ONLY) {
      absl::StrAppend(&status, "; ", t("partners.receives_only"));
    }
    if (p.onboarding().paper_in_parallel()) absl::StrAppend(&status, "; ", t("partners.paper"));
    std::string offices;
    for (const v1::Office& o : p.offices()) {
      absl::StrAppend(&offices, offices.empty() ? "" : ", ", HtmlEscape(o.code()));
    }
    std::vector<std::string> rules;
    const v1::ImportPolicy& policy = p.import_policy();
    if (policy.refuse_mixed_undisclosed()) rules.push_back(t("partners.no_mixed"));
    if (policy.require_origin_shares()) rules.push_back(t("partners.shares"));
    if (policy.max_validity_days() > 0) {
      rules.push_back(absl::StrCat(t("partners.max_validity"), " ", policy.max_validity_days()));
    }
    std::string policy_text;
    for (const std::string& r : rules)
      absl::StrAppend(&policy_text, policy_text.empty() ? "" : "; ", r);
    absl::StrAppend(
        &body, "<tr><td><strong>", HtmlEscape(p.code()), "</strong> ", HtmlEscape(p.name()),
        p.code() == authority_->participant() ? absl::StrCat(" (", t("partners.us"), ")")
                                              : std::string(),
        "</td><td>", status, "</td><td>", When(p.onboarding().live_from()), "</td><td>", offices,
        "</td><td>", policy_text, "</td></tr>");
  }
  absl::StrAppend(&body, "</table>");
  Html(req, res, Page(lang, Text(lang, "partners.title"), &who, body));
}

void ConsolePages::Register(httplib::Server* server) const {
  server->Get("/console/app.js", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(kConsoleScript, "text/javascript; charset=utf-8");
  });
  server->Get("/console/style.css", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(kConsoleStyle, "text/css; charset=utf-8");
  });
  server->Get("/console/sign-in", [](const httplib::Request& req, httplib::Response& res) {
    const std::string lang = PageLanguage(req);
    Html(req, res, Page(lang, Text(lang, "signin.title"), nullptr, SignInForm(lang)));
  });
  server->Get("/console/?",
              [this](const httplib::Request& req, httplib::Response& res) { Dashboard(req, res); });
  server->Get("/console/print/(.+)",
              [this](const httplib::Request& req, httplib::Response& res) { Print(req, res); });
  server->Get("/verify",
              [this](const httplib::Request& req, httplib::Response& res) { Verify(req, res); });
  server->Get("/console/issue",
              [this](const httplib::Request& req, httplib::Response& res) { Issue(req, res); });
  server->Get("/console/partners",
              [this](const httplib::Request& req, httplib::Response& res) { Partners(req, res); });
  server->Get("/console/officers",
              [this](const httplib::Request& req, httplib::Response& res) { Officers(req, res); });
  server->Get("/console/certificates",
              [this](const httplib::Request& req, httplib::Response& res) { List(req, res); });
  server->Get(
      "/console/certificates/([^:]+)",
      [this](const httplib::Request& req, httplib::Response& res) { Certificate(req, res); });
  server->Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) {
    res.status = 204;  // no icon, and no error in the browser's console
  });
  server->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.status = 303;
    res.set_header("Location", "/console/");
  });
}

}  // namespace kpx::gateway
