#include "gateway/services.h"

#include <malloc.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gateway/status.h"
#include "gateway/tls.h"
#include "node/bounds.h"
#include "node/config.h"
#include "node/courier.h"
#include "node/log.h"
#include "node/text.h"
#include "node/util.h"

namespace kpx::gateway {
namespace {

// What senders are told to stay within (delivery.batch_size is cut to it).
constexpr int kMaxMessagesPerDeliver = static_cast<int>(node::kMaxDeliveryBatchSize);
constexpr uint32_t kDefaultOutboxPage = 100;
// Ledger entries a Watch or export holds at once: entries can be large
// (a certificate of up to 256 KiB, and what refers to it), so few.
constexpr size_t kEntriesPerRead = 8;
constexpr uint32_t kMaxOutboxPage = 1000;
const std::set<v1::Role> kExporter = {v1::EXPORTER};
const std::set<v1::Role> kImporter = {v1::IMPORTER};
const std::set<v1::Role> kAuditor = {v1::AUDITOR};
const std::set<v1::Role> kOperator = {v1::OPERATOR};
const std::set<v1::Role> kOperatorOrAuditor = {v1::OPERATOR, v1::AUDITOR};
const std::set<v1::Role> kAnyRole = {v1::EXPORTER, v1::IMPORTER, v1::AUDITOR, v1::OPERATOR};

// Logs a refused authority call and turns it into the gRPC status.
grpc::Status Refused(const char* verb, const std::string& who, const std::string& number,
                     const absl::Status& s) {
  log::Warn("authority_refused", {{"verb", verb},
                                  {"client", who},
                                  {"certificate", number},
                                  {"code", absl::StatusCodeToString(s.code())},
                                  {"reason", s.message()}});
  return ToGrpc(s);
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

grpc::Status Answer(const char* verb, const std::string& who, const std::string& number,
                    absl::StatusOr<v1::CertificateRecord> rec, v1::CertificateRecord* resp) {
  if (!rec.ok()) return Refused(verb, who, number, rec.status());
  log::Info("authority", {{"verb", verb},
                          {"client", who},
                          {"certificate", number},
                          {"partner", rec->partner()},
                          {"state", v1::CertificateState_Name(rec->state())}});
  *resp = *std::move(rec);
  return grpc::Status::OK;
}

// Returns free heap memory to the system: when `now_idle`, else at most
// once a second (it walks every malloc arena).
void TrimHeap(bool now_idle) {
  static absl::Mutex mu(absl::kConstInit);
  static absl::Time last = absl::InfinitePast();
  {
    absl::MutexLock l(&mu);
    const absl::Time now = absl::Now();
    if (!now_idle && now - last < absl::Seconds(1)) return;
    last = now;
  }
  ::malloc_trim(0);
}

}  // namespace

// ---------------------------------------------------------------- peers

absl::StatusOr<std::string> PeerServiceImpl::Identify(grpc::ServerContext& ctx) const {
  absl::StatusOr<std::string> peer =
      node_->trust_list()->IdentifyPeer(PeerCertificatePem(ctx), absl::Now());
  if (!peer.ok()) {
    log::Warn("peer_refused", {{"from", ctx.peer()}, {"reason", peer.status().message()}});
  }
  return peer;
}

grpc::Status PeerServiceImpl::Deliver(grpc::ServerContext* ctx, const v1::DeliverRequest* req,
                                      v1::DeliverResponse* resp) {
  absl::StatusOr<std::string> peer = Identify(*ctx);
  if (!peer.ok()) return ToGrpc(peer.status());
  if (req->messages_size() > kMaxMessagesPerDeliver) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("at most ", kMaxMessagesPerDeliver, " messages per call"));
  }
  *resp = node_->Exchange(*peer, *req);
  for (int i = 0; i < resp->results_size(); ++i) {
    const v1::DeliveryResult& r = resp->results(i);
    if (r.code() == 0) continue;
    // The message id is not yet trusted: log what the peer proved (its
    // identity) and what it claimed (the signer).
    log::Warn("message_refused",
              {{"partner", *peer},
               {"signer", node::Printable(req->messages(i).signer(), 32)},
               {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(r.code()))},
               {"reason", r.error()}});
  }
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::GetConsistency(grpc::ServerContext* ctx,
                                             const v1::ConsistencyRequest* req,
                                             v1::ConsistencyResponse* resp) {
  absl::StatusOr<std::string> peer = Identify(*ctx);
  if (!peer.ok()) return ToGrpc(peer.status());
  absl::StatusOr<v1::ConsistencyResponse> r = node_->Consistency(*peer, *req);
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::GetTrustLists(grpc::ServerContext* ctx,
                                            const v1::GetTrustListsRequest* req,
                                            v1::GetTrustListsResponse* resp) {
  absl::StatusOr<std::string> peer = Identify(*ctx);
  if (!peer.ok()) return ToGrpc(peer.status());
  absl::StatusOr<v1::GetTrustListsResponse> r = node_->TrustLists(*peer, *req);
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

// ---------------------------------------------------------------- authorities

AuthorityServiceImpl::AuthorityServiceImpl(node::Node* node, const v1::NodeConfig& config,
                                           OperatorHooks hooks)
    : node_(node),
      hooks_(std::move(hooks)),
      // The node's delivery settings, with their defaults applied.
      stuck_after_(absl::Hours(node->delivery().stuck_after_hours())),
      max_watch_streams_(static_cast<int>(config.limits().max_watch_streams())),
      max_watch_streams_per_client_(
          static_cast<int>(config.limits().max_watch_streams_per_client())) {
  for (const v1::AuthorityClient& c : config.authority_clients()) {
    for (int r : c.roles()) roles_[c.common_name()].insert(static_cast<v1::Role>(r));
  }
}

grpc::Status AuthorityServiceImpl::Authorize(const grpc::ServerContext& ctx, const char* verb,
                                             std::set<v1::Role> allowed, std::string* who) const {
  absl::StatusOr<std::string> cn = PeerCommonName(ctx);
  if (!cn.ok()) {
    log::Warn("authority_refused",
              {{"verb", verb}, {"from", ctx.peer()}, {"reason", cn.status().message()}});
    return ToGrpc(cn.status());
  }
  *who = *std::move(cn);
  auto it = roles_.find(*who);
  if (it != roles_.end()) {
    for (v1::Role r : it->second) {
      if (allowed.count(r)) return grpc::Status::OK;
    }
  }
  std::vector<std::string> held;
  if (it != roles_.end()) {
    for (v1::Role r : it->second) held.push_back(v1::Role_Name(r));
  }
  const std::string why = absl::StrCat(
      "client '", node::Printable(*who, 128),
      "' (roles: ", held.empty() ? "none" : absl::StrJoin(held, ","), ") may not call ", verb);
  log::Warn("authority_refused", {{"verb", verb}, {"client", *who}, {"reason", why}});
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, why);
}

grpc::Status AuthorityServiceImpl::Admit(const grpc::ServerContext& ctx, const char* verb,
                                         const google::protobuf::Message& request,
                                         std::set<v1::Role> allowed, std::string* who) const {
  if (grpc::Status s = Authorize(ctx, verb, std::move(allowed), who); !s.ok()) return s;
  if (absl::Status s = node::CheckBounds(request); !s.ok()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat(verb, ": ", s.message()));
  }
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::SubmitCertificate(grpc::ServerContext* ctx,
                                                     const v1::SubmitCertificateRequest* req,
                                                     v1::CertificateRecord* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "SubmitCertificate", *req, kExporter, &who); !s.ok()) return s;
  return Answer("SubmitCertificate", who, req->certificate().number(),
                node_->Submit(req->certificate(), req->request_id()), resp);
}

