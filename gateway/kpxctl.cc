// kpxctl: the command-line client of a node's AuthorityService, as a table
// of NOUN VERB commands (gateway/cli.h parses and documents them):
//
//   kpxctl [GLOBAL OPTIONS] NOUN VERB [ARGS] [FLAGS]     (globals anywhere)
//
// Connection (flag, or environment variable):
//   --node HOST:PORT    KPX_NODE          the node's authority listener
//   --cert FILE         KPX_CERT          this client's certificate (PEM)
//   --key FILE          KPX_KEY           this client's private key (PEM)
//   --ca FILE           KPX_CA            CA the node's certificate chains to
//   --server-name NAME  KPX_SERVER_NAME   name to check on the node's certificate
//
// Every failure prints one line on stderr (text, or one JSON object with
// -o json) and exits non-zero: 2 for bad usage, 1 otherwise. kpxctl only
// talks to a node; offline work on a data folder is `kpxd restore|verify`.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "crypto/password.h"
#include "gateway/cli.h"
#include "gateway/health_client.h"
#include "gateway/status.h"
#include "gateway/tls.h"
#include "gateway/tls_policy.h"
#include "gateway/trust_text.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "kpx/v1/service.grpc.pb.h"
#include "node/bounds.h"
#include "node/evidence.h"
#include "node/statement_text.h"
#include "node/text.h"
#include "node/trust_chain.h"
#include "node/trust_list.h"

#ifndef KPX_VERSION
#define KPX_VERSION "unknown"
#endif

namespace {

using google::protobuf::util::TimeUtil;
using kpx::cli::Fail;
using kpx::cli::Failure;
using kpx::cli::Invocation;
using kpx::cli::Result;
using kpx::cli::UsageError;

constexpr absl::Duration kDefaultTimeout = absl::Seconds(30);
constexpr absl::Duration kLongTimeout = absl::Minutes(30);  // verify, export, backup
// Submit and the verbs are retried this often after UNAVAILABLE or
// DEADLINE_EXCEEDED, with the same request id: the node answers a retry of
// a call that already succeeded with its record, so nothing happens twice.
constexpr int kAttempts = 3;

const kpx::cli::Flag kRequestIdFlag{
    "request-id", "ID", "id of this request (default: a random one); a retry with it acts once"};

// ---------------------------------------------------------------- output

// `m` as one line of protobuf JSON with C1 and bidi controls escaped; an
// error if protobuf cannot print it (a timestamp outside its range, from
// a ledger written before the node bounded them).
absl::StatusOr<std::string> Json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  if (auto st = google::protobuf::util::MessageToJsonString(m, &out, opts); !st.ok()) {
    return absl::DataLossError(absl::StrCat("cannot print ", m.GetDescriptor()->name(),
                                            " as JSON: ", st.message().as_string()));
  }
  return kpx::node::EscapeJsonControls(out);
}

// Prints `m`: one JSON object per line on stdout (-o json), else text(m)
// laid out from a copy whose every string is escaped (node::EscapeStrings),
// so that nothing a partner wrote can add a line or drive the terminal.
template <class M, class TextFn>
Result Print(const Invocation& inv, const M& m, TextFn text) {
  if (inv.json) {
    absl::StatusOr<std::string> json = Json(m);
    if (!json.ok()) return Fail(json.status());
    std::printf("%s\n", json->c_str());
  } else {
    M shown = m;
    kpx::node::EscapeStrings(&shown);
    std::fputs(text(shown).c_str(), stdout);
  }
  std::fflush(stdout);
  return std::nullopt;
}

void Set(google::protobuf::Struct& s, const char* key, const std::string& v) {
  (*s.mutable_fields())[key].set_string_value(v);
}
void Set(google::protobuf::Struct& s, const char* key, double v) {
  (*s.mutable_fields())[key].set_number_value(v);
}

// RFC 3339 UTC to the second, e.g. "2026-11-27T18:00:00Z".
std::string Time(const google::protobuf::Timestamp& ts) {
  google::protobuf::Timestamp whole = ts;
  whole.set_nanos(0);
  return TimeUtil::ToString(whole);
}

std::string Decimal(int64_t hundredths) {
  return absl::StrFormat("%d.%02d", hundredths / 100, hundredths % 100);
}

// "BW 75.00 %, NA 25.00 %", "BW 1000.00 ct, ...", "BW", or "*****" for
// mixed, undisclosed origin (as US certificates print it).
std::string OriginText(const kpx::v1::Origin& o) {
  if (o.mixed_undisclosed()) return "***** (mixed, undisclosed)";
  std::string out;
  for (const kpx::v1::OriginShare& c : o.countries()) {
    if (!out.empty()) out += ", ";
    out += c.country();
    if (c.carats_hundredths() > 0)
      absl::StrAppend(&out, " ", Decimal(c.carats_hundredths()), " ct");
    if (c.share_basis_points() > 0) {
      absl::StrAppend(&out, " ", Decimal(c.share_basis_points()), " %");
    }
  }
  return out;
}

std::string LinesText(const kpx::v1::Certificate& c) {
  std::string out;
  for (const kpx::v1::CertificateLine& l : c.lines()) {
    absl::StrAppendFormat(&out, "    HS %s%s  %s ct  USD %s  origin %s\n", l.hs_code(),
                          l.national_code().empty() ? "" : " (" + l.national_code() + ")",
                          Decimal(l.carats_hundredths()), Decimal(l.value_usd_cents()),
                          OriginText(l.origin()));
  }
  return out;
}

std::string ShipmentText(const kpx::v1::Shipment& s) {
  std::string out;
  if (!s.seal_numbers().empty()) {
    absl::StrAppend(&out, "  seals ", absl::StrJoin(s.seal_numbers(), ", "), "\n");
  }
  for (const auto& [label, value] : {std::pair{"container", &s.container()},
                                     std::pair{"transport document", &s.transport_document()},
                                     std::pair{"courier", &s.courier()}}) {
    if (!value->empty()) absl::StrAppend(&out, "  ", label, " ", *value, "\n");
  }
  if (!s.transit_countries().empty()) {
    absl::StrAppend(&out, "  transit via ", absl::StrJoin(s.transit_countries(), ", "), "\n");
  }
  return out;
}

// What the importer found, and where it differs from the certificate.
std::string ConfirmationText(const kpx::v1::CertificateRecord& r) {
  const kpx::v1::ImportConfirmation& f = r.confirmation();
  std::string out = absl::StrFormat(
      "  confirmed: arrived %s, office %s (%s), official %s\n    found %d parcel(s), seals %s\n",
      Time(f.arrived_at()), f.office(), f.office_name(), f.official(), f.number_of_parcels(),
      f.seals_intact() ? "intact" : "BROKEN");
  for (const kpx::v1::FoundLine& l : f.lines()) {
    absl::StrAppendFormat(&out, "    found HS %s  %s ct  USD %s\n", l.hs_code(),
                          Decimal(l.carats_hundredths()), Decimal(l.value_usd_cents()));
  }
  if (!f.remarks().empty()) absl::StrAppend(&out, "    remarks ", f.remarks(), "\n");
  if (r.discrepancies().empty()) absl::StrAppend(&out, "    no discrepancies\n");
  for (const kpx::v1::Discrepancy& d : r.discrepancies()) {
    absl::StrAppendFormat(&out, "    DISCREPANCY %s: declared %s, found %s\n", d.field(),
                          d.declared(), d.found());
  }
  return out;
}

