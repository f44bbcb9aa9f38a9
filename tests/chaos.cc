#include "chaos.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "fault_proxy.h"
#include "federation.h"
#include "google/protobuf/util/message_differencer.h"
#include "kpx/v1/message.pb.h"
#include "kpx/v1/service.grpc.pb.h"
#include "test_util.h"

namespace kpx::testing {

v1::Certificate ChaosCertificate(const std::string& number, const std::string& exporter,
                                 const std::string& importer) {
  return ValidCertificate(number, exporter, importer, absl::Now());
}

namespace {

using Stub = v1::AuthorityService::Stub;
using Link = std::pair<std::string, std::string>;  // (from, to)

constexpr absl::Duration kCallDeadline = absl::Seconds(5);
constexpr absl::Duration kRetryPause = absl::Milliseconds(100);
constexpr int kAttempts = 3;
constexpr int kVerbLag = 8;  // steps between a submit and a verb on it
constexpr size_t kMaxListed = 20;
const char* const kRoles[] = {"exporter", "importer", "auditor"};

std::string StateName(v1::CertificateState s) { return v1::CertificateState_Name(s); }

// DELIVERED (exporter) and RECEIVED (importer) are one point of the journey.
std::string Agreed(v1::CertificateState s) {
  return s == v1::DELIVERED || s == v1::RECEIVED ? "DELIVERED/RECEIVED" : StateName(s);
}

bool Transient(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED;
}

std::string History(const v1::CertificateRecord& r) {
  std::vector<std::string> parts;
  for (const v1::StateChange& h : r.history()) {
    parts.push_back(absl::StrCat(StateName(h.state()), "@", h.sequence(),
                                 h.detail().empty() ? "" : " (" + h.detail() + ")"));
  }
  return absl::StrJoin(parts, " > ");
}

void Listed(std::vector<std::string>& list, std::string line) {
  if (list.size() < kMaxListed) list.push_back(std::move(line));
}

void Deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + kCallDeadline));
}

enum class Verb { kConfirm, kReject, kCancel, kVoid };

const char* VerbName(Verb v) {
  switch (v) {
    case Verb::kConfirm:
      return "confirm";
    case Verb::kReject:
      return "reject";
    case Verb::kCancel:
      return "cancel";
    case Verb::kVoid:
      return "void";
  }
  return "?";
}
v1::CertificateState Target(Verb v) {
  switch (v) {
    case Verb::kConfirm:
      return v1::CONFIRMED;
    case Verb::kReject:
      return v1::REJECTED;
    case Verb::kCancel:
      return v1::CANCELLED;
    case Verb::kVoid:
      return v1::VOIDED;
  }
  return v1::CERTIFICATE_STATE_UNSPECIFIED;
}
bool ByImporter(Verb v) { return v == Verb::kConfirm || v == Verb::kReject; }

// The importer's decisions on a replaced certificate that, crossing the
// replacement, leave it standing.
bool Decided(v1::CertificateState s) {
  return s == v1::CONFIRMED || s == v1::REJECTED || s == v1::VOIDED;
}

bool EverDisputed(const v1::CertificateRecord& r) {
  return std::any_of(r.history().begin(), r.history().end(),
                     [](const v1::StateChange& h) { return h.state() == v1::DISPUTED; });
}

// The outcome of one authority call, retries included.
struct Attempt {
  bool acked = false;
  bool by_retry = false;  // acknowledged by what the node showed after a retry
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string error;
};

struct VerbCall {
  Verb verb;
  bool crossing;
  Attempt result;
};

struct Cert {
  std::string number, exporter, importer;
  v1::Certificate certificate;
  int step = 0;
  Attempt submit;
  // Sized before the calls of a step start; a void is appended in a later
  // step, after those calls were joined.
  std::vector<VerbCall> verbs;
  Cert* replaces = nullptr;     // a replacement: the certificate it replaces
  Cert* replaced_by = nullptr;  // the replacement attempted of this one
  bool crossing = false;        // a replacement started with a decision on `replaces`
  bool resolving = false;       // verbs planned while the exporter showed it DISPUTED
  const std::string& Actor(Verb v) const { return ByImporter(v) ? importer : exporter; }
};

// A certificate waiting for its next action, since step `since`.
struct Queued {
  Cert* cert;
  int since;
};

enum class Fault { kRefuse, kBlackhole, kDelay, kCut, kPartition };
constexpr int kFaultKinds = 5;

const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kRefuse:
      return "refuse";
    case Fault::kBlackhole:
      return "blackhole";
    case Fault::kDelay:
      return "delay";
    case Fault::kCut:
      return "cut";
    case Fault::kPartition:
      return "partition";
  }
  return "?";
}

struct Heal {
  int step;
  Link link;
  uint64_t generation;
};

v1::MessageKind Kind(const v1::SignedMessage& m) {
  v1::MessageBody body;
  return body.ParseFromString(m.body()) ? body.header().kind() : v1::MESSAGE_KIND_UNSPECIFIED;
}

using Records = std::map<std::string, v1::CertificateRecord>;  // by number

}  // namespace

class ChaosRun::Impl {
 public:
  explicit Impl(ChaosOptions options);
  ChaosReport Run();

 private:
  void Log(const std::string& line) const;
  std::shared_ptr<Stub> StubFor(const std::string& code, const std::string& role);
  void Refresh(const std::string& code);
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  const std::string& AnyCode() {
    return o_.codes[Uniform(0, static_cast<int>(o_.codes.size()) - 1)];
  }
  std::string OtherCode(const std::string& code);
  std::string AliveCode();

  // Calls (from the step threads).
  Attempt Submit(const Cert& c);
  Attempt Act(const Cert& c, Verb v);
  grpc::Status Call(const Cert& c, Verb v);  // one attempt
  std::optional<v1::CertificateRecord> Get(const std::string& code, const std::string& number);

