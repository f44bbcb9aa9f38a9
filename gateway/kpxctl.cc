// kpxctl: the command-line client of a node's AuthorityService.
//
//   kpxctl [connection flags] COMMAND [args]
//
// Connection (flag, or environment variable):
//   --node HOST:PORT    KPX_NODE          the node's authority listener
//   --cert FILE         KPX_CERT          this client's certificate (PEM)
//   --key FILE          KPX_KEY           this client's private key (PEM)
//   --ca FILE           KPX_CA            CA the node's certificate chains to
//   --server-name NAME  KPX_SERVER_NAME   name to check on the node's certificate
//
// Every failure prints one line on stderr and exits non-zero.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "gateway/health_client.h"
#include "gateway/tls.h"
#include "google/protobuf/util/json_util.h"
#include "kpx/v1/service.grpc.pb.h"
#include "node/util.h"
#include "storage/ledger.h"

namespace {

using kpx::node::FormatRfc3339;
using kpx::node::FromTimestamp;

constexpr char kUsage[] =
    "usage: kpxctl [--node HOST:PORT --cert FILE --key FILE --ca FILE --server-name NAME] "
    "COMMAND\n"
    "commands:\n"
    "  submit FILE.json                 issue a certificate (kpx.v1.Certificate as JSON)\n"
    "  get NUMBER [--json]              a certificate's state and journey\n"
    "  list [--state S] [--partner P] [--from DATE] [--until DATE] [--overdue [DAYS]] [--json]\n"
    "  confirm NUMBER [--received-at TIME]\n"
    "  reject NUMBER --reason TEXT\n"
    "  cancel NUMBER --reason TEXT\n"
    "  watch [--from SEQ] [--json]      follow ledger events; resumes after reconnecting\n"
    "  ledger verify                    walk the node's hash chain\n"
    "  ledger export [--from SEQ]       ledger entries as JSON lines\n"
    "  health [SERVICE]                 grpc.health.v1 check of the node (any role)\n"
    "  reload                           node re-reads trust list, signing keys, TLS files\n"
    "  backup DIR                       online ledger backup into DIR on the node's machine\n"
    "  restore BACKUP_DIR DATA_DIR      (local, node stopped) restore a backup into an\n"
    "                                   empty data folder and verify it\n";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool Has(const std::string& f) const { return flags.count(f) > 0; }
  std::string Get(const std::string& f, const char* env = nullptr) const {
    if (auto it = flags.find(f); it != flags.end()) return it->second;
    if (env != nullptr) {
      if (const char* v = std::getenv(env)) return v;
    }
    return "";
  }
};

// What a command reports on failure: main prints it as one line.
struct Failure {
  std::string message;
  int code = 1;
};

const std::map<std::string, bool> kFlagTakesValue = {
    {"node", true},        {"cert", true},    {"key", true},     {"ca", true},
    {"server-name", true}, {"state", true},   {"partner", true}, {"from", true},
    {"until", true},       {"overdue", true}, {"reason", true},  {"received-at", true},
    {"json", false},       {"help", false}};

std::optional<Failure> Parse(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      args->positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (name == "overdue") {
      // The number of days is optional: without it the node's own setting.
      if (i + 1 < argc && !std::string(argv[i + 1]).empty() &&
          absl::ascii_isdigit(argv[i + 1][0])) {
        value = argv[++i];
      }
    } else if (auto it = kFlagTakesValue.find(name); it != kFlagTakesValue.end() && it->second) {
      if (i + 1 >= argc) return Failure{absl::StrCat("--", name, " needs a value"), 2};
      value = argv[++i];
    }
    if (!kFlagTakesValue.count(name)) return Failure{absl::StrCat("unknown flag --", name), 2};
    args->flags[name] = value;
  }
  return std::nullopt;
}

