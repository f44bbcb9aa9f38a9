#include "node/envelope.h"

#include "absl/strings/str_cat.h"
#include "node/bounds.h"
#include "node/text.h"
#include "node/util.h"

namespace kpx::node {

v1::SignatureAlgorithm ToProtoAlgorithm(crypto::Algorithm a) {
  return a == crypto::Algorithm::kEcdsaP256 ? v1::ECDSA_P256_SHA256 : v1::ED25519;
}

namespace {

// Signs `signed_bytes` (which may be msg.body()) with `key` and fills in
// msg's signer, key id, algorithm and signature.
absl::Status Seal(const std::string& participant, const crypto::PrivateKey& key,
                  const std::string& signed_bytes, v1::SignedMessage& msg) {
  absl::StatusOr<std::string> sig = key.Sign(signed_bytes);
  if (!sig.ok()) return sig.status();
  msg.set_signer(participant);
  msg.set_key_id(key.key_id());
  msg.set_algorithm(ToProtoAlgorithm(key.algorithm()));
  msg.set_signature(*std::move(sig));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::SignedMessage> Signer::Sign(const v1::MessageBody& body) const {
  v1::SignedMessage msg;
  if (!body.SerializeToString(msg.mutable_body())) {
    return absl::InternalError("cannot serialize message body");
  }
  if (absl::Status s = Seal(participant_, key_, msg.body(), msg); !s.ok()) return s;
  return msg;
}

absl::StatusOr<v1::SignedMessage> Signer::Resign(const v1::SignedMessage& msg,
                                                 absl::Time now) const {
  v1::Resigning r;
  r.set_body_digest(MessageDigest(msg));
  *r.mutable_resigned_at() = ToTimestamp(now);
  r.set_withdrawn_key_id(msg.key_id());
  v1::SignedMessage out;
  *out.mutable_body() = msg.body();
  if (!r.SerializeToString(out.mutable_resigning())) {
    return absl::InternalError("cannot serialize a resigning");
  }
  if (absl::Status s = Seal(participant_, key_, ResigningInput(out.resigning()), out); !s.ok()) {
    return s;
  }
  return out;
}

std::string ResigningInput(const std::string& resigning) {
  static constexpr char kContext[] = "kpx-resigned-v1";  // and its NUL
  return std::string(kContext, sizeof(kContext)) + resigning;
}

v1::MessageKind KindOf(const v1::MessageBody& body) {
  switch (body.payload_case()) {
    case v1::MessageBody::kCertificate:
      return v1::CERTIFICATE;
    case v1::MessageBody::kConfirmation:
      return v1::IMPORT_CONFIRMATION;
    case v1::MessageBody::kRejection:
      return v1::REJECTION;
    case v1::MessageBody::kCancellation:
      return v1::CANCELLATION;
    case v1::MessageBody::kExpiry:
      return v1::EXPIRY;
    case v1::MessageBody::kVoiding:
      return v1::VOID;
    case v1::MessageBody::kAmendment:
      return v1::AMENDMENT;
    case v1::MessageBody::kReceipt:
      return v1::DELIVERY_RECEIPT;
    case v1::MessageBody::kTreeHead:
      return v1::TREE_HEAD;
    default:
      return v1::MESSAGE_KIND_UNSPECIFIED;
  }
}

namespace {

absl::Status CheckEnvelope(const v1::SignedMessage& msg) {
  if (msg.body().size() > kMaxMessageBodyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("message body is ", msg.body().size(),
                                                   " bytes; at most ", kMaxMessageBodyBytes));
  }
  if (msg.signer().size() > kMaxSignerBytes || msg.key_id().size() > kMaxKeyIdBytes ||
      msg.signature().size() > kMaxSignatureBytes || msg.resigning().size() > kMaxResigningBytes) {
    return absl::InvalidArgumentError("message signer, key id, signature or resigning is too long");
  }
  if (msg.GetReflection()->GetUnknownFields(msg).field_count() > 0) {
    return absl::InvalidArgumentError("signed message has fields unknown to this node");
  }
  return absl::OkStatus();
}

// A re-signed message's Resigning, checked against its body.
absl::StatusOr<v1::Resigning> ReadResigning(const v1::SignedMessage& msg,
                                            const v1::MessageBody& body) {
  v1::Resigning r;
  if (!r.ParseFromString(msg.resigning()) || r.GetReflection()->GetUnknownFields(r).field_count()) {
    return absl::InvalidArgumentError("the message's resigning does not parse");
  }
  if (r.body_digest() != MessageDigest(msg)) {
    return absl::InvalidArgumentError("the message's resigning names another body");
  }
  if (!IsSet(r.resigned_at()) ||
      FromTimestamp(r.resigned_at()) < FromTimestamp(body.header().created_at())) {
    return absl::InvalidArgumentError("a message cannot be re-signed before it was made");
  }
  if (r.withdrawn_key_id().size() > kMaxKeyIdBytes) {
    return absl::InvalidArgumentError("the message's resigning names too long a key id");
  }
  return r;
}

}  // namespace

absl::Time SigningTime(const v1::SignedMessage& msg) {
  if (!msg.resigning().empty()) {
    v1::Resigning r;
    if (!r.ParseFromString(msg.resigning())) return absl::InfinitePast();
    return FromTimestamp(r.resigned_at());
  }
  v1::MessageBody body;
  if (!body.ParseFromString(msg.body())) return absl::InfinitePast();
  return FromTimestamp(body.header().created_at());
}

absl::StatusOr<v1::MessageBody> VerifyMessage(const v1::SignedMessage& msg,
                                              const std::string& expected_signer,
                                              const TrustList& trust, absl::Time now) {
  if (absl::Status s = CheckEnvelope(msg); !s.ok()) return s;
  if (msg.signer() != expected_signer) {
    return absl::PermissionDeniedError(absl::StrCat("message signed by '", Printable(msg.signer()),
                                                    "' but the peer is ", expected_signer));
  }
  if (absl::Status s = trust.CheckActive(msg.signer(), now); !s.ok()) return s;
  // The body is parsed before the signature is checked only to learn when
  // it claims to be signed: the key must have been valid then (rotation:
  // a message signed just before a key retired still verifies). Nothing
  // else in it is used until the signature holds.
  v1::MessageBody body;
  if (!body.ParseFromString(msg.body())) {
    return absl::InvalidArgumentError("message body does not parse");
  }
  if (!IsSet(body.header().created_at())) {
    return absl::InvalidArgumentError("message has no creation time");
  }
  absl::Time signed_at = FromTimestamp(body.header().created_at());
  std::string resigned_input;  // what a re-signed message's signature covers
  if (!msg.resigning().empty()) {
    absl::StatusOr<v1::Resigning> r = ReadResigning(msg, body);
    if (!r.ok()) return r.status();
    signed_at = FromTimestamp(r->resigned_at());
    resigned_input = ResigningInput(msg.resigning());
  }
  if (signed_at > now + kMaxClockSkew) {
    // OutOfRange, not InvalidArgument: the sender retries, so a clock that
    // runs ahead delays messages instead of dropping them.
    return absl::OutOfRangeError(
        absl::StrCat("message creation time ", FormatRfc3339(signed_at), " is in the future"));
  }
  absl::StatusOr<crypto::PublicKey> key = trust.FindKey(msg.signer(), msg.key_id(), signed_at);
  if (!key.ok()) return key.status();
  if (ToProtoAlgorithm(key->algorithm()) != msg.algorithm()) {
    return absl::UnauthenticatedError("signature algorithm does not match the key");
  }
  const std::string& signed_bytes = msg.resigning().empty() ? msg.body() : resigned_input;
  if (absl::Status s = key->Verify(signed_bytes, msg.signature()); !s.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("signature of ", msg.signer(), " does not verify"));
  }
  const v1::Header& h = body.header();
  if (h.sender() != msg.signer()) {
    return absl::PermissionDeniedError(absl::StrCat("header sender '", Printable(h.sender(), 64),
                                                    "' differs from signer ", msg.signer()));
  }
  if (!IsValidMessageId(h.message_id())) {
    return absl::InvalidArgumentError("message id must be 32 lowercase hex characters");
  }
  if (h.kind() == v1::MESSAGE_KIND_UNSPECIFIED || h.kind() != KindOf(body)) {
    return absl::InvalidArgumentError("message kind does not match its payload");
  }
  if (absl::Status s = CheckBounds(body); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("message body: ", s.message()));
  }
  return body;
}

std::string MessageDigest(const v1::SignedMessage& msg) { return crypto::Sha256(msg.body()); }

}  // namespace kpx::node
