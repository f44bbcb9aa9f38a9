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

absl::Status CheckReceipt(const v1::SignedMessage& receipt, const v1::OutboxItem& item,
                          const std::string& recipient, const TrustList& trust, absl::Time now) {
  absl::StatusOr<v1::MessageBody> rb = VerifyMessage(receipt, recipient, trust, now);
  if (!rb.ok()) {
    return absl::UnavailableError(absl::StrCat("receipt refused: ", rb.status().message()));
  }
  if (!rb->has_receipt() || rb->receipt().message_id() != item.message_id() ||
      rb->receipt().message_digest() != MessageDigest(item.message())) {
    return absl::UnavailableError("receipt does not match the message");
  }
  return absl::OkStatus();
}

bool IsStuck(const v1::OutboxItem& item, absl::Time now, absl::Duration stuck_after) {
  return now - FromTimestamp(item.queued_at()) > stuck_after;
}

Courier::Courier(const NodeContext& ctx, Transport* transport, const v1::DeliveryConfig& delivery,
                 uint64_t seed)
    : ctx_(ctx),
      transport_(transport),
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
  std::vector<DeliveryOutcome> outcomes = Send(recipient, items, *trust, now);
  std::vector<Attempt> attempts(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    attempts[i].item = std::move(items[i]);
    attempts[i].outcome = std::move(outcomes[i]);
  }
  const uint32_t backoff_at = NoteExchange(recipient, attempts, now);
  Record(recipient, attempts, backoff_at, now);
}

std::vector<DeliveryOutcome> Courier::Send(const std::string& recipient,
                                           const std::vector<v1::OutboxItem>& items,
                                           const TrustList& trust, absl::Time now) {
  if (absl::Status s = trust.CheckActive(recipient, now); !s.ok()) {
    return std::vector<DeliveryOutcome>(items.size(), {s, {}});
  }
  std::vector<v1::SignedMessage> msgs;
  msgs.reserve(items.size());
  for (const v1::OutboxItem& it : items) msgs.push_back(it.message());
  std::vector<DeliveryOutcome> outcomes = transport_->Deliver(recipient, msgs);
  if (outcomes.size() != items.size()) {
    return std::vector<DeliveryOutcome>(
        items.size(),
        {absl::UnavailableError("transport returned a wrong number of outcomes"), {}});
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (!outcomes[i].status.ok()) continue;
    outcomes[i].status = CheckReceipt(outcomes[i].receipt, items[i], recipient, trust, now);
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
                     uint32_t backoff_at, absl::Time now) {
  std::vector<v1::OutboxItem> retries;
  std::vector<std::string> numbers;
  for (const Attempt& a : attempts) numbers.push_back(a.item.certificate_number());
  {
    CertificateLock lock(*ctx_.locks, numbers);
    std::vector<storage::Transition> transitions = Plan(attempts, backoff_at, now, retries);
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
  return DeliveryTransition(a.item, a.outcome.status, a.outcome.receipt, std::move(rec),
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