std::string Json(const google::protobuf::Message& m, bool pretty = false) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = pretty;
  opts.preserve_proto_field_names = false;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string Decimal(int64_t hundredths) {
  return absl::StrFormat("%d.%02d", hundredths / 100, hundredths % 100);
}

Failure RpcFailure(const char* what, const grpc::Status& s) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  int c = s.error_code();
  const char* name = (c >= 0 && c <= 16) ? kNames[c] : "ERROR";
  return Failure{absl::StrCat(what, ": ", name, ": ", s.error_message())};
}

class Client {
 public:
  static std::variant<Client, Failure> Connect(const Args& args) {
    const std::string node = args.Get("node", "KPX_NODE");
    const std::string cert = args.Get("cert", "KPX_CERT");
    const std::string key = args.Get("key", "KPX_KEY");
    const std::string ca = args.Get("ca", "KPX_CA");
    if (node.empty() || cert.empty() || key.empty() || ca.empty()) {
      return Failure{"set --node, --cert, --key and --ca (or KPX_NODE, KPX_CERT, KPX_KEY, KPX_CA)",
                     2};
    }
    absl::StatusOr<kpx::gateway::TlsIdentity> id = kpx::gateway::LoadTlsIdentity(cert, key);
    if (!id.ok()) return Failure{std::string(id.status().message())};
    absl::StatusOr<std::string> ca_pem = kpx::crypto::ReadFile(ca);
    if (!ca_pem.ok()) return Failure{std::string(ca_pem.status().message())};
    return Client(kpx::gateway::MutualTlsChannel(node, *id, *ca_pem,
                                                 args.Get("server-name", "KPX_SERVER_NAME")));
  }

  kpx::v1::AuthorityService::Stub* operator->() { return stub_.get(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  explicit Client(std::shared_ptr<grpc::Channel> channel)
      : channel_(channel), stub_(kpx::v1::AuthorityService::NewStub(channel)) {}
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<kpx::v1::AuthorityService::Stub> stub_;
};

// A context with a deadline, for unary calls.
std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Seconds(30)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

void PrintRecord(const kpx::v1::CertificateRecord& r) {
  const kpx::v1::Certificate& c = r.certificate();
  std::printf("certificate %s  %s -> %s  state %s\n", c.number().c_str(),
              c.exporting_participant().c_str(), c.importing_participant().c_str(),
              kpx::v1::CertificateState_Name(r.state()).c_str());
  std::printf("  %d parcel(s), %s ct, USD %s, issued %s, expires %s\n", c.number_of_parcels(),
              Decimal(c.total_carats_hundredths()).c_str(),
              Decimal(c.total_value_usd_cents()).c_str(),
              FormatRfc3339(FromTimestamp(c.issued_at())).c_str(),
              FormatRfc3339(FromTimestamp(c.expires_at())).c_str());
  std::printf("  journey at %s:\n", r.side() == kpx::v1::EXPORTING
                                        ? c.exporting_participant().c_str()
                                        : c.importing_participant().c_str());
  for (const kpx::v1::StateChange& h : r.history()) {
    std::printf("    %-10s %s  seq %llu%s%s\n", kpx::v1::CertificateState_Name(h.state()).c_str(),
                FormatRfc3339(FromTimestamp(h.at())).c_str(),
                static_cast<unsigned long long>(h.sequence()), h.detail().empty() ? "" : "  ",
                h.detail().c_str());
  }
}

void PrintEntry(const kpx::v1::LedgerEntry& e, bool json) {
  if (json) {
    std::printf("%s\n", Json(e).c_str());
  } else {
    std::printf("%llu  %s  %-16s %s  %s  %s\n", static_cast<unsigned long long>(e.sequence()),
                FormatRfc3339(FromTimestamp(e.recorded_at())).c_str(),
                kpx::v1::EntryKind_Name(e.kind()).c_str(), e.certificate_number().c_str(),
                e.partner().c_str(),
                e.state() ? kpx::v1::CertificateState_Name(e.state()).c_str() : "-");
  }
  std::fflush(stdout);
}

std::optional<Failure> ParseTime(const std::string& text, google::protobuf::Timestamp* ts) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err) &&
      !absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err)) {
    return Failure{absl::StrCat("bad time '", text, "': use 2026-11-27 or RFC 3339"), 2};
  }
  *ts = kpx::node::ToTimestamp(t);
  return std::nullopt;
}