grpc::Status AuthorityServiceImpl::CancelCertificate(grpc::ServerContext* ctx,
                                                     const v1::CancelCertificateRequest* req,
                                                     v1::CertificateRecord* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "CancelCertificate", *req, kExporter, &who); !s.ok()) return s;
  return Answer(
      "CancelCertificate", who, req->number(),
      node_->Cancel(req->number(), {req->reason_code(), req->reason()}, req->request_id()), resp);
}

grpc::Status AuthorityServiceImpl::AmendCertificate(grpc::ServerContext* ctx,
                                                    const v1::AmendCertificateRequest* req,
                                                    v1::CertificateRecord* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "AmendCertificate", *req, kExporter, &who); !s.ok()) return s;
  if (req->certificate().number() != req->number()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "amendment: the certificate's number must be the one amended");
  }
  return Answer(
      "AmendCertificate", who, req->number(),
      node_->Amend(req->certificate(), {req->reason_code(), req->reason()}, req->request_id()),
      resp);
}

grpc::Status AuthorityServiceImpl::ResendCertificate(grpc::ServerContext* ctx,
                                                     const v1::ResendCertificateRequest* req,
                                                     v1::CertificateRecord* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "ResendCertificate", *req, kExporter, &who); !s.ok()) return s;
  std::optional<v1::Certificate> corrected;
  if (req->has_certificate()) corrected = req->certificate();
  return Answer("ResendCertificate", who, req->number(),
                node_->Resend(req->number(), std::move(corrected), req->request_id()), resp);
}

