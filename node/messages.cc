#include "node/messages.h"

#include "node/bounds.h"
#include "node/util.h"

namespace kpx::node {

v1::MessageBody CertificateBody(const v1::Certificate& cert) {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::CERTIFICATE);
  *b.mutable_certificate() = cert;
  return b;
}

namespace {

v1::ReasonCode CodeOf(const Reason& r) {
  return r.code == v1::REASON_CODE_UNSPECIFIED ? v1::OTHER : r.code;
}

}  // namespace

v1::MessageBody CancellationBody(const std::string& number, const Reason& reason) {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::CANCELLATION);
  b.mutable_cancellation()->set_certificate_number(number);
  b.mutable_cancellation()->set_reason(reason.text);
  b.mutable_cancellation()->set_reason_code(CodeOf(reason));
  return b;
}

v1::MessageBody AmendmentBody(const v1::CertificateRecord& rec, const v1::Certificate& amended,
                              const Reason& reason) {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::AMENDMENT);
  v1::Amendment* a = b.mutable_amendment();
  a->set_certificate_number(rec.certificate().number());
  a->set_amends_digest(rec.certificate_digest());
  *a->mutable_certificate() = amended;
  a->set_reason_code(CodeOf(reason));
  a->set_reason(reason.text);
  return b;
}

v1::MessageBody VoidBody(const v1::CertificateRecord& rec, const Reason& reason) {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::VOID);
  v1::Void* v = b.mutable_voiding();
  v->set_certificate_number(rec.certificate().number());
  v->set_certificate_digest(rec.certificate_digest());
  v->set_reason_code(CodeOf(reason));
  v->set_reason(reason.text);
  return b;
}

v1::MessageBody ConfirmationBody(v1::ImportConfirmation confirmation) {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::IMPORT_CONFIRMATION);
  *b.mutable_confirmation() = std::move(confirmation);
  return b;
}

v1::MessageBody RejectionBody(const v1::CertificateRecord& rec, const Reason& reason) {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::REJECTION);
  b.mutable_rejection()->set_certificate_number(rec.certificate().number());
  b.mutable_rejection()->set_reason(reason.text);
  b.mutable_rejection()->set_reason_code(CodeOf(reason));
  b.mutable_rejection()->set_certificate_digest(rec.certificate_digest());
  return b;
}

v1::MessageBody ExpiryBody(const v1::CertificateRecord& rec, absl::Time now) {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::EXPIRY);
  b.mutable_expiry()->set_certificate_number(rec.certificate().number());
  b.mutable_expiry()->set_certificate_digest(rec.certificate_digest());
  *b.mutable_expiry()->mutable_expired_at() = ToTimestamp(now);
  return b;
}

v1::MessageBody TreeHeadBody(uint64_t tree_size, const std::string& root) {
  v1::MessageBody b;
  b.mutable_header()->set_kind(v1::TREE_HEAD);
  b.mutable_tree_head()->set_tree_size(tree_size);
  b.mutable_tree_head()->set_root_hash(root);
  return b;
}

const std::string& CertificateNumberOf(const v1::MessageBody& body) {
  switch (body.payload_case()) {
    case v1::MessageBody::kCertificate:
      return body.certificate().number();
    case v1::MessageBody::kConfirmation:
      return body.confirmation().certificate_number();
    case v1::MessageBody::kRejection:
      return body.rejection().certificate_number();
    case v1::MessageBody::kCancellation:
      return body.cancellation().certificate_number();
    case v1::MessageBody::kExpiry:
      return body.expiry().certificate_number();
    case v1::MessageBody::kVoiding:
      return body.voiding().certificate_number();
    case v1::MessageBody::kAmendment:
      return body.amendment().certificate_number();
    default: {
      static const std::string* empty = new std::string;
      return *empty;
    }
  }
}

absl::StatusOr<Sealed> Seal(const Keyring& keyring, v1::MessageBody body,
                            const std::string& recipient, absl::Time now) {
  Sealed out;
  out.message_id = NewMessageId();
  v1::Header* h = body.mutable_header();
  h->set_message_id(out.message_id);
  h->set_sender(keyring.participant());
  h->set_recipient(recipient);
  *h->mutable_created_at() = ToTimestamp(now);
  // What a partner would refuse is not signed: the same bounds hold here.
  if (absl::Status s = CheckBounds(body); !s.ok()) return s;
  absl::StatusOr<Signer> signer = keyring.SignerAt(now);
  if (!signer.ok()) return signer.status();
  absl::StatusOr<v1::SignedMessage> msg = signer->Sign(body);
  if (!msg.ok()) return msg.status();
  out.message = *std::move(msg);
  return out;
}

}  // namespace kpx::node
