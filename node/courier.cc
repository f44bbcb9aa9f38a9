#include "node/courier.h"

#include <atomic>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "node/batch_records.h"
#include "node/config.h"
#include "node/envelope.h"
#include "node/log.h"
#include "node/transitions.h"
#include "node/util.h"

namespace kpx::node {

struct Courier::Attempt {
  enum class Fate { kRecorded, kRetried, kWriteFailed };
  v1::OutboxItem item;
  DeliveryOutcome outcome;
  Fate fate = Fate::kRetried;
};

namespace {

// A peer's refusal of one message: a code gRPC defines (UNKNOWN otherwise)
// and its reason cut to a bound; DeliveryTransition escapes it for the
// ledger, the log escapes its own copy.
absl::Status PeerRefusal(int code, const std::string& error) {
  constexpr size_t kMaxPeerErrorBytes = 2048;
  const auto c = code > 0 && code <= static_cast<int>(absl::StatusCode::kUnauthenticated)
                     ? static_cast<absl::StatusCode>(code)
                     : absl::StatusCode::kUnknown;
  return absl::Status(c, error.substr(0, kMaxPeerErrorBytes));
}

std::vector<DeliveryOutcome> AllFailed(size_t n, const absl::Status& why) {
  return std::vector<DeliveryOutcome>(n, DeliveryOutcome{why, {}});
}

}  // namespace

absl::StatusOr<v1::DeliveryProof> CheckProof(const v1::DeliveryResult& result,
                                             const v1::OutboxItem& item, const SignedTree& head) {
  absl::StatusOr<uint64_t> sequence = CheckReceivedLeaf(result.leaf(), result.inclusion_path(),
                                                        MessageDigest(item.message()), head);
  if (!sequence.ok()) {
    return absl::UnavailableError(absl::StrCat("receipt refused: ", sequence.status().message()));
  }
  v1::DeliveryProof proof;
  *proof.mutable_tree_head() = head.message;
  proof.set_leaf(result.leaf());
  *proof.mutable_inclusion_path() = result.inclusion_path();
  return proof;
}

bool IsStuck(const v1::OutboxItem& item, absl::Time now, absl::Duration stuck_after) {
  return now - FromTimestamp(item.queued_at()) > stuck_after;
}

Courier::Courier(const NodeContext& ctx, Transport* transport, PeerLogs* peer_logs,
                 const v1::DeliveryConfig& delivery, uint64_t seed)
    : ctx_(ctx),
      transport_(transport),
      peer_logs_(peer_logs),
      delivery_(delivery),
      stuck_after_(absl::Hours(delivery.stuck_after_hours())),
      retry_(absl::Milliseconds(delivery.initial_backoff_ms()),
             absl::Milliseconds(delivery.max_backoff_ms()), seed) {}

size_t Courier::DeliverDueTo(const std::string& recipient) {
  absl::StatusOr<std::vector<v1::OutboxItem>> due =
      ctx_.ledger->DueOutboxFor(recipient, ctx_.Now(), delivery_.batch_size());
  if (!due.ok()) {
    log::Error("outbox_read_failed", {{"partner", recipient}, {"reason", due.status().message()}});
    return 0;
  }
  const size_t n = due->size();
  if (n > 0) DeliverBatch(recipient, *std::move(due));
  return n;
}

size_t Courier::DeliverDue() {
  absl::StatusOr<std::vector<std::string>> recipients = ctx_.ledger->OutboxRecipients();
  if (!recipients.ok()) {
    log::Error("outbox_read_failed", {{"reason", recipients.status().message()}});
    return 0;
  }
  std::atomic<size_t> n = 0;
  std::vector<std::thread> threads;
  for (const std::string& r : *recipients) {
    threads.emplace_back([this, &n, r] { n += DeliverDueTo(r); });
  }
  for (std::thread& t : threads) t.join();
  return n;
}

size_t Courier::stuck() const {
  absl::MutexLock l(&mu_);
  return stuck_.size();
}

void Courier::DeliverBatch(const std::string& recipient, std::vector<v1::OutboxItem> items) {
  const absl::Time now = ctx_.Now();
  std::shared_ptr<const TrustList> trust = ctx_.keyring->trust();
  std::optional<SignedTree> head;
  std::vector<DeliveryOutcome> outcomes = Send(recipient, items, *trust, now, head);
  std::vector<Attempt> attempts(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    attempts[i].item = std::move(items[i]);
    attempts[i].outcome = std::move(outcomes[i]);
  }
  const uint32_t backoff_at = NoteExchange(recipient, attempts, now);
  Record(recipient, attempts, head, backoff_at, now);
}

std::vector<DeliveryOutcome> Courier::Send(const std::string& recipient,
                                           const std::vector<v1::OutboxItem>& items,
                                           const TrustList& trust, absl::Time now,
                                           std::optional<SignedTree>& head) {
  if (absl::Status s = trust.CheckActive(recipient, now); !s.ok()) {
    return AllFailed(items.size(), s);
  }
  absl::StatusOr<uint64_t> known = peer_logs_->KnownSize(recipient);
  if (!known.ok()) return AllFailed(items.size(), absl::UnavailableError(known.status().message()));
  v1::DeliverRequest req;
  for (const v1::OutboxItem& it : items) *req.add_messages() = it.message();
  req.set_known_tree_size(*known);
  for (v1::SignedMessage& h : peer_logs_->GossipFor(recipient))
    *req.add_tree_heads() = std::move(h);
  absl::StatusOr<v1::DeliverResponse> resp = transport_->Deliver(recipient, req);
  if (!resp.ok()) return AllFailed(items.size(), resp.status());
  if (resp->results_size() != static_cast<int>(items.size())) {
    return AllFailed(items.size(),
                     absl::UnavailableError("peer answered with a wrong number of results"));
  }
  peer_logs_->NoteGossip(recipient, resp->tree_heads(), now);
  std::vector<DeliveryOutcome> outcomes(items.size());
  absl::Status head_status;
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::DeliveryResult& r = resp->results(static_cast<int>(i));
    if (r.code() != 0) {
      outcomes[i].status = PeerRefusal(r.code(), r.error());
      continue;
    }
    if (!head.has_value() && head_status.ok()) {  // one signature check per exchange
      const std::vector<std::string> path(resp->consistency_path().begin(),
                                          resp->consistency_path().end());
      absl::StatusOr<SignedTree> h =
          peer_logs_->CheckExchange(recipient, *known, resp->tree_head(), path, now);
      // A fork keeps the messages queued (UNAVAILABLE), as any bad receipt.
      if (h.ok())
        head = *std::move(h);
      else
        head_status = absl::UnavailableError(h.status().message());
    }
    if (!head_status.ok()) {
      outcomes[i].status = head_status;
      continue;
    }
    absl::StatusOr<v1::DeliveryProof> proof = CheckProof(r, items[i], *head);
    if (proof.ok())
      outcomes[i].proof = *std::move(proof);
    else
      outcomes[i].status = proof.status();
  }
  return outcomes;
}

