#include "node/evidence.h"

#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/crypto.h"
#include "node/envelope.h"
#include "node/messages.h"
#include "node/peer_logs.h"
#include "node/text.h"
#include "node/trust_chain.h"
#include "node/util.h"
#include "storage/log_leaf.h"
#include "storage/merkle.h"

namespace kpx::node {
namespace {

// The sequences of the entries about `number` among the first `size`.
absl::StatusOr<std::vector<uint64_t>> EntriesAbout(const storage::Ledger& ledger,
                                                   const std::string& number, uint64_t size) {
  constexpr size_t kPage = 1000;
  std::vector<uint64_t> found;
  for (uint64_t from = 1; from <= size; from += kPage) {
    absl::StatusOr<std::vector<v1::LedgerEntry>> page =
        ledger.ReadEntries(from, std::min<uint64_t>(kPage, size - from + 1));
    if (!page.ok()) return page.status();
    for (const v1::LedgerEntry& e : *page) {
      if (e.certificate_number() != number) continue;
      if (found.size() == kMaxEvidenceEntries) {
        return absl::ResourceExhaustedError(
            absl::StrCat("more than ", kMaxEvidenceEntries, " entries about ", number));
      }
      found.push_back(e.sequence());
    }
  }
  return found;
}

// The trust-list versions in force from before entry `first` on, oldest
// first (by the sequence of the entry that installed each).
absl::StatusOr<std::vector<v1::TrustListRecord>> VersionsSince(const storage::Ledger& ledger,
                                                               uint64_t first) {
  absl::StatusOr<std::vector<v1::TrustListRecord>> all = ledger.ListTrustLists(0, 100000);
  if (!all.ok()) return all.status();
  std::sort(all->begin(), all->end(),
            [](const auto& a, const auto& b) { return a.sequence() < b.sequence(); });
  size_t start = 0;
  for (size_t i = 0; i < all->size(); ++i) {
    if ((*all)[i].sequence() < first) start = i;
  }
  return std::vector<v1::TrustListRecord>(all->begin() + static_cast<std::ptrdiff_t>(start),
                                          all->end());
}

}  // namespace

absl::StatusOr<v1::EvidenceBundle> ExportEvidence(const NodeContext& ctx, TreeSigner& signer,
                                                  const std::string& number) {
  absl::StatusOr<SignedTree> head = signer.Current();
  if (!head.ok()) return head.status();
  absl::StatusOr<std::vector<uint64_t>> sequences = EntriesAbout(*ctx.ledger, number, head->size);
  if (!sequences.ok()) return sequences.status();
  if (sequences->empty()) {
    return absl::NotFoundError(absl::StrCat("no ledger entry about certificate ", number));
  }
  v1::EvidenceContent content;
  content.set_format(kEvidenceFormat);
  content.set_certificate_number(number);
  content.set_exported_by(ctx.participant);
  *content.mutable_tree_head() = head->message;
  for (uint64_t seq : *sequences) {
    absl::StatusOr<std::string> bytes = ctx.ledger->RawEntry(seq);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<std::vector<std::string>> path = ctx.ledger->InclusionProof(seq, head->size);
    if (!path.ok()) return path.status();
    v1::EvidenceEntry* e = content.add_entries();
    e->set_entry(*std::move(bytes));
    for (std::string& h : *path) e->add_inclusion_path(std::move(h));
  }
  absl::StatusOr<std::vector<v1::TrustListRecord>> versions =
      VersionsSince(*ctx.ledger, sequences->front());
  if (!versions.ok()) return versions.status();
  for (v1::TrustListRecord& r : *versions) *content.add_trust_lists() = std::move(r);
  const absl::Time now = ctx.Now();
  *content.mutable_exported_at() = ToTimestamp(now);

  absl::StatusOr<Signer> key = ctx.keyring->SignerAt(now);
  if (!key.ok()) return key.status();
  v1::EvidenceBundle bundle;
  bundle.set_content(content.SerializeAsString());
  absl::StatusOr<std::string> signature = key->key().Sign(bundle.content());
  if (!signature.ok()) return signature.status();
  bundle.set_signer(ctx.participant);
  bundle.set_key_id(key->key().key_id());
  bundle.set_algorithm(ToProtoAlgorithm(key->key().algorithm()));
  bundle.set_signature(*std::move(signature));
  return bundle;
}

namespace {

// Verifies `msg` as `signer`'s, as of when it says it was signed: the
// signer was active and the key valid then (a later suspension or key
// retirement does not undo evidence).
absl::StatusOr<v1::MessageBody> VerifyAsSigned(const v1::SignedMessage& msg,
                                               const std::string& signer, const TrustList& trust) {
  return VerifyMessage(msg, signer, trust, SigningTime(msg));
}

class Checker {
 public:
  explicit Checker(EvidenceReport& report) : report_(report) {}
  // Records a check; returns `ok`.
  bool Check(bool ok, std::string what) {
    report_.checks.push_back({ok, Printable(what, 600)});
    if (!ok) failed_ = true;
    return ok;
  }
  bool Check(const absl::Status& s, const std::string& what) {
    return Check(s.ok(), s.ok() ? what : absl::StrCat(what, ": ", s.message()));
  }
  bool failed() const { return failed_; }