std::string RecordText(const kpx::v1::CertificateRecord& r) {
  const kpx::v1::Certificate& c = r.certificate();
  std::string out = absl::StrFormat(
      "certificate %s  %s -> %s  state %s\n"
      "  %d parcel(s), %s ct, USD %s, issued %s, expires %s\n"
      "  %s, issued at office %s, validated by %s\n",
      c.number(), c.exporting_participant(), c.importing_participant(),
      kpx::v1::CertificateState_Name(r.state()), c.number_of_parcels(),
      Decimal(c.total_carats_hundredths()), Decimal(c.total_value_usd_cents()), Time(c.issued_at()),
      Time(c.expires_at()), kpx::v1::CertificateType_Name(c.type()), c.issuing_office(),
      c.validating_official());
  absl::StrAppend(&out, "  exporter ", c.exporter().name(), " (", c.exporter().country(),
                  ")\n  importer ", c.importer().name(), " (", c.importer().country(), ")\n");
  absl::StrAppend(&out, "  lines:\n", LinesText(c), ShipmentText(c.shipment()));
  if (!c.replaces().empty()) absl::StrAppend(&out, "  replaces ", c.replaces(), "\n");
  absl::StrAppend(&out, "  statement (", kpx::v1::StatementWording_Name(c.statement()),
                  "): ", kpx::node::StatementText(c.statement()), "\n");
  if (r.has_confirmation()) absl::StrAppend(&out, ConfirmationText(r));
  for (const kpx::v1::CertificateVersion& v : r.earlier_versions()) {
    absl::StrAppend(&out, "  version ", v.version(), " amended at ", Time(v.amended_at()), " (",
                    kpx::v1::ReasonCode_Name(v.reason_code()), ": ", v.reason(), "), changed ",
                    absl::StrJoin(v.changed_fields(), ", "), "\n");
  }
  if (!r.replaced_by().empty()) absl::StrAppend(&out, "  replaced by ", r.replaced_by(), "\n");
  if (r.paper_in_parallel()) {
    absl::StrAppend(&out, "  paper in parallel: check the paper original too\n");
  }
  absl::StrAppend(
      &out, "  journey at ",
      r.side() == kpx::v1::EXPORTING ? c.exporting_participant() : c.importing_participant(),
      ":\n");
  for (const kpx::v1::StateChange& h : r.history()) {
    absl::StrAppendFormat(&out, "    %-10s %s  seq %d%s%s\n",
                          kpx::v1::CertificateState_Name(h.state()), Time(h.at()), h.sequence(),
                          h.detail().empty() ? "" : "  ", h.detail());
  }
  return out;
}

std::string EntryText(const kpx::v1::LedgerEntry& e) {
  return absl::StrFormat("%d  %s  %-16s %s  %s  %s\n", e.sequence(), Time(e.recorded_at()),
                         kpx::v1::EntryKind_Name(e.kind()), e.certificate_number(), e.partner(),
                         e.state() ? kpx::v1::CertificateState_Name(e.state()) : "-");
}

// ---------------------------------------------------------------- input

Result ParseTime(const std::string& flag, const std::string& text,
                 google::protobuf::Timestamp* ts) {
  if (TimeUtil::FromString(text, ts) || TimeUtil::FromString(text + "T00:00:00Z", ts)) {
    const absl::Time t = absl::FromUnixSeconds(ts->seconds());
    if (t >= kpx::node::EarliestTime() && t < kpx::node::LatestTime()) return std::nullopt;
    return UsageError(absl::StrCat("--", flag, ": ", text, " is outside ", kpx::node::kEarliestYear,
                                   "-", kpx::node::kLatestYear));
  }
  return UsageError(absl::StrCat("--", flag, ": bad time '", text,
                                 "': use 2026-11-27 or RFC 3339 (2026-11-27T18:00:00Z)"));
}

Result ParseSequence(const Invocation& inv, uint64_t* seq) {
  *seq = 1;
  if (inv.Has("from-seq") && (!absl::SimpleAtoi(inv.Get("from-seq"), seq) || *seq == 0)) {
    return UsageError("--from-seq takes a ledger sequence number (1 or more)");
  }
  return std::nullopt;
}

// "1250.5" / "1250.50" / "1250" -> 125050; false if not a non-negative
// amount with at most two decimals.
bool ParseHundredths(absl::string_view text, int64_t* out) {
  std::vector<std::string> parts = absl::StrSplit(text, '.');
  int64_t whole = 0, frac = 0;
  if (parts.empty() || parts.size() > 2 || parts[0].empty() ||
      !absl::SimpleAtoi(parts[0], &whole) || whole < 0 || whole > 10'000'000'000'000) {
    return false;
  }
  if (parts.size() == 2) {
    if (parts[1].empty() || parts[1].size() > 2 || !absl::SimpleAtoi(parts[1], &frac)) return false;
    if (parts[1].size() == 1) frac *= 10;
  }
  *out = whole * 100 + frac;
  return true;
}

// --request-id, or a fresh random one (128 bits, hex).
std::string RequestId(const Invocation& inv) {
  if (inv.Has("request-id")) return inv.Get("request-id");
  return kpx::crypto::HexEncode(kpx::crypto::RandomBytes(16));
}

// Makes `call` until it succeeds, fails for good, or kAttempts are spent.
grpc::Status WithRetries(const std::function<grpc::Status()>& call) {
  grpc::Status s;
  for (int attempt = 1; attempt <= kAttempts; ++attempt) {
    s = call();
    const bool transient = s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                           s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!transient || attempt == kAttempts) break;
    absl::SleepFor(absl::Seconds(attempt));
  }
  return s;
}

// ---------------------------------------------------------------- connection

struct Client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<kpx::v1::AuthorityService::Stub> stub;
  absl::Duration timeout;
  bool timeout_given = false;

  // A context whose deadline is the command's timeout from now.
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return ctx;
  }
};

// Connects as the invocation says; `timeout` unless --timeout is given.
Result Connect(const Invocation& inv, absl::Duration timeout, Client* client) {
  if (inv.Has("timeout")) {
    if (!absl::ParseDuration(inv.Get("timeout"), &timeout) || timeout <= absl::ZeroDuration()) {
      return UsageError(
          absl::StrCat("--timeout: bad duration '", inv.Get("timeout"), "': use e.g. 30s, 2m, 1h"));
    }
    client->timeout_given = true;
  }
  client->timeout = timeout;
  for (const char* f : {"node", "cert", "key", "ca"}) {
    if (inv.Get(f).empty()) {
      return UsageError(
          "set --node, --cert, --key and --ca (or KPX_NODE, KPX_CERT, KPX_KEY, KPX_CA)");
    }
  }
  absl::StatusOr<kpx::gateway::TlsIdentity> id =
      kpx::gateway::LoadTlsIdentity(inv.Get("cert"), inv.Get("key"));
  if (!id.ok()) return Fail(id.status());
  absl::StatusOr<std::string> ca = kpx::crypto::ReadFile(inv.Get("ca"));
  if (!ca.ok()) return Fail(ca.status());
  client->channel =
      kpx::gateway::MutualTlsChannel(inv.Get("node"), *id, *ca, inv.Get("server-name"));
  client->stub = kpx::v1::AuthorityService::NewStub(client->channel);
  return std::nullopt;
}

Failure RpcFailure(const std::string& what, const grpc::Status& s) {
  return Fail(kpx::gateway::FromGrpc(s), what);
}

// ---------------------------------------------------------------- cert

// Reads the kpx.v1.Certificate (protobuf JSON) in `path` for command `what`.
Result ReadCertificate(const std::string& path, const std::string& what,
                       kpx::v1::Certificate* cert) {
  absl::StatusOr<std::string> text = kpx::crypto::ReadFile(path);
  if (!text.ok()) return Fail(text.status(), what);
  auto st = google::protobuf::util::JsonStringToMessage(*text, cert);
  if (!st.ok()) {
    return Fail(absl::InvalidArgumentError(
                    absl::StrCat(path, ": not a kpx.v1.Certificate: ", st.message().as_string())),
                what);
  }
  return std::nullopt;
}