  // The schedule (main thread).
  void RunStep(int step);
  void PlanSubmit(int step, std::vector<std::function<void()>>& calls);
  void PlanVerb(int step, std::vector<std::function<void()>>& calls);
  void PlanVerbs(Cert* c, std::vector<VerbCall> verbs, std::vector<std::function<void()>>& calls);
  // Each returns false, planning nothing, when no certificate fits.
  bool PlanReplace(int step, Cert* old, bool crossing, std::vector<std::function<void()>>& calls);
  bool PlanVoid(int step, std::vector<std::function<void()>>& calls);
  bool PlanResolve(int step, std::vector<std::function<void()>>& calls);
  // Takes a random certificate queued for kVerbLag steps from `queue`.
  Cert* Take(std::vector<Queued>& queue, int step);
  // The exporter's state of `c` now; UNSPECIFIED when it is down or silent.
  v1::CertificateState ExporterState(const Cert& c);
  // After the calls of a step: queues what they made for later actions.
  void Queue(int step);
  void InjectFault(int step);
  void HealDue(int step);
  void Kill(int step);
  void RestartDue(int step);
  void HealAll();

  // The checks.
  bool Drain();
  Records List(const std::string& code);
  std::vector<v1::LedgerEntry> Export(const std::string& code);
  void CheckCalls(const std::map<std::string, Records>& records);
  void CheckVerbs(const Cert& c, const std::map<std::string, Records>& records);
  void CheckReplacement(const Cert& c, const std::map<std::string, Records>& records);
  void CheckLinks(const std::map<std::string, Records>& records);
  void CheckLinksOn(const std::string& code, const Records& recs);
  void CheckDuplicates();
  void CheckAgreement(const std::map<std::string, Records>& records);
  // " after cancel+confirm": the verbs acknowledged on `number`, if any.
  std::string Acknowledged(const std::string& number) const;
  void CheckLedgers();

  const ChaosOptions o_;
  const absl::Time created_ = absl::Now();
  std::mt19937_64 rng_;
  GrpcFederation fed_;
  std::map<Link, std::unique_ptr<FaultProxy>> proxies_;
  std::map<Link, uint64_t> fault_generation_;
  std::vector<Heal> heals_;
  std::set<std::string> down_;
  std::map<std::string, int> restart_at_;
  int pending_kills_ = 0;
  absl::Mutex mu_;
  std::map<std::string, std::map<std::string, std::shared_ptr<Stub>>> stubs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Cert>> certs_;
  std::vector<Queued> waiting_;    // acknowledged submits without a verb yet, oldest first
  std::vector<Queued> confirmed_;  // acknowledged confirms, for a void
  std::vector<Queued> disputed_;   // acknowledged crossing replacements, for a resolving verb
  std::vector<Cert*> submitted_;   // this step's submits and replacements
  std::vector<Cert*> acted_;       // this step's certificates acted on
  std::map<std::string, int> serial_;
  // DELIVERY_FAILED entries by certificate number, from the ledger exports.
  std::map<std::string, std::vector<std::string>> failures_;
  ChaosReport report_;
};

ChaosRun::Impl::Impl(ChaosOptions options) : o_(std::move(options)), rng_(o_.seed), fed_(o_.codes) {
  for (const std::string& from : o_.codes) {
    // Retry often and give up on a silent peer soon, so faults heal fast.
    fed_.AppendConfig(from,
                      "delivery { initial_backoff_ms: 100 max_backoff_ms: 1000 "
                      "rpc_timeout_ms: 2000 }");
    for (const std::string& to : o_.codes) {
      if (from == to) continue;
      auto proxy = std::make_unique<FaultProxy>(fed_.PeerPort(to));
      fed_.SetPeerEndpoint(from, to, absl::StrCat("127.0.0.1:", proxy->port()));
      proxies_[{from, to}] = std::move(proxy);
    }
  }
  for (const std::string& code : o_.codes) {
    fed_.StartProcess(code);
    Refresh(code);
  }
}

void ChaosRun::Impl::Log(const std::string& line) const {
  if (o_.verbose) std::fprintf(stderr, "[chaos] %s\n", line.c_str());
}

std::shared_ptr<Stub> ChaosRun::Impl::StubFor(const std::string& code, const std::string& role) {
  absl::MutexLock lock(&mu_);
  return stubs_.at(code).at(role);
}

void ChaosRun::Impl::Refresh(const std::string& code) {
  // A restarted node listens on a new authority port: new channels.
  std::map<std::string, std::shared_ptr<Stub>> fresh;
  for (const char* role : kRoles) fresh[role] = fed_.Authority(code, role);
  absl::MutexLock lock(&mu_);
  stubs_[code] = std::move(fresh);
}

std::string ChaosRun::Impl::OtherCode(const std::string& code) {
  while (true) {
    const std::string& c = AnyCode();
    if (c != code) return c;
  }
}

std::string ChaosRun::Impl::AliveCode() {
  while (true) {
    const std::string& c = AnyCode();
    if (!down_.contains(c)) return c;
  }
}

std::optional<v1::CertificateRecord> ChaosRun::Impl::Get(const std::string& code,
                                                         const std::string& number) {
  grpc::ClientContext ctx;
  Deadline(ctx);
  v1::GetCertificateRequest req;
  req.set_number(number);
  v1::CertificateRecord rec;
  if (!StubFor(code, "auditor")->GetCertificate(&ctx, req, &rec).ok()) return std::nullopt;
  return rec;
}

