#include "node/evidence.h"

#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/crypto.h"
#include "node/envelope.h"
#include "node/messages.h"
#include "node/peer_logs.h"
#include "node/text.h"
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
  content.set_trust_list(ctx.keyring->trust()->proto().SerializeAsString());
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

// The claimed creation time of a signed message (unchecked), or
// InfinitePast if its body does not parse.
absl::Time SignedAt(const v1::SignedMessage& msg) {
  v1::MessageBody body;
  if (!body.ParseFromString(msg.body())) return absl::InfinitePast();
  return FromTimestamp(body.header().created_at());
}

// Verifies `msg` as `signer`'s, as of when it says it was signed: the
// signer was active and the key valid then (a later suspension or key
// retirement does not undo evidence).
absl::StatusOr<v1::MessageBody> VerifyAsSigned(const v1::SignedMessage& msg,
                                               const std::string& signer, const TrustList& trust) {
  return VerifyMessage(msg, signer, trust, SignedAt(msg));
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

// Everything the entry checks share.
struct Context {
  const v1::EvidenceContent& content;
  const TrustList& trust;
  SignedTree head;
  // Digests of the messages this node sent, by message id.
  std::map<std::string, std::string> sent;
};

// OK if entry `e`'s message is signed by whom it should be, about the
// bundle's certificate; `kind` gets the message's kind.
absl::Status CheckMessage(const Context& c, const v1::LedgerEntry& e, std::string& kind) {
  const std::string signer = e.kind() == v1::SENT ? c.content.exported_by() : e.partner();
  absl::StatusOr<v1::MessageBody> body = VerifyAsSigned(e.message(), signer, c.trust);
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
    absl::StatusOr<v1::MessageBody> r = VerifyAsSigned(e.receipt(), e.partner(), c.trust);
    if (!r.ok()) return r.status();
    if (!r->has_receipt() || r->receipt().message_digest() != sent->second) {
      return absl::InvalidArgumentError("its signed receipt is for another message");
    }
    where = "its signed receipt";
    return absl::OkStatus();
  }
  const v1::DeliveryProof& p = e.proof();
  absl::StatusOr<SignedTree> head =
      CheckTreeHead(p.tree_head(), e.partner(), c.trust, SignedAt(p.tree_head()));
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
                                e.kind() == v1::SENT ? c.content.exported_by() : e.partner()));
    if (e.kind() == v1::SENT) c.sent[e.message_id()] = MessageDigest(e.message());
  }
  if (e.kind() == v1::RECEIPT) {
    std::string where;
    absl::Status s = CheckReceipt(c, e, where);
    check.Check(s, absl::StrCat("  ", e.partner(), "'s log holds our message ", e.message_id(),
                                where.empty() ? "" : " " + where));
  }
}

// The trust list to check with: the bundle's, or `given`.
absl::StatusOr<std::shared_ptr<const TrustList>> TrustFor(const v1::EvidenceContent& content,
                                                          const v1::TrustList* given,
                                                          Checker& check) {
  v1::TrustList own;
  const bool parsed = own.ParseFromString(content.trust_list());
  if (given == nullptr) {
    if (!parsed) return absl::InvalidArgumentError("the bundle's trust list does not parse");
    return TrustList::FromProto(own);
  }
  check.Check(true, parsed && own.SerializeAsString() == given->SerializeAsString()
                        ? "the bundle's trust list is the one given"
                        : "note: the bundle's trust list differs from the one given (checked with "
                          "the one given)");
  return TrustList::FromProto(*given);
}

absl::Status CheckBundleSignature(const v1::EvidenceBundle& bundle,
                                  const v1::EvidenceContent& content, const TrustList& trust,
                                  const SignedTree& head) {
  if (bundle.signer() != content.exported_by()) {
    return absl::PermissionDeniedError(
        absl::StrCat("signed by '", Printable(bundle.signer(), 16), "'"));
  }
  const absl::Time exported = FromTimestamp(content.exported_at());
  if (exported < SignedAt(head.message)) {
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
                      content.format() == kEvidenceFormat;
  if (!check.Check(parsed, "the file is an evidence bundle of format 1")) {
    return report;
  }
  report.certificate_number = Printable(content.certificate_number(), 64);
  check.Check(true, absl::StrCat("certificate ", content.certificate_number(), ", exported by ",
                                 content.exported_by(), ", ", content.entries_size(), " entries"));
  absl::StatusOr<std::shared_ptr<const TrustList>> trust = TrustFor(content, trust_list, check);
  if (!check.Check(trust.status(), "the trust list loads")) return report;
  absl::StatusOr<SignedTree> head = CheckTreeHead(content.tree_head(), content.exported_by(),
                                                  **trust, SignedAt(content.tree_head()));
  if (!check.Check(head.status(), absl::StrCat(content.exported_by(), "'s tree head verifies"))) {
    return report;
  }
  check.Check(true, absl::StrCat("  it covers ", head->size, " entries, root ",
                                 crypto::HexEncode(head->root).substr(0, 16), "..., signed ",
                                 FormatRfc3339(SignedAt(head->message))));
  check.Check(CheckBundleSignature(bundle, content, **trust, *head),
              absl::StrCat("the bundle is signed by ", content.exported_by()));
  Context c{content, **trust, *head, {}};
  uint64_t last = 0;
  if (content.entries_size() == 0) check.Check(false, "the bundle holds entries");
  for (const v1::EvidenceEntry& e : content.entries()) CheckEntry(c, e, last, check);
  report.ok = !check.failed();
  return report;
}

}  // namespace kpx::node