// Submits the certificate in `path`; with `replaces`, as the replacement
// of that certificate.
Result Submit(const Invocation& inv, const std::string& path, const std::string& replaces) {
  const std::string what = replaces.empty() ? "cert submit" : "cert replace";
  kpx::v1::SubmitCertificateRequest req;
  if (Result r = ReadCertificate(path, what, req.mutable_certificate())) return r;
  if (!replaces.empty()) {
    req.mutable_certificate()->set_type(kpx::v1::REPLACEMENT);
    req.mutable_certificate()->set_replaces(replaces);
  }
  req.set_request_id(RequestId(inv));
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::CertificateRecord resp;
  grpc::Status s = WithRetries(
      [&] { return client.stub->SubmitCertificate(client.Context().get(), req, &resp); });
  if (!s.ok()) return RpcFailure(what, s);
  return Print(inv, resp, [](const kpx::v1::CertificateRecord& r) {
    return absl::StrFormat("submitted %s to %s: %s\n", r.certificate().number(), r.partner(),
                           kpx::v1::CertificateState_Name(r.state()));
  });
}

Result CertSubmit(const Invocation& inv) { return Submit(inv, inv.args[0], ""); }
Result CertReplace(const Invocation& inv) { return Submit(inv, inv.args[1], inv.args[0]); }

Result CertGet(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::GetCertificateRequest req;
  req.set_number(inv.args[0]);
  kpx::v1::CertificateRecord resp;
  grpc::Status s = client.stub->GetCertificate(client.Context().get(), req, &resp);
  if (!s.ok()) return RpcFailure("cert get", s);
  return Print(inv, resp, RecordText);
}

// The filters of `cert list` from its flags.
Result ListFilters(const Invocation& inv, kpx::v1::ListCertificatesRequest* req) {
  req->set_discrepancies(inv.Has("discrepancies"));
  if (inv.Has("state")) {
    kpx::v1::CertificateState st;
    if (!kpx::v1::CertificateState_Parse(inv.Get("state"), &st)) {
      return UsageError(absl::StrCat("--state: unknown state '", inv.Get("state"),
                                     "' (ISSUED, DELIVERED, RECEIVED, CONFIRMED, REJECTED, "
                                     "CANCELLED, EXPIRED, REPLACED, VOIDED, DISPUTED, REFUSED)"));
    }
    req->set_state(st);
  }
  req->set_partner(inv.Get("partner"));
  if (inv.Has("issued-from")) {
    if (Result r = ParseTime("issued-from", inv.Get("issued-from"), req->mutable_issued_from())) {
      return r;
    }
  }
  if (inv.Has("issued-until")) {
    if (Result r =
            ParseTime("issued-until", inv.Get("issued-until"), req->mutable_issued_until())) {
      return r;
    }
  }
  if (inv.Has("overdue")) {
    uint32_t days = 0;
    if (inv.Get("overdue").empty()) {
      req->set_overdue(true);
    } else if (!absl::SimpleAtoi(inv.Get("overdue"), &days) || days == 0) {
      return UsageError("--overdue takes a positive number of days");
    } else {
      req->set_overdue_days(days);
    }
  }
  return std::nullopt;
}

std::string ListLine(const kpx::v1::CertificateRecord& r) {
  return absl::StrFormat("%-24s %-10s %s %s  issued %s\n", r.certificate().number(),
                         kpx::v1::CertificateState_Name(r.state()),
                         r.side() == kpx::v1::EXPORTING ? "to  " : "from", r.partner(),
                         Time(r.certificate().issued_at()));
}

Result CertList(const Invocation& inv) {
  kpx::v1::ListCertificatesRequest req;
  if (Result r = ListFilters(inv, &req)) return r;
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  // The node ends a page early rather than exceed 16 MiB; a node that
  // does not is asked for smaller pages until one fits kpxctl's limit.
  req.set_page_size(500);
  while (true) {
    kpx::v1::ListCertificatesResponse resp;
    grpc::Status s = client.stub->ListCertificates(client.Context().get(), req, &resp);
    if (s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && req.page_size() > 1) {
      req.set_page_size(req.page_size() / 2);  // a page too large to receive: ask for less
      continue;
    }
    if (!s.ok()) return RpcFailure("cert list", s);
    for (const kpx::v1::CertificateRecord& rec : resp.certificates()) {
      if (Result r = Print(inv, rec, ListLine)) return r;
    }
    if (resp.next_page_token().empty()) return std::nullopt;
    req.set_page_token(resp.next_page_token());
  }
}

// confirm, reject and cancel: one call returning the record.
using RecordCall =
    std::function<grpc::Status(Client&, grpc::ClientContext*, kpx::v1::CertificateRecord*)>;

Result Transition(const Invocation& inv, const std::string& what, const RecordCall& call) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::CertificateRecord resp;
  grpc::Status s = WithRetries([&] { return call(client, client.Context().get(), &resp); });
  if (!s.ok()) return RpcFailure(what, s);
  return Print(inv, resp, [](const kpx::v1::CertificateRecord& r) {
    return absl::StrFormat("%s: %s\n", r.certificate().number(),
                           kpx::v1::CertificateState_Name(r.state()));
  });
}

// "7102.31:1250.50:312625.00" -> a found line (carats and USD with up to
// two decimals).
Result ParseFoundLine(const std::string& text, kpx::v1::FoundLine* line) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  int64_t carats = 0, cents = 0;
  if (parts.size() != 3 || !ParseHundredths(parts[1], &carats) ||
      !ParseHundredths(parts[2], &cents)) {
    return UsageError(absl::StrCat("--found: bad line '", text,
                                   "': use HS:CARATS:USD, e.g. 7102.31:1250.50:312625.00"));
  }
  line->set_hs_code(parts[0]);
  line->set_carats_hundredths(carats);
  line->set_value_usd_cents(cents);
  return std::nullopt;
}

// What the officer found, from --as-declared or --parcels and --found.
Result ParseFindings(const Invocation& inv, kpx::v1::ImportFindings* f) {
  f->set_as_declared(inv.Has("as-declared"));
  if (inv.Has("found")) {
    for (absl::string_view text : absl::StrSplit(inv.Get("found"), ',', absl::SkipEmpty())) {
      if (Result r = ParseFoundLine(std::string(text), f->add_lines())) return r;
    }
  }
  if (inv.Has("parcels")) {
    int32_t n = 0;
    if (!absl::SimpleAtoi(inv.Get("parcels"), &n) || n < 0) {
      return UsageError("--parcels takes the number of parcels found");
    }
    f->set_number_of_parcels(n);
  }
  if (f->as_declared() == (inv.Has("found") || inv.Has("parcels"))) {
    return UsageError(
        "cert confirm needs --as-declared, or what was found: --parcels N --found "
        "HS:CARATS:USD[,...]");
  }
  f->set_seals_broken(inv.Has("seals-broken"));
  f->set_remarks(inv.Get("remarks"));
  f->set_office(inv.Get("office"));
  f->set_official(inv.Get("official"));
  return std::nullopt;
}