grpc::Status AuthorityServiceImpl::VoidCertificate(grpc::ServerContext* ctx,
                                                   const v1::VoidCertificateRequest* req,
                                                   v1::CertificateRecord* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "VoidCertificate", *req, kExporter, &who); !s.ok()) return s;
  return Answer("VoidCertificate", who, req->number(),
                node_->Void(req->number(), {req->reason_code(), req->reason()}, req->request_id()),
                resp);
}

grpc::Status AuthorityServiceImpl::TraceCertificate(grpc::ServerContext* ctx,
                                                    const v1::TraceCertificateRequest* req,
                                                    v1::TraceCertificateResponse* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "TraceCertificate", *req, kAnyRole, &who); !s.ok()) return s;
  absl::StatusOr<v1::TraceCertificateResponse> trace = node_->Trace(req->number());
  if (!trace.ok()) return ToGrpc(trace.status());
  *resp = *std::move(trace);
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::ExportEvidence(grpc::ServerContext* ctx,
                                                  const v1::ExportEvidenceRequest* req,
                                                  v1::EvidenceBundle* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "ExportEvidence", *req, kAnyRole, &who); !s.ok()) return s;
  absl::StatusOr<v1::EvidenceBundle> bundle = node_->ExportEvidence(req->number());
  if (!bundle.ok()) return ToGrpc(bundle.status());
  *resp = *std::move(bundle);
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::ConfirmReceipt(grpc::ServerContext* ctx,
                                                  const v1::ConfirmReceiptRequest* req,
                                                  v1::CertificateRecord* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "ConfirmReceipt", *req, kImporter, &who); !s.ok()) return s;
  absl::Time at = node::IsSet(req->received_at()) ? node::FromTimestamp(req->received_at())
                                                  : absl::InfinitePast();
  v1::ImportFindings findings = req->findings();
  if (findings.official().empty()) findings.set_official(who);  // the officer's client name
  return Answer("ConfirmReceipt", who, req->number(),
                node_->Confirm(req->number(), findings, at, req->request_id()), resp);
}

grpc::Status AuthorityServiceImpl::RejectShipment(grpc::ServerContext* ctx,
                                                  const v1::RejectShipmentRequest* req,
                                                  v1::CertificateRecord* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "RejectShipment", *req, kImporter, &who); !s.ok()) return s;
  return Answer(
      "RejectShipment", who, req->number(),
      node_->Reject(req->number(), {req->reason_code(), req->reason()}, req->request_id()), resp);
}

grpc::Status AuthorityServiceImpl::GetCertificate(grpc::ServerContext* ctx,
                                                  const v1::GetCertificateRequest* req,
                                                  v1::CertificateRecord* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "GetCertificate", *req, kAnyRole, &who); !s.ok()) return s;
  absl::StatusOr<v1::CertificateRecord> rec = node_->Get(req->number());
  if (!rec.ok()) return ToGrpc(rec.status());
  *resp = *std::move(rec);
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::ListCertificates(grpc::ServerContext* ctx,
                                                    const v1::ListCertificatesRequest* req,
                                                    v1::ListCertificatesResponse* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "ListCertificates", *req, kAnyRole, &who); !s.ok()) return s;
  absl::StatusOr<v1::ListCertificatesResponse> list = node_->List(*req);
  if (!list.ok()) return ToGrpc(list.status());
  *resp = *std::move(list);
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::Stream(grpc::ServerContext* ctx, uint64_t from, bool follow,
                                          grpc::ServerWriter<v1::LedgerEntry>* writer) {
  storage::Ledger& ledger = node_->ledger();
  uint64_t next = std::max<uint64_t>(from, 1);
  const uint64_t end = ledger.head().sequence;  // for a one-shot export
  while (!ctx->IsCancelled() && !stopping_) {
    absl::StatusOr<std::vector<v1::LedgerEntry>> entries =
        ledger.ReadEntries(next, kEntriesPerRead);
    if (!entries.ok()) return ToGrpc(entries.status());
    for (const v1::LedgerEntry& e : *entries) {
      if (!follow && e.sequence() > end) return grpc::Status::OK;
      if (!writer->Write(e)) return grpc::Status::OK;  // client went away
      next = e.sequence() + 1;
    }
    if (!entries->empty()) continue;
    if (!follow) return grpc::Status::OK;
    // Wake at least twice a second to notice cancellation and shutdown.
    ledger.WaitForSequence(next, absl::Now() + absl::Milliseconds(500));
  }
  return ctx->IsCancelled() ? grpc::Status::CANCELLED
                            : grpc::Status(grpc::StatusCode::UNAVAILABLE, "node stopping");
}