Attempt ChaosRun::Impl::Submit(const Cert& c) {
  Attempt a;
  bool uncertain = false;  // an earlier attempt may have committed
  for (int i = 0; i < kAttempts; ++i) {
    if (i > 0) absl::SleepFor(kRetryPause);
    grpc::ClientContext ctx;
    Deadline(ctx);
    v1::SubmitCertificateRequest req;
    *req.mutable_certificate() = c.certificate;
    req.set_request_id("submit-" + c.number);  // the same on every retry
    v1::CertificateRecord rec;
    const grpc::Status s = StubFor(c.exporter, "exporter")->SubmitCertificate(&ctx, req, &rec);
    a.code = s.error_code();
    a.error = s.error_message();
    if (s.ok()) {
      a.acked = true;
      a.by_retry = uncertain;
      return a;
    }
    if (Transient(s.error_code())) {
      uncertain = true;
      continue;
    }
    if (uncertain && s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
      // Ours only if the node holds exactly this certificate.
      std::optional<v1::CertificateRecord> got = Get(c.exporter, c.number);
      a.acked = got.has_value() && google::protobuf::util::MessageDifferencer::Equals(
                                       got->certificate(), c.certificate);
      a.by_retry = a.acked;
    }
    return a;
  }
  return a;
}

grpc::Status ChaosRun::Impl::Call(const Cert& c, Verb v) {
  const std::string& code = c.Actor(v);
  const std::string id = absl::StrCat(VerbName(v), "-", c.number);  // the same on every retry
  grpc::ClientContext ctx;
  Deadline(ctx);
  v1::CertificateRecord rec;
  switch (v) {
    case Verb::kConfirm: {
      v1::ConfirmReceiptRequest req;
      req.set_number(c.number);
      req.set_request_id(id);
      req.mutable_findings()->set_as_declared(true);
      return StubFor(code, "importer")->ConfirmReceipt(&ctx, req, &rec);
    }
    case Verb::kReject: {
      v1::RejectShipmentRequest req;
      req.set_number(c.number);
      req.set_reason("chaos: shipment refused");
      req.set_request_id(id);
      return StubFor(code, "importer")->RejectShipment(&ctx, req, &rec);
    }
    case Verb::kCancel: {
      v1::CancelCertificateRequest req;
      req.set_number(c.number);
      req.set_reason("chaos: certificate withdrawn");
      req.set_request_id(id);
      return StubFor(code, "exporter")->CancelCertificate(&ctx, req, &rec);
    }
    case Verb::kVoid: {
      v1::VoidCertificateRequest req;
      req.set_number(c.number);
      req.set_reason_code(v1::CLERICAL_ERROR);
      req.set_reason("chaos: clerical error found after confirmation");
      req.set_request_id(id);
      return StubFor(code, "exporter")->VoidCertificate(&ctx, req, &rec);
    }
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, "unknown verb");
}

Attempt ChaosRun::Impl::Act(const Cert& c, Verb v) {
  Attempt a;
  bool uncertain = false;
  const std::string& code = c.Actor(v);
  for (int i = 0; i < kAttempts; ++i) {
    if (i > 0) absl::SleepFor(kRetryPause);
    const grpc::Status s = Call(c, v);
    a.code = s.error_code();
    a.error = s.error_message();
    if (s.ok()) {
      a.acked = true;
      a.by_retry = uncertain;
      return a;
    }
    if (Transient(s.error_code())) {
      uncertain = true;
      continue;
    }
    if (uncertain && s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      // Only this authority's own verb moves its side to the target state.
      std::optional<v1::CertificateRecord> got = Get(code, c.number);
      a.acked = got.has_value() && got->state() == Target(v);
      a.by_retry = a.acked;
    }
    return a;
  }
  return a;
}

void ChaosRun::Impl::PlanSubmit(int step, std::vector<std::function<void()>>& calls) {
  auto c = std::make_unique<Cert>();
  c->exporter = AliveCode();
  c->importer = OtherCode(c->exporter);
  c->number = absl::StrFormat("%s-%s-%06d", c->exporter, c->importer, ++serial_[c->exporter]);
  c->certificate = ChaosCertificate(c->number, c->exporter, c->importer);
  c->step = step;
  Cert* cert = c.get();
  certs_.push_back(std::move(c));
  submitted_.push_back(cert);
  calls.push_back([this, cert] { cert->submit = Submit(*cert); });
}

Cert* ChaosRun::Impl::Take(std::vector<Queued>& queue, int step) {
  // Oldest first: the eligible ones are a prefix.
  const auto end = std::find_if(queue.begin(), queue.end(),
                                [step](const Queued& q) { return q.since > step - kVerbLag; });
  const int eligible = static_cast<int>(end - queue.begin());
  if (eligible == 0) return nullptr;
  const int pick = Uniform(0, eligible - 1);
  Cert* c = queue[pick].cert;
  queue.erase(queue.begin() + pick);
  return c;
}

v1::CertificateState ChaosRun::Impl::ExporterState(const Cert& c) {
  if (down_.contains(c.exporter)) return v1::CERTIFICATE_STATE_UNSPECIFIED;
  std::optional<v1::CertificateRecord> got = Get(c.exporter, c.number);
  return got.has_value() ? got->state() : v1::CERTIFICATE_STATE_UNSPECIFIED;
}

void ChaosRun::Impl::PlanVerbs(Cert* c, std::vector<VerbCall> verbs,
                               std::vector<std::function<void()>>& calls) {
  const size_t first = c->verbs.size();
  for (VerbCall& v : verbs) c->verbs.push_back(std::move(v));
  for (size_t i = first; i < c->verbs.size(); ++i) {
    calls.push_back([this, c, i] { c->verbs[i].result = Act(*c, c->verbs[i].verb); });
  }
  acted_.push_back(c);
}

