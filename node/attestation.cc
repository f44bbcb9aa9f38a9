#include "node/attestation.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "node/keyring.h"
#include "node/util.h"
#include "storage/ledger.h"

namespace kpx::node {
namespace {

constexpr char kPrefix[] = "KPX1.";
constexpr char kContext[] = "kpx-attestation-v1";  // and its NUL
constexpr char kCodeContext[] = "kpx-short-code-v1";
constexpr char kCodeAlphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";  // 32, no I O 0 1
constexpr int kCodeChars = 10;

std::string Serialized(const v1::Attestation& a) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  a.SerializeToCodedStream(&coded);
  coded.Trim();
  return out;
}

std::string SigningInput(const std::string& attestation) {
  return absl::StrCat(absl::string_view(kContext, sizeof(kContext)), attestation);
}

absl::Status Unreadable(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("this is not a kpx certificate code: ", why));
}

}  // namespace

v1::Attestation AttestationOf(const v1::CertificateRecord& rec) {
  const v1::Certificate& c = rec.certificate();
  v1::Attestation a;
  a.set_number(c.number());
  a.set_exporter(c.exporting_participant());
  a.set_importer(c.importing_participant());
  *a.mutable_issued_at() = c.issued_at();
  *a.mutable_expires_at() = c.expires_at();
  a.set_total_carats_hundredths(c.total_carats_hundredths());
  a.set_total_value_usd_cents(c.total_value_usd_cents());
  a.set_number_of_parcels(c.number_of_parcels());
  a.set_certificate_digest(rec.certificate_digest());
  return a;
}

absl::StatusOr<std::string> SignAttestation(const v1::Attestation& a,
                                            const crypto::PrivateKey& key) {
  v1::SignedAttestation signed_a;
  signed_a.set_attestation(Serialized(a));
  signed_a.set_key_id(key.key_id());
  absl::StatusOr<std::string> signature = key.Sign(SigningInput(signed_a.attestation()));
  if (!signature.ok()) return signature.status();
  signed_a.set_signature(*std::move(signature));
  std::string bytes;
  if (!signed_a.SerializeToString(&bytes)) return absl::InternalError("cannot write attestation");
  return absl::StrCat(kPrefix, absl::WebSafeBase64Escape(bytes));
}

absl::StatusOr<v1::Attestation> VerifyAttestation(absl::string_view payload,
                                                  const TrustList& trust) {
  payload = absl::StripAsciiWhitespace(payload);
  if (payload.size() > kMaxAttestationPayload) return Unreadable("too long");
  if (!absl::ConsumePrefix(&payload, kPrefix)) return Unreadable("it does not start with KPX1.");
  std::string bytes;
  if (!absl::WebSafeBase64Unescape(payload, &bytes)) return Unreadable("not base64url");
  v1::SignedAttestation signed_a;
  v1::Attestation a;
  if (!signed_a.ParseFromString(bytes) || !a.ParseFromString(signed_a.attestation()) ||
      a.number().empty() || a.exporter().empty()) {
    return Unreadable("its content does not parse");
  }
  absl::StatusOr<crypto::PublicKey> key =
      trust.FindKey(a.exporter(), signed_a.key_id(), FromTimestamp(a.issued_at()));
  if (!key.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the signature does not hold: ", key.status().message()));
  }
  if (!key->Verify(SigningInput(signed_a.attestation()), signed_a.signature()).ok()) {
    return absl::UnauthenticatedError(absl::StrCat("the signature does not hold: it is not ",
                                                   a.exporter(), "'s signature of this content"));
  }
  return a;
}

std::string ShortCode(const v1::Attestation& a) {
  const std::string digest = crypto::Sha256(
      absl::StrCat(absl::string_view(kCodeContext, sizeof(kCodeContext)), Serialized(a)));
  // The first 50 bits, five at a time.
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits = bits << 8 | static_cast<uint8_t>(digest[i]);
  std::string code;
  for (int i = 0; i < kCodeChars; ++i) {
    if (i == kCodeChars / 2) code += '-';
    code += kCodeAlphabet[(bits >> (59 - 5 * i)) & 31];
  }
  return code;
}

bool ShortCodeMatches(const v1::Attestation& a, absl::string_view typed) {
  std::string normal;
  for (char c : typed) {
    if (c == '-' || absl::ascii_isspace(c)) continue;
    if (normal.size() >= kCodeChars) return false;
    normal += absl::ascii_toupper(c);
  }
  std::string expected = ShortCode(a);
  expected.erase(kCodeChars / 2, 1);
  return crypto::ConstantTimeEquals(normal, expected);
}

absl::StatusOr<v1::AttestationResponse> Attestor::Attest(const std::string& number) const {
  absl::StatusOr<std::optional<v1::CertificateRecord>> rec = ctx_.ledger->GetCertificate(number);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) {
    return absl::NotFoundError(absl::StrCat("no certificate ", number, " at ", ctx_.participant));
  }
  if ((*rec)->side() != v1::EXPORTING) {
    return absl::FailedPreconditionError(
        absl::StrCat("certificate ", number, " was issued by ", (*rec)->partner(),
                     ": only the exporting Participant prints and signs it"));
  }
  v1::AttestationResponse out;
  *out.mutable_attestation() = AttestationOf(**rec);
  absl::StatusOr<Signer> signer =
      ctx_.keyring->SignerAt(FromTimestamp((*rec)->certificate().issued_at()));
  if (!signer.ok()) return signer.status();
  absl::StatusOr<std::string> payload = SignAttestation(out.attestation(), signer->key());
  if (!payload.ok()) return payload.status();
  out.set_payload(*std::move(payload));
  out.set_short_code(ShortCode(out.attestation()));
  return out;
}

absl::Status Attestor::AddRecord(PaperCheck& check) const {
  absl::StatusOr<std::optional<v1::CertificateRecord>> rec =
      ctx_.ledger->GetCertificate(check.attestation.number());
  if (!rec.ok()) return rec.status();
  if (!rec->has_value() ||
      (*rec)->certificate().exporting_participant() != check.attestation.exporter()) {
    return absl::OkStatus();
  }
  check.recorded = true;
  check.state = (*rec)->state();
  check.current_version = (*rec)->certificate_digest() == check.attestation.certificate_digest();
  return absl::OkStatus();
}

absl::StatusOr<PaperCheck> Attestor::CheckPayload(absl::string_view payload) const {
  PaperCheck check;
  absl::StatusOr<v1::Attestation> a = VerifyAttestation(payload, *ctx_.keyring->trust());
  if (!a.ok()) {
    check.why_not = std::string(a.status().message());
    return check;
  }
  check.authentic = true;
  check.attestation = *std::move(a);
  if (absl::Status s = AddRecord(check); !s.ok()) return s;
  return check;
}

absl::StatusOr<PaperCheck> Attestor::CheckCode(const std::string& number,
                                               absl::string_view code) const {
  PaperCheck check;
  check.why_not = "no certificate with this number and code is recorded at this node";
  absl::StatusOr<std::optional<v1::CertificateRecord>> rec = ctx_.ledger->GetCertificate(number);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) return check;
  v1::Attestation a = AttestationOf(**rec);
  if (!ShortCodeMatches(a, code)) return check;
  check.authentic = true;
  check.why_not.clear();
  check.attestation = std::move(a);
  check.recorded = true;
  check.state = (*rec)->state();
  check.current_version = true;
  return check;
}

}  // namespace kpx::node