uint32_t Courier::NoteExchange(const std::string& recipient, const std::vector<Attempt>& attempts,
                               absl::Time now) {
  bool answered = false;
  for (const Attempt& a : attempts) {
    if (a.outcome.status.ok() || !IsRetryable(a.outcome.status)) answered = true;
  }
  const absl::Status& first = attempts.front().outcome.status;
  uint32_t failures = 0, failed_before = 0;
  bool changed_error = false;
  {
    absl::MutexLock l(&mu_);
    Partner& p = partners_[recipient];
    failed_before = p.failures;
    if (answered) {
      p = Partner();
    } else {
      failures = ++p.failures;
      const std::string error =
          absl::StrCat(absl::StatusCodeToString(first.code()), ": ", first.message());
      changed_error = error != p.last_error;
      p.last_error = error;
    }
  }
  if (answered) {
    if (failed_before == 0) return 0;
    log::Info("partner_reachable",
              {{"partner", recipient}, {"failed_exchanges", std::to_string(failed_before)}});
    ReleaseWaiting(recipient, now);
    return 0;
  }
  if (changed_error) {
    log::Warn("partner_unreachable", {{"partner", recipient},
                                      {"code", absl::StatusCodeToString(first.code())},
                                      {"reason", first.message()},
                                      {"failed_exchanges", std::to_string(failures)}});
  }
  return failures;
}

void Courier::ReleaseWaiting(const std::string& recipient, absl::Time now) {
  // Everything still waiting out a backoff for this partner goes now.
  absl::StatusOr<std::vector<v1::OutboxItem>> waiting =
      ctx_.ledger->DueOutboxFor(recipient, absl::InfiniteFuture(), kMaxDeliveryBatchSize * 4);
  if (!waiting.ok()) {
    log::Error("outbox_read_failed",
               {{"partner", recipient}, {"reason", waiting.status().message()}});
    return;
  }
  std::vector<v1::OutboxItem> due_now;
  for (v1::OutboxItem& item : *waiting) {
    if (FromTimestamp(item.due_at()) <= now) continue;
    *item.mutable_due_at() = ToTimestamp(now);
    due_now.push_back(std::move(item));
  }
  Reschedule(recipient, due_now);
}