void ChaosRun::Impl::PlanVerb(int step, std::vector<std::function<void()>>& calls) {
  if (Uniform(0, 99) >= 80) return;
  const int kind = Uniform(0, 99);
  if (kind < 10 && PlanVoid(step, calls)) return;
  if (kind < 22 && PlanResolve(step, calls)) return;
  Cert* c = Take(waiting_, step);
  if (c == nullptr) return;
  const int r = Uniform(0, 99);
  // A replacement of a delivered one, two times in five crossing the
  // importer's decision on it.
  if (r < 25 && PlanReplace(step, c, r < 10, calls)) return;
  const int v = Uniform(0, 99);
  if (v < 30) {
    PlanVerbs(c, {{Verb::kConfirm, false, {}}}, calls);
  } else if (v < 45) {
    PlanVerbs(c, {{Verb::kReject, false, {}}}, calls);
  } else if (v < 65) {
    PlanVerbs(c, {{Verb::kCancel, false, {}}}, calls);
  } else {
    // A crossing: both authorities act on the certificate at once.
    const Verb importer = v < 85 ? Verb::kConfirm : Verb::kReject;
    PlanVerbs(c, {{Verb::kCancel, true, {}}, {importer, true, {}}}, calls);
  }
}

bool ChaosRun::Impl::PlanReplace(int step, Cert* old, bool crossing,
                                 std::vector<std::function<void()>>& calls) {
  const v1::CertificateState state = ExporterState(*old);
  if (state != v1::DELIVERED && state != v1::DISPUTED) return false;
  auto c = std::make_unique<Cert>();
  c->exporter = old->exporter;
  c->importer = old->importer;
  c->number = absl::StrFormat("%s-%s-%06d", c->exporter, c->importer, ++serial_[c->exporter]);
  c->certificate = ChaosCertificate(c->number, c->exporter, c->importer);
  c->certificate.set_type(v1::REPLACEMENT);
  c->certificate.set_replaces(old->number);
  c->step = step;
  c->replaces = old;
  c->crossing = crossing;
  old->replaced_by = c.get();
  Cert* cert = c.get();
  certs_.push_back(std::move(c));
  submitted_.push_back(cert);
  calls.push_back([this, cert] { cert->submit = Submit(*cert); });
  if (crossing) {
    const Verb importer = Uniform(0, 99) < 60 ? Verb::kConfirm : Verb::kReject;
    PlanVerbs(old, {{importer, true, {}}}, calls);
  }
  return true;
}

bool ChaosRun::Impl::PlanVoid(int step, std::vector<std::function<void()>>& calls) {
  Cert* c = Take(confirmed_, step);
  if (c == nullptr) return false;
  // Only what the exporter sees CONFIRMED; the others drop out.
  if (ExporterState(*c) != v1::CONFIRMED) return false;
  PlanVerbs(c, {{Verb::kVoid, false, {}}}, calls);
  return true;
}

bool ChaosRun::Impl::PlanResolve(int step, std::vector<std::function<void()>>& calls) {
  Cert* c = Take(disputed_, step);
  if (c == nullptr) return false;
  if (ExporterState(*c) != v1::DISPUTED) {
    waiting_.push_back({c, step});  // not (yet) disputed there: an ordinary open one
    return false;
  }
  c->resolving = true;
  const int r = Uniform(0, 99);
  if (r < 35) {
    PlanVerbs(c, {{Verb::kCancel, false, {}}}, calls);
  } else if (r < 65) {
    PlanVerbs(c, {{Verb::kConfirm, false, {}}}, calls);
  } else if (r < 85) {
    PlanVerbs(c, {{Verb::kReject, false, {}}}, calls);
  } else {
    PlanVerbs(c, {{Verb::kCancel, true, {}}, {Verb::kConfirm, true, {}}}, calls);
  }
  return true;
}

void ChaosRun::Impl::Queue(int step) {
  for (Cert* c : submitted_) {
    if (!c->submit.acked) continue;
    (c->crossing ? disputed_ : waiting_).push_back({c, step});
  }
  for (Cert* c : acted_) {
    const bool confirmed = std::any_of(c->verbs.begin(), c->verbs.end(), [](const VerbCall& v) {
      return v.verb == Verb::kConfirm && v.result.acked;
    });
    const bool voided = std::any_of(c->verbs.begin(), c->verbs.end(),
                                    [](const VerbCall& v) { return v.verb == Verb::kVoid; });
    if (confirmed && !voided) confirmed_.push_back({c, step});
  }
  submitted_.clear();
  acted_.clear();
}

void ChaosRun::Impl::InjectFault(int step) {
  const auto kind = static_cast<Fault>(Uniform(0, kFaultKinds - 1));
  const std::string from = AnyCode();
  const std::string to = OtherCode(from);
  const int heal = step + Uniform(3, 12);
  std::vector<Link> links = {{from, to}};
  if (kind == Fault::kPartition) links.push_back({to, from});
  const absl::Duration delay = absl::Milliseconds(Uniform(20, 400));
  for (const Link& link : links) {
    FaultProxy& proxy = *proxies_.at(link);
    if (kind == Fault::kRefuse || kind == Fault::kPartition) proxy.Refuse();
    if (kind == Fault::kBlackhole) proxy.Blackhole();
    if (kind == Fault::kDelay) proxy.Delay(delay);
    if (kind == Fault::kCut) proxy.CutAll();
    if (kind != Fault::kCut) heals_.push_back({heal, link, ++fault_generation_[link]});
  }
  ++report_.faults[FaultName(kind)];
  Log(absl::StrCat("step ", step, ": ", FaultName(kind), " ", from, "->", to,
                   kind == Fault::kDelay ? absl::StrCat(" ", absl::FormatDuration(delay)) : "",
                   kind == Fault::kCut ? "" : absl::StrCat(" until step ", heal)));
}

void ChaosRun::Impl::HealDue(int step) {
  std::erase_if(heals_, [&](const Heal& h) {
    if (h.step > step) return false;
    // A later fault on the link has its own heal.
    if (fault_generation_[h.link] == h.generation) proxies_.at(h.link)->Pass();
    return true;
  });
}

