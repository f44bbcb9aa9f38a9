// The console's pages (docs/console.md, "The console"): HTML made on the
// server, one small script and one style sheet, no build step. The script
// (/console/app.js) only sends a page's forms as JSON to the HTTP API with
// the session's CSRF token and shows the API's answer; no page has inline
// script or style, so the strict Content-Security-Policy holds.
//
//   GET /console/sign-in              the sign-in form
//   GET /console/                     the dashboard
//   GET /console/certificates         the list (state filter, paging)
//   GET /console/certificates/NUMBER  one certificate: its fields, its
//                                     journey (who did each step), and the
//                                     actions the officer's roles allow
//   GET /console/issue                the issue form (exporters): the whole
//                                     certificate, checked field by field
//                                     (console_issue.h); ?replaces=NUMBER
//                                     fills it from a certificate to
//                                     replace, ?amend=NUMBER to amend
//   GET /console/partners             the Participants on the trust list in
//                                     force: status, onboarding, offices and
//                                     what each accepts as importer
//   GET /console/print/NUMBER         the printed certificate, a PDF with its
//                                     QR code (certificate_pdf.h), in English
//                                     and the officer's language; for a
//                                     certificate this node issued
//   GET /verify                       public, no session: checks a QR code's
//                                     text (?qr=) or a number and short code
//                                     (?number=&code=); kVerifiesPerMinute
//                                     checks per client address
//   GET /console/officers             officers' accounts (operators and
//                                     auditors; operators add, disable,
//                                     enable and reset them)
//   GET /console/app.js, /console/style.css
//
// A page asked for without a session sends the browser to the sign-in
// page. The language is the `lang` query parameter (en, fr, pt, ar),
// remembered in the kpx-lang cookie; Arabic pages are right to left. Every
// text is escaped for HTML where it is written.
//
// Thread-safe.
#ifndef KPX_GATEWAY_CONSOLE_PAGES_H_
#define KPX_GATEWAY_CONSOLE_PAGES_H_

#include <httplib.h>

#include <string>

#include "gateway/authority.h"
#include "gateway/http_session.h"
#include "gateway/rate_limit.h"

namespace kpx::gateway {

class ConsolePages {
 public:
  static constexpr int kVerifiesPerMinute = 30;

  // Both must outlive this.
  ConsolePages(const Authority* authority, ConsoleSessions* sessions)
      : authority_(authority), sessions_(sessions) {}

  void Register(httplib::Server* server) const;

 private:
  void Dashboard(const httplib::Request& req, httplib::Response& res) const;
  void List(const httplib::Request& req, httplib::Response& res) const;
  void Certificate(const httplib::Request& req, httplib::Response& res) const;
  void Officers(const httplib::Request& req, httplib::Response& res) const;
  void Partners(const httplib::Request& req, httplib::Response& res) const;
  void Issue(const httplib::Request& req, httplib::Response& res) const;
  void Print(const httplib::Request& req, httplib::Response& res) const;
  void Verify(const httplib::Request& req, httplib::Response& res) const;
  // What a check found; `by_code`: a number and short code, not a QR code.
  static std::string VerifyResult(const std::string& lang, const node::PaperCheck& check,
                                  bool by_code);
  // The trust list in force (into *trust) and its record.
  absl::StatusOr<v1::TrustListRecord> InForce(const Caller& caller, v1::TrustList* trust) const;

  const Authority* const authority_;
  ConsoleSessions* const sessions_;
  // Public checks of a paper (/verify) per client address.
  mutable AddressRateLimit verify_tries_{kVerifiesPerMinute, 4096};
};

// Hundredths of a carat or cents as written: 125050 -> "1250.50".
std::string Hundredths(int64_t v);
// A certificate number as a path segment ('/' as %2F), escaped for HTML.
std::string PathNumber(const std::string& number);
// An origin as an officer types it and the paper shows it: "BW 75.00%,
// NA 25.00%", "BW 120.50 ct"; `mixed` for mixed, undisclosed origin ("*"
// in the issue form, "*****" on paper).
std::string OriginText(const v1::Origin& o, const char* mixed);
// `s` with & < > " ' written as entities.
std::string HtmlEscape(const std::string& s);
// The console language of a request: ?lang=, else the kpx-lang cookie,
// else English.
std::string PageLanguage(const httplib::Request& req);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_CONSOLE_PAGES_H_
