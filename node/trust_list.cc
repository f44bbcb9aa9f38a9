#include "node/trust_list.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/bounds.h"
#include "node/util.h"
#include "re2/re2.h"

namespace kpx::node {

bool IsParticipantCode(const std::string& code) {
  return code.size() == 2 && absl::ascii_isupper(code[0]) && absl::ascii_isupper(code[1]);
}

bool IsOfficeCode(const std::string& code) {
  if (code.empty() || code.size() > 16) return false;
  for (char c : code) {
    if (!absl::ascii_isupper(c) && !absl::ascii_isdigit(c) && c != '-') return false;
  }
  return true;
}

const v1::Office* FindOffice(const v1::Participant& p, const std::string& code) {
  for (const v1::Office& o : p.offices()) {
    if (o.code() == code) return &o;
  }
  return nullptr;
}

std::string OfficeCodes(const v1::Participant& p) {
  if (p.offices().empty()) return "none";
  return absl::StrJoin(p.offices(), ", ",
                       [](std::string* out, const v1::Office& o) { out->append(o.code()); });
}

namespace {

constexpr size_t kMaxOffices = 64;
constexpr size_t kMaxOfficeNameBytes = 512;
constexpr size_t kMaxNumberPatternBytes = 256;
constexpr int kMaxPublishers = 16;
constexpr size_t kMaxPublisherNameBytes = 128;

absl::Status Bad(const v1::Participant& p, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("trust list: participant ", p.code(), " ", what));
}

absl::Status CheckOffices(const v1::Participant& p) {
  if (p.offices_size() > static_cast<int>(kMaxOffices)) {
    return Bad(p, absl::StrCat("lists more than ", kMaxOffices, " offices"));
  }
  std::set<std::string> seen;
  for (const v1::Office& o : p.offices()) {
    if (!IsOfficeCode(o.code())) {
      return Bad(p, absl::StrCat("office code '", o.code().substr(0, 32),
                                 "' must be 1 to 16 characters of A-Z, 0-9, '-'"));
    }
    if (!seen.insert(o.code()).second) {
      return Bad(p, absl::StrCat("lists office ", o.code(), " twice"));
    }
    if (o.name().empty() || o.name().size() > kMaxOfficeNameBytes) {
      return Bad(p, absl::StrCat("office ", o.code(), " needs a name of at most ",
                                 kMaxOfficeNameBytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPolicyFields(const v1::Participant& p) {
  for (int w : p.import_policy().accepted_statements()) {
    if (w == v1::STATEMENT_WORDING_UNSPECIFIED || !v1::StatementWording_IsValid(w)) {
      return Bad(p, absl::StrCat("import_policy.accepted_statements has no wording ", w));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckOnboarding(const v1::Participant& p) {
  const v1::Onboarding& o = p.onboarding();
  if (!v1::Directions_IsValid(o.directions())) {
    return Bad(p, absl::StrCat("onboarding.directions has no value ", o.directions()));
  }
  for (int t : o.accepted_types()) {
    if (t == v1::CERTIFICATE_TYPE_UNSPECIFIED || !v1::CertificateType_IsValid(t)) {
      return Bad(p, absl::StrCat("onboarding.accepted_types has no type ", t));
    }
  }
  return absl::OkStatus();
}

// The compiled pattern (nullptr when there is none) or why it is refused.
absl::StatusOr<std::shared_ptr<const re2::RE2>> CompilePattern(const v1::Participant& p) {
  if (p.number_pattern().empty()) return nullptr;
  if (p.number_pattern().size() > kMaxNumberPatternBytes) {
    return Bad(p, absl::StrCat("number_pattern is longer than ", kMaxNumberPatternBytes, " bytes"));
  }
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<const re2::RE2>(p.number_pattern(), options);
  if (!re->ok()) {
    return Bad(p, absl::StrCat("number_pattern '", p.number_pattern(),
                               "' does not compile: ", re->error()));
  }
  return re;
}

crypto::Algorithm ToCrypto(v1::SignatureAlgorithm a) {
  return a == v1::ECDSA_P256_SHA256 ? crypto::Algorithm::kEcdsaP256 : crypto::Algorithm::kEd25519;
}

}  // namespace

absl::Status TrustList::CheckPublishers() const {
  const auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("trust list: ", what));
  };
  if (proto_.publishers_size() > kMaxPublishers) {
    return bad(absl::StrCat("names more than ", kMaxPublishers, " publishers"));
  }
  std::set<std::string> ids;
  for (const v1::TrustListPublisher& pub : proto_.publishers()) {
    if (pub.name().empty() || pub.name().size() > kMaxPublisherNameBytes) {
      return bad(absl::StrCat("publisher ", pub.key_id().substr(0, 16), " needs a name of 1 to ",
                              kMaxPublisherNameBytes, " bytes"));
    }
    absl::StatusOr<crypto::PublicKey> key = crypto::PublicKey::FromPem(pub.public_key_pem());
    if (!key.ok()) return bad(absl::StrCat("publisher ", pub.name(), ": ", key.status().message()));
    if (key->key_id() != pub.key_id() || key->algorithm() != ToCrypto(pub.algorithm()) ||
        pub.algorithm() == v1::SIGNATURE_ALGORITHM_UNSPECIFIED) {
      return bad(absl::StrCat("publisher ", pub.name(),
                              ": key_id or algorithm does not match its public key (",
                              key->key_id(), ")"));
    }
    if (!ids.insert(pub.key_id()).second) {
      return bad(absl::StrCat("publisher key ", pub.key_id(), " listed twice"));
    }
  }
  const uint32_t n = static_cast<uint32_t>(proto_.publishers_size());
  if (n == 0 ? proto_.threshold() != 0 : (proto_.threshold() < 1 || proto_.threshold() > n)) {
    return bad(absl::StrCat("threshold ", proto_.threshold(), " for ", n,
                            " publishers; it must be 1 to the number of publishers (0 if none)"));
  }
  return absl::OkStatus();
}

const v1::TrustListPublisher* TrustList::FindPublisher(const std::string& key_id) const {
  for (const v1::TrustListPublisher& pub : proto_.publishers()) {
    if (pub.key_id() == key_id) return &pub;
  }
  return nullptr;
}

absl::StatusOr<std::shared_ptr<const TrustList>> TrustList::FromProto(v1::TrustList proto) {
  std::shared_ptr<TrustList> list(new TrustList(std::move(proto)));
  list->signed_.set_trust_list(list->proto_.SerializeAsString());
  list->digest_ = crypto::HexEncode(crypto::Sha256(list->signed_.trust_list()));
  if (absl::Status s = list->CheckPublishers(); !s.ok()) return s;
  for (const v1::Participant& p : list->proto_.participants()) {
    if (!IsParticipantCode(p.code())) {
      return absl::InvalidArgumentError(
          absl::StrCat("trust list: bad participant code '", p.code(), "'"));
    }
    if (!list->by_code_.emplace(p.code(), &p).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("trust list: participant ", p.code(), " listed twice"));
    }
    if (p.status() == v1::PARTICIPANT_STATUS_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat("trust list: participant ", p.code(), " has no status"));
    }
    if (absl::Status s = CheckOffices(p); !s.ok()) return s;
    if (absl::Status s = CheckPolicyFields(p); !s.ok()) return s;
    if (absl::Status s = CheckOnboarding(p); !s.ok()) return s;
    absl::StatusOr<std::shared_ptr<const re2::RE2>> pattern = CompilePattern(p);
    if (!pattern.ok()) return pattern.status();
    if (*pattern != nullptr) list->number_patterns_.emplace(p.code(), *std::move(pattern));
    if (!p.tls_ca_pem().empty()) {
      absl::StatusOr<crypto::CertificateInfo> ca = crypto::ParseCertificatePem(p.tls_ca_pem());
      if (!ca.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("trust list: participant ", p.code(),
                                                       " tls_ca_pem: ", ca.status().message()));
      }
    }
    for (const v1::SigningKey& k : p.signing_keys()) {
      absl::StatusOr<crypto::PublicKey> key = crypto::PublicKey::FromPem(k.public_key_pem());
      if (!key.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("trust list: ", p.code(), " key ",
                                                       k.key_id(), ": ", key.status().message()));
      }
      if (key->key_id() != k.key_id()) {
        return absl::InvalidArgumentError(
            absl::StrCat("trust list: ", p.code(), " key_id ", k.key_id(),
                         " does not match its public key (", key->key_id(), ")"));
      }
      if (key->algorithm() != ToCrypto(k.algorithm()) ||
          k.algorithm() == v1::SIGNATURE_ALGORITHM_UNSPECIFIED) {
        return absl::InvalidArgumentError(absl::StrCat(
            "trust list: ", p.code(), " key ", k.key_id(), ": algorithm does not match the key"));
      }
      list->keys_.emplace(std::make_pair(p.code(), k.key_id()), Key{k, *std::move(key)});
    }
  }
  return std::shared_ptr<const TrustList>(std::move(list));
}

absl::StatusOr<std::shared_ptr<const TrustList>> TrustList::FromSigned(
    v1::SignedTrustList signed_list) {
  if (signed_list.trust_list().size() > kMaxTrustListBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("trust list: larger than ", kMaxTrustListBytes >> 20, " MiB"));
  }
  v1::TrustList proto;
  if (!proto.ParseFromString(signed_list.trust_list())) {
    return absl::InvalidArgumentError("trust list: the published bytes do not parse");
  }
  if (absl::Status s = CheckNoUnknownFields(proto); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("trust list: ", s.message()));
  }
  absl::StatusOr<std::shared_ptr<const TrustList>> list = FromProto(std::move(proto));
  if (!list.ok()) return list.status();
  // Built here, so the const_cast touches nothing shared yet.
  auto* mutable_list = const_cast<TrustList*>(list->get());
  mutable_list->signed_ = std::move(signed_list);
  mutable_list->digest_ = crypto::HexEncode(crypto::Sha256(mutable_list->signed_.trust_list()));
  return list;
}