void ChaosRun::Impl::Kill(int step) {
  const std::string code = AliveCode();
  fed_.KillProcess(code, /*crash=*/true);
  down_.insert(code);
  restart_at_[code] = step + Uniform(3, 8);
  ++report_.kills;
  Log(absl::StrCat("step ", step, ": SIGKILL ", code, ", restart at step ", restart_at_[code]));
}

void ChaosRun::Impl::RestartDue(int step) {
  for (auto it = restart_at_.begin(); it != restart_at_.end();) {
    if (it->second > step) {
      ++it;
      continue;
    }
    fed_.StartProcess(it->first);
    Refresh(it->first);
    down_.erase(it->first);
    Log(absl::StrCat("step ", step, ": restarted ", it->first));
    it = restart_at_.erase(it);
  }
}

void ChaosRun::Impl::RunStep(int step) {
  const absl::Time start = absl::Now();
  const int n = o_.certificates;
  RestartDue(step);
  HealDue(step);
  // Faults and kills spread evenly: the k-th of K at step k*n/K (+ offset).
  for (int f = 0; f < o_.faults; ++f) {
    if (static_cast<int>((static_cast<int64_t>(f) * n) / o_.faults + 2) == step) InjectFault(step);
  }
  for (int k = 0; k < o_.kills; ++k) {
    if (static_cast<int>(((2 * k + 1) * static_cast<int64_t>(n)) / (2 * o_.kills)) == step) {
      ++pending_kills_;
    }
  }
  std::vector<std::function<void()>> calls;
  PlanSubmit(step, calls);
  PlanVerb(step, calls);
  const bool kill = pending_kills_ > 0 && down_.empty();
  const absl::Duration kill_after = absl::Microseconds(Uniform(0, 3000));
  std::vector<std::thread> threads;
  for (auto& call : calls) threads.emplace_back(call);
  if (kill) {
    absl::SleepFor(kill_after);  // mid-call, most of the time
    Kill(step);
    --pending_kills_;
  }
  for (std::thread& t : threads) t.join();
  Queue(step);
  absl::SleepFor(start + o_.step - absl::Now());
}

void ChaosRun::Impl::HealAll() {
  for (auto& [link, proxy] : proxies_) {
    ++fault_generation_[link];
    proxy->Pass();
  }
  heals_.clear();
  RestartDue(std::numeric_limits<int>::max());
}

bool ChaosRun::Impl::Drain() {
  const absl::Time deadline = absl::Now() + o_.drain_deadline;
  int empty_rounds = 0;
  while (absl::Now() < deadline) {
    bool empty = true;
    for (const std::string& code : o_.codes) {
      grpc::ClientContext ctx;
      Deadline(ctx);
      v1::ListOutboxRequest req;
      req.set_page_size(1);
      v1::ListOutboxResponse resp;
      const grpc::Status s = StubFor(code, "auditor")->ListOutbox(&ctx, req, &resp);
      if (!s.ok() || resp.messages_size() > 0) empty = false;
    }
    // Two empty rounds in a row: nothing queued anywhere, nothing in flight.
    empty_rounds = empty ? empty_rounds + 1 : 0;
    if (empty_rounds == 2) return true;
    absl::SleepFor(absl::Milliseconds(200));
  }
  for (const std::string& code : o_.codes) {
    grpc::ClientContext ctx;
    Deadline(ctx);
    v1::ListOutboxRequest req;
    req.set_page_size(static_cast<uint32_t>(kMaxListed));
    v1::ListOutboxResponse resp;
    if (!StubFor(code, "auditor")->ListOutbox(&ctx, req, &resp).ok()) {
      Listed(report_.outbox_left, code + ": ListOutbox failed");
    }
    for (const v1::OutboxSummary& m : resp.messages()) {
      Listed(
          report_.outbox_left,
          absl::StrCat(code, "->", m.recipient(), " ", v1::MessageKind_Name(m.kind()), " ",
                       m.certificate_number(), " attempts ", m.attempts(), ": ", m.last_error()));
    }
  }
  return false;
}

Records ChaosRun::Impl::List(const std::string& code) {
  Records out;
  v1::ListCertificatesRequest req;
  req.set_page_size(1000);
  while (true) {
    grpc::ClientContext ctx;
    Deadline(ctx);
    v1::ListCertificatesResponse resp;
    const grpc::Status s = StubFor(code, "auditor")->ListCertificates(&ctx, req, &resp);
    if (!s.ok()) throw std::runtime_error(code + ": ListCertificates: " + s.error_message());
    for (const v1::CertificateRecord& r : resp.certificates()) out[r.certificate().number()] = r;
    if (resp.next_page_token().empty()) return out;
    req.set_page_token(resp.next_page_token());
  }
}

std::vector<v1::LedgerEntry> ChaosRun::Impl::Export(const std::string& code) {
  grpc::ClientContext ctx;
  auto reader = StubFor(code, "auditor")->ExportLedger(&ctx, {});
  std::vector<v1::LedgerEntry> out;
  v1::LedgerEntry e;
  while (reader->Read(&e)) out.push_back(e);
  const grpc::Status s = reader->Finish();
  if (!s.ok()) throw std::runtime_error(code + ": ExportLedger: " + s.error_message());
  return out;
}

void ChaosRun::Impl::CheckCalls(const std::map<std::string, Records>& records) {
  for (const auto& c : certs_) {
    ++report_.certificates;
    if (c->submit.acked) {
      ++report_.submits_acknowledged;
      if (c->submit.by_retry) ++report_.submits_by_retry;
      const bool at_exporter = records.at(c->exporter).contains(c->number);
      const bool at_importer = records.at(c->importer).contains(c->number);
      if (!at_exporter || !at_importer) {
        ++report_.lost_submits;
        Listed(report_.lost, absl::StrCat("submit ", c->number, " acknowledged by ", c->exporter,
                                          ": ", at_exporter ? "" : "missing at exporter ",
                                          at_importer ? "" : "missing at importer"));
      }
    }
    CheckVerbs(*c, records);
    CheckReplacement(*c, records);
  }
}

