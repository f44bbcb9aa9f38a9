#include "gateway/authority.h"

#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/bounds.h"
#include "node/courier.h"
#include "node/log.h"
#include "node/problem_field.h"
#include "node/text.h"
#include "node/util.h"

namespace kpx::gateway {

const std::set<v1::Role> kAnyRole = {v1::EXPORTER, v1::IMPORTER, v1::AUDITOR, v1::OPERATOR};
const std::set<v1::Role> kAuditorOnly = {v1::AUDITOR};

namespace {

const std::set<v1::Role> kExporter = {v1::EXPORTER};
const std::set<v1::Role> kImporter = {v1::IMPORTER};
const std::set<v1::Role> kOperator = {v1::OPERATOR};
const std::set<v1::Role> kOperatorOrAuditor = {v1::OPERATOR, v1::AUDITOR};
constexpr uint32_t kDefaultOutboxPage = 100;
constexpr uint32_t kMaxOutboxPage = 1000;

// Logs a refused authority call; returns its status unchanged.
absl::Status Refused(const char* verb, const Caller& c, const std::string& number,
                     const absl::Status& s) {
  log::Warn("authority_refused", {{"verb", verb},
                                  {"client", c.name},
                                  {"certificate", number},
                                  {"code", absl::StatusCodeToString(s.code())},
                                  {"reason", s.message()}});
  return s;
}

// Logs what a certificate verb did or why it was refused.
absl::StatusOr<v1::CertificateRecord> Answer(const char* verb, const Caller& c,
                                             const std::string& number,
                                             absl::StatusOr<v1::CertificateRecord> rec) {
  if (!rec.ok()) return Refused(verb, c, number, rec.status());
  log::Info("authority", {{"verb", verb},
                          {"client", c.name},
                          {"certificate", number},
                          {"partner", rec->partner()},
                          {"state", v1::CertificateState_Name(rec->state())}});
  return rec;
}

// What an operator sees of an outbox item: no signed bytes.
v1::OutboxSummary Summarize(const v1::OutboxItem& item, absl::Time now, absl::Duration stuck) {
  v1::OutboxSummary m;
  m.set_message_id(item.message_id());
  m.set_recipient(item.recipient());
  m.set_certificate_number(item.certificate_number());
  // The kind is only shown: a body that does not parse (which the node
  // never queues) is listed as MESSAGE_KIND_UNSPECIFIED.
  v1::MessageBody body;
  if (body.ParseFromString(item.message().body())) m.set_kind(body.header().kind());
  m.set_attempts(item.attempts());
  *m.mutable_queued_at() = item.queued_at();
  *m.mutable_due_at() = item.due_at();
  m.set_last_error(item.last_error());
  m.set_stuck(node::IsStuck(item, now, stuck));
  m.set_held(item.held());
  m.set_waits_for(item.waits_for());
  return m;
}

}  // namespace

v1::Actor Caller::actor() const {
  v1::Actor a;
  a.set_name(name);
  a.set_full_name(full_name);
  a.set_office(office);
  return a;
}

Caller Authority::OfficerCaller(const v1::Officer& officer) {
  Caller c{officer.name(), {}, officer.full_name(), officer.office()};
  for (int r : officer.roles()) c.roles.insert(static_cast<v1::Role>(r));
  return c;
}

Authority::Authority(node::Node* node, const v1::NodeConfig& config, OperatorHooks hooks)
    : node_(node),
      hooks_(std::move(hooks)),
      // The node's delivery settings, with their defaults applied.
      stuck_after_(absl::Hours(node->delivery().stuck_after_hours())) {
  for (const v1::AuthorityClient& c : config.authority_clients()) {
    for (int r : c.roles()) roles_[c.common_name()].insert(static_cast<v1::Role>(r));
  }
}

Caller Authority::ClientCaller(const std::string& common_name) const {
  Caller c{common_name, {}, "", ""};
  if (auto it = roles_.find(common_name); it != roles_.end()) c.roles = it->second;
  return c;
}

absl::Status Authority::Authorize(const Caller& caller, const char* verb,
                                  const std::set<v1::Role>& allowed) const {
  for (v1::Role r : caller.roles) {
    if (allowed.count(r)) return absl::OkStatus();
  }
  std::vector<std::string> held;
  for (v1::Role r : caller.roles) held.push_back(v1::Role_Name(r));
  const std::string why = absl::StrCat(
      "client '", node::Printable(caller.name, 128),
      "' (roles: ", held.empty() ? "none" : absl::StrJoin(held, ","), ") may not call ", verb);
  log::Warn("authority_refused", {{"verb", verb}, {"client", caller.name}, {"reason", why}});
  return absl::PermissionDeniedError(why);
}

absl::Status Authority::Admit(const Caller& caller, const char* verb,
                              const google::protobuf::Message& request,
                              const std::set<v1::Role>& allowed) const {
  if (absl::Status s = Authorize(caller, verb, allowed); !s.ok()) return s;
  if (absl::Status s = node::CheckBounds(request); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(verb, ": ", s.message()));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------- exporter

absl::StatusOr<v1::CertificateRecord> Authority::Submit(
    const Caller& c, const v1::SubmitCertificateRequest& r) const {
  if (absl::Status s = Admit(c, "SubmitCertificate", r, kExporter); !s.ok()) return s;
  v1::Certificate cert = r.certificate();
  // The validating official: the officer signed in, unless the system names one.
  if (cert.validating_official().empty()) cert.set_validating_official(c.full_name);
  const std::string number = cert.number();  // cert is moved below
  absl::StatusOr<v1::CertificateRecord> rec =
      node_->Submit(std::move(cert), r.request_id(), c.actor());
  // A refusal names its field in the request, not in the certificate.
  if (const std::string field = node::ProblemField(rec.status()); !field.empty()) {
    rec = node::WithField(rec.status(), absl::StrCat("certificate.", field));
  }
  return Answer("SubmitCertificate", c, number, std::move(rec));
}

absl::StatusOr<v1::AttestationResponse> Authority::GetAttestation(
    const Caller& c, const v1::GetAttestationRequest& r) const {
  if (absl::Status s = Admit(c, "GetAttestation", r, kAnyRole); !s.ok()) return s;
  absl::StatusOr<v1::AttestationResponse> a = node_->attestor().Attest(r.number());
  if (!a.ok()) return Refused("GetAttestation", c, r.number(), a.status());
  return a;
}

absl::StatusOr<node::PaperCheck> Authority::CheckPaper(absl::string_view payload) const {
  return node_->attestor().CheckPayload(payload);
}

absl::StatusOr<node::PaperCheck> Authority::CheckPaperCode(const std::string& number,
                                                           absl::string_view code) const {
  return node_->attestor().CheckCode(number, code);
}

absl::StatusOr<v1::CheckCertificateResponse> Authority::CheckCertificate(
    const Caller& c, const v1::CheckCertificateRequest& r) const {
  if (absl::Status s = Admit(c, "CheckCertificate", r, kExporter); !s.ok()) return s;
  v1::CheckCertificateResponse out;
  v1::Certificate* cert = out.mutable_certificate();
  *cert = r.certificate();
  if (cert->validating_official().empty()) cert->set_validating_official(c.full_name);
  for (const absl::Status& s : node_->CheckCertificate(cert)) {
    v1::CertificateProblem* p = out.add_problems();
    p->set_field(node::ProblemField(s));
    p->set_code(absl::StatusCodeToString(s.code()));
    p->set_message(std::string(s.message()));
  }
  return out;
}

absl::StatusOr<v1::CertificateRecord> Authority::Cancel(
    const Caller& c, const v1::CancelCertificateRequest& r) const {
  if (absl::Status s = Admit(c, "CancelCertificate", r, kExporter); !s.ok()) return s;
  return Answer(
      "CancelCertificate", c, r.number(),
      node_->Cancel(r.number(), {r.reason_code(), r.reason()}, r.request_id(), c.actor()));
}

absl::StatusOr<v1::CertificateRecord> Authority::Amend(const Caller& c,
                                                       const v1::AmendCertificateRequest& r) const {
  if (absl::Status s = Admit(c, "AmendCertificate", r, kExporter); !s.ok()) return s;
  if (r.certificate().number() != r.number()) {
    return absl::InvalidArgumentError(
        "amendment: the certificate's number must be the one amended");
  }
  return Answer(
      "AmendCertificate", c, r.number(),
      node_->Amend(r.certificate(), {r.reason_code(), r.reason()}, r.request_id(), c.actor()));
}

absl::StatusOr<v1::CertificateRecord> Authority::Resend(
    const Caller& c, const v1::ResendCertificateRequest& r) const {
  if (absl::Status s = Admit(c, "ResendCertificate", r, kExporter); !s.ok()) return s;
  std::optional<v1::Certificate> corrected;
  if (r.has_certificate()) corrected = r.certificate();
  return Answer("ResendCertificate", c, r.number(),
                node_->Resend(r.number(), std::move(corrected), r.request_id(), c.actor()));
}

absl::StatusOr<v1::CertificateRecord> Authority::Void(const Caller& c,
                                                      const v1::VoidCertificateRequest& r) const {
  if (absl::Status s = Admit(c, "VoidCertificate", r, kExporter); !s.ok()) return s;
  return Answer("VoidCertificate", c, r.number(),
                node_->Void(r.number(), {r.reason_code(), r.reason()}, r.request_id(), c.actor()));
}

// ---------------------------------------------------------------- importer

absl::StatusOr<v1::CertificateRecord> Authority::Confirm(const Caller& c,
                                                         const v1::ConfirmReceiptRequest& r) const {
  if (absl::Status s = Admit(c, "ConfirmReceipt", r, kImporter); !s.ok()) return s;
  absl::Time at =
      node::IsSet(r.received_at()) ? node::FromTimestamp(r.received_at()) : absl::InfinitePast();
  v1::ImportFindings findings = r.findings();
  // The validating official: the officer signed in, or the client's name.
  if (findings.official().empty()) {
    findings.set_official(c.full_name.empty() ? c.name : c.full_name);
  }
  // An officer's office; for a client, the node takes its first office.
  if (findings.office().empty()) findings.set_office(c.office);
  return Answer("ConfirmReceipt", c, r.number(),
                node_->Confirm(r.number(), findings, at, r.request_id(), c.actor()));
}

absl::StatusOr<v1::CertificateRecord> Authority::Reject(const Caller& c,
                                                        const v1::RejectShipmentRequest& r) const {
  if (absl::Status s = Admit(c, "RejectShipment", r, kImporter); !s.ok()) return s;
  return Answer(
      "RejectShipment", c, r.number(),
      node_->Reject(r.number(), {r.reason_code(), r.reason()}, r.request_id(), c.actor()));
}

// ---------------------------------------------------------------- any role

absl::StatusOr<v1::CertificateRecord> Authority::Get(const Caller& c,
                                                     const v1::GetCertificateRequest& r) const {
  if (absl::Status s = Admit(c, "GetCertificate", r, kAnyRole); !s.ok()) return s;
  return node_->Get(r.number());
}

absl::StatusOr<v1::ListCertificatesResponse> Authority::List(
    const Caller& c, const v1::ListCertificatesRequest& r) const {
  if (absl::Status s = Admit(c, "ListCertificates", r, kAnyRole); !s.ok()) return s;
  return node_->List(r);
}

absl::StatusOr<node::CertificateCounts> Authority::CountCertificates(const Caller& c) const {
  if (absl::Status s = Authorize(c, "CountCertificates", kAnyRole); !s.ok()) return s;
  return node_->CountCertificates();
}

absl::StatusOr<v1::TraceCertificateResponse> Authority::Trace(
    const Caller& c, const v1::TraceCertificateRequest& r) const {
  if (absl::Status s = Admit(c, "TraceCertificate", r, kAnyRole); !s.ok()) return s;
  return node_->Trace(r.number());
}

absl::StatusOr<v1::EvidenceBundle> Authority::ExportEvidence(
    const Caller& c, const v1::ExportEvidenceRequest& r) const {
  if (absl::Status s = Admit(c, "ExportEvidence", r, kAnyRole); !s.ok()) return s;
  return node_->ExportEvidence(r.number());
}

absl::StatusOr<v1::ListTrustListsResponse> Authority::ListTrustLists(
    const Caller& c, const v1::ListTrustListsRequest& r) const {
  if (absl::Status s = Admit(c, "ListTrustLists", r, kAnyRole); !s.ok()) return s;
  return node_->ListTrustLists();
}

// ---------------------------------------------------------------- auditor, operator

absl::StatusOr<v1::VerifyLedgerResponse> Authority::VerifyLedger(
    const Caller& c, const v1::VerifyLedgerRequest& r) const {
  if (absl::Status s = Authorize(c, "VerifyLedger", kAuditorOnly); !s.ok()) return s;
  storage::VerifyResult v = node_->VerifyLedger();
  v1::VerifyLedgerResponse resp;
  resp.set_ok(v.ok);
  resp.set_root_hash(v.head.root);
  resp.set_tree_head_size(v.tree_head_size);
  resp.set_entries_checked(v.entries_checked);
  resp.set_head_sequence(v.head.sequence);
  resp.set_head_hash(v.head.hash);
  resp.set_first_bad_sequence(v.first_bad_sequence);
  resp.set_problem(v.problem);
  if (!v.ok) {
    log::Error("ledger_broken",
               {{"entry", std::to_string(v.first_bad_sequence)}, {"problem", v.problem}});
  }
  return resp;
}

absl::StatusOr<v1::ListOutboxResponse> Authority::ListOutbox(const Caller& c,
                                                             const v1::ListOutboxRequest& r) const {
  if (absl::Status s = Admit(c, "ListOutbox", r, kOperatorOrAuditor); !s.ok()) return s;
  const size_t page =
      r.page_size() == 0 ? kDefaultOutboxPage : std::min(r.page_size(), kMaxOutboxPage);
  const absl::Time now = absl::Now();
  v1::ListOutboxResponse resp;
  std::string after = r.page_token();
  // With stuck_only, read on until the page is full or the outbox ends.
  while (static_cast<size_t>(resp.messages_size()) < page) {
    absl::StatusOr<std::vector<v1::OutboxItem>> items = node_->ledger().ListOutbox(after, page);
    if (!items.ok()) return items.status();
    for (const v1::OutboxItem& item : *items) {
      after = item.message_id();
      v1::OutboxSummary m = Summarize(item, now, stuck_after_);
      if (r.stuck_only() && !m.stuck()) continue;
      *resp.add_messages() = std::move(m);
      if (static_cast<size_t>(resp.messages_size()) == page) break;
    }
    if (items->size() < page) return resp;  // the end of the outbox
  }
  resp.set_next_page_token(after);
  return resp;
}

absl::StatusOr<v1::ListPeersResponse> Authority::ListPeers(const Caller& c,
                                                           const v1::ListPeersRequest& r) const {
  if (absl::Status s = Admit(c, "ListPeers", r, kOperatorOrAuditor); !s.ok()) return s;
  absl::StatusOr<std::vector<v1::PeerLog>> logs = node_->ledger().ListPeerLogs();
  if (!logs.ok()) return logs.status();
  std::map<std::string, const v1::PeerLog*> by_code;
  for (const v1::PeerLog& l : *logs) by_code[l.participant()] = &l;
  v1::ListPeersResponse resp;
  for (const v1::Participant& p : node_->trust_list()->proto().participants()) {
    if (p.code() == node_->participant()) continue;
    v1::PeerSummary* s = resp.add_peers();
    s->set_participant(p.code());
    s->set_status(p.status());
    auto it = by_code.find(p.code());
    if (it == by_code.end()) continue;
    const v1::PeerLog& l = *it->second;
    s->set_tree_size(l.tree_size());
    s->set_root_hash(l.root_hash());
    *s->mutable_seen_at() = l.seen_at();
    s->set_inconsistent(l.inconsistent());
    *s->mutable_inconsistent_since() = l.inconsistent_since();
    s->set_problem(l.problem());
  }
  return resp;
}

absl::StatusOr<v1::ReloadResponse> Authority::Reload(const Caller& c,
                                                     const v1::ReloadRequest& r) const {
  if (absl::Status s = Authorize(c, "Reload", kOperator); !s.ok()) return s;
  return hooks_.reload();
}

absl::StatusOr<v1::BackupResponse> Authority::Backup(const Caller& c,
                                                     const v1::BackupRequest& r) const {
  if (absl::Status s = Admit(c, "Backup", r, kOperator); !s.ok()) return s;
  absl::StatusOr<v1::BackupResponse> resp = hooks_.backup(r.directory());
  if (!resp.ok()) return Refused("Backup", c, "", resp.status());
  return resp;
}

absl::StatusOr<v1::PeerSummary> Authority::ResetPeerLog(const Caller& c,
                                                        const v1::ResetPeerLogRequest& r) const {
  if (absl::Status s = Admit(c, "ResetPeerLog", r, kOperator); !s.ok()) return s;
  if (r.reason().empty()) return absl::InvalidArgumentError("a reason is required");
  absl::StatusOr<v1::PeerLog> log =
      node_->ResetPeerLog(r.participant(), absl::StrCat(r.reason(), " (by ", c.name, ")"));
  if (!log.ok()) return Refused("ResetPeerLog", c, r.participant(), log.status());
  v1::PeerSummary resp;
  resp.set_participant(log->participant());
  *resp.mutable_seen_at() = log->seen_at();
  return resp;
}

absl::StatusOr<v1::TrustListRecord> Authority::PublishTrustList(
    const Caller& c, const v1::PublishTrustListRequest& r) const {
  // Not Admit: a trust list's PEM fields are longer than its string bounds;
  // TrustList::FromSigned bounds and checks it.
  if (absl::Status s = Authorize(c, "PublishTrustList", kOperator); !s.ok()) return s;
  absl::StatusOr<v1::TrustListRecord> rec = node_->PublishTrustList(r.trust_list());
  if (!rec.ok()) return Refused("PublishTrustList", c, "", rec.status());
  rec->mutable_signed_list()->clear_trust_list();
  return rec;
}

// ---------------------------------------------------------------- officers

namespace {

v1::OfficerCredentials Credentials(node::OfficerBook::Credentials c) {
  v1::OfficerCredentials out;
  *out.mutable_officer() = std::move(c.officer);
  out.set_password(std::move(c.password));
  out.set_totp_secret(std::move(c.totp_secret_base32));
  out.set_totp_uri(std::move(c.totp_uri));
  return out;
}

}  // namespace

absl::StatusOr<v1::OfficerCredentials> Authority::AddOfficer(const Caller& c,
                                                             const v1::AddOfficerRequest& r) const {
  if (absl::Status s = Admit(c, "AddOfficer", r, kOperator); !s.ok()) return s;
  absl::StatusOr<node::OfficerBook::Credentials> added =
      node_->officers().Add(r.officer(), c.actor());
  if (!added.ok()) return Refused("AddOfficer", c, "", added.status());
  return Credentials(*std::move(added));
}

absl::StatusOr<v1::ListOfficersResponse> Authority::ListOfficers(
    const Caller& c, const v1::ListOfficersRequest& r) const {
  if (absl::Status s = Admit(c, "ListOfficers", r, kOperatorOrAuditor); !s.ok()) return s;
  absl::StatusOr<std::vector<v1::Officer>> all = node_->officers().List();
  if (!all.ok()) return all.status();
  v1::ListOfficersResponse resp;
  for (v1::Officer& o : *all) *resp.add_officers() = std::move(o);
  return resp;
}

absl::StatusOr<v1::Officer> Authority::SetOfficerDisabled(
    const Caller& c, const v1::SetOfficerDisabledRequest& r) const {
  if (absl::Status s = Admit(c, "SetOfficerDisabled", r, kOperator); !s.ok()) return s;
  absl::StatusOr<v1::Officer> o = node_->officers().SetDisabled(r.name(), r.disabled(), c.actor());
  if (!o.ok()) return Refused("SetOfficerDisabled", c, "", o.status());
  return o;
}

absl::StatusOr<v1::OfficerCredentials> Authority::ResetOfficer(
    const Caller& c, const v1::ResetOfficerRequest& r) const {
  if (absl::Status s = Admit(c, "ResetOfficer", r, kOperator); !s.ok()) return s;
  absl::StatusOr<node::OfficerBook::Credentials> reset =
      node_->officers().Reset(r.name(), c.actor());
  if (!reset.ok()) return Refused("ResetOfficer", c, "", reset.status());
  return Credentials(*std::move(reset));
}

}  // namespace kpx::gateway
