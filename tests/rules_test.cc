// The certificate rules of node/rules.h, node/hs_code.h and
// node/import_policy.h as pure functions: HS-code normalisation, origins,
// numbers and trust-list patterns, offices, totals, statements, types,
// import policies and input bounds. (Submission and receipt through a node
// are in node_test.cc, kpxctl in process_test.cc.)
#include "node/rules.h"

#include <catch2/catch.hpp>
#include <functional>

#include "node/hs_code.h"
#include "node/import_policy.h"
#include "node/problem_field.h"
#include "test_util.h"

namespace kpx {
namespace {

using testing::Must;
using testing::ValidCertificate;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

// BW, EU, AE and US, active, each with its offices (tests/test_util.h); EU
// with the policy deploy/pki.sh gives it. `edit` changes the list first.
std::shared_ptr<const node::TrustList> Trust(const std::function<void(v1::TrustList&)>& edit = {}) {
  v1::TrustList t;
  for (const char* code : {"BW", "EU", "AE", "US"}) {
    v1::Participant* p = t.add_participants();
    p->set_code(code);
    p->set_status(v1::ACTIVE);
    testing::AddOffices(*p);
    if (p->code() == "EU") {
      p->mutable_import_policy()->set_refuse_mixed_undisclosed(true);
      p->mutable_import_policy()->set_require_origin_shares(true);
    }
  }
  if (edit) edit(t);
  return Must(node::TrustList::FromProto(t));
}

v1::Participant& Find(v1::TrustList& t, const std::string& code) {
  for (v1::Participant& p : *t.mutable_participants()) {
    if (p.code() == code) return p;
  }
  throw std::runtime_error("no " + code);
}

// What the exporter's node does on submit: normalise, then validate.
absl::Status Submit(v1::Certificate c, const node::TrustList& trust) {
  if (absl::Status s = node::NormalizeCertificate(&c); !s.ok()) return s;
  return node::ValidateCertificate(c, c.exporting_participant(), trust, kNow);
}

v1::Certificate Cert(const std::string& importer = "EU") {
  return ValidCertificate("BW-2026-0001", "BW", importer, kNow);
}

bool Mentions(const absl::Status& s, const std::string& text) {
  return std::string(s.message()).find(text) != std::string::npos;
}

TEST_CASE("HS codes in every written form normalise to the six-digit KP code", "[rules][hs]") {
  struct Row {
    const char* input;
    const char* kp_code;
    const char* national;
  };
  for (const Row& r :
       {Row{"710231", "7102.31", ""}, Row{"7102 31", "7102.31", ""}, Row{"7102.31", "7102.31", ""},
        Row{"7102.31.00", "7102.31", "71023100"}, Row{"71023100", "7102.31", "71023100"},
        Row{"7102310000", "7102.31", "7102310000"}, Row{"7102.10", "7102.10", ""},
        Row{"710221", "7102.21", ""}, Row{"7102.21.00.90", "7102.21", "7102210090"}}) {
    INFO(r.input);
    node::HsCode c = Must(node::ParseHsCode(r.input));
    CHECK(c.kp_code == r.kp_code);
    CHECK(c.national_code == r.national);
  }
  for (const char* bad : {"7102.29", "7102.39", "710239", "7103.10", "7102", "7102311", "",
                          "71023100000", "7102.3x", "7102-31"}) {
    INFO(bad);
    CHECK(node::ParseHsCode(bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

// The issue form shows every problem at once, beside its input.
TEST_CASE("CertificateProblems: every problem at once, each naming its field", "[rules][form]") {
  auto trust = Trust();
  SECTION("a good certificate has none, and ValidateCertificate agrees") {
    v1::Certificate c = Cert();
    REQUIRE(node::NormalizeAll(&c).empty());
    CHECK(node::CertificateProblems(c, "BW", *trust, kNow).empty());
  }
  SECTION("problems in several groups are all reported, in the order of the rules") {
    v1::Certificate c = Cert();
    c.set_issuing_office("NOPE");
    c.mutable_exporter()->clear_name();
    c.mutable_importer()->set_country("B1");
    c.mutable_lines(0)->mutable_origin()->mutable_countries(1)->set_share_basis_points(2000);
    c.mutable_lines(1)->set_value_usd_cents(0);
    c.set_number_of_parcels(0);
    c.mutable_shipment()->add_transit_countries("ZA");
    c.mutable_shipment()->add_transit_countries("Z9");
    REQUIRE(node::NormalizeAll(&c).empty());
    std::vector<std::string> fields;
    for (const absl::Status& s : node::CertificateProblems(c, "BW", *trust, kNow)) {
      INFO(s.message());
      CHECK(s.code() == absl::StatusCode::kInvalidArgument);
      fields.push_back(node::ProblemField(s));
    }
    CHECK(fields == std::vector<std::string>{"issuingOffice", "exporter.name", "importer.country",
                                             "lines.0.origin.countries", "lines.1.valueUsdCents",
                                             "numberOfParcels", "shipment.transitCountries.1"});
    // The first of them is what a submit answers.
    absl::Status first = node::ValidateCertificate(c, "BW", *trust, kNow);
    CHECK(node::ProblemField(first) == "issuingOffice");
  }
  SECTION("the importer's policy names the line it refuses") {
    v1::Certificate c = Cert();
    c.mutable_lines(1)->mutable_origin()->clear_countries();
    c.mutable_lines(1)->mutable_origin()->set_mixed_undisclosed(true);
    std::vector<absl::Status> problems = node::CertificateProblems(c, "BW", *trust, kNow);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].code() == absl::StatusCode::kFailedPrecondition);
    CHECK(Mentions(problems[0], "EU import policy refuse_mixed_undisclosed"));
    CHECK(node::ProblemField(problems[0]) == "lines.1.origin");
    // The US allows it.
    c.set_importing_participant("US");
    CHECK(node::CertificateProblems(c, "BW", *trust, kNow).empty());
  }
  SECTION("every bad HS code is named, not only the first") {
    v1::Certificate c = Cert();
    c.mutable_lines(0)->set_hs_code("7102.39");
    c.mutable_lines(1)->set_hs_code("7103.10");
    std::vector<absl::Status> problems = node::NormalizeAll(&c);
    REQUIRE(problems.size() == 2);
    CHECK(node::ProblemField(problems[0]) == "lines.0.hsCode");
    CHECK(node::ProblemField(problems[1]) == "lines.1.hsCode");
    CHECK(node::NormalizeCertificate(&c).message() == problems[0].message());
  }
  SECTION("an unknown importer stops before its policy") {
    v1::Certificate c = Cert("ZZ");
    std::vector<absl::Status> problems = node::CertificateProblems(c, "BW", *trust, kNow);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].code() == absl::StatusCode::kFailedPrecondition);
    CHECK(node::ProblemField(problems[0]) == "importingParticipant");
  }
}

TEST_CASE("lines: HS codes and national codes on submit and receipt", "[rules][hs]") {
  auto trust = Trust();
  SECTION("a national code given as hs_code is kept in national_code") {
    v1::Certificate c = Cert();
    c.mutable_lines(1)->set_hs_code("7102210000");
    REQUIRE(node::NormalizeCertificate(&c).ok());
    CHECK(c.lines(1).hs_code() == "7102.21");
    CHECK(c.lines(1).national_code() == "7102210000");
    CHECK(node::ValidateCertificate(c, "BW", *trust, kNow).ok());
  }
  SECTION("7102.39 is refused with a message naming the line") {
    v1::Certificate c = Cert();
    c.mutable_lines(1)->set_hs_code("7102.39");
    absl::Status s = Submit(c, *trust);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(s.message() ==
          "certificate: line 2: HS code '7102.39' is not a rough-diamond code "
          "(7102.10, 7102.21, 7102.31)");
  }
  SECTION("an explicit national code must start with the line's six digits") {
    v1::Certificate c = Cert();
    c.mutable_lines(0)->set_national_code("71022100");
    CHECK(Mentions(Submit(c, *trust), "line 1: national code '71022100'"));
    c.mutable_lines(0)->set_national_code("7102");
    CHECK(Submit(c, *trust).code() == absl::StatusCode::kInvalidArgument);
    c.mutable_lines(0)->set_national_code("7102 3100 10");
    CHECK(Submit(c, *trust).ok());
  }
  SECTION("an explicit national code differing from hs_code's digits is refused") {
    v1::Certificate c = Cert();
    c.mutable_lines(0)->set_hs_code("71023100");
    c.mutable_lines(0)->set_national_code("7102310010");
    CHECK(Mentions(Submit(c, *trust), "differs from the digits of hs_code"));
  }
  SECTION("the importer refuses a certificate that is not in canonical form") {
    v1::Certificate c = Cert();
    c.mutable_lines(0)->set_hs_code("710231");
    CHECK(node::ValidateCertificate(c, "BW", *trust, kNow).code() ==
          absl::StatusCode::kInvalidArgument);
    c = Cert();
    c.set_number("bw-2026-0001");
    CHECK(node::ValidateCertificate(c, "BW", *trust, kNow).code() ==
          absl::StatusCode::kInvalidArgument);
    c = Cert();
    c.clear_statement();
    CHECK(Mentions(node::ValidateCertificate(c, "BW", *trust, kNow), "statement"));
  }
  SECTION("at most 100 lines") {
    v1::Certificate c = Cert();
    while (c.lines_size() < 101) *c.add_lines() = c.lines(1);
    c.set_total_carats_hundredths(c.total_carats_hundredths() +
                                  99 * c.lines(1).carats_hundredths());
    c.set_total_value_usd_cents(c.total_value_usd_cents() + 99 * c.lines(1).value_usd_cents());
    CHECK(Mentions(Submit(c, *trust), "at most 100 lines"));
    c.mutable_lines()->RemoveLast();
    c.set_total_carats_hundredths(c.total_carats_hundredths() - c.lines(1).carats_hundredths());
    c.set_total_value_usd_cents(c.total_value_usd_cents() - c.lines(1).value_usd_cents());
    CHECK(Submit(c, *trust).ok());
  }
}

TEST_CASE("origin: countries with consistent quantities, or mixed and undisclosed",
          "[rules][origin]") {
  auto trust = Trust();
  v1::Certificate c = Cert("AE");
  v1::Origin* o = c.mutable_lines(0)->mutable_origin();  // BW 75 %, NA 25 %
  REQUIRE(Submit(c, *trust).ok());

  SECTION("shares must add up to 10000") {
    o->mutable_countries(1)->set_share_basis_points(2000);
    CHECK(Mentions(Submit(c, *trust), "line 1: origin shares add up to 9500 basis points"));
  }
  SECTION("carats must add up to the line's carats") {
    o->mutable_countries(0)->set_share_basis_points(0);
    o->mutable_countries(1)->set_share_basis_points(0);
    o->mutable_countries(0)->set_carats_hundredths(100000);
    o->mutable_countries(1)->set_carats_hundredths(25050);
    CHECK(Submit(c, *trust).ok());
    o->mutable_countries(1)->set_carats_hundredths(25000);
    CHECK(Mentions(Submit(c, *trust), "origin carats add up to 125000"));
  }
  SECTION("all quantities or none, all of one kind") {
    o->mutable_countries(1)->set_share_basis_points(0);
    CHECK(Mentions(Submit(c, *trust), "give every country's quantity"));
    o->mutable_countries(1)->set_carats_hundredths(1000);
    CHECK(Mentions(Submit(c, *trust), "give every country's quantity"));
    o->mutable_countries(0)->set_share_basis_points(0);
    o->mutable_countries(1)->set_carats_hundredths(0);
    CHECK(Submit(c, *trust).ok());  // two countries, no quantities
  }
  SECTION("no country twice, each a 2-letter code (normalised to upper case)") {
    o->mutable_countries(1)->set_country("bw");
    CHECK(Mentions(Submit(c, *trust), "origin BW is listed twice"));
    o->mutable_countries(1)->set_country("N1");
    CHECK(Mentions(Submit(c, *trust), "not an ISO 3166-1 alpha-2"));
    o->mutable_countries(1)->set_country("na");
    CHECK(Submit(c, *trust).ok());
  }
  SECTION("mixed, undisclosed: no countries with it, and not nothing at all") {
    o->set_mixed_undisclosed(true);
    CHECK(Mentions(Submit(c, *trust), "mixed_undisclosed but also lists countries"));
    o->clear_countries();
    CHECK(Submit(c, *trust).ok());
    o->set_mixed_undisclosed(false);
    CHECK(Mentions(Submit(c, *trust), "line 1: origin is required"));
  }
  SECTION("a single country needs no quantity, and a given one is the whole") {
    c.mutable_lines(1)->mutable_origin()->mutable_countries(0)->set_share_basis_points(10000);
    CHECK(Submit(c, *trust).ok());
    c.mutable_lines(1)->mutable_origin()->mutable_countries(0)->set_share_basis_points(5000);
    CHECK(Submit(c, *trust).code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("numbers: normalised, then the exporter's pattern or code prefix", "[rules][number]") {
  auto trust = Trust();
  v1::Certificate c = Cert();
  for (const char* good : {"BW-2026-1", "BW2026001", " bw 2026 / 0001 ", "BW.1"}) {
    INFO(good);
    c.set_number(good);
    CHECK(Submit(c, *trust).ok());
  }
  for (const char* bad : {"BWX-1", "BW", "ZA-1", "B-W1", "BW_1", ""}) {
    INFO(bad);
    c.set_number(bad);
    CHECK(Submit(c, *trust).code() == absl::StatusCode::kInvalidArgument);
  }
  c.set_number(" bw 2026 / 0001 ");
  REQUIRE(node::NormalizeCertificate(&c).ok());
  CHECK(c.number() == "BW2026/0001");

  SECTION("a number_pattern on the trust list must match in full") {
    auto patterned =
        Trust([](v1::TrustList& t) { Find(t, "BW").set_number_pattern("BW-[0-9]{4}-[0-9]{4}"); });
    c.set_number("BW-2026-0001");
    CHECK(Submit(c, *patterned).ok());
    c.set_number("BW-2026-00011");
    CHECK(Mentions(Submit(c, *patterned), "does not match BW's number_pattern"));
    c.set_number("BW2026001");  // fine by prefix, not by the pattern
    CHECK(Submit(c, *patterned).code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("a pattern that does not compile makes the trust list invalid") {
    v1::TrustList t = Trust()->proto();
    Find(t, "BW").set_number_pattern("BW-(");
    absl::Status s = node::TrustList::FromProto(t).status();
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(Mentions(s, "number_pattern"));
  }
}

TEST_CASE("issuing office: one of the exporter's offices on the trust list", "[rules][office]") {
  auto trust = Trust();
  v1::Certificate c = Cert();
  c.set_issuing_office("ANR");  // an EU office, not BW's
  absl::Status s = Submit(c, *trust);
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(s, "issuing_office 'ANR' is not an office of BW on the trust list (offices: HQ)"));
  c.clear_issuing_office();
  CHECK(Submit(c, *trust).code() == absl::StatusCode::kInvalidArgument);

  v1::Certificate eu = ValidCertificate("EU-ANR-2026-1", "EU", "BW", kNow);
  eu.set_issuing_office("ANR");
  CHECK(Submit(eu, *trust).ok());
  eu.set_issuing_office("IDR");
  CHECK(Mentions(Submit(eu, *trust), "(offices: HQ, ANR, PRG)"));

  SECTION("the trust list refuses duplicate or malformed offices") {
    v1::TrustList t = trust->proto();
    *Find(t, "BW").add_offices() = Find(t, "BW").offices(0);
    CHECK(Mentions(node::TrustList::FromProto(t).status(), "lists office HQ twice"));
    t = trust->proto();
    Find(t, "BW").mutable_offices(0)->set_code("hq");
    CHECK(node::TrustList::FromProto(t).status().code() == absl::StatusCode::kInvalidArgument);
    t = trust->proto();
    Find(t, "BW").mutable_offices(0)->clear_name();
    CHECK(node::TrustList::FromProto(t).status().code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("a validating official is required") {
    c = Cert();
    c.clear_validating_official();
    CHECK(Mentions(Submit(c, *trust), "validating_official is required"));
  }
}

TEST_CASE("totals equal the lines' sums; parcels counted apart from lines", "[rules][totals]") {
  auto trust = Trust();
  v1::Certificate c = Cert();
  REQUIRE(c.number_of_parcels() == 14);
  REQUIRE(c.lines_size() == 2);
  CHECK(Submit(c, *trust).ok());
  c.set_total_carats_hundredths(c.total_carats_hundredths() + 1);
  CHECK(Mentions(Submit(c, *trust), "total_carats_hundredths is 165051 but the lines add up to"));
  c = Cert();
  c.set_total_value_usd_cents(1);
  CHECK(Mentions(Submit(c, *trust), "total_value_usd_cents"));
  c = Cert();
  c.set_number_of_parcels(0);
  CHECK(Mentions(Submit(c, *trust), "number_of_parcels"));
  c.set_number_of_parcels(1);  // one parcel, two lines: fine
  CHECK(Submit(c, *trust).ok());
  c.mutable_lines(0)->set_value_usd_cents(-1);
  CHECK(Mentions(Submit(c, *trust), "line 1: value must be positive"));
}

TEST_CASE("both statement wordings are accepted; the text is derived", "[rules][statement]") {
  auto trust = Trust();
  const std::string kpcs = node::StatementText(v1::KPCS), us = node::StatementText(v1::US);
  CHECK(kpcs.find("Kimberley Process International Certification Scheme") != std::string::npos);
  CHECK(us.find("International") == std::string::npos);
  CHECK(us.find("Kimberley Process Certification Scheme for rough diamonds.") != std::string::npos);
  CHECK(std::string(node::StatementText(v1::STATEMENT_WORDING_UNSPECIFIED)).empty());
  v1::Certificate c = Cert();
  for (v1::StatementWording w : {v1::KPCS, v1::US}) {
    c.set_statement(w);
    CHECK(Submit(c, *trust).ok());
  }
  c.clear_statement();
  REQUIRE(node::NormalizeCertificate(&c).ok());
  CHECK(c.statement() == v1::KPCS);
  c.set_statement(static_cast<v1::StatementWording>(7));
  CHECK(Submit(c, *trust).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("type: replaces exactly when REPLACEMENT; provenance references", "[rules][type]") {
  auto trust = Trust();
  v1::Certificate c = Cert();
  c.clear_type();
  REQUIRE(node::NormalizeCertificate(&c).ok());
  CHECK(c.type() == v1::STANDARD);
  c.set_replaces("BW-2025-0999");
  CHECK(Mentions(Submit(c, *trust), "replaces is only allowed on a REPLACEMENT"));
  c.set_type(v1::REPLACEMENT);
  CHECK(Submit(c, *trust).ok());
  c.clear_replaces();
  CHECK(Mentions(Submit(c, *trust), "must name what it replaces"));
  c = Cert();
  c.set_type(v1::TECHNICAL);
  v1::CertificateReference* r = c.add_provenance();
  r->set_number("ae-2026-77");
  r->set_participant("ae");
  CHECK(Submit(c, *trust).ok());
  r->set_participant("A1");
  CHECK(Mentions(Submit(c, *trust), "provenance"));
}

TEST_CASE("import policies are the importer's, named in the refusal", "[rules][policy]") {
  auto trust = Trust();
  SECTION("EU refuses mixed, undisclosed origin; AE has no such rule") {
    v1::Certificate c = Cert("EU");
    c.mutable_lines(1)->mutable_origin()->clear_countries();
    c.mutable_lines(1)->mutable_origin()->set_mixed_undisclosed(true);
    absl::Status s = Submit(c, *trust);
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(s.message() ==
          "EU import policy refuse_mixed_undisclosed: line 2 has mixed, undisclosed origin");
    c.set_importing_participant("AE");
    CHECK(Submit(c, *trust).ok());
  }
  SECTION("EU wants the quantities of every country of a mixed line") {
    v1::Certificate c = Cert("EU");
    for (v1::OriginShare& o : *c.mutable_lines(0)->mutable_origin()->mutable_countries()) {
      o.clear_share_basis_points();
    }
    absl::Status s = Submit(c, *trust);
    CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(Mentions(s, "EU import policy require_origin_shares: line 1"));
    c.set_importing_participant("AE");
    CHECK(Submit(c, *trust).ok());
  }
  SECTION("validity and wording limits") {
    auto strict = Trust([](v1::TrustList& t) {
      Find(t, "AE").mutable_import_policy()->set_max_validity_days(20);
      Find(t, "AE").mutable_import_policy()->add_accepted_statements(v1::KPCS);
    });
    v1::Certificate c = Cert("AE");  // valid 30 days
    CHECK(Mentions(Submit(c, *strict), "AE import policy max_validity_days: valid for 30 days"));
    *c.mutable_expires_at() = node::ToTimestamp(kNow + absl::Hours(24 * 20));
    CHECK(Submit(c, *strict).ok());
    c.set_statement(v1::US);
    CHECK(Mentions(Submit(c, *strict), "AE import policy accepted_statements"));
  }
  SECTION("the trust list refuses an unspecified accepted wording") {
    v1::TrustList t = trust->proto();
    Find(t, "AE").mutable_import_policy()->add_accepted_statements(
        v1::STATEMENT_WORDING_UNSPECIFIED);
    CHECK(node::TrustList::FromProto(t).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("every string and repeated field is bounded", "[rules][bounds]") {
  auto trust = Trust();
  struct Case {
    const char* name;
    std::function<void(v1::Certificate&)> spoil;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"long exporter name",
       [](v1::Certificate& c) { c.mutable_exporter()->set_name(std::string(513, 'a')); },
       "exporter name is longer than 512"},
      {"long English address",
       [](v1::Certificate& c) { c.mutable_importer()->set_address_en(std::string(513, 'a')); },
       "importer address_en"},
      {"no importer country", [](v1::Certificate& c) { c.mutable_importer()->clear_country(); },
       "importer country is required"},
      {"long remarks", [](v1::Certificate& c) { c.set_remarks(std::string(4097, 'r')); },
       "remarks is longer than 4096"},
      {"long quality_en",
       [](v1::Certificate& c) { c.mutable_lines(0)->set_quality_en(std::string(513, 'q')); },
       "line 1: quality_en"},
      {"many seals",
       [](v1::Certificate& c) {
         for (int i = 0; i < 101; ++i) c.mutable_shipment()->add_seal_numbers("S");
       },
       "seal numbers"},
      {"long waybill",
       [](v1::Certificate& c) {
         c.mutable_shipment()->set_transport_document(std::string(129, 'w'));
       },
       "transport_document"},
      {"many transit countries",
       [](v1::Certificate& c) {
         for (int i = 0; i < 17; ++i) c.mutable_shipment()->add_transit_countries("ZA");
       },
       "transit countries"},
      {"bad transit country",
       [](v1::Certificate& c) { c.mutable_shipment()->add_transit_countries("Z"); },
       "transit country"},
      {"many extensions",
       [](v1::Certificate& c) {
         for (int i = 0; i < 65; ++i) (*c.mutable_extensions())["k" + std::to_string(i)] = "v";
       },
       "at most 64 extensions"},
      {"oversized", [](v1::Certificate& c) { c.set_remarks(std::string(300 * 1024, 'x')); },
       "larger than 262144 bytes"},
      {"huge carats",
       [](v1::Certificate& c) { c.mutable_lines(1)->set_carats_hundredths(int64_t{1} << 62); },
       "line 2: carats exceed"},
  };
  for (const Case& k : cases) {
    SECTION(k.name) {
      v1::Certificate c = Cert();
      k.spoil(c);
      absl::Status s = Submit(c, *trust);
      CHECK(s.code() == absl::StatusCode::kInvalidArgument);
      CHECK(Mentions(s, k.says));
    }
  }
}

TEST_CASE("CheckImportPolicy alone: no policy accepts anything valid", "[rules][policy]") {
  v1::Participant none;
  none.set_code("AE");
  v1::Certificate c = Cert("AE");
  c.mutable_lines(0)->mutable_origin()->clear_countries();
  c.mutable_lines(0)->mutable_origin()->set_mixed_undisclosed(true);
  CHECK(node::CheckImportPolicy(c, none).ok());
  none.mutable_import_policy()->set_refuse_mixed_undisclosed(true);
  CHECK(node::CheckImportPolicy(c, none).message() ==
        "AE import policy refuse_mixed_undisclosed: line 1 has mixed, undisclosed origin");
}

}  // namespace
}  // namespace kpx
