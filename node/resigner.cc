#include "node/resigner.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/certificate_locks.h"
#include "node/envelope.h"
#include "node/log.h"
#include "node/util.h"

namespace kpx::node {
namespace {

constexpr size_t kPage = 256;

// The earliest not_after or revoked_at of `participant`'s keys after `now`
// (InfiniteFuture if none).
absl::Time NextWithdrawal(const TrustList& trust, const std::string& participant, absl::Time now) {
  absl::Time next = absl::InfiniteFuture();
  const v1::Participant* p = trust.Find(participant);
  if (p == nullptr) return next;
  for (const v1::SigningKey& k : p->signing_keys()) {
    for (const auto* at : {&k.not_after(), &k.revoked_at()}) {
      if (IsSet(*at) && FromTimestamp(*at) > now) next = std::min(next, FromTimestamp(*at));
    }
  }
  return next;
}

// Why `item`'s key may no longer sign at `now` (empty if it still may).
std::string Withdrawn(const TrustList& trust, const std::string& participant,
                      const v1::OutboxItem& item, absl::Time now) {
  absl::StatusOr<crypto::PublicKey> key = trust.FindKey(participant, item.message().key_id(), now);
  return key.ok() ? std::string() : std::string(key.status().message());
}

}  // namespace

Resigner::Resigner(const NodeContext& ctx, std::function<void(const std::string&)> kick)
    : ctx_(ctx), kick_(std::move(kick)) {}

bool Resigner::Due(const std::shared_ptr<const TrustList>& trust, absl::Time now) {
  if (trust != seen_trust_ || now >= next_withdrawal_) {
    seen_trust_ = trust;
    next_withdrawal_ = NextWithdrawal(*trust, ctx_.participant, now);
    passes_owed_ = 2;  // this one, and one after it
  }
  if (passes_owed_ == 0) return false;
  --passes_owed_;
  return true;
}

size_t Resigner::Pass() {
  absl::MutexLock l(&mu_);
  if (!Due(ctx_.keyring->trust(), ctx_.Now())) return 0;
  absl::StatusOr<size_t> n = Walk();
  if (n.ok()) return *n;
  failures_.fetch_add(1);
  passes_owed_ = std::max(passes_owed_, 1);  // try again next time
  log::Error("resign_failed", {{"reason", n.status().message()}});
  return 0;
}

absl::StatusOr<size_t> Resigner::ResignWithdrawn() {
  absl::MutexLock l(&mu_);
  return Walk();
}

absl::StatusOr<size_t> Resigner::Walk() {
  size_t total = 0;
  std::string after;
  for (bool done = false; !done;) {
    absl::StatusOr<size_t> n = ResignPage(after, done);
    if (!n.ok()) return n.status();
    total += *n;
  }
  return total;
}

absl::StatusOr<size_t> Resigner::ResignPage(std::string& after, bool& done) {
  absl::StatusOr<std::vector<v1::OutboxItem>> page = ctx_.ledger->ListOutbox(after, kPage);
  if (!page.ok()) return page.status();
  done = page->size() < kPage;
  if (page->empty()) return 0;
  after = page->back().message_id();
  const std::shared_ptr<const TrustList> trust = ctx_.keyring->trust();
  const absl::Time now = ctx_.Now();
  std::vector<Resigned> resigned;
  std::optional<Signer> signer;  // the current key, once one item needs it
  for (v1::OutboxItem& item : *page) {
    std::string why = Withdrawn(*trust, ctx_.participant, item, now);
    if (why.empty()) continue;
    if (!signer.has_value()) {
      absl::StatusOr<Signer> current = ctx_.keyring->SignerAt(now);
      if (!current.ok()) return current.status();
      signer = *std::move(current);
    }
    absl::StatusOr<v1::SignedMessage> msg = signer->Resign(item.message(), now);
    if (!msg.ok()) return msg.status();
    resigned.push_back({std::move(item), *std::move(msg), std::move(why)});
  }
  if (resigned.empty()) return 0;
  return Write(resigned, now);
}

absl::StatusOr<size_t> Resigner::Write(const std::vector<Resigned>& items, absl::Time now) {
  std::vector<std::string> numbers;
  for (const Resigned& r : items) numbers.push_back(r.queued.certificate_number());
  std::sort(numbers.begin(), numbers.end());
  numbers.erase(std::unique(numbers.begin(), numbers.end()), numbers.end());
  std::set<std::string> recipients;
  size_t n = 0;
  {
    CertificateLock lock(*ctx_.locks, numbers);
    std::vector<storage::Transition> transitions;
    for (const Resigned& r : items) {
      absl::StatusOr<std::optional<v1::OutboxItem>> current =
          ctx_.ledger->GetOutboxItem(r.queued.message_id());
      if (!current.ok()) return current.status();
      // Delivered meanwhile, or signed again by another pass: leave it.
      if (!current->has_value() || (*current)->message().key_id() != r.queued.message().key_id() ||
          (*current)->message().signature() != r.queued.message().signature()) {
        continue;
      }
      transitions.push_back(MakeTransition(**current, r, now));
      recipients.insert(r.queued.recipient());
    }
    n = transitions.size();
    if (n == 0) return 0;
    absl::StatusOr<std::vector<storage::Head>> heads =
        ctx_.ledger->AppendAll(std::move(transitions));
    if (!heads.ok()) {
      if (Observer* obs = ctx_.observer->get(); obs != nullptr) obs->LedgerWriteFailed("resign");
      return heads.status();
    }
  }
  resigned_.fetch_add(n);
  log::Info("messages_resigned",
            {{"count", std::to_string(n)}, {"partners", absl::StrJoin(recipients, ",")}});
  for (const std::string& r : recipients) kick_(r);
  return n;
}

storage::Transition Resigner::MakeTransition(v1::OutboxItem current, const Resigned& r,
                                             absl::Time now) {
  const std::string detail =
      absl::StrCat("signed again with key ", r.message.key_id(), ": ", r.why);
  // What the courier wrote since the page was read (attempts, due) stays.
  *current.mutable_message() = r.message;
  current.set_last_error(detail);
  storage::Transition t;
  t.entry.set_kind(v1::RESIGNED);
  *t.entry.mutable_recorded_at() = ToTimestamp(now);
  t.entry.set_certificate_number(current.certificate_number());
  t.entry.set_partner(current.recipient());
  t.entry.set_message_id(current.message_id());
  *t.entry.mutable_message() = r.message;
  t.entry.set_detail(detail);
  t.outbox_delete.push_back(current.message_id());
  t.outbox_put.push_back(std::move(current));
  return t;
}

}  // namespace kpx::node