void ChaosRun::Impl::CheckVerbs(const Cert& c, const std::map<std::string, Records>& records) {
  const int crossing = static_cast<int>(
      std::count_if(c.verbs.begin(), c.verbs.end(), [](const VerbCall& v) { return v.crossing; }));
  if (crossing == 2) {  // a cancel against an importer decision
    ++report_.crossings_attempted;
    if (c.verbs[0].result.acked && c.verbs[1].result.acked) ++report_.crossings_acknowledged;
  }
  if (c.resolving) ++report_.resolutions_attempted;
  bool resolved = false;
  for (const VerbCall& v : c.verbs) {
    ++report_.verbs_attempted[VerbName(v.verb)];
    if (!v.result.acked) continue;
    ++report_.verbs_acknowledged[VerbName(v.verb)];
    if (c.resolving && v.verb != Verb::kVoid && !resolved) {
      resolved = true;
      ++report_.resolutions_acknowledged;
    }
    const Records& at = records.at(c.Actor(v.verb));
    const auto rec = at.find(c.number);
    const v1::CertificateState final_state =
        rec == at.end() ? v1::CERTIFICATE_STATE_UNSPECIFIED : rec->second.state();
    if (final_state == Target(v.verb)) {
      ++report_.verbs_reflected;
      continue;
    }
    // Superseded: another verb called on this certificate won — one that
    // was acknowledged, or one that committed but whose answer was lost to
    // a fault or a kill (nothing else can produce its state).
    const bool superseded = std::any_of(c.verbs.begin(), c.verbs.end(), [&](const VerbCall& o) {
      return &o != &v && Target(o.verb) == final_state;
    });
    if (superseded) {
      ++report_.verbs_superseded;
      continue;
    }
    ++report_.lost_verbs;
    Listed(report_.lost, absl::StrCat(VerbName(v.verb), " ", c.number, " acknowledged by ",
                                      c.Actor(v.verb), ", which shows ", StateName(final_state)));
  }
}

void ChaosRun::Impl::CheckReplacement(const Cert& c,
                                      const std::map<std::string, Records>& records) {
  if (c.replaces == nullptr) return;
  const Cert& old = *c.replaces;
  ++report_.replacements_attempted;
  if (c.crossing) ++report_.replacement_crossings_attempted;
  if (!c.submit.acked) return;
  ++report_.replacements_acknowledged;
  if (c.crossing && !old.verbs.empty() && old.verbs[0].result.acked) {
    ++report_.replacement_crossings_acknowledged;
  }
  const auto find = [&](const std::string& code, const std::string& number) {
    const Records& at = records.at(code);
    const auto it = at.find(number);
    return it == at.end() ? nullptr : &it->second;
  };
  const v1::CertificateRecord* eo = find(c.exporter, old.number);
  const v1::CertificateRecord* io = find(c.importer, old.number);
  const v1::CertificateRecord* in = find(c.importer, c.number);
  if (eo == nullptr || io == nullptr || in == nullptr) return;  // a lost submit, counted there
  if (eo->state() == v1::REPLACED && io->state() == v1::REPLACED && eo->replaced_by() == c.number &&
      io->replaced_by() == c.number) {
    ++report_.replacements_reflected;
    return;
  }
  // Crossed: the importer decided on the old one first (it stands), and
  // the importer's node took the replacement in DISPUTED.
  if (Decided(eo->state()) && eo->state() == io->state() && EverDisputed(*in)) {
    ++report_.replacements_crossed;
    return;
  }
  ++report_.lost_replacements;
  Listed(report_.lost,
         absl::StrCat("replace ", old.number, " by ", c.number, " acknowledged by ", c.exporter,
                      ": old is ", StateName(eo->state()), " (replaced_by '", eo->replaced_by(),
                      "') at exporter, ", StateName(io->state()), " (replaced_by '",
                      io->replaced_by(), "') at importer; new at importer [", History(*in), "]"));
}

void ChaosRun::Impl::CheckLinks(const std::map<std::string, Records>& records) {
  for (const auto& [code, recs] : records) CheckLinksOn(code, recs);
  // Both sides of a certificate name the same successor.
  for (const auto& [code, recs] : records) {
    for (const auto& [number, rec] : recs) {
      if (rec.side() != v1::EXPORTING) continue;
      const auto other = records.find(rec.partner());
      if (other == records.end()) continue;
      const auto theirs = other->second.find(number);
      if (theirs == other->second.end()) continue;  // a disagreement (MISSING), counted there
      if (theirs->second.replaced_by() == rec.replaced_by() &&
          theirs->second.certificate().replaces() == rec.certificate().replaces()) {
        continue;
      }
      ++report_.link_disagreements;
      Listed(report_.link_problems,
             absl::StrCat(number, ": exporter ", code, " ", StateName(rec.state()),
                          " replaced_by '", rec.replaced_by(), "' replaces '",
                          rec.certificate().replaces(), "' [", History(rec), "] / importer ",
                          rec.partner(), " ", StateName(theirs->second.state()), " replaced_by '",
                          theirs->second.replaced_by(), "' replaces '",
                          theirs->second.certificate().replaces(), "' [", History(theirs->second),
                          "]"));
    }
  }
}

