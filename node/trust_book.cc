#include "node/trust_book.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "node/log.h"
#include "node/trust_chain.h"
#include "node/util.h"

namespace kpx::node {
namespace {

constexpr size_t kMaxRefusedDigests = 64;
constexpr absl::Duration kMaxPollBackoff = absl::Minutes(30);
constexpr size_t kMaxListed = 10000;

bool SameContent(const TrustList& a, const TrustList& b) {
  return a.digest() == b.digest() ||
         google::protobuf::util::MessageDifferencer::Equals(a.proto(), b.proto());
}

absl::Status Refuse(absl::string_view why) { return absl::FailedPreconditionError(why); }

}  // namespace

TrustBook::TrustBook(const NodeContext& ctx, Transport* transport, absl::Duration poll_interval,
                     std::function<void(const TrustList&)> on_change)
    : ctx_(ctx),
      transport_(transport),
      poll_interval_(poll_interval),
      on_change_(std::move(on_change)) {}

absl::Status TrustBook::Open() {
  std::shared_ptr<const TrustList> file = ctx_.keyring->trust();
  absl::StatusOr<std::optional<v1::TrustListRecord>> stored = ctx_.ledger->LatestTrustList();
  if (!stored.ok()) return stored.status();
  absl::MutexLock l(&mu_);
  if (!stored->has_value()) return Record(file, "bootstrap", nullptr).status();
  if (absl::Status s = CheckRecorded(**stored); !s.ok()) return s;
  absl::StatusOr<std::shared_ptr<const TrustList>> kept =
      TrustList::FromSigned((*stored)->signed_list());
  if (!kept.ok()) {
    return absl::DataLossError(absl::StrCat("the trust-list version in force (",
                                            (*stored)->version(),
                                            ") does not load: ", kept.status().message()));
  }
  ctx_.keyring->SetTrust(*kept);
  absl::StatusOr<Take> take = Decide(**kept, *file);
  if (!take.ok()) {
    log::Error("trust_list_file_refused", {{"version", std::to_string(file->version())},
                                           {"in_force", std::to_string((*kept)->version())},
                                           {"reason", take.status().message()}});
    return absl::OkStatus();
  }
  if (*take == Take::kKeep) return absl::OkStatus();
  return Record(file, "operator", nullptr).status();
}

absl::Status TrustBook::CheckRecorded(const v1::TrustListRecord& record) const {
  absl::StatusOr<std::vector<v1::LedgerEntry>> entry =
      ctx_.ledger->ReadEntries(record.sequence(), 1);
  if (!entry.ok()) return entry.status();
  if (entry->size() != 1 || entry->front().kind() != v1::TRUST_LIST_INSTALLED ||
      !google::protobuf::util::MessageDifferencer::Equals(entry->front().trust_list(),
                                                          record.signed_list())) {
    return absl::DataLossError(absl::StrCat("the trust-list version in force (", record.version(),
                                            ") is not the one ledger entry ", record.sequence(),
                                            " recorded"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrustBook::Take> TrustBook::Decide(const TrustList& current,
                                                  const TrustList& list) const {
  if (!current.governed() && !SameContent(current, list)) {
    return Take::kInstall;  // managed by hand, as before signed lists
  }
  return FollowsSigned(current, list);
}

absl::StatusOr<TrustBook::Take> TrustBook::FollowsSigned(const TrustList& current,
                                                         const TrustList& list) {
  if (SameContent(current, list)) return Take::kKeep;
  if (list.version() < current.version()) return Take::kKeep;  // the node has moved on
  if (list.version() == current.version()) {
    return Refuse(absl::StrCat("trust-list version ", list.version(), " differs from the version ",
                               current.version(), " in force"));
  }
  if (absl::Status s = CheckSuccessor(current, list); !s.ok()) return s;
  return Take::kInstall;
}

absl::Status TrustBook::Install(std::shared_ptr<const TrustList> list,
                                std::vector<crypto::PrivateKey> keys) {
  absl::ReleasableMutexLock l(&mu_);
  std::shared_ptr<const TrustList> current = ctx_.keyring->trust();
  absl::StatusOr<Take> take = Decide(*current, *list);
  if (!take.ok()) return take.status();
  if (*take == Take::kKeep) {
    if (list->version() < current->version()) {
      log::Info("trust_list_file_older", {{"version", std::to_string(list->version())},
                                          {"in_force", std::to_string(current->version())}});
    }
    return ctx_.keyring->Replace(current, std::move(keys), ctx_.Now());
  }
  if (absl::Status s = ctx_.keyring->CheckKeys(*list, keys, ctx_.Now()); !s.ok()) return s;
  absl::StatusOr<v1::TrustListRecord> r = Record(list, "operator", &keys);
  if (!r.ok()) return r.status();
  l.Release();
  Changed(*list);
  return absl::OkStatus();
}

absl::StatusOr<v1::TrustListRecord> TrustBook::Publish(const v1::SignedTrustList& signed_list) {
  absl::StatusOr<std::shared_ptr<const TrustList>> list = TrustList::FromSigned(signed_list);
  if (!list.ok()) return list.status();
  absl::ReleasableMutexLock l(&mu_);
  std::shared_ptr<const TrustList> current = ctx_.keyring->trust();
  if (SameContent(*current, **list)) {
    return Refuse(absl::StrCat("trust-list version ", current->version(), " is in force already"));
  }
  if (absl::Status s = CheckSuccessor(*current, **list); !s.ok()) return s;
  absl::StatusOr<v1::TrustListRecord> r = Record(*list, "operator (published)", nullptr);
  if (!r.ok()) return r.status();
  l.Release();
  Changed(**list);
  return r;
}

absl::StatusOr<v1::TrustListRecord> TrustBook::Record(std::shared_ptr<const TrustList> list,
                                                      const std::string& source,
                                                      const std::vector<crypto::PrivateKey>* keys) {
  const absl::Time now = ctx_.Now();
  v1::TrustListRecord record;
  record.set_version(list->version());
  *record.mutable_signed_list() = list->signed_list();
  *record.mutable_installed_at() = ToTimestamp(now);
  record.set_source(source);
  storage::Transition t;
  t.entry.set_kind(v1::TRUST_LIST_INSTALLED);
  *t.entry.mutable_recorded_at() = ToTimestamp(now);
  t.entry.set_detail(absl::StrCat("trust-list version ", list->version(), " (", list->digest(),
                                  ") from ", source));
  *t.entry.mutable_trust_list() = list->signed_list();
  t.trust_list = record;
  absl::StatusOr<storage::Head> head = ctx_.ledger->Append(std::move(t));
  if (!head.ok()) return head.status();
  record.set_sequence(head->sequence);
  if (keys != nullptr) {
    if (absl::Status s = ctx_.keyring->Replace(list, *keys, now); !s.ok()) return s;
  } else {
    ctx_.keyring->SetTrust(list);
  }
  log::Info("trust_list_installed", {{"version", std::to_string(list->version())},
                                     {"digest", list->digest()},
                                     {"source", source}});
  if (absl::Status s = list->CheckActive(ctx_.participant, now); !s.ok()) {
    log::Error("this_node_not_active",
               {{"version", std::to_string(list->version())}, {"reason", s.message()}});
  } else if (absl::StatusOr<Signer> signer = ctx_.keyring->SignerAt(now); !signer.ok()) {
    log::Error("no_valid_signing_key", {{"version", std::to_string(list->version())},
                                        {"reason", signer.status().message()}});
  }
  return record;
}

void TrustBook::Changed(const TrustList& list) const {
  if (on_change_) on_change_(list);
}

absl::Status TrustBook::OfferOne(const std::string& peer, const v1::SignedTrustList& signed_list) {
  absl::StatusOr<std::shared_ptr<const TrustList>> list = TrustList::FromSigned(signed_list);
  if (!list.ok()) {
    NoteRefusal(peer, nullptr, list.status());
    return list.status();
  }
  absl::ReleasableMutexLock l(&mu_);
  absl::StatusOr<Take> take = FollowsSigned(*ctx_.keyring->trust(), **list);
  if (!take.ok()) {
    l.Release();
    NoteRefusal(peer, list->get(), take.status());
    return take.status();
  }
  if (*take == Take::kKeep) return absl::OkStatus();  // nothing new
  absl::StatusOr<v1::TrustListRecord> r = Record(*list, absl::StrCat("peer ", peer), nullptr);
  if (!r.ok()) {
    log::Error("ledger_write_failed", {{"step", "trust_list"}, {"reason", r.status().message()}});
    if (Observer* o = ctx_.observer->get()) o->LedgerWriteFailed("trust_list");
    return r.status();
  }
  l.Release();
  Changed(**list);
  return absl::OkStatus();
}

void TrustBook::NoteRefusal(const std::string& peer, const TrustList* list,
                            const absl::Status& why) {
  // Logged once per peer and version: a peer that spoils a version cannot
  // silence the report of another peer offering it.
  const std::string digest = absl::StrCat(peer, " ", list != nullptr ? list->digest() : "unparsed");
  const std::string version = list != nullptr ? std::to_string(list->version()) : "?";
  absl::MutexLock l(&poll_mu_);
  ++refused_;
  last_refused_ = absl::StrCat("version ", version, " from ", peer, " at ",
                               FormatRfc3339(ctx_.Now()), ": ", why.message());
  if (refused_digests_.size() >= kMaxRefusedDigests) refused_digests_.clear();  // bounded
  if (!refused_digests_.insert(digest).second) return;                          // logged already
  log::Error("trust_list_refused",
             {{"partner", peer}, {"version", version}, {"reason", why.message()}});
}

size_t TrustBook::Offer(const std::string& peer, const v1::GetTrustListsResponse& response) {
  size_t installed = 0;
  for (int i = 0; i < response.versions_size() && i < static_cast<int>(kMaxVersionsPerAnswer);
       ++i) {
    const uint64_t before = ctx_.keyring->trust()->version();
    if (!OfferOne(peer, response.versions(i)).ok()) break;
    if (ctx_.keyring->trust()->version() != before) ++installed;
  }
  return installed;
}

size_t TrustBook::Poll() {
  std::shared_ptr<const TrustList> current = ctx_.keyring->trust();
  if (!current->governed()) return 0;  // nothing a peer sends could be checked
  size_t installed = 0;
  for (const v1::Participant& p : current->proto().participants()) {
    if (p.code() == ctx_.participant) continue;
    const absl::Time now = ctx_.Now();
    {
      absl::MutexLock l(&poll_mu_);
      if (now < polls_[p.code()].next) continue;
    }
    v1::GetTrustListsRequest request;
    request.set_after_version(ctx_.keyring->trust()->version());
    absl::StatusOr<v1::GetTrustListsResponse> response =
        transport_->GetTrustLists(p.code(), request);
    {
      absl::MutexLock l(&poll_mu_);
      PeerPoll& poll = polls_[p.code()];
      poll.failures = response.ok() ? 0 : std::min(poll.failures + 1, 16);
      const absl::Duration wait =
          response.ok() ? poll_interval_
                        : std::min(poll_interval_ * (int64_t{1} << poll.failures), kMaxPollBackoff);
      poll.next = now + wait;
    }
    if (response.ok()) installed += Offer(p.code(), *response);
  }
  return installed;
}

absl::StatusOr<v1::GetTrustListsResponse> TrustBook::Since(uint64_t after_version) const {
  absl::StatusOr<std::vector<v1::TrustListRecord>> records =
      after_version == UINT64_MAX
          ? absl::StatusOr<std::vector<v1::TrustListRecord>>(std::vector<v1::TrustListRecord>{})
          : ctx_.ledger->ListTrustLists(after_version + 1, 4 * kMaxVersionsPerAnswer);
  if (!records.ok()) return records.status();
  v1::GetTrustListsResponse response;
  size_t bytes = 0;
  for (size_t i = 0; i < records->size(); ++i) {
    const v1::TrustListRecord& r = (*records)[i];
    // The last record of each version is the one that was in force.
    if (i + 1 < records->size() && (*records)[i + 1].version() == r.version()) continue;
    bytes += r.signed_list().ByteSizeLong();
    if (response.versions_size() == kMaxVersionsPerAnswer ||
        (bytes > kMaxBytesPerAnswer && response.versions_size() > 0)) {
      break;
    }
    *response.add_versions() = r.signed_list();
  }
  return response;
}

absl::StatusOr<v1::ListTrustListsResponse> TrustBook::List() const {
  v1::ListTrustListsResponse response;
  absl::StatusOr<std::vector<v1::TrustListRecord>> records =
      ctx_.ledger->ListTrustLists(0, kMaxListed);
  if (!records.ok()) return records.status();
  for (v1::TrustListRecord& r : *records) *response.add_versions() = std::move(r);
  for (int i = 0; i + 1 < response.versions_size(); ++i) {
    response.mutable_versions(i)->mutable_signed_list()->clear_trust_list();
  }
  absl::MutexLock l(&poll_mu_);
  response.set_last_refused(last_refused_);
  return response;
}

uint64_t TrustBook::refused_count() const {
  absl::MutexLock l(&poll_mu_);
  return refused_;
}

}  // namespace kpx::node