absl::StatusOr<std::shared_ptr<const TrustList>> TrustList::FromTextFile(const std::string& path) {
  absl::StatusOr<std::string> text = crypto::ReadFile(path);
  if (!text.ok()) return text.status();
  const std::string what = absl::StrCat("trust list ", path);
  v1::TrustList proto;
  absl::Status as_list = ParseTextProto(*text, what, &proto);
  if (as_list.ok()) return FromProto(std::move(proto));
  v1::SignedTrustList signed_list;
  if (ParseTextProto(*text, what, &signed_list).ok() && !signed_list.trust_list().empty()) {
    return FromSigned(std::move(signed_list));
  }
  return as_list;  // neither: the error as a plain list, the usual kind
}

const v1::Participant* TrustList::Find(const std::string& code) const {
  auto it = by_code_.find(code);
  return it == by_code_.end() ? nullptr : it->second;
}

const re2::RE2* TrustList::NumberPattern(const std::string& code) const {
  auto it = number_patterns_.find(code);
  return it == number_patterns_.end() ? nullptr : it->second.get();
}

absl::Status TrustList::CheckActive(const std::string& code, absl::Time at) const {
  const v1::Participant* p = Find(code);
  if (p == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat(code.empty() ? "(none)" : code, " is not a Participant on the trust list"));
  }
  if (p->status() == v1::SUSPENDED &&
      (!IsSet(p->suspended_from()) || at >= FromTimestamp(p->suspended_from()))) {
    return absl::PermissionDeniedError(absl::StrCat("Participant ", code, " is suspended"));
  }
  return absl::OkStatus();
}

