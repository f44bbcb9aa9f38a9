// The federation trust list: who the Participants are, where their nodes
// listen, which TLS CA and which signing keys are theirs, whether they are
// active and how far onboarded, and which publishers may sign the next
// version (node/trust_chain.h checks that). Loaded from protobuf text
// format: a kpx.v1.TrustList (installed by hand) or a kpx.v1.SignedTrustList
// (as published, with its signatures).
//
// A TrustList is immutable once built (but for an internal cache of
// verified peer certificates); share it as
// std::shared_ptr<const TrustList> and swap the pointer to reload.
#ifndef KPX_NODE_TRUST_LIST_H_
#define KPX_NODE_TRUST_LIST_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "kpx/v1/config.pb.h"

namespace re2 {
class RE2;
}

namespace kpx::node {

class TrustList {
 public:
  static constexpr size_t kMaxTrustListBytes = size_t{2} << 20;

  // Parses and checks a trust list: codes well-formed and unique, every
  // key's PEM parses and matches its key_id and algorithm, every CA parses,
  // offices well-formed and unique per Participant, every number_pattern
  // compiles (RE2), import policies name only real statement wordings.
  // Publishers: at most 16, named, keys parse and match their ids, ids
  // unique, 1 <= threshold <= publishers (threshold 0 when there are none).
  // Onboarding: valid directions and certificate types.
  static absl::StatusOr<std::shared_ptr<const TrustList>> FromProto(v1::TrustList proto);
  // The same for a published version: its bytes (at most
  // kMaxTrustListBytes) must parse, with no field this build does not
  // know, and are kept, with the signatures, as given.
  // The signatures are not checked here (trust_chain.h does).
  static absl::StatusOr<std::shared_ptr<const TrustList>> FromSigned(
      v1::SignedTrustList signed_list);
  // A text-format TrustList, or a text-format SignedTrustList.
  static absl::StatusOr<std::shared_ptr<const TrustList>> FromTextFile(const std::string& path);

  const v1::TrustList& proto() const { return proto_; }
  uint64_t version() const { return proto_.version(); }
  // The version as published (a list built FromProto: its serialization,
  // with no signatures).
  const v1::SignedTrustList& signed_list() const { return signed_; }
  // Hex SHA-256 of signed_list().trust_list(): names this exact version.
  const std::string& digest() const { return digest_; }
  // True if it names publishers: only a version they sign may follow it.
  bool governed() const { return !proto_.publishers().empty(); }
  // The publisher with key id `key_id`, or nullptr.
  const v1::TrustListPublisher* FindPublisher(const std::string& key_id) const;

  // nullptr when `code` is not on the list.
  const v1::Participant* Find(const std::string& code) const;

  // The compiled number_pattern of Participant `code`; nullptr when it has
  // none (or is not on the list). RE2 matching is thread-safe.
  const re2::RE2* NumberPattern(const std::string& code) const;

  // OK if `code` is on the list and active at `at`; PermissionDenied naming
  // the reason (unknown, suspended) otherwise.
  absl::Status CheckActive(const std::string& code, absl::Time at) const;
  // Onboarding (Participant.onboarding): OK if `exporter` may send, and
  // `importer` receive, a certificate of `type` at `at` (both live by
  // then); FailedPrecondition naming what is not live yet otherwise.
  // PermissionDenied unless both are on the list.
  absl::Status CheckOnboarded(const std::string& exporter, const std::string& importer,
                              v1::CertificateType type, absl::Time at) const;

  // True if `a` or `b` runs paper certificates in parallel (onboarding).
  bool PaperInParallel(const std::string& a, const std::string& b) const;

  // The signing key `key_id` of Participant `code` if it was valid at `at`
  // (at or after not_before, before not_after and before revoked_at);
  // Unauthenticated otherwise.
  absl::StatusOr<crypto::PublicKey> FindKey(const std::string& code, const std::string& key_id,
                                            absl::Time at) const;

  // Which Participant a peer's TLS certificate belongs to: the one whose CA
  // it chains to and whose node name (ServerName) is its Common Name.
  // PermissionDenied if none (or more than one) matches.
  absl::StatusOr<std::string> IdentifyPeer(const std::string& cert_pem, absl::Time now) const;

  // Every Participant's TLS CA, concatenated: the root bundle a peer
  // listener accepts client certificates from.
  std::string AllCasPem() const;

 private:
  struct Key {
    v1::SigningKey proto;
    crypto::PublicKey key;
  };
  explicit TrustList(v1::TrustList proto) : proto_(std::move(proto)) {}
  absl::Status CheckPublishers() const;

  struct KnownPeer {
    std::string code;
    absl::Time until;  // the certificate's not_after
  };
  static constexpr size_t kPeerCacheSize = 1024;

  v1::TrustList proto_;
  v1::SignedTrustList signed_;
  std::string digest_;
  std::map<std::string, const v1::Participant*> by_code_;
  mutable absl::Mutex peer_cache_mu_;
  // Peer certificate PEM -> who it proved to be under this list.
  mutable std::map<std::string, KnownPeer> peer_cache_ ABSL_GUARDED_BY(peer_cache_mu_);
  std::map<std::pair<std::string, std::string>, Key> keys_;  // (code, key id)
  std::map<std::string, std::shared_ptr<const re2::RE2>> number_patterns_;
};

// The TLS name of a Participant's node: tls_server_name, or by default
// "node.<code in lower case>.kpx".
std::string ServerName(const v1::Participant& p);

// True for ISO 3166-1 alpha-2 shaped codes ("BW") and "EU".
bool IsParticipantCode(const std::string& code);

// True for office codes: 1 to 16 characters of [A-Z0-9-].
bool IsOfficeCode(const std::string& code);

// The office `code` of `p`, or nullptr.
const v1::Office* FindOffice(const v1::Participant& p, const std::string& code);

// "ANR, PRG" (the codes of p's offices), or "none".
std::string OfficeCodes(const v1::Participant& p);

}  // namespace kpx::node

#endif  // KPX_NODE_TRUST_LIST_H_
