// kpx::node::TrustBook: the trust-list versions this node put in force,
// and how a newer one comes into force.
//
// Every version in force is recorded in the ledger (a TRUST_LIST_INSTALLED
// entry and its TrustListRecord, one synced batch) before the keyring uses
// it, so evidence signed years ago is checked with the keys valid then.
// A version comes from one of three places:
//   - the operator's trust_list_file, at start and on reload (Install). The
//     first one is the bootstrap. While the version in force names no
//     publishers, the file replaces it as before signed lists; once it
//     does, the file is taken only if it is the next signed version (an
//     older file is ignored: the node has moved on without it);
//   - an operator's PublishTrustList (Publish): the next signed version;
//   - a peer (Poll asks each peer every poll interval with GetTrustLists;
//     Offer checks what it answers): the next signed version, put in force
//     with no operator. Anything else a peer offers is refused, logged
//     once per version, counted, and kept as last_refused.
//
// Thread safety: every method may be called from any thread; changes are
// serialized by one mutex, held across the ledger write.
#ifndef KPX_NODE_TRUST_BOOK_H_
#define KPX_NODE_TRUST_BOOK_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/service.pb.h"
#include "node/context.h"
#include "node/transport.h"
#include "node/trust_list.h"

namespace kpx::node {

class TrustBook {
 public:
  // What GetTrustLists answers with at most.
  static constexpr size_t kMaxVersionsPerAnswer = 8;
  static constexpr size_t kMaxBytesPerAnswer = size_t{3} << 20;  // under gRPC's 4 MiB

  // `on_change`, if set, is called with each version put in force, after
  // the keyring has it, on the thread that put it there (no lock held).
  TrustBook(const NodeContext& ctx, Transport* transport, absl::Duration poll_interval,
            std::function<void(const TrustList&)> on_change);

  // At start, with the operator's list in the keyring: records it as the
  // bootstrap on a ledger holding no version; otherwise puts the stored
  // version in force and then takes the operator's list as Install would
  // (a refusal is logged, and the stored version stays). Fails if the
  // ledger cannot be read or written, or (DataLoss) if the stored version
  // is not the one its TRUST_LIST_INSTALLED entry recorded.
  absl::Status Open();

  // The operator's list, with the node's signing keys (a reload): puts
  // `list` in force if it may follow the version in force (see above),
  // keeps that version if `list` is older (a governed list) or the same,
  // and swaps the keys either way. FailedPrecondition, changing nothing,
  // if `list` may not follow, or if no key would be valid.
  absl::Status Install(std::shared_ptr<const TrustList> list, std::vector<crypto::PrivateKey> keys);

  // An operator publishes the next signed version here.
  absl::StatusOr<v1::TrustListRecord> Publish(const v1::SignedTrustList& signed_list);

  // What `peer` answered to GetTrustLists; puts each next signed version
  // in force in turn. Returns how many; the first refusal ends it.
  size_t Offer(const std::string& peer, const v1::GetTrustListsResponse& response);

  // Asks every peer on the list whose poll is due for newer versions (a
  // peer that fails is asked again after a doubling delay, at most 30
  // minutes). Returns how many versions came into force.
  size_t Poll();

  // GetTrustLists: the versions after `after_version`, oldest first.
  absl::StatusOr<v1::GetTrustListsResponse> Since(uint64_t after_version) const;
  // ListTrustLists.
  absl::StatusOr<v1::ListTrustListsResponse> List() const;
  // Versions peers offered that were refused since start.
  uint64_t refused_count() const;

 private:
  enum class Take { kKeep, kInstall };
  // DataLoss unless `record` is what its ledger entry recorded: the
  // `trust` family is an index, the hash-chained entry is the evidence.
  absl::Status CheckRecorded(const v1::TrustListRecord& record) const;
  // What to do with the operator's `list` given `current`: a hand-managed
  // `current` takes any other list; otherwise FollowsSigned.
  absl::StatusOr<Take> Decide(const TrustList& current, const TrustList& list) const;
  // The rule for a list that names publishers (and for every version a
  // peer offers): the same or an older one is kept, the same version with
  // other content refused, a newer one taken only if CheckSuccessor.
  static absl::StatusOr<Take> FollowsSigned(const TrustList& current, const TrustList& list);
  // Records `list` in the ledger and puts it in force (with `keys` if set).
  absl::StatusOr<v1::TrustListRecord> Record(std::shared_ptr<const TrustList> list,
                                             const std::string& source,
                                             const std::vector<crypto::PrivateKey>* keys)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A peer's version: installed, skipped (not newer) or refused.
  absl::Status OfferOne(const std::string& peer, const v1::SignedTrustList& signed_list);
  void NoteRefusal(const std::string& peer, const TrustList* list, const absl::Status& why);
  void Changed(const TrustList& list) const;

  const NodeContext& ctx_;
  Transport* const transport_;
  const absl::Duration poll_interval_;
  const std::function<void(const TrustList&)> on_change_;

  absl::Mutex mu_;  // held while a version is decided, written and put in force

  struct PeerPoll {
    absl::Time next = absl::InfinitePast();
    int failures = 0;
  };
  mutable absl::Mutex poll_mu_;
  std::map<std::string, PeerPoll> polls_ ABSL_GUARDED_BY(poll_mu_);
  uint64_t refused_ ABSL_GUARDED_BY(poll_mu_) = 0;
  std::string last_refused_ ABSL_GUARDED_BY(poll_mu_);
  std::set<std::string> refused_digests_ ABSL_GUARDED_BY(poll_mu_);  // logged once each
};

}  // namespace kpx::node

#endif  // KPX_NODE_TRUST_BOOK_H_