 private:
  EvidenceReport& report_;
  bool failed_ = false;
};

// The trust-list versions a bundle is checked with, each in force from
// the ledger entry that installed it on.
class Versions {
 public:
  void Add(uint64_t from_sequence, std::shared_ptr<const TrustList> list) {
    versions_.emplace_back(from_sequence, std::move(list));
  }
  bool empty() const { return versions_.empty(); }
  // The version in force when entry `sequence` was written (the oldest if
  // the entry is older than every version).
  const TrustList& At(uint64_t sequence) const {
    const TrustList* found = versions_.front().second.get();
    for (const auto& [from, list] : versions_) {
      if (from < sequence) found = list.get();
    }
    return *found;
  }
  const TrustList& newest() const { return *versions_.back().second; }
  const std::vector<std::pair<uint64_t, std::shared_ptr<const TrustList>>>& all() const {
    return versions_;
  }

 private:
  std::vector<std::pair<uint64_t, std::shared_ptr<const TrustList>>> versions_;
};

// Everything the entry checks share.
struct Context {
  const v1::EvidenceContent& content;
  const Versions& trust;
  SignedTree head;
  // Digests of the messages this node sent, by message id.
  std::map<std::string, std::string> sent;
  // The key that signed each of them last: the SENT entry's, then each
  // RESIGNED entry's.
  std::map<std::string, std::string> signed_with;
};

// True if entry `e`'s message is the exporting node's own.
bool SignedByUs(const v1::LedgerEntry& e) {
  return e.kind() == v1::SENT || e.kind() == v1::RESIGNED;
}

// OK if RESIGNED entry `e` signs again a message we sent before (a SENT
// entry of the bundle) without changing it.
// It names as withdrawn the key that signed the message last, and was
// signed no later than the entry was written.
absl::Status CheckResigned(const Context& c, const v1::LedgerEntry& e) {
  auto sent = c.sent.find(e.message_id());
  if (sent == c.sent.end()) return absl::NotFoundError("the message's SENT entry is not before it");
  if (e.message().resigning().empty() || MessageDigest(e.message()) != sent->second) {
    return absl::InvalidArgumentError("it is not the same message signed again");
  }
  v1::Resigning r;
  if (!r.ParseFromString(e.message().resigning())) {
    return absl::InvalidArgumentError("its re-signing does not parse");
  }
  auto before = c.signed_with.find(e.message_id());
  if (before == c.signed_with.end() || r.withdrawn_key_id() != before->second) {
    return absl::InvalidArgumentError("it names another key than the one that signed it before");
  }
  if (FromTimestamp(r.resigned_at()) > FromTimestamp(e.recorded_at())) {
    return absl::InvalidArgumentError("it was signed again after its entry was written");
  }
  return absl::OkStatus();
}

// OK if entry `e`'s message is signed by whom it should be, about the
// bundle's certificate; `kind` gets the message's kind.
absl::Status CheckMessage(const Context& c, const v1::LedgerEntry& e, std::string& kind) {
  const std::string signer = SignedByUs(e) ? c.content.exported_by() : e.partner();
  absl::StatusOr<v1::MessageBody> body =
      VerifyAsSigned(e.message(), signer, c.trust.At(e.sequence()));
  if (!body.ok()) return body.status();
  kind = v1::MessageKind_Name(body->header().kind());
  if (CertificateNumberOf(*body) != c.content.certificate_number()) {
    return absl::InvalidArgumentError("it is about another certificate");
  }
  return absl::OkStatus();
}

// OK if RECEIPT entry `e` proves that the partner's log holds the message
// we sent (a SENT entry of the bundle); `where` gets where it is.
absl::Status CheckReceipt(const Context& c, const v1::LedgerEntry& e, std::string& where) {
  auto sent = c.sent.find(e.message_id());
  if (sent == c.sent.end()) return absl::NotFoundError("the message's SENT entry is not before it");
  if (!e.has_proof()) {  // before tree heads: a signed receipt per message
    absl::StatusOr<v1::MessageBody> r =
        VerifyAsSigned(e.receipt(), e.partner(), c.trust.At(e.sequence()));
    if (!r.ok()) return r.status();
    if (!r->has_receipt() || r->receipt().message_digest() != sent->second) {
      return absl::InvalidArgumentError("its signed receipt is for another message");
    }
    where = "its signed receipt";
    return absl::OkStatus();
  }
  const v1::DeliveryProof& p = e.proof();
  absl::StatusOr<SignedTree> head = CheckTreeHead(
      p.tree_head(), e.partner(), c.trust.At(e.sequence()), SigningTime(p.tree_head()));
  if (!head.ok()) return head.status();
  absl::StatusOr<uint64_t> sequence =
      CheckReceivedLeaf(p.leaf(), p.inclusion_path(), sent->second, *head);
  if (!sequence.ok()) return sequence.status();
  where = absl::StrCat("as entry ", *sequence, " of its signed log of ", head->size);
  return absl::OkStatus();
}

void CheckEntry(Context& c, const v1::EvidenceEntry& ev, uint64_t& last, Checker& check) {
  v1::LedgerEntry e;
  if (!e.ParseFromString(ev.entry())) {
    check.Check(false, absl::StrCat("the entry after ", last, " parses"));
    return;
  }
  const std::string name =
      absl::StrCat("entry ", e.sequence(), " (", v1::EntryKind_Name(e.kind()), ")");
  const std::string leaf = storage::EncodeLogLeaf(storage::LeafOf(e, ev.entry()));
  const std::vector<std::string> path(ev.inclusion_path().begin(), ev.inclusion_path().end());
  absl::Status in_log =
      e.certificate_number() != c.content.certificate_number() || e.sequence() <= last
          ? absl::InvalidArgumentError("it is about another certificate or out of order")
          : storage::merkle::VerifyInclusion(storage::merkle::LeafHash(leaf), e.sequence() - 1,
                                             c.head.size, path, c.head.root);
  check.Check(in_log, absl::StrCat(name, " is in ", c.content.exported_by(), "'s signed log"));
  last = std::max(last, e.sequence());
  if (e.has_message()) {
    std::string kind = "message";
    absl::Status s = CheckMessage(c, e, kind);
    check.Check(s, absl::StrCat("  its ", kind, " is signed by ",
                                SignedByUs(e) ? c.content.exported_by() : e.partner()));
    if (e.kind() == v1::SENT) c.sent[e.message_id()] = MessageDigest(e.message());
  }
  if (e.kind() == v1::RESIGNED) {
    check.Check(CheckResigned(c, e),
                absl::StrCat("  it is our message ", e.message_id(), " signed again, unchanged"));
  }
  if (e.kind() == v1::SENT || e.kind() == v1::RESIGNED) {
    c.signed_with[e.message_id()] = e.message().key_id();
  }
  if (e.kind() == v1::RECEIPT) {
    std::string where;
    absl::Status s = CheckReceipt(c, e, where);
    check.Check(s, absl::StrCat("  ", e.partner(), "'s log holds our message ", e.message_id(),
                                where.empty() ? "" : " " + where));
  }
}

// The bundle's own versions, each checked to follow the one before.
absl::StatusOr<Versions> BundledVersions(const v1::EvidenceContent& content, Checker& check) {
  Versions v;
  if (content.format() == 1) {
    v1::TrustList own;
    if (!own.ParseFromString(content.trust_list())) {
      return absl::InvalidArgumentError("the bundle's trust list does not parse");
    }
    absl::StatusOr<std::shared_ptr<const TrustList>> list = TrustList::FromProto(own);
    if (!list.ok()) return list.status();
    v.Add(0, *std::move(list));
    return v;
  }
  for (const v1::TrustListRecord& r : content.trust_lists()) {
    absl::StatusOr<std::shared_ptr<const TrustList>> list = TrustList::FromSigned(r.signed_list());
    if (!list.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("version ", r.version(), ": ", list.status().message()));
    }
    if (!v.empty()) {
      const TrustList& before = *v.all().back().second;
      if (before.governed()) {
        check.Check(CheckSuccessor(before, **list),
                    absl::StrCat("trust-list version ", (*list)->version(),
                                 " is signed by the publishers of version ", before.version()));
      } else {
        check.Check(true, absl::StrCat("note: trust-list version ", (*list)->version(),
                                       " replaced version ", before.version(),
                                       " by an operator's hand (not checkable offline)"));
      }
    }
    v.Add(r.sequence(), *std::move(list));
  }
  if (v.empty()) return absl::InvalidArgumentError("the bundle carries no trust list");
  return v;
}

// The versions to check with: the bundle's, or `given` alone. A `given`
// list that is one of the bundle's anchors the bundle's chain instead.
absl::StatusOr<Versions> VersionsFor(const v1::EvidenceContent& content, const v1::TrustList* given,
                                     Checker& check) {
  absl::StatusOr<Versions> bundled = BundledVersions(content, check);
  if (given == nullptr) return bundled;
  const std::string given_bytes = given->SerializeAsString();
  if (bundled.ok()) {
    for (const auto& [from, list] : bundled->all()) {
      if (list->proto().SerializeAsString() == given_bytes) {
        check.Check(true,
                    absl::StrCat("the trust list given is the bundle's version ", list->version()));
        return bundled;
      }
    }
  }
  check.Check(true,
              "note: the trust list given is none of the bundle's (checked with the one given)");
  absl::StatusOr<std::shared_ptr<const TrustList>> list = TrustList::FromProto(*given);
  if (!list.ok()) return list.status();
  Versions v;
  v.Add(0, *std::move(list));
  return v;
}

// "versions 1, 2" (or why they did not load).
std::string TrustNames(const absl::StatusOr<Versions>& v) {
  if (!v.ok()) return "none";
  std::vector<std::string> names;
  for (const auto& [from, list] : v->all()) names.push_back(std::to_string(list->version()));
  return absl::StrCat(names.size() == 1 ? "version " : "versions ", absl::StrJoin(names, ", "));
}

absl::Status CheckBundleSignature(const v1::EvidenceBundle& bundle,
                                  const v1::EvidenceContent& content, const TrustList& trust,
                                  const SignedTree& head) {
  if (bundle.signer() != content.exported_by()) {
    return absl::PermissionDeniedError(
        absl::StrCat("signed by '", Printable(bundle.signer(), 16), "'"));
  }
  const absl::Time exported = FromTimestamp(content.exported_at());
  if (exported < SigningTime(head.message)) {
    return absl::InvalidArgumentError("exported before its tree head was signed");
  }
  absl::StatusOr<crypto::PublicKey> key = trust.FindKey(bundle.signer(), bundle.key_id(), exported);
  if (!key.ok()) return key.status();
  if (ToProtoAlgorithm(key->algorithm()) != bundle.algorithm()) {
    return absl::UnauthenticatedError("signature algorithm does not match the key");
  }
  return key->Verify(bundle.content(), bundle.signature());
}

}  // namespace