grpc::Status AuthorityServiceImpl::TakeWatchSlot(const std::string& who) {
  absl::MutexLock l(&watch_mu_);
  int& mine = watching_by_client_[who];
  std::string why;
  if (mine >= max_watch_streams_per_client_) {
    why = absl::StrCat("client '", who, "' already has ", mine,
                       " Watch streams open (limits.max_watch_streams_per_client)");
  } else if (watching_ >= max_watch_streams_) {
    why = absl::StrCat("the node already serves ", watching_,
                       " Watch streams (limits.max_watch_streams)");
  }
  if (!why.empty()) {
    if (mine == 0) watching_by_client_.erase(who);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, why + "; try again later");
  }
  ++mine;
  ++watching_;
  return grpc::Status::OK;
}

void AuthorityServiceImpl::ReturnWatchSlot(const std::string& who) {
  bool idle;
  {
    absl::MutexLock l(&watch_mu_);
    idle = --watching_ == 0;
    if (--watching_by_client_[who] == 0) watching_by_client_.erase(who);
  }
  // What a stream's thread allocated sits in its malloc arena after it
  // ends; hand the free pages back to the system.
  TrimHeap(idle);
}

grpc::Status AuthorityServiceImpl::Watch(grpc::ServerContext* ctx, const v1::WatchRequest* req,
                                         grpc::ServerWriter<v1::LedgerEntry>* writer) {
  std::string who;
  if (grpc::Status s = Authorize(*ctx, "Watch", kAnyRole, &who); !s.ok()) return s;
  if (grpc::Status s = TakeWatchSlot(who); !s.ok()) {
    log::Warn("authority_refused",
              {{"verb", "Watch"}, {"client", who}, {"reason", s.error_message()}});
    return s;
  }
  grpc::Status result = Stream(ctx, req->from_sequence(), /*follow=*/true, writer);
  ReturnWatchSlot(who);
  return result;
}

grpc::Status AuthorityServiceImpl::ExportLedger(grpc::ServerContext* ctx,
                                                const v1::ExportLedgerRequest* req,
                                                grpc::ServerWriter<v1::LedgerEntry>* writer) {
  std::string who;
  if (grpc::Status s = Authorize(*ctx, "ExportLedger", kAuditor, &who); !s.ok()) return s;
  return Stream(ctx, req->from_sequence(), /*follow=*/false, writer);
}