Result CertConfirm(const Invocation& inv) {
  kpx::v1::ConfirmReceiptRequest req;
  req.set_number(inv.args[0]);
  req.set_request_id(RequestId(inv));
  if (Result r = ParseFindings(inv, req.mutable_findings())) return r;
  if (inv.Has("received-at")) {
    if (Result r = ParseTime("received-at", inv.Get("received-at"), req.mutable_received_at())) {
      return r;
    }
  }
  return Transition(inv, "cert confirm", [&](Client& c, grpc::ClientContext* ctx, auto* resp) {
    return c.stub->ConfirmReceipt(ctx, req, resp);
  });
}

// --code: a reason code from the published list (message.proto
// ReasonCode); absent: OTHER, unless `required`.
Result ParseReasonCode(const Invocation& inv, bool required, kpx::v1::ReasonCode* code) {
  *code = kpx::v1::OTHER;
  if (!inv.Has("code")) {
    if (required) return UsageError("needs --code CODE (a reason code; see --help)");
    return std::nullopt;
  }
  if (!kpx::v1::ReasonCode_Parse(inv.Get("code"), code) ||
      *code == kpx::v1::REASON_CODE_UNSPECIFIED) {
    return UsageError(absl::StrCat("--code: unknown reason code '", inv.Get("code"),
                                   "' (CLERICAL_ERROR, SHIPMENT_CHANGED, SHIPMENT_WITHDRAWN, "
                                   "SEALS_OR_GOODS_TAMPERED, DOCUMENTS_MISMATCH, "
                                   "SUSPECTED_FRAUD, LEGAL_ORDER, OTHER)"));
  }
  return std::nullopt;
}

// Fills a verb request that gives a reason: the number, a request id,
// --reason (required) and --code (required when `code_required`).
template <typename Request>
Result ReasonRequest(const Invocation& inv, const std::string& what, bool code_required,
                     Request* req) {
  if (inv.Get("reason").empty()) return UsageError(absl::StrCat(what, " needs --reason TEXT"));
  req->set_number(inv.args[0]);
  req->set_request_id(RequestId(inv));
  req->set_reason(inv.Get("reason"));
  kpx::v1::ReasonCode code;
  if (Result r = ParseReasonCode(inv, code_required, &code)) return r;
  req->set_reason_code(code);
  return std::nullopt;
}

Result CertAmend(const Invocation& inv) {
  kpx::v1::AmendCertificateRequest req;
  if (Result r = ReasonRequest(inv, "cert amend", true, &req)) return r;
  if (Result r = ReadCertificate(inv.args[1], "cert amend", req.mutable_certificate())) return r;
  return Transition(inv, "cert amend", [&](Client& c, grpc::ClientContext* ctx, auto* resp) {
    return c.stub->AmendCertificate(ctx, req, resp);
  });
}

Result CertResend(const Invocation& inv) {
  kpx::v1::ResendCertificateRequest req;
  req.set_number(inv.args[0]);
  req.set_request_id(RequestId(inv));
  if (inv.args.size() > 1) {
    if (Result r = ReadCertificate(inv.args[1], "cert resend", req.mutable_certificate())) return r;
  }
  return Transition(inv, "cert resend", [&](Client& c, grpc::ClientContext* ctx, auto* resp) {
    return c.stub->ResendCertificate(ctx, req, resp);
  });
}

Result CertVoid(const Invocation& inv) {
  kpx::v1::VoidCertificateRequest req;
  if (Result r = ReasonRequest(inv, "cert void", true, &req)) return r;
  return Transition(inv, "cert void", [&](Client& c, grpc::ClientContext* ctx, auto* resp) {
    return c.stub->VoidCertificate(ctx, req, resp);
  });
}

std::string TraceText(const kpx::v1::TraceStep& step) {
  const std::string indent(2 * step.depth(), ' ');
  const std::string state =
      step.has_record() ? kpx::v1::CertificateState_Name(step.record().state()) : "not held here";
  return absl::StrFormat("%s%s%s%s (issued by %s)  %s\n", indent, step.relation(),
                         step.relation().empty() ? "" : " ", step.number(), step.issuer(), state);
}

Result CertTrace(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::TraceCertificateRequest req;
  req.set_number(inv.args[0]);
  kpx::v1::TraceCertificateResponse resp;
  grpc::Status s = client.stub->TraceCertificate(client.Context().get(), req, &resp);
  if (!s.ok()) return RpcFailure("cert trace", s);
  for (const kpx::v1::TraceStep& step : resp.steps()) {
    if (Result r = Print(inv, step, TraceText)) return r;
  }
  return std::nullopt;
}

Result CertReject(const Invocation& inv) {
  kpx::v1::RejectShipmentRequest req;
  if (Result r = ReasonRequest(inv, "cert reject", false, &req)) return r;
  return Transition(inv, "cert reject", [&](Client& c, grpc::ClientContext* ctx, auto* resp) {
    return c.stub->RejectShipment(ctx, req, resp);
  });
}

Result CertCancel(const Invocation& inv) {
  kpx::v1::CancelCertificateRequest req;
  if (Result r = ReasonRequest(inv, "cert cancel", false, &req)) return r;
  return Transition(inv, "cert cancel", [&](Client& c, grpc::ClientContext* ctx, auto* resp) {
    return c.stub->CancelCertificate(ctx, req, resp);
  });
}

// ---------------------------------------------------------------- ledger

Result LedgerVerify(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kLongTimeout, &client)) return r;
  kpx::v1::VerifyLedgerResponse resp;
  grpc::Status s = client.stub->VerifyLedger(client.Context().get(), {}, &resp);
  if (!s.ok()) return RpcFailure("ledger verify", s);
  if (!resp.ok()) {
    const std::string why =
        absl::StrCat("ledger BROKEN at entry ", resp.first_bad_sequence(), ": ", resp.problem(),
                     " (", resp.entries_checked(), " entries checked)");
    return Failure{absl::DataLossError(why), 1, why};
  }
  google::protobuf::Struct out;
  (*out.mutable_fields())["ok"].set_bool_value(true);
  Set(out, "entriesChecked", static_cast<double>(resp.entries_checked()));
  Set(out, "headSequence", static_cast<double>(resp.head_sequence()));
  Set(out, "headHash", kpx::crypto::HexEncode(resp.head_hash()));
  Set(out, "rootHash", kpx::crypto::HexEncode(resp.root_hash()));
  Set(out, "treeHeadSize", static_cast<double>(resp.tree_head_size()));
  return Print(inv, out, [&resp](const google::protobuf::Struct&) {
    return absl::StrFormat("ledger OK: %d entries, head %d %s\nMerkle root %s; %s\n",
                           resp.entries_checked(), resp.head_sequence(),
                           kpx::crypto::HexEncode(resp.head_hash()),
                           kpx::crypto::HexEncode(resp.root_hash()),
                           resp.tree_head_size() == 0
                               ? "no tree head signed yet"
                               : absl::StrCat("the tree head signed last (", resp.tree_head_size(),
                                              " entries) matches and verifies"));
  });
}

