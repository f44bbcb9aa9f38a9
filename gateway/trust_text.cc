#include "gateway/trust_text.h"

#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "node/text.h"
#include "node/trust_chain.h"
#include "node/util.h"

namespace kpx::gateway {
namespace {

using node::Printable;

constexpr size_t kShort = 64;

std::string Time(const google::protobuf::Timestamp& ts) {
  return node::IsSet(ts) ? node::FormatRfc3339(node::FromTimestamp(ts)) : "-";
}

std::string Onboarding(const v1::Onboarding& o) {
  std::vector<std::string> parts;
  if (node::IsSet(o.live_from())) parts.push_back(absl::StrCat("live from ", Time(o.live_from())));
  if (o.directions() == v1::SENDS_ONLY) parts.push_back("sends only");
  if (o.directions() == v1::RECEIVES_ONLY) parts.push_back("receives only");
  if (!o.accepted_types().empty()) {
    std::vector<std::string> types;
    for (int t : o.accepted_types()) {
      types.push_back(v1::CertificateType_Name(static_cast<v1::CertificateType>(t)));
    }
    parts.push_back(absl::StrCat("accepts ", absl::StrJoin(types, ", ")));
  }
  if (o.paper_in_parallel()) parts.push_back("paper in parallel");
  return parts.empty() ? "fully live" : absl::StrJoin(parts, "; ");
}

std::string Status(const v1::Participant& p) {
  std::string s = v1::ParticipantStatus_Name(p.status());
  if (p.status() == v1::SUSPENDED && node::IsSet(p.suspended_from())) {
    absl::StrAppend(&s, " from ", Time(p.suspended_from()));
  }
  return s;
}

std::string Publishers(const v1::TrustList& t) {
  if (t.publishers().empty()) return "none: each operator installs the next version by hand";
  std::vector<std::string> names;
  for (const v1::TrustListPublisher& p : t.publishers()) {
    names.push_back(absl::StrCat(Printable(p.name(), kShort), " (", p.key_id().substr(0, 16), ")"));
  }
  return absl::StrCat(t.threshold(), " of ", t.publishers_size(),
                      " sign the next version: ", absl::StrJoin(names, ", "));
}

std::string Signatures(const node::TrustList& list, const node::TrustList* signers) {
  const auto& sigs = list.signed_list().signatures();
  if (sigs.empty()) return "  signatures: none (installed by an operator)\n";
  if (signers == nullptr) {
    return absl::StrCat("  signatures: ", sigs.size(),
                        " (give --previous FILE to check them against the version before)\n");
  }
  const node::SignatureCount count = node::CountSignatures(*signers, list.signed_list());
  const absl::Status next = node::CheckSuccessor(*signers, list);
  std::string out =
      absl::StrCat("  signatures valid under version ", signers->version(), ": ",
                   count.valid.empty() ? "none" : absl::StrJoin(count.valid, ", "), "\n");
  for (const std::string& n : count.invalid) absl::StrAppend(&out, "  DOES NOT VERIFY: ", n, "\n");
  for (const std::string& n : count.ignored) absl::StrAppend(&out, "  ignored: ", n, "\n");
  absl::StrAppend(&out, next.ok() ? "  may follow version " : "  may NOT follow version ",
                  signers->version(), next.ok() ? "" : absl::StrCat(": ", next.message()), "\n");
  return out;
}

// Each key's id (16 characters) with its window and revocation, if set.
std::string Keys(const v1::Participant& p) {
  std::vector<std::string> keys;
  for (const v1::SigningKey& k : p.signing_keys()) {
    std::string text = Printable(k.key_id().substr(0, 16), kShort);
    if (node::IsSet(k.not_before())) absl::StrAppend(&text, " from ", Time(k.not_before()));
    if (node::IsSet(k.not_after())) absl::StrAppend(&text, " until ", Time(k.not_after()));
    if (node::IsSet(k.revoked_at())) absl::StrAppend(&text, " REVOKED from ", Time(k.revoked_at()));
    keys.push_back(std::move(text));
  }
  return keys.empty() ? "none" : absl::StrJoin(keys, ", ");
}

// A field of Participant as one short line.
std::string FieldText(const v1::Participant& p, const google::protobuf::FieldDescriptor* f) {
  if (f->name() == "tls_ca_pem") return p.tls_ca_pem().empty() ? "none" : "a CA certificate";
  if (f->name() == "signing_keys") return Keys(p);
  if (f->name() == "status" || f->name() == "suspended_from") return Status(p);
  if (f->name() == "onboarding") return Onboarding(p.onboarding());
  if (f->name() == "offices") return node::OfficeCodes(p);
  const google::protobuf::Reflection* r = p.GetReflection();
  switch (f->cpp_type()) {
    case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
      return Printable(r->GetString(p, f), kShort);
    case google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE:
      return Printable(r->GetMessage(p, f).ShortDebugString(), kShort);
    default:
      return "changed";
  }
}

}  // namespace

std::string TrustListText(const node::TrustList& list, const node::TrustList* signers) {
  const v1::TrustList& t = list.proto();
  std::string out = absl::StrCat("trust list version ", t.version(), " (", list.digest(), ")");
  if (node::IsSet(t.issued_at())) absl::StrAppend(&out, ", issued ", Time(t.issued_at()));
  absl::StrAppend(&out, "\n  publishers: ", Publishers(t), "\n");
  absl::StrAppend(&out, Signatures(list, signers));
  absl::StrAppend(&out, "  participants (", t.participants_size(), "):\n");
  for (const v1::Participant& p : t.participants()) {
    absl::StrAppendFormat(&out, "    %-3s %-10s %s\n", p.code(), Status(p),
                          Printable(p.name(), kShort));
    absl::StrAppend(&out, "        node ", Printable(node::ServerName(p), kShort), " at ",
                    p.endpoint().empty() ? "-" : Printable(p.endpoint(), kShort), "; keys ",
                    Keys(p), "; offices ", Printable(node::OfficeCodes(p), kShort), "\n");
    absl::StrAppend(&out, "        onboarding: ", Onboarding(p.onboarding()), "\n");
  }
  return out;
}

std::string TrustListDiff(const node::TrustList& from, const node::TrustList& to) {
  std::vector<std::string> lines;
  const v1::TrustList& a = from.proto();
  const v1::TrustList& b = to.proto();
  if (a.version() != b.version()) {
    lines.push_back(absl::StrCat("version: ", a.version(), " -> ", b.version()));
  }
  if (Publishers(a) != Publishers(b)) {
    lines.push_back(absl::StrCat("publishers: ", Publishers(a), "\n         -> ", Publishers(b)));
  }
  std::map<std::string, const v1::Participant*> before, after;
  for (const v1::Participant& p : a.participants()) before[p.code()] = &p;
  for (const v1::Participant& p : b.participants()) after[p.code()] = &p;
  for (const auto& [code, p] : before) {
    if (after.count(code) == 0) lines.push_back(absl::StrCat(code, ": removed"));
  }
  for (const auto& [code, q] : after) {
    auto it = before.find(code);
    if (it == before.end()) {
      lines.push_back(
          absl::StrCat(code, ": added (", Status(*q), ", ", Onboarding(q->onboarding()), ")"));
      continue;
    }
    const v1::Participant& p = *it->second;
    const google::protobuf::Descriptor* d = v1::Participant::descriptor();
    std::set<std::string> said;
    for (int i = 0; i < d->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* f = d->field(i);
      google::protobuf::util::MessageDifferencer diff;
      std::vector<const google::protobuf::FieldDescriptor*> only = {f};
      diff.set_scope(google::protobuf::util::MessageDifferencer::FULL);
      if (diff.CompareWithFields(p, *q, only, only)) continue;
      const std::string old_text = FieldText(p, f);
      const std::string new_text = FieldText(*q, f);
      const std::string name = f->name() == "suspended_from" ? "status" : f->name();
      if (!said.insert(name).second) continue;
      lines.push_back(absl::StrCat(
          code, " ", name, ": ",
          old_text == new_text ? "changed" : absl::StrCat(old_text, " -> ", new_text)));
    }
  }
  if (lines.empty()) return "no differences\n";
  return absl::StrCat(absl::StrJoin(lines, "\n"), "\n");
}

}  // namespace kpx::gateway