void ChaosRun::Impl::CheckLinksOn(const std::string& code, const Records& recs) {
  // On one node: a REPLACED record names its successor, which names it back.
  for (const auto& [number, rec] : recs) {
    if (rec.state() != v1::REPLACED) continue;
    const auto next = recs.find(rec.replaced_by());
    if (next != recs.end() && next->second.certificate().replaces() == number) continue;
    ++report_.link_disagreements;
    Listed(report_.link_problems,
           absl::StrCat(code, ": ", number, " is REPLACED, replaced_by '", rec.replaced_by(), "', ",
                        next == recs.end()
                            ? "which this node does not hold"
                            : "which replaces '" + next->second.certificate().replaces() + "'"));
  }
}

void ChaosRun::Impl::CheckDuplicates() {
  for (const std::string& code : o_.codes) {
    std::set<std::string> received;
    std::map<std::string, v1::MessageKind> sent;  // by message id
    for (const v1::LedgerEntry& e : Export(code)) {
      if (e.kind() == v1::SENT && !sent.emplace(e.message_id(), Kind(e.message())).second) {
        ++report_.duplicated_sent;
        Listed(report_.duplicated, absl::StrCat(code, " SENT ", e.message_id(), " twice (",
                                                e.certificate_number(), ")"));
      }
      if (e.kind() == v1::RECEIVED_MESSAGE && !received.insert(e.message_id()).second) {
        ++report_.duplicated_received;
        Listed(report_.duplicated, absl::StrCat(code, " RECEIVED ", e.message_id(), " twice (",
                                                e.certificate_number(), ")"));
      }
      if (e.kind() == v1::DELIVERY_FAILED) {
        const auto it = sent.find(e.message_id());
        const std::string kind =
            v1::MessageKind_Name(it == sent.end() ? v1::MESSAGE_KIND_UNSPECIFIED : it->second);
        ++report_.delivery_failed;
        ++report_.delivery_failed_kinds[kind];
        Listed(report_.delivery_failures, absl::StrCat(code, "->", e.partner(), " ", kind, " ",
                                                       e.certificate_number(), ": ", e.detail()));
        failures_[e.certificate_number()].push_back(
            absl::StrCat(code, "->", e.partner(), " ", kind, ": ", e.detail()));
      }
    }
  }
}

std::string ChaosRun::Impl::Acknowledged(const std::string& number) const {
  std::vector<std::string> verbs;
  for (const auto& c : certs_) {
    if (c->number != number) continue;
    if (c->replaces != nullptr) verbs.push_back("replacing " + c->replaces->number);
    for (const VerbCall& v : c->verbs) {
      if (v.result.acked) verbs.push_back(VerbName(v.verb));
    }
    if (c->replaced_by != nullptr && c->replaced_by->submit.acked) {
      verbs.push_back("replace by " + c->replaced_by->number);
    }
  }
  return verbs.empty() ? "" : absl::StrCat(" after ", absl::StrJoin(verbs, "+"));
}

void ChaosRun::Impl::CheckAgreement(const std::map<std::string, Records>& records) {
  std::map<std::string, const v1::CertificateRecord*> any;  // every number, one record
  std::map<std::string, std::vector<Disagreement>> by_kind;
  for (const auto& [code, recs] : records) {
    for (const auto& [number, rec] : recs) any.emplace(number, &rec);
  }
  for (const auto& [number, rec] : any) {
    Disagreement d;
    d.number = number;
    d.exporter = rec->certificate().exporting_participant();
    d.importer = rec->certificate().importing_participant();
    const auto side = [&](const std::string& code, std::string& state, std::string& history) {
      const auto it = records.find(code);
      const auto found = it == records.end() ? nullptr : &it->second;
      const auto r = found ? found->find(d.number) : Records::const_iterator();
      if (!found || r == found->end()) {
        state = "MISSING";
        return std::string("MISSING");
      }
      state = StateName(r->second.state());
      history = History(r->second);
      return Agreed(r->second.state());
    };
    const std::string e = side(d.exporter, d.exporter_state, d.exporter_history);
    const std::string i = side(d.importer, d.importer_state, d.importer_history);
    if (e == i) {
      ++report_.final_states[e];
      const auto ever = [&](const std::string& code) {
        const auto r = records.at(code).find(d.number);
        return r != records.at(code).end() && EverDisputed(r->second);
      };
      if (ever(d.exporter) || ever(d.importer)) {
        ++report_.disputed;
        if (e != "DISPUTED") ++report_.resolved;
      }
      continue;
    }
    ++report_.disagreements;
    d.kind = absl::StrCat("exporter ", d.exporter_state, " / importer ", d.importer_state,
                          Acknowledged(number));
    ++report_.disagreement_kinds[d.kind];
    if (const auto f = failures_.find(number); f != failures_.end()) {
      d.delivery_failures = absl::StrJoin(f->second, "; ");
    }
    by_kind[d.kind].push_back(std::move(d));
  }
  // List up to kMaxListed, taking from every kind in turn so rare kinds show.
  for (size_t i = 0; report_.disagreement_details.size() < kMaxListed; ++i) {
    bool more = false;
    for (auto& [kind, list] : by_kind) {
      if (i >= list.size() || report_.disagreement_details.size() >= kMaxListed) continue;
      report_.disagreement_details.push_back(list[i]);
      more = true;
    }
    if (!more) break;
  }
}

void ChaosRun::Impl::CheckLedgers() {
  report_.ledgers_verified = true;
  for (const std::string& code : o_.codes) {
    grpc::ClientContext ctx;
    Deadline(ctx);
    v1::VerifyLedgerResponse resp;
    const grpc::Status s = StubFor(code, "auditor")->VerifyLedger(&ctx, {}, &resp);
    if (s.ok() && resp.ok()) continue;
    report_.ledgers_verified = false;
    report_.ledger_problems.push_back(
        s.ok() ? absl::StrCat(code, ": entry ", resp.first_bad_sequence(), ": ", resp.problem())
               : absl::StrCat(code, ": VerifyLedger: ", s.error_message()));
  }
}