void Courier::Record(const std::string& recipient, std::vector<Attempt>& attempts,
                     const std::optional<SignedTree>& head, uint32_t backoff_at, absl::Time now) {
  std::vector<v1::OutboxItem> retries;
  std::vector<std::string> numbers;
  for (const Attempt& a : attempts) numbers.push_back(a.item.certificate_number());
  {
    CertificateLock lock(*ctx_.locks, numbers);
    std::unique_ptr<PeerLogs::Hold> hold = peer_logs_->HoldPeer(recipient);
    std::optional<v1::PeerLog> advanced;
    if (head.has_value()) advanced = AdvancePeerLog(recipient, *head, attempts, now);
    std::vector<storage::Transition> transitions = Plan(attempts, backoff_at, now, retries);
    if (!transitions.empty() && advanced.has_value()) {
      transitions.front().peer_logs.push_back(*std::move(advanced));
    }
    if (!transitions.empty()) {
      absl::StatusOr<std::vector<storage::Head>> heads =
          ctx_.ledger->AppendAll(std::move(transitions));
      if (!heads.ok()) {
        if (Observer* obs = ctx_.observer->get(); obs != nullptr) obs->LedgerWriteFailed("deliver");
        for (Attempt& a : attempts) {
          if (a.fate != Attempt::Fate::kRecorded) continue;
          a.fate = Attempt::Fate::kWriteFailed;
          log::Error("ledger_write_failed", {{"step", "deliver"},
                                             {"message", a.item.message_id()},
                                             {"certificate", a.item.certificate_number()},
                                             {"partner", recipient},
                                             {"reason", heads.status().message()}});
        }
      }
    }
  }
  Reschedule(recipient, retries);
  Report(recipient, attempts, now);
}

std::optional<v1::PeerLog> Courier::AdvancePeerLog(const std::string& recipient,
                                                   const SignedTree& head,
                                                   std::vector<Attempt>& attempts, absl::Time now) {
  absl::StatusOr<std::optional<v1::PeerLog>> advanced = peer_logs_->Advance(recipient, head, now);
  if (advanced.ok()) return *std::move(advanced);
  // Found inconsistent since the exchange was checked: its receipts wait.
  for (Attempt& a : attempts) {
    if (a.outcome.status.ok())
      a.outcome.status = absl::UnavailableError(advanced.status().message());
  }
  return std::nullopt;
}

std::vector<storage::Transition> Courier::Plan(std::vector<Attempt>& attempts, uint32_t backoff_at,
                                               absl::Time now,
                                               std::vector<v1::OutboxItem>& retries) {
  BatchRecords records(ctx_.ledger);
  std::vector<storage::Transition> transitions;
  for (Attempt& a : attempts) {
    const absl::Status& st = a.outcome.status;
    if (!st.ok() && IsRetryable(st)) {
      retries.push_back(Retry(a.item, st, backoff_at, now));
      continue;
    }
    absl::StatusOr<storage::Transition> t = Finish(a, records, now);
    if (!t.ok()) {
      // Recording the outcome without its record change would leave the
      // certificate's queue stuck: keep the item queued instead (the peer
      // answers the resend with its original receipt).
      a.outcome.status = t.status();
      retries.push_back(Retry(a.item, a.outcome.status, 0, now));
      continue;
    }
    if (t->record.has_value()) records.Set(a.item.certificate_number(), *t->record);
    a.fate = Attempt::Fate::kRecorded;
    transitions.push_back(*std::move(t));
  }
  return transitions;
}