// Always JSON lines: an export is meant for archives and other tools.
Result LedgerExport(const Invocation& inv) {
  kpx::v1::ExportLedgerRequest req;
  uint64_t from = 1;
  if (Result r = ParseSequence(inv, &from)) return r;
  req.set_from_sequence(from);
  Client client;
  if (Result r = Connect(inv, kLongTimeout, &client)) return r;
  std::unique_ptr<grpc::ClientContext> ctx = client.Context();
  auto reader = client.stub->ExportLedger(ctx.get(), req);
  kpx::v1::LedgerEntry e;
  while (reader->Read(&e)) {
    absl::StatusOr<std::string> json = Json(e);
    if (!json.ok()) {
      ctx->TryCancel();
      return Fail(json.status(), absl::StrCat("ledger export at entry ", e.sequence()));
    }
    std::printf("%s\n", json->c_str());
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return RpcFailure("ledger export", s);
  return std::nullopt;
}

// Follows until interrupted (or --timeout passes: then exits 0); after a
// dropped connection resumes from the entry after the last one printed.
Result LedgerWatch(const Invocation& inv) {
  uint64_t next = 1;
  if (Result r = ParseSequence(inv, &next)) return r;
  Client client;
  if (Result r = Connect(inv, absl::InfiniteDuration(), &client)) return r;
  const absl::Time deadline = absl::Now() + client.timeout;
  while (true) {
    kpx::v1::WatchRequest req;
    req.set_from_sequence(next);
    grpc::ClientContext ctx;
    if (client.timeout_given) ctx.set_deadline(absl::ToChronoTime(deadline));
    auto reader = client.stub->Watch(&ctx, req);
    kpx::v1::LedgerEntry e;
    while (reader->Read(&e)) {
      if (Result r = Print(inv, e, EntryText)) return r;
      next = e.sequence() + 1;
    }
    grpc::Status s = reader->Finish();
    if (client.timeout_given && s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return std::nullopt;
    }
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return RpcFailure("ledger watch", s);
    std::fprintf(stderr, "kpxctl: ledger watch: connection lost (%s); resuming from %llu\n",
                 s.error_message().c_str(), static_cast<unsigned long long>(next));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// ---------------------------------------------------------------- node

Result NodeHealth(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  const std::string service = inv.args.empty() ? "" : inv.args[0];
  absl::StatusOr<kpx::gateway::ServingStatus> st =
      kpx::gateway::CheckHealth(client.channel, service);
  if (!st.ok()) return Fail(st.status(), "node health");
  static const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  const std::string name = kNames[static_cast<int>(*st)];
  google::protobuf::Struct out;
  Set(out, "service", service);
  Set(out, "status", name);
  if (Result r = Print(inv, out, [&](const google::protobuf::Struct&) {
        return absl::StrCat(kpx::node::Printable(service), service.empty() ? "" : ": ", name, "\n");
      })) {
    return r;
  }
  if (*st != kpx::gateway::ServingStatus::kServing) {
    return Failure{absl::UnavailableError(absl::StrCat("node is ", name)), 1,
                   "node health: not serving"};
  }
  return std::nullopt;
}

Result NodeReload(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::ReloadResponse resp;
  grpc::Status s = client.stub->Reload(client.Context().get(), {}, &resp);
  if (!s.ok()) return RpcFailure("node reload", s);
  return Print(inv, resp, [](const kpx::v1::ReloadResponse& r) {
    return absl::StrFormat("reloaded: trust list version %d, %d participants\n",
                           r.trust_list_version(), r.participants());
  });
}

Result NodeBackup(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kLongTimeout, &client)) return r;
  kpx::v1::BackupRequest req;
  req.set_directory(inv.args[0]);
  kpx::v1::BackupResponse resp;
  grpc::Status s = client.stub->Backup(client.Context().get(), req, &resp);
  if (!s.ok()) return RpcFailure("node backup", s);
  google::protobuf::Struct out;
  Set(out, "directory", resp.directory());
  Set(out, "headSequence", static_cast<double>(resp.head_sequence()));
  Set(out, "headHash", kpx::crypto::HexEncode(resp.head_hash()));
  return Print(inv, out, [&resp](const google::protobuf::Struct&) {
    return absl::StrFormat("backup in %s: head %d %s\n", kpx::node::Printable(resp.directory()),
                           resp.head_sequence(), kpx::crypto::HexEncode(resp.head_hash()));
  });
}

// ---------------------------------------------------------------- outbox

std::string OutboxText(const kpx::v1::OutboxSummary& m) {
  return absl::StrFormat(
      "%s  to %s  %-19s %s  attempts %d  queued %s  due %s%s%s\n", m.message_id(), m.recipient(),
      kpx::v1::MessageKind_Name(m.kind()), m.certificate_number(), m.attempts(),
      Time(m.queued_at()), m.held() ? "after " + m.waits_for() : Time(m.due_at()),
      m.stuck() ? "  STUCK" : "", m.last_error().empty() ? "" : "  last error: " + m.last_error());
}

Result OutboxList(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::ListOutboxRequest req;
  req.set_stuck_only(inv.Has("stuck"));
  req.set_page_size(500);
  do {
    kpx::v1::ListOutboxResponse resp;
    grpc::Status s = client.stub->ListOutbox(client.Context().get(), req, &resp);
    if (!s.ok()) return RpcFailure("outbox list", s);
    for (const kpx::v1::OutboxSummary& m : resp.messages()) {
      if (Result r = Print(inv, m, OutboxText)) return r;
    }
    req.set_page_token(resp.next_page_token());
  } while (!req.page_token().empty());
  return std::nullopt;
}

// ---------------------------------------------------------------- officers

std::string OfficerText(const kpx::v1::Officer& o) {
  std::vector<std::string> roles;
  for (int r : o.roles()) roles.push_back(kpx::v1::Role_Name(static_cast<kpx::v1::Role>(r)));
  return absl::StrFormat("%-20s %-28s office %-6s %-22s %s\n", kpx::node::Printable(o.name()),
                         kpx::node::Printable(o.full_name()), kpx::node::Printable(o.office()),
                         absl::StrJoin(roles, ","), o.disabled() ? "DISABLED" : "active");
}

std::string CredentialsText(const kpx::v1::OfficerCredentials& c) {
  return absl::StrCat(OfficerText(c.officer()), "password:      ", c.password(),
                      "\nsecond factor: ", c.totp_secret(),
                      "  (enter in an authenticator app, or scan ", c.totp_uri(),
                      ")\nShown once: hand both to the officer in person.\n");
}

Result OfficerAdd(const Invocation& inv) {
  for (const char* f : {"name", "office", "roles"}) {
    if (!inv.Has(f)) return UsageError(absl::StrCat("officer add needs --", f));
  }
  kpx::v1::AddOfficerRequest req;
  kpx::v1::Officer* o = req.mutable_officer();
  o->set_name(inv.args[0]);
  o->set_full_name(inv.Get("name"));
  o->set_office(inv.Get("office"));
  for (absl::string_view r : absl::StrSplit(inv.Get("roles"), ',')) {
    kpx::v1::Role role;
    if (!kpx::v1::Role_Parse(std::string(absl::StripAsciiWhitespace(r)), &role) ||
        role == kpx::v1::ROLE_UNSPECIFIED) {
      return UsageError("--roles: EXPORTER, IMPORTER, AUDITOR, OPERATOR, comma-separated");
    }
    o->add_roles(role);
  }
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::OfficerCredentials resp;
  grpc::Status s = client.stub->AddOfficer(client.Context().get(), req, &resp);
  if (!s.ok()) return RpcFailure("officer add", s);
  return Print(inv, resp, CredentialsText);
}

Result OfficerList(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::ListOfficersResponse resp;
  grpc::Status s = client.stub->ListOfficers(client.Context().get(), {}, &resp);
  if (!s.ok()) return RpcFailure("officer list", s);
  for (const kpx::v1::Officer& o : resp.officers()) {
    if (Result r = Print(inv, o, OfficerText)) return r;
  }
  return std::nullopt;
}

Result OfficerSetDisabled(const Invocation& inv, bool disabled) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::SetOfficerDisabledRequest req;
  req.set_name(inv.args[0]);
  req.set_disabled(disabled);
  kpx::v1::Officer resp;
  grpc::Status s = client.stub->SetOfficerDisabled(client.Context().get(), req, &resp);
  if (!s.ok()) return RpcFailure(disabled ? "officer disable" : "officer enable", s);
  return Print(inv, resp, OfficerText);
}