absl::Status TrustList::CheckOnboarded(const std::string& exporter, const std::string& importer,
                                       v1::CertificateType type, absl::Time at) const {
  const v1::Participant* from = Find(exporter);
  const v1::Participant* to = Find(importer);
  if (from == nullptr || to == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(from == nullptr ? exporter : importer,
                                                    " is not a Participant on the trust list"));
  }
  for (const v1::Participant* p : {from, to}) {
    const v1::Onboarding& o = p->onboarding();
    if (IsSet(o.live_from()) && at < FromTimestamp(o.live_from())) {
      return absl::FailedPreconditionError(absl::StrCat(
          p->code(), " is live on kpx only from ", FormatRfc3339(FromTimestamp(o.live_from()))));
    }
  }
  if (from->onboarding().directions() == v1::RECEIVES_ONLY) {
    return absl::FailedPreconditionError(
        absl::StrCat(exporter, " is onboarded to receive certificates only, not to send them"));
  }
  if (to->onboarding().directions() == v1::SENDS_ONLY) {
    return absl::FailedPreconditionError(
        absl::StrCat(importer, " is onboarded to send certificates only, not to receive them"));
  }
  const auto& types = to->onboarding().accepted_types();
  if (!types.empty() && std::find(types.begin(), types.end(), type) == types.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        importer, " does not accept ", v1::CertificateType_Name(type), " certificates yet"));
  }
  return absl::OkStatus();
}