std::optional<Failure> Run(const Args& args) {
  const std::vector<std::string>& p = args.positional;
  if (p.empty() || args.Has("help")) return Failure{kUsage, 2};
  const std::string& cmd = p[0];
  auto need = [&](size_t n) -> std::optional<Failure> {
    if (p.size() != n) {
      return Failure{absl::StrCat("'", cmd, "': wrong number of arguments (see kpxctl --help)"), 2};
    }
    return std::nullopt;
  };
  const bool json = args.Has("json");

  if (cmd == "restore") {
    if (auto f = need(3)) return f;
    absl::StatusOr<kpx::storage::VerifyResult> r =
        kpx::storage::Ledger::Restore(p[1], (std::filesystem::path(p[2]) / "ledger").string());
    if (!r.ok()) return Failure{absl::StrCat("restore: ", r.status().message())};
    std::printf("restored into %s: ledger OK, %llu entries, head %llu %s\n", p[2].c_str(),
                static_cast<unsigned long long>(r->entries_checked),
                static_cast<unsigned long long>(r->head.sequence),
                kpx::crypto::HexEncode(r->head.hash).c_str());
    return std::nullopt;
  }

  std::variant<Client, Failure> connected = Client::Connect(args);
  if (auto* f = std::get_if<Failure>(&connected)) return *f;
  Client& client = std::get<Client>(connected);

  if (cmd == "submit") {
    if (auto f = need(2)) return f;
    absl::StatusOr<std::string> text = kpx::crypto::ReadFile(p[1]);
    if (!text.ok()) return Failure{std::string(text.status().message())};
    kpx::v1::SubmitCertificateRequest req;
    auto st = google::protobuf::util::JsonStringToMessage(*text, req.mutable_certificate());
    if (!st.ok()) return Failure{absl::StrCat(p[1], ": not a kpx.v1.Certificate: ", st.ToString())};
    kpx::v1::CertificateRecord resp;
    grpc::Status s = client->SubmitCertificate(Ctx().get(), req, &resp);
    if (!s.ok()) return RpcFailure("submit", s);
    if (json) {
      std::printf("%s\n", Json(resp, true).c_str());
    } else {
      std::printf("submitted %s to %s: %s\n", resp.certificate().number().c_str(),
                  resp.partner().c_str(), kpx::v1::CertificateState_Name(resp.state()).c_str());
    }
    return std::nullopt;
  }
  if (cmd == "get") {
    if (auto f = need(2)) return f;
    kpx::v1::GetCertificateRequest req;
    req.set_number(p[1]);
    kpx::v1::CertificateRecord resp;
    grpc::Status s = client->GetCertificate(Ctx().get(), req, &resp);
    if (!s.ok()) return RpcFailure("get", s);
    if (json) {
      std::printf("%s\n", Json(resp, true).c_str());
    } else {
      PrintRecord(resp);
    }
    return std::nullopt;
  }
  if (cmd == "list") {
    if (auto f = need(1)) return f;
    kpx::v1::ListCertificatesRequest req;
    if (args.Has("state")) {
      kpx::v1::CertificateState st;
      if (!kpx::v1::CertificateState_Parse(args.Get("state"), &st)) {
        return Failure{absl::StrCat("unknown state '", args.Get("state"), "'"), 2};
      }
      req.set_state(st);
    }
    req.set_partner(args.Get("partner"));
    if (args.Has("from")) {
      if (auto f = ParseTime(args.Get("from"), req.mutable_issued_from())) return f;
    }
    if (args.Has("until")) {
      if (auto f = ParseTime(args.Get("until"), req.mutable_issued_until())) return f;
    }
    if (args.Has("overdue")) {
      uint32_t days = 0;
      if (args.Get("overdue").empty()) {
        req.set_overdue(true);
      } else if (!absl::SimpleAtoi(args.Get("overdue"), &days) || days == 0) {
        return Failure{"--overdue takes a positive number of days", 2};
      } else {
        req.set_overdue_days(days);
      }
    }
    req.set_page_size(500);
    do {
      kpx::v1::ListCertificatesResponse resp;
      grpc::Status s = client->ListCertificates(Ctx().get(), req, &resp);
      if (!s.ok()) return RpcFailure("list", s);
      for (const kpx::v1::CertificateRecord& r : resp.certificates()) {
        if (json) {
          std::printf("%s\n", Json(r).c_str());
        } else {
          std::printf("%-24s %-10s %s %s  issued %s\n", r.certificate().number().c_str(),
                      kpx::v1::CertificateState_Name(r.state()).c_str(),
                      r.side() == kpx::v1::EXPORTING ? "to  " : "from", r.partner().c_str(),
                      FormatRfc3339(FromTimestamp(r.certificate().issued_at())).c_str());
        }
      }
      req.set_page_token(resp.next_page_token());
    } while (!req.page_token().empty());
    return std::nullopt;
  }
  if (cmd == "confirm" || cmd == "reject" || cmd == "cancel") {
    if (auto f = need(2)) return f;
    kpx::v1::CertificateRecord resp;
    grpc::Status s;
    if (cmd == "confirm") {
      kpx::v1::ConfirmReceiptRequest req;
      req.set_number(p[1]);
      if (args.Has("received-at")) {
        if (auto f = ParseTime(args.Get("received-at"), req.mutable_received_at())) return f;
      }
      s = client->ConfirmReceipt(Ctx().get(), req, &resp);
    } else {
      if (args.Get("reason").empty()) return Failure{absl::StrCat(cmd, " needs --reason"), 2};
      if (cmd == "reject") {
        kpx::v1::RejectShipmentRequest req;
        req.set_number(p[1]);
        req.set_reason(args.Get("reason"));
        s = client->RejectShipment(Ctx().get(), req, &resp);
      } else {
        kpx::v1::CancelCertificateRequest req;
        req.set_number(p[1]);
        req.set_reason(args.Get("reason"));
        s = client->CancelCertificate(Ctx().get(), req, &resp);
      }
    }
    if (!s.ok()) return RpcFailure(cmd.c_str(), s);
    std::printf("%s: %s\n", resp.certificate().number().c_str(),
                kpx::v1::CertificateState_Name(resp.state()).c_str());
    return std::nullopt;
  }
  if (cmd == "watch") {
    if (auto f = need(1)) return f;
    uint64_t next = 1;
    if (args.Has("from") && !absl::SimpleAtoi(args.Get("from"), &next)) {
      return Failure{"--from needs a sequence number", 2};
    }
    // Follow until interrupted; after a dropped connection, resume from the
    // entry after the last one printed.
    while (true) {
      kpx::v1::WatchRequest req;
      req.set_from_sequence(next);
      grpc::ClientContext ctx;
      std::unique_ptr<grpc::ClientReader<kpx::v1::LedgerEntry>> reader = client->Watch(&ctx, req);
      kpx::v1::LedgerEntry e;
      while (reader->Read(&e)) {
        PrintEntry(e, json);
        next = e.sequence() + 1;
      }
      grpc::Status s = reader->Finish();
      if (s.error_code() != grpc::StatusCode::UNAVAILABLE) return RpcFailure("watch", s);
      std::fprintf(stderr, "watch: connection lost (%s); resuming from %llu\n",
                   s.error_message().c_str(), static_cast<unsigned long long>(next));
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }
  if (cmd == "ledger" && p.size() == 2 && p[1] == "verify") {
    kpx::v1::VerifyLedgerResponse resp;
    grpc::Status s = client->VerifyLedger(Ctx(absl::Minutes(30)).get(), {}, &resp);
    if (!s.ok()) return RpcFailure("ledger verify", s);
    if (!resp.ok()) {
      return Failure{absl::StrCat("ledger BROKEN at entry ", resp.first_bad_sequence(), ": ",
                                  resp.problem(), " (", resp.entries_checked(),
                                  " entries checked)")};
    }
    std::printf("ledger OK: %llu entries, head %llu %s\n",
                static_cast<unsigned long long>(resp.entries_checked()),
                static_cast<unsigned long long>(resp.head_sequence()),
                kpx::crypto::HexEncode(resp.head_hash()).c_str());
    return std::nullopt;
  }
  if (cmd == "ledger" && p.size() == 2 && p[1] == "export") {
    kpx::v1::ExportLedgerRequest req;
    uint64_t from = 1;
    if (args.Has("from") && !absl::SimpleAtoi(args.Get("from"), &from)) {
      return Failure{"--from needs a sequence number", 2};
    }
    req.set_from_sequence(from);
    grpc::ClientContext ctx;
    auto reader = client->ExportLedger(&ctx, req);
    kpx::v1::LedgerEntry e;
    while (reader->Read(&e)) PrintEntry(e, /*json=*/true);
    grpc::Status s = reader->Finish();
    if (!s.ok()) return RpcFailure("ledger export", s);
    return std::nullopt;
  }
  if (cmd == "health") {
    if (p.size() > 2) return Failure{"'health': wrong number of arguments (see kpxctl --help)", 2};
    const std::string service = p.size() == 2 ? p[1] : "";
    absl::StatusOr<kpx::gateway::ServingStatus> st =
        kpx::gateway::CheckHealth(client.channel(), service);
    if (!st.ok()) return Failure{absl::StrCat("health: ", st.status().ToString())};
    static const char* kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
    std::printf("%s%s%s\n", service.c_str(), service.empty() ? "" : ": ",
                kNames[static_cast<int>(*st)]);
    if (*st != kpx::gateway::ServingStatus::kServing) return Failure{"health: not serving", 1};
    return std::nullopt;
  }
  if (cmd == "reload") {
    if (auto f = need(1)) return f;
    kpx::v1::ReloadResponse resp;
    grpc::Status s = client->Reload(Ctx().get(), {}, &resp);
    if (!s.ok()) return RpcFailure("reload", s);
    std::printf("reloaded: trust list version %llu, %d participants\n",
                static_cast<unsigned long long>(resp.trust_list_version()), resp.participants());
    return std::nullopt;
  }
  if (cmd == "backup") {
    if (auto f = need(2)) return f;
    kpx::v1::BackupRequest req;
    req.set_directory(p[1]);
    kpx::v1::BackupResponse resp;
    grpc::Status s = client->Backup(Ctx(absl::Minutes(30)).get(), req, &resp);
    if (!s.ok()) return RpcFailure("backup", s);
    std::printf("backup in %s: head %llu %s\n", resp.directory().c_str(),
                static_cast<unsigned long long>(resp.head_sequence()),
                kpx::crypto::HexEncode(resp.head_hash()).c_str());
    return std::nullopt;
  }
  return Failure{absl::StrCat("unknown command '", absl::StrJoin(p, " "), "' (see kpxctl --help)"),
                 2};
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::optional<Failure> f = Parse(argc, argv, &args);
  if (!f) f = Run(args);
  if (!f) return 0;
  std::string msg = f->message;
  if (!msg.empty() && msg.back() == '\n') msg.pop_back();
  std::fprintf(stderr, "kpxctl: %s\n", msg.c_str());
  return f->code;
}