// Offline: what an authenticator app shows now for a second-factor secret.
Result OfficerCode(const Invocation& inv) {
  const std::string secret = kpx::crypto::TotpSecretFromBase32(inv.args[0]);
  if (secret.empty()) return UsageError("officer code: SECRET is not base32");
  google::protobuf::Struct o;
  Set(o, "code", kpx::crypto::TotpCode(secret, absl::Now()));
  return Print(inv, o, [](const google::protobuf::Struct& s) {
    return absl::StrCat(s.fields().at("code").string_value(), "\n");
  });
}

Result OfficerReset(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::ResetOfficerRequest req;
  req.set_name(inv.args[0]);
  kpx::v1::OfficerCredentials resp;
  grpc::Status s = client.stub->ResetOfficer(client.Context().get(), req, &resp);
  if (!s.ok()) return RpcFailure("officer reset", s);
  return Print(inv, resp, CredentialsText);
}

// ---------------------------------------------------------------- peers

std::string PeerText(const kpx::v1::PeerSummary& p) {
  std::string log =
      p.tree_size() == 0
          ? "no tree head yet"
          : absl::StrFormat("log %d entries, root %s, seen %s", p.tree_size(),
                            kpx::crypto::HexEncode(p.root_hash()).substr(0, 16), Time(p.seen_at()));
  return absl::StrFormat(
      "%-4s %-9s %s  %s\n", p.participant(), kpx::v1::ParticipantStatus_Name(p.status()), log,
      p.inconsistent()
          ? absl::StrCat("INCONSISTENT since ", Time(p.inconsistent_since()), ": ", p.problem())
          : "consistent");
}