bool TrustList::PaperInParallel(const std::string& a, const std::string& b) const {
  for (const std::string* code : {&a, &b}) {
    const v1::Participant* p = Find(*code);
    if (p != nullptr && p->onboarding().paper_in_parallel()) return true;
  }
  return false;
}

absl::StatusOr<crypto::PublicKey> TrustList::FindKey(const std::string& code,
                                                     const std::string& key_id,
                                                     absl::Time at) const {
  auto it = keys_.find(std::make_pair(code, key_id));
  if (it == keys_.end()) {
    return absl::UnauthenticatedError(
        absl::StrCat("key ", key_id, " is not a signing key of ", code));
  }
  const v1::SigningKey& k = it->second.proto;
  if ((IsSet(k.not_before()) && at < FromTimestamp(k.not_before())) ||
      (IsSet(k.not_after()) && at >= FromTimestamp(k.not_after()))) {
    return absl::UnauthenticatedError(
        absl::StrCat("key ", key_id, " of ", code, " was not valid at ", FormatRfc3339(at)));
  }
  if (IsSet(k.revoked_at()) && at >= FromTimestamp(k.revoked_at())) {
    return absl::UnauthenticatedError(absl::StrCat(
        "key ", key_id, " of ", code, " is revoked from ",
        FormatRfc3339(FromTimestamp(k.revoked_at())), "; nothing it signs from then on holds"));
  }
  return it->second.key;
}

absl::StatusOr<std::string> TrustList::IdentifyPeer(const std::string& cert_pem,
                                                    absl::Time now) const {
  // Every Deliver call asks this. A peer presents the same certificate call
  // after call, so a verified answer is remembered (for this trust list
  // only, and never past the certificate's own expiry).
  {
    absl::MutexLock l(&peer_cache_mu_);
    if (auto it = peer_cache_.find(cert_pem); it != peer_cache_.end() && now < it->second.until) {
      return it->second.code;
    }
  }
  // The certificate must chain to the Participant's CA *and* be its node's
  // certificate (Common Name = the node's TLS name): the same CA may also
  // sign the Participant's authority clients, which are no peers. Parsed
  // once; the chain is checked only against the Participant it names.
  absl::StatusOr<crypto::CertificateInfo> info = crypto::ParseCertificatePem(cert_pem);
  if (!info.ok()) return absl::PermissionDeniedError("peer certificate does not parse");
  std::string found;
  for (const v1::Participant& p : proto_.participants()) {
    if (p.tls_ca_pem().empty() || info->common_name != ServerName(p)) continue;
    if (crypto::VerifyCertificateChain(cert_pem, p.tls_ca_pem(), now).ok()) {
      if (!found.empty()) {
        return absl::PermissionDeniedError("peer certificate matches more than one Participant");
      }
      found = p.code();
    }
  }
  if (found.empty()) {
    return absl::PermissionDeniedError(
        "peer certificate is no Participant's node certificate (CA and name)");
  }
  absl::MutexLock l(&peer_cache_mu_);
  if (peer_cache_.size() >= kPeerCacheSize) peer_cache_.clear();  // bounded
  peer_cache_[cert_pem] = {found, info->not_after};
  return found;
}

std::string ServerName(const v1::Participant& p) {
  if (!p.tls_server_name().empty()) return p.tls_server_name();
  return absl::StrCat("node.", absl::AsciiStrToLower(p.code()), ".kpx");
}

std::string TrustList::AllCasPem() const {
  std::string out;
  for (const v1::Participant& p : proto_.participants()) {
    out += p.tls_ca_pem();
    if (!out.empty() && out.back() != '\n') out += '\n';
  }
  return out;
}

}  // namespace kpx::node