ChaosReport ChaosRun::Impl::Run() {
  for (int step = 0; step < o_.certificates; ++step) RunStep(step);
  HealAll();
  const absl::Time drain_start = absl::Now();
  report_.drained = Drain();
  report_.drain_time = absl::Now() - drain_start;
  std::map<std::string, Records> records;
  for (const std::string& code : o_.codes) records[code] = List(code);
  CheckCalls(records);
  CheckDuplicates();
  CheckAgreement(records);
  CheckLinks(records);
  CheckLedgers();
  for (const auto& [link, proxy] : proxies_) {
    report_.proxy_connections += proxy->connections();
    report_.proxy_bytes += proxy->bytes_to_target() + proxy->bytes_from_target();
  }
  report_.wall_time = absl::Now() - created_;
  return report_;
}

ChaosRun::ChaosRun(ChaosOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
ChaosRun::~ChaosRun() = default;
ChaosReport ChaosRun::Run() { return impl_->Run(); }

bool ChaosReport::ok() const {
  return drained && lost_total() == 0 && duplicated_total() == 0 && disagreements == 0 &&
         link_disagreements == 0 && ledgers_verified;
}

namespace {

template <typename Map>
std::string Counts(const Map& m) {
  if (m.empty()) return "none";
  return absl::StrJoin(m, ", ", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, kv.first, " ", kv.second);
  });
}

int Value(const std::map<std::string, int>& m, const std::string& key) {
  const auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

int Sum(const std::map<std::string, int>& m) {
  int n = 0;
  for (const auto& [k, v] : m) n += v;
  return n;
}

}  // namespace

std::string ChaosReport::Summary() const {
  std::string s;
  absl::StrAppend(&s, "certificates:   ", certificates, " submitted, ", submits_acknowledged,
                  " acknowledged (", submits_by_retry, " after a retry)\n");
  absl::StrAppend(&s, "verbs:          ", Sum(verbs_acknowledged), " of ", Sum(verbs_attempted),
                  " acknowledged (", Counts(verbs_acknowledged), "); crossings ",
                  crossings_acknowledged, " of ", crossings_attempted, " both acknowledged\n");
  absl::StrAppend(&s, "replacements:   ", replacements_acknowledged, " of ", replacements_attempted,
                  " acknowledged (", replacements_reflected, " reflected, ", replacements_crossed,
                  " crossed a decision); deliberate crossings ", replacement_crossings_acknowledged,
                  " of ", replacement_crossings_attempted, " both acknowledged\n");
  absl::StrAppend(&s, "voids:          ", Value(verbs_acknowledged, "void"), " of ",
                  Value(verbs_attempted, "void"), " acknowledged\n");
  absl::StrAppend(&s, "disputed:       ", disputed, " certificates, ", resolved,
                  " resolved; resolving verbs on ", resolutions_acknowledged, " of ",
                  resolutions_attempted, " acknowledged\n");
  absl::StrAppend(&s, "faults:         ", Sum(faults), " (", Counts(faults), "); kills ", kills,
                  "; through proxies ", proxy_connections, " connections, ", proxy_bytes,
                  " bytes\n");
  absl::StrAppend(&s, "verbs reflected ", verbs_reflected, ", superseded ", verbs_superseded,
                  " (a crossing decision or a later void)\n");
  absl::StrAppend(&s, "final states:   ", Counts(final_states), "\n");
  absl::StrAppend(&s, "delivery failed ", delivery_failed, " (", Counts(delivery_failed_kinds),
                  ")\n");
  for (const std::string& l : delivery_failures) absl::StrAppend(&s, "  ", l, "\n");
  absl::StrAppend(&s, "lost:           ", lost_total(), " (submits ", lost_submits, ", verbs ",
                  lost_verbs, ", replacements ", lost_replacements, ")\n");
  for (const std::string& l : lost) absl::StrAppend(&s, "  ", l, "\n");
  absl::StrAppend(&s, "duplicated:     ", duplicated_total(), " (sent ", duplicated_sent,
                  ", received ", duplicated_received, ")\n");
  for (const std::string& l : duplicated) absl::StrAppend(&s, "  ", l, "\n");
  absl::StrAppend(&s, "disagreements:  ", disagreements, " (", Counts(disagreement_kinds), ")\n");
  for (const Disagreement& d : disagreement_details) {
    absl::StrAppend(&s, "  ", d.number, ": exporter ", d.exporter, " ", d.exporter_state, " [",
                    d.exporter_history, "] / importer ", d.importer, " ", d.importer_state, " [",
                    d.importer_history, "]\n");
    if (!d.delivery_failures.empty()) {
      absl::StrAppend(&s, "    delivery failed: ", d.delivery_failures, "\n");
    }
  }
  absl::StrAppend(&s, "links:          ", link_disagreements, " disagreeing\n");
  for (const std::string& l : link_problems) absl::StrAppend(&s, "  ", l, "\n");
  absl::StrAppend(&s, "ledgers:        ", ledgers_verified ? "all verified" : "NOT verified", "\n");
  for (const std::string& l : ledger_problems) absl::StrAppend(&s, "  ", l, "\n");
  absl::StrAppend(&s, "drain:          ", drained ? "" : "NOT drained after ",
                  absl::FormatDuration(absl::Trunc(drain_time, absl::Milliseconds(1))), "\n");
  for (const std::string& l : outbox_left) absl::StrAppend(&s, "  ", l, "\n");
  absl::StrAppend(&s, "wall time:      ",
                  absl::FormatDuration(absl::Trunc(wall_time, absl::Milliseconds(100))), "\n");
  absl::StrAppend(&s, "result:         ", ok() ? "OK" : "FAILED", "\n");
  return s;
}

}  // namespace kpx::testing