Result PeerList(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::ListPeersResponse resp;
  grpc::Status s = client.stub->ListPeers(client.Context().get(), {}, &resp);
  if (!s.ok()) return RpcFailure("peer list", s);
  for (const kpx::v1::PeerSummary& p : resp.peers()) {
    if (Result r = Print(inv, p, PeerText)) return r;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- evidence

Result EvidenceExport(const Invocation& inv) {
  Client client;
  if (Result r = Connect(inv, kLongTimeout, &client)) return r;
  kpx::v1::ExportEvidenceRequest req;
  req.set_number(inv.args[0]);
  kpx::v1::EvidenceBundle bundle;
  grpc::Status s = client.stub->ExportEvidence(client.Context().get(), req, &bundle);
  if (!s.ok()) return RpcFailure("evidence export", s);
  const std::string& path = inv.args[1];
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bundle.SerializeAsString();
  out.close();
  if (!out) {
    return Fail(absl::UnavailableError(
        absl::StrCat("evidence export: cannot write ", kpx::node::Printable(path))));
  }
  google::protobuf::Struct o;
  Set(o, "file", path);
  Set(o, "bytes", static_cast<double>(bundle.ByteSizeLong()));
  return Print(inv, o, [&](const google::protobuf::Struct&) {
    return absl::StrFormat("evidence for %s written to %s (%d bytes)\n",
                           kpx::node::Printable(inv.args[0]), kpx::node::Printable(path),
                           bundle.ByteSizeLong());
  });
}

// Offline: no node, no network.
Result EvidenceVerify(const Invocation& inv) {
  absl::StatusOr<std::string> bytes = kpx::crypto::ReadFile(inv.args[0]);
  if (!bytes.ok()) return Fail(bytes.status());
  std::shared_ptr<const kpx::node::TrustList> given;
  if (inv.Has("trust-list")) {
    absl::StatusOr<std::shared_ptr<const kpx::node::TrustList>> t =
        kpx::node::TrustList::FromTextFile(inv.Get("trust-list"));
    if (!t.ok()) return Fail(t.status());
    given = *std::move(t);
  }
  kpx::node::EvidenceReport report;
  {
    // A damaged file makes protobuf log its parse errors; the report says it.
    google::protobuf::LogSilencer quiet;
    report = kpx::node::VerifyEvidence(*bytes, given == nullptr ? nullptr : &given->proto());
  }
  google::protobuf::Struct o;
  (*o.mutable_fields())["ok"].set_bool_value(report.ok);
  Set(o, "certificate", report.certificate_number);
  google::protobuf::ListValue* checks = (*o.mutable_fields())["checks"].mutable_list_value();
  for (const kpx::node::EvidenceCheck& c : report.checks) {
    google::protobuf::Struct* one = checks->add_values()->mutable_struct_value();
    (*one->mutable_fields())["ok"].set_bool_value(c.ok);
    Set(*one, "check", c.what);
  }
  if (Result r = Print(inv, o, [&](const google::protobuf::Struct&) {
        std::string text;
        for (const kpx::node::EvidenceCheck& c : report.checks) {
          absl::StrAppend(&text, c.ok ? "OK    " : "FAIL  ", c.what, "\n");
        }
        return text;
      })) {
    return r;
  }
  if (report.ok) return std::nullopt;
  return Failure{absl::DataLossError("evidence does not verify"), 1,
                 absl::StrCat("evidence does not verify (",
                              std::count_if(report.checks.begin(), report.checks.end(),
                                            [](const auto& c) { return !c.ok; }),
                              " checks failed)")};
}

Result PeerReset(const Invocation& inv) {
  if (!inv.Has("reason")) return UsageError("peer reset needs --reason TEXT");
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::ResetPeerLogRequest req;
  req.set_participant(inv.args[0]);
  req.set_reason(inv.Get("reason"));
  kpx::v1::PeerSummary resp;
  grpc::Status s = client.stub->ResetPeerLog(client.Context().get(), req, &resp);
  if (!s.ok()) return RpcFailure("peer reset", s);
  return Print(inv, resp, [](const kpx::v1::PeerSummary& p) {
    return absl::StrFormat("%s: inconsistent mark cleared; its next tree head is taken afresh\n",
                           p.participant());
  });
}

// ---------------------------------------------------------------- trust lists

using TrustListPtr = std::shared_ptr<const kpx::node::TrustList>;

// A trust-list file: a text-format TrustList or SignedTrustList, checked.
Result LoadList(const std::string& path, TrustListPtr* out) {
  absl::StatusOr<TrustListPtr> list = kpx::node::TrustList::FromTextFile(path);
  if (!list.ok()) return Fail(list.status());
  *out = *std::move(list);
  return std::nullopt;
}

Result TrustSign(const Invocation& inv) {
  if (!inv.Has("key") || !inv.Has("out")) return UsageError("trust sign needs --key and --out");
  TrustListPtr list;
  if (Result r = LoadList(inv.args[0], &list)) return r;
  absl::StatusOr<kpx::crypto::PrivateKey> key = kpx::crypto::PrivateKey::Load(inv.Get("key"));
  if (!key.ok()) return Fail(key.status());
  absl::StatusOr<kpx::v1::SignedTrustList> signed_list =
      kpx::node::SignTrustList(list->signed_list(), *key);
  if (!signed_list.ok()) return Fail(signed_list.status());
  std::string text;
  google::protobuf::TextFormat::PrintToString(*signed_list, &text);
  const std::string& path = inv.Get("out");
  std::ofstream out(path, std::ios::trunc);
  out << "# kpx.v1.SignedTrustList: trust-list version " << list->version() << " ("
      << list->digest() << ")\n"
      << text;
  out.close();
  if (!out) {
    return Fail(absl::UnavailableError(
        absl::StrCat("trust sign: cannot write ", kpx::node::Printable(path))));
  }
  google::protobuf::Struct o;
  Set(o, "file", path);
  Set(o, "version", static_cast<double>(list->version()));
  Set(o, "digest", list->digest());
  Set(o, "key_id", key->key_id());
  Set(o, "signatures", static_cast<double>(signed_list->signatures_size()));
  return Print(inv, o, [&](const google::protobuf::Struct&) {
    return absl::StrFormat("version %d (%s) signed with key %s; %s holds %d signature(s)\n",
                           list->version(), list->digest().substr(0, 16),
                           key->key_id().substr(0, 16), kpx::node::Printable(path),
                           signed_list->signatures_size());
  });
}

// The node's versions: the one in force in full, the others one line each.
std::string VersionsText(const kpx::v1::ListTrustListsResponse& resp) {
  std::string out;
  TrustListPtr in_force, before;
  for (int i = 0; i < resp.versions_size(); ++i) {
    const kpx::v1::TrustListRecord& r = resp.versions(i);
    absl::StrAppendFormat(&out, "version %d in force from %s (%s, ledger entry %d)\n", r.version(),
                          Time(r.installed_at()), kpx::node::Printable(r.source(), 64),
                          r.sequence());
  }
  if (!resp.versions().empty()) {
    absl::StatusOr<TrustListPtr> list =
        kpx::node::TrustList::FromSigned(resp.versions().rbegin()->signed_list());
    absl::StrAppend(&out, "\n",
                    list.ok() ? kpx::gateway::TrustListText(**list, nullptr)
                              : absl::StrCat("in force: ", list.status().message()));
  }
  if (!resp.last_refused().empty()) {
    absl::StrAppend(&out, "\nlast refused: ", kpx::node::Printable(resp.last_refused(), 512), "\n");
  }
  return out;
}

Result TrustShow(const Invocation& inv) {
  if (inv.args.empty()) {
    Client client;
    if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
    kpx::v1::ListTrustListsResponse resp;
    grpc::Status s = client.stub->ListTrustLists(client.Context().get(), {}, &resp);
    if (!s.ok()) return RpcFailure("trust show", s);
    return Print(inv, resp,
                 [&](const kpx::v1::ListTrustListsResponse&) { return VersionsText(resp); });
  }
  TrustListPtr list, previous;
  if (Result r = LoadList(inv.args[0], &list)) return r;
  if (inv.Has("previous")) {
    if (Result r = LoadList(inv.Get("previous"), &previous)) return r;
  }
  return Print(inv, list->proto(), [&](const kpx::v1::TrustList&) {
    return kpx::gateway::TrustListText(*list, previous.get());
  });
}

Result TrustDiff(const Invocation& inv) {
  TrustListPtr from, to;
  if (Result r = LoadList(inv.args[0], &from)) return r;
  if (Result r = LoadList(inv.args[1], &to)) return r;
  google::protobuf::Struct o;
  Set(o, "diff", kpx::gateway::TrustListDiff(*from, *to));
  return Print(inv, o, [&](const google::protobuf::Struct&) {
    return kpx::gateway::TrustListDiff(*from, *to);
  });
}

Result TrustPublish(const Invocation& inv) {
  TrustListPtr list;
  if (Result r = LoadList(inv.args[0], &list)) return r;
  Client client;
  if (Result r = Connect(inv, kDefaultTimeout, &client)) return r;
  kpx::v1::PublishTrustListRequest req;
  *req.mutable_trust_list() = list->signed_list();
  kpx::v1::TrustListRecord resp;
  grpc::Status s = client.stub->PublishTrustList(client.Context().get(), req, &resp);
  if (!s.ok()) return RpcFailure("trust publish", s);
  return Print(inv, resp, [](const kpx::v1::TrustListRecord& r) {
    return absl::StrFormat(
        "trust-list version %d in force here (ledger entry %d); the other nodes fetch it "
        "from their peers\n",
        r.version(), r.sequence());
  });
}

// ---------------------------------------------------------------- the table

using kpx::cli::Command;
using kpx::cli::Flag;

std::vector<Command> CertCommands() {
  const Flag reason{"reason", "TEXT", "why (recorded and sent to the other Participant)"};
  const Flag code{"code", "CODE",
                  "reason code (default OTHER): CLERICAL_ERROR, SHIPMENT_CHANGED, "
                  "SHIPMENT_WITHDRAWN, SEALS_OR_GOODS_TAMPERED, DOCUMENTS_MISMATCH, "
                  "SUSPECTED_FRAUD, LEGAL_ORDER, OTHER"};
  return {
      {{"cert", "submit"},
       "issue a certificate (exporter)",
       {{"FILE.json"}},
       {kRequestIdFlag},
       "FILE.json holds a kpx.v1.Certificate as protobuf JSON (deploy/examples/certificate.json).",
       CertSubmit},
      {{"cert", "get"},
       "a certificate's state and journey (any role)",
       {{"NUMBER"}},
       {},
       "",
       CertGet},
      {{"cert", "list"},
       "certificates, filtered (any role)",
       {},
       {{"state", "S", "only in state S (ISSUED, DELIVERED, RECEIVED, CONFIRMED, ...)"},
        {"partner", "P", "only with Participant P"},
        {"issued-from", "DATE", "issued at or after DATE (2026-11-27 or RFC 3339)"},
        {"issued-until", "DATE", "issued before DATE"},
        {"discrepancies", "", "only confirmed ones whose confirmation differs from them"},
        {"overdue", "DAYS", "waiting for the importer > DAYS (default: the node's overdue_days)",
         true}},
       "",
       CertList},
      {{"cert", "confirm"},
       "confirm the shipment arrived (importer)",
       {{"NUMBER"}},
       {{"received-at", "TIME", "when it arrived (default now); must be before its expiry"},
        {"as-declared", "", "everything was found as the certificate declares"},
        {"parcels", "N", "number of parcels found"},
        {"found", "LINES", "found per HS code: HS:CARATS:USD[,...], e.g. 7102.31:1250.50:312625"},
        {"seals-broken", "", "seals or security bags were not intact"},
        {"remarks", "TEXT", "the officer's remarks"},
        {"office", "CODE", "confirming office (default: the first on the trust list)"},
        {"official", "NAME", "confirming official (default: this client's name)"},
        kRequestIdFlag},
       "",
       CertConfirm},
      {{"cert", "reject"},
       "refuse the shipment (importer)",
       {{"NUMBER"}},
       {reason, code, kRequestIdFlag},
       "",
       CertReject},
      {{"cert", "cancel"},
       "cancel a certificate before the importer decides (exporter)",
       {{"NUMBER"}},
       {reason, code, kRequestIdFlag},
       "",
       CertCancel},
      {{"cert", "replace"},
       "issue a certificate that replaces a delivered one (exporter)",
       {{"OLD_NUMBER"}, {"FILE.json"}},
       {kRequestIdFlag},
       "FILE.json holds the new certificate; it is sent as type REPLACEMENT naming OLD_NUMBER,\n"
       "which becomes REPLACED on both sides.",
       CertReplace},
      {{"cert", "amend"},
       "correct a certificate before the importer decides (exporter)",
       {{"NUMBER"}, {"FILE.json"}},
       {reason,
        {"code", "CODE", "reason code (required): CLERICAL_ERROR, SHIPMENT_CHANGED, ..."},
        kRequestIdFlag},
       "FILE.json holds the whole corrected certificate (same number, exporter and importer);\n"
       "both sides keep the earlier version and what changed.",
       CertAmend},
      {{"cert", "resend"},
       "sign and send again a certificate the importer's node REFUSED (exporter)",
       {{"NUMBER"}, {"FILE.json", true}},
       {kRequestIdFlag},
       "'cert get NUMBER' shows why it was refused. FILE.json, if given, holds the corrected\n"
       "certificate (same number and importer); without it the certificate goes as recorded\n"
       "(after the importer fixed its side, say). Or cancel it, or issue a new one.",
       CertResend},
      {{"cert", "void"},
       "void a confirmed certificate (exporter)",
       {{"NUMBER"}},
       {reason,
        {"code", "CODE", "reason code (required): CLERICAL_ERROR, SUSPECTED_FRAUD, ..."},
        kRequestIdFlag},
       "",
       CertVoid},
      {{"cert", "trace"},
       "chain of custody: replacements and the import certificates goods arrived under",
       {{"NUMBER"}},
       {},
       "",
       CertTrace},
  };
}

std::vector<Command> OtherCommands() {
  const Flag from_seq{"from-seq", "N", "start at ledger sequence N (default 1)"};
  return {
      {{"ledger", "verify"},
       "re-check the node's hash chain, Merkle tree and last tree head (auditor)",
       {},
       {},
       "",
       LedgerVerify},
      {{"ledger", "export"},
       "the ledger as JSON lines, whatever -o says (auditor)",
       {},
       {from_seq},
       "",
       LedgerExport},
      {{"ledger", "watch"},
       "follow ledger entries as they are appended (any role)",
       {},
       {from_seq},
       "Resumes after a lost connection. With --timeout, stops after that long and exits 0.",
       LedgerWatch},
      {{"node", "health"},
       "grpc.health.v1 check (any client certificate); exits 0 only when SERVING",
       {{"SERVICE", true}},
       {},
       "SERVICE: empty (the node), kpx.v1.AuthorityService or kpx.v1.PeerService.",
       NodeHealth},
      {{"node", "reload"},
       "re-read trust list, signing keys and TLS files (operator)",
       {},
       {},
       "",
       NodeReload},
      {{"node", "backup"},
       "online ledger backup into DIR on the node's machine (operator)",
       {{"DIR"}},
       {},
       "DIR must be absolute and must not exist yet.",
       NodeBackup},
      {{"outbox", "list"},
       "messages waiting for delivery (operator, auditor)",
       {},
       {{"stuck", "", "only those queued longer than the node's delivery.stuck_after_hours"}},
       "",
       OutboxList},
      {{"evidence", "export"},
       "everything needed to check a certificate's journey offline, into FILE (any role)",
       {{"NUMBER"}, {"FILE"}},
       {},
       "FILE gets a kpx.v1.EvidenceBundle (docs/protocol.md \"Evidence bundles\").",
       EvidenceExport},
      {{"evidence", "verify"},
       "check an evidence bundle with no node and no network; exits 0 only if every check passes",
       {{"FILE"}},
       {{"trust-list", "FILE", "check with this trust list (text format) instead of the bundle's"}},
       "Prints each check; a changed byte anywhere fails the check it belongs to.",
       EvidenceVerify},
      {{"peer", "list"},
       "other Participants: trust-list status, their log's newest tree head, forks "
       "(operator, auditor)",
       {},
       {},
       "INCONSISTENT: the Participant showed a log that does not extend what it showed before; "
       "its receipts are refused (docs/operations.md \"A peer's log is inconsistent\").",
       PeerList},
      {{"peer", "reset"},
       "clear a peer's INCONSISTENT mark once the operators have settled the fork (operator)",
       {{"CODE"}},
       {{"reason", "TEXT", "why its log is accepted now (recorded with the evidence)"}},
       "The two conflicting tree heads stay in the ledger (PEER_LOG_RESET entry); receipts from "
       "the peer are accepted again from its next tree head on.",
       PeerReset},
      {{"trust", "sign"},
       "add a publisher's signature to a trust-list version, offline",
       {{"FILE"}},
       {{"key", "KEY", "the publisher's private key: a PEM file or a pkcs11: URI"},
        {"out", "FILE", "where to write the signed version (text kpx.v1.SignedTrustList)"}},
       "FILE is a text kpx.v1.TrustList (the new version) or a signed one (to add a signature).\n"
       "Version N+1 comes into force once the threshold of version N's publishers signed it.",
       TrustSign},
      {{"trust", "show"},
       "a trust-list version: FILE offline, or the node's versions (any role)",
       {{"FILE", true}},
       {{"previous", "FILE", "the version before: check FILE's signatures against its publishers"}},
       "",
       TrustShow},
      {{"trust", "diff"},
       "what changes from one trust-list version to another, offline",
       {{"OLD"}, {"NEW"}},
       {},
       "",
       TrustDiff},
      {{"officer", "add"},
       "an officer's console account; prints its password and second factor once (operator)",
       {{"LOGIN"}},
       {{"name", "FULL NAME", "as printed on certificates, e.g. \"K. Mokgosi\""},
        {"office", "CODE", "the officer's office, one of this Participant's on the trust list"},
        {"roles", "ROLES", "EXPORTER, IMPORTER, AUDITOR, OPERATOR, comma-separated"}},
       "LOGIN: 3 to 32 of a-z 0-9 . _ - (e.g. k.mokgosi). The officer signs in with LOGIN, the "
       "password and a code from an authenticator app set up with the second factor.",
       OfficerAdd},
      {{"officer", "list"}, "officers' accounts (operator, auditor)", {}, {}, "", OfficerList},
      {{"officer", "disable"},
       "stop an officer signing in; ends their sessions (operator)",
       {{"LOGIN"}},
       {},
       "",
       [](const Invocation& inv) { return OfficerSetDisabled(inv, true); }},
      {{"officer", "enable"},
       "let a disabled officer sign in again (operator)",
       {{"LOGIN"}},
       {},
       "",
       [](const Invocation& inv) { return OfficerSetDisabled(inv, false); }},
      {{"officer", "code"},
       "the code an authenticator app shows now for a second-factor SECRET, offline",
       {{"SECRET"}},
       {},
       "For a demo, or a first sign-in before the app is set up; keep the secret as safe as the "
       "password.",
       OfficerCode},
      {{"officer", "reset"},
       "a new password and second factor for an officer, printed once; ends their sessions and "
       "lifts a lock (operator)",
       {{"LOGIN"}},
       {},
       "",
       OfficerReset},
      {{"trust", "publish"},
       "put a signed next trust-list version in force here; peers fetch it (operator)",
       {{"FILE"}},
       {},
       "Refused unless FILE is version N+1 signed by the threshold of version N's publishers.",
       TrustPublish},
  };
}

kpx::cli::Program MakeProgram() {
  kpx::cli::Program p;
  p.name = "kpxctl";
  p.version = KPX_VERSION;
  p.summary = "the command-line client of a kpx node's authority listener";
  p.output_option = true;
  p.globals = {
      {"node", "HOST:PORT", "the node's authority listener", false, "KPX_NODE"},
      {"cert", "FILE", "this client's certificate (PEM)", false, "KPX_CERT"},
      {"key", "FILE", "this client's private key (PEM)", false, "KPX_KEY"},
      {"ca", "FILE", "CA the node's certificate chains to", false, "KPX_CA"},
      {"server-name", "NAME", "name to check on the node's certificate", false, "KPX_SERVER_NAME"},
      {"timeout", "DURATION",
       "deadline per call, e.g. 30s, 2m (default 30s; 30m for ledger "
       "verify/export and node backup; none for ledger watch)"},
  };
  p.commands = CertCommands();
  for (Command& c : OtherCommands()) p.commands.push_back(std::move(c));
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  // TLS 1.3 only, before any TLS exists (gateway/tls_policy.h).
  if (absl::Status s = kpx::gateway::EnforceTls13Only(); !s.ok()) {
    std::fprintf(stderr, "kpxctl: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return kpx::cli::Main(MakeProgram(), argc, argv);
}