absl::StatusOr<storage::Transition> Courier::Finish(const Attempt& a, BatchRecords& records,
                                                    absl::Time now) {
  const std::string& number = a.item.certificate_number();
  absl::StatusOr<const v1::CertificateRecord*> r = records.Get(number);
  if (!r.ok()) {
    return absl::UnavailableError(
        absl::StrCat("reading certificate ", number, ": ", r.status().message()));
  }
  std::optional<v1::CertificateRecord> rec;
  std::optional<v1::OutboxItem> next;
  if (*r != nullptr) {
    rec = **r;
    if (const std::string* next_id = QueuedAfter(*rec, a.item.message_id()); next_id != nullptr) {
      absl::StatusOr<std::optional<v1::OutboxItem>> n = ctx_.ledger->GetOutboxItem(*next_id);
      if (!n.ok()) {
        return absl::UnavailableError(
            absl::StrCat("reading queued message ", *next_id, ": ", n.status().message()));
      }
      next = *std::move(n);
    }
  }
  return DeliveryTransition(a.item, a.outcome.status, a.outcome.proof, std::move(rec),
                            std::move(next), now);
}

v1::OutboxItem Courier::Retry(const v1::OutboxItem& item, const absl::Status& why,
                              uint32_t backoff_at, absl::Time now) {
  v1::OutboxItem next = item;
  next.set_attempts(item.attempts() + 1);
  next.set_last_error(std::string(why.message()));
  const uint32_t n = backoff_at > 0 ? backoff_at : next.attempts();
  *next.mutable_due_at() = ToTimestamp(now + retry_.Backoff(n));
  NoteStuck(next, now);
  return next;
}

void Courier::Reschedule(const std::string& recipient, const std::vector<v1::OutboxItem>& retries) {
  if (retries.empty()) return;
  // One synced batch for every retry of this pass. Should it fail, the
  // items stay due and are tried again on the next pass.
  if (absl::Status s = ctx_.ledger->RescheduleOutboxAll(retries); !s.ok()) {
    if (Observer* obs = ctx_.observer->get(); obs != nullptr) obs->LedgerWriteFailed("reschedule");
    for (const v1::OutboxItem& item : retries) {
      log::Error("ledger_write_failed", {{"step", "reschedule"},
                                         {"message", item.message_id()},
                                         {"certificate", item.certificate_number()},
                                         {"partner", recipient},
                                         {"reason", s.message()}});
    }
  }
}

void Courier::Report(const std::string& recipient, const std::vector<Attempt>& attempts,
                     absl::Time now) {
  Observer* obs = ctx_.observer->get();
  for (const Attempt& a : attempts) {
    if (a.fate == Attempt::Fate::kWriteFailed) continue;  // logged as such
    const absl::Status& st = a.outcome.status;
    const std::string attempt = std::to_string(a.item.attempts() + 1);
    if (st.ok()) {
      log::Info("delivered", {{"message", a.item.message_id()},
                              {"certificate", a.item.certificate_number()},
                              {"partner", recipient},
                              {"attempt", attempt}});
      v1::MessageBody sent;
      const bool parsed = sent.ParseFromString(a.item.message().body());
      if (obs != nullptr) {
        obs->Delivered(recipient, parsed ? v1::MessageKind_Name(sent.header().kind()) : "UNPARSED",
                       now - FromTimestamp(a.item.queued_at()));
      }
      continue;
    }
    // Retryable failures are summed up per partner (NoteExchange), not
    // logged per attempt; a permanent refusal is final and logged.
    if (a.fate != Attempt::Fate::kRecorded) continue;
    log::Warn("delivery_refused", {{"message", a.item.message_id()},
                                   {"certificate", a.item.certificate_number()},
                                   {"partner", recipient},
                                   {"attempt", attempt},
                                   {"code", absl::StatusCodeToString(st.code())},
                                   {"reason", st.message()}});
    if (obs != nullptr) obs->DeliveryRefused(recipient, st.code());
  }
  for (const Attempt& a : attempts) {
    if (a.fate == Attempt::Fate::kRecorded) NoteGone(a.item.message_id());
  }
}

void Courier::NoteStuck(const v1::OutboxItem& item, absl::Time now) {
  if (!IsStuck(item, now, stuck_after_)) return;
  const absl::Duration age = now - FromTimestamp(item.queued_at());
  bool first = false;
  {
    absl::MutexLock l(&mu_);
    first = stuck_.insert(item.message_id()).second;
  }
  if (!first) return;
  log::Error("delivery_stuck", {{"message", item.message_id()},
                                {"certificate", item.certificate_number()},
                                {"partner", item.recipient()},
                                {"queued_days", std::to_string(age / absl::Hours(24))},
                                {"attempts", std::to_string(item.attempts())},
                                {"last_error", item.last_error()}});
}

void Courier::NoteGone(const std::string& message_id) {
  absl::MutexLock l(&mu_);
  stuck_.erase(message_id);
}

}  // namespace kpx::node
