#include "node/amendments.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "node/util.h"

namespace kpx::node {

std::vector<std::string> ChangedFields(const v1::Certificate& a, const v1::Certificate& b) {
  std::vector<std::string> out;
  const google::protobuf::Descriptor* d = v1::Certificate::descriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    // Compare field i alone: every other field is ignored.
    google::protobuf::util::MessageDifferencer only;
    for (int j = 0; j < d->field_count(); ++j) {
      if (j != i) only.IgnoreField(d->field(j));
    }
    if (!only.Compare(a, b)) out.push_back(d->field(i)->name());
  }
  return out;
}

absl::Status CheckAmendable(const v1::Certificate& current, const v1::Certificate& amended) {
  auto same = [](const std::string& what, const std::string& was, const std::string& is) {
    if (was == is) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("amendment: ", what, " may not change (", was, " -> ", is, ")"));
  };
  if (absl::Status s = same("number", current.number(), amended.number()); !s.ok()) return s;
  if (absl::Status s = same("exporting_participant", current.exporting_participant(),
                            amended.exporting_participant());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = same("importing_participant", current.importing_participant(),
                            amended.importing_participant());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = same("replaces", current.replaces(), amended.replaces()); !s.ok()) return s;
  if (current.type() != amended.type()) {
    return absl::InvalidArgumentError("amendment: the certificate type may not change");
  }
  if (ChangedFields(current, amended).empty()) {
    return absl::InvalidArgumentError("amendment: nothing changed");
  }
  return absl::OkStatus();
}

void ApplyAmendment(v1::CertificateRecord& rec, const v1::Amendment& a, const std::string& digest,
                    absl::Time at) {
  v1::CertificateVersion* v = rec.add_earlier_versions();
  v->set_version(rec.version() == 0 ? 1 : rec.version());
  *v->mutable_certificate() = rec.certificate();
  v->set_digest(rec.certificate_digest());
  *v->mutable_amended_at() = ToTimestamp(at);
  v->set_reason_code(a.reason_code());
  v->set_reason(a.reason());
  for (std::string& f : ChangedFields(rec.certificate(), a.certificate())) {
    v->add_changed_fields(std::move(f));
  }
  rec.set_version(v->version() + 1);
  *rec.mutable_certificate() = a.certificate();
  rec.set_certificate_digest(digest);
}

const v1::CertificateVersion* EarlierVersion(const v1::CertificateRecord& rec,
                                             const std::string& digest) {
  for (const v1::CertificateVersion& v : rec.earlier_versions()) {
    if (v.digest() == digest) return &v;
  }
  return nullptr;
}

}  // namespace kpx::node