grpc::Status AuthorityServiceImpl::VerifyLedger(grpc::ServerContext* ctx,
                                                const v1::VerifyLedgerRequest* req,
                                                v1::VerifyLedgerResponse* resp) {
  std::string who;
  if (grpc::Status s = Authorize(*ctx, "VerifyLedger", kAuditor, &who); !s.ok()) return s;
  storage::VerifyResult r = node_->VerifyLedger();
  resp->set_ok(r.ok);
  resp->set_root_hash(r.head.root);
  resp->set_tree_head_size(r.tree_head_size);
  resp->set_entries_checked(r.entries_checked);
  resp->set_head_sequence(r.head.sequence);
  resp->set_head_hash(r.head.hash);
  resp->set_first_bad_sequence(r.first_bad_sequence);
  resp->set_problem(r.problem);
  if (!r.ok) {
    log::Error("ledger_broken",
               {{"entry", std::to_string(r.first_bad_sequence)}, {"problem", r.problem}});
  }
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::Reload(grpc::ServerContext* ctx, const v1::ReloadRequest* req,
                                          v1::ReloadResponse* resp) {
  std::string who;
  if (grpc::Status s = Authorize(*ctx, "Reload", kOperator, &who); !s.ok()) return s;
  absl::StatusOr<v1::ReloadResponse> r = hooks_.reload();
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::Backup(grpc::ServerContext* ctx, const v1::BackupRequest* req,
                                          v1::BackupResponse* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "Backup", *req, kOperator, &who); !s.ok()) return s;
  absl::StatusOr<v1::BackupResponse> r = hooks_.backup(req->directory());
  if (!r.ok()) return Refused("Backup", who, "", r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::ListOutbox(grpc::ServerContext* ctx,
                                              const v1::ListOutboxRequest* req,
                                              v1::ListOutboxResponse* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "ListOutbox", *req, kOperatorOrAuditor, &who); !s.ok()) return s;
  const size_t page =
      req->page_size() == 0 ? kDefaultOutboxPage : std::min(req->page_size(), kMaxOutboxPage);
  const absl::Time now = absl::Now();
  std::string after = req->page_token();
  // With stuck_only, read on until the page is full or the outbox ends.
  while (static_cast<size_t>(resp->messages_size()) < page) {
    absl::StatusOr<std::vector<v1::OutboxItem>> items = node_->ledger().ListOutbox(after, page);
    if (!items.ok()) return ToGrpc(items.status());
    for (const v1::OutboxItem& item : *items) {
      after = item.message_id();
      v1::OutboxSummary m = Summarize(item, now, stuck_after_);
      if (req->stuck_only() && !m.stuck()) continue;
      *resp->add_messages() = std::move(m);
      if (static_cast<size_t>(resp->messages_size()) == page) break;
    }
    if (items->size() < page) return grpc::Status::OK;  // the end of the outbox
  }
  resp->set_next_page_token(after);
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::ResetPeerLog(grpc::ServerContext* ctx,
                                                const v1::ResetPeerLogRequest* req,
                                                v1::PeerSummary* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "ResetPeerLog", *req, kOperator, &who); !s.ok()) return s;
  if (req->reason().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a reason is required");
  }
  absl::StatusOr<v1::PeerLog> log =
      node_->ResetPeerLog(req->participant(), absl::StrCat(req->reason(), " (by ", who, ")"));
  if (!log.ok()) return Refused("ResetPeerLog", who, req->participant(), log.status());
  resp->set_participant(log->participant());
  *resp->mutable_seen_at() = log->seen_at();
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::ListPeers(grpc::ServerContext* ctx,
                                             const v1::ListPeersRequest* req,
                                             v1::ListPeersResponse* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "ListPeers", *req, kOperatorOrAuditor, &who); !s.ok()) return s;
  absl::StatusOr<std::vector<v1::PeerLog>> logs = node_->ledger().ListPeerLogs();
  if (!logs.ok()) return ToGrpc(logs.status());
  std::map<std::string, const v1::PeerLog*> by_code;
  for (const v1::PeerLog& l : *logs) by_code[l.participant()] = &l;
  for (const v1::Participant& p : node_->trust_list()->proto().participants()) {
    if (p.code() == node_->participant()) continue;
    v1::PeerSummary* s = resp->add_peers();
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
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::PublishTrustList(grpc::ServerContext* ctx,
                                                    const v1::PublishTrustListRequest* req,
                                                    v1::TrustListRecord* resp) {
  std::string who;
  // Not Admit: a trust list's PEM fields are longer than its string bounds;
  // TrustList::FromSigned bounds and checks it.
  if (grpc::Status s = Authorize(*ctx, "PublishTrustList", kOperator, &who); !s.ok()) return s;
  absl::StatusOr<v1::TrustListRecord> r = node_->PublishTrustList(req->trust_list());
  if (!r.ok()) return Refused("PublishTrustList", who, "", r.status());
  *resp = *std::move(r);
  resp->mutable_signed_list()->clear_trust_list();
  return grpc::Status::OK;
}

grpc::Status AuthorityServiceImpl::ListTrustLists(grpc::ServerContext* ctx,
                                                  const v1::ListTrustListsRequest* req,
                                                  v1::ListTrustListsResponse* resp) {
  std::string who;
  if (grpc::Status s = Admit(*ctx, "ListTrustLists", *req, kAnyRole, &who); !s.ok()) return s;
  absl::StatusOr<v1::ListTrustListsResponse> r = node_->ListTrustLists();
  if (!r.ok()) return ToGrpc(r.status());
  *resp = *std::move(r);
  return grpc::Status::OK;
}

}  // namespace kpx::gateway