EvidenceReport VerifyEvidence(const std::string& bundle_bytes, const v1::TrustList* trust_list) {
  EvidenceReport report;
  Checker check(report);
  v1::EvidenceBundle bundle;
  v1::EvidenceContent content;
  // Parsed, and written exactly as it would be written again: a byte
  // added or changed outside what the signatures cover is refused too.
  const bool parsed = bundle.ParseFromString(bundle_bytes) &&
                      bundle.GetReflection()->GetUnknownFields(bundle).field_count() == 0 &&
                      bundle.SerializeAsString() == bundle_bytes &&
                      content.ParseFromString(bundle.content()) &&
                      (content.format() == 1 || content.format() == kEvidenceFormat);
  if (!check.Check(parsed, "the file is an evidence bundle of format 1 or 2")) {
    return report;
  }
  report.certificate_number = Printable(content.certificate_number(), 64);
  check.Check(true, absl::StrCat("certificate ", content.certificate_number(), ", exported by ",
                                 content.exported_by(), ", ", content.entries_size(), " entries"));
  absl::StatusOr<Versions> trust = VersionsFor(content, trust_list, check);
  if (!check.Check(trust.status(),
                   absl::StrCat("the trust list loads (", TrustNames(trust), ")"))) {
    return report;
  }
  absl::StatusOr<SignedTree> head =
      CheckTreeHead(content.tree_head(), content.exported_by(), trust->newest(),
                    SigningTime(content.tree_head()));
  if (!check.Check(head.status(), absl::StrCat(content.exported_by(), "'s tree head verifies"))) {
    return report;
  }
  check.Check(true, absl::StrCat("  it covers ", head->size, " entries, root ",
                                 crypto::HexEncode(head->root).substr(0, 16), "..., signed ",
                                 FormatRfc3339(SigningTime(head->message))));
  check.Check(CheckBundleSignature(bundle, content, trust->newest(), *head),
              absl::StrCat("the bundle is signed by ", content.exported_by()));
  Context c{content, *trust, *head, {}};
  uint64_t last = 0;
  if (content.entries_size() == 0) check.Check(false, "the bundle holds entries");
  for (const v1::EvidenceEntry& e : content.entries()) CheckEntry(c, e, last, check);
  report.ok = !check.failed();
  return report;
}

}  // namespace kpx::node
