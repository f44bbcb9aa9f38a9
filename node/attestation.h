// The printed certificate's QR code (docs/protocol.md "The printed
// certificate"): a compact attestation of what the paper shows, signed by
// the exporting node, that anyone can check offline against the trust list
// (`kpxctl cert verify-qr`), and a short code for those without a QR
// reader (the console's public /verify page).
//
// The attestation is made from the certificate record alone, and Ed25519
// signatures are deterministic, so printing the same record again gives
// the same QR code. (An ECDSA key signs differently each time: the QR code
// then differs between prints, and verifies all the same.)
//
// Functions are pure; Attestor reads the ledger and the keyring, and may be
// used from any thread.
#ifndef KPX_NODE_ATTESTATION_H_
#define KPX_NODE_ATTESTATION_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/crypto.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/message.pb.h"
#include "kpx/v1/service.pb.h"
#include "node/context.h"
#include "node/trust_list.h"

namespace kpx::node {

// A QR payload longer than this is refused unread.
inline constexpr size_t kMaxAttestationPayload = 1024;

// What `rec`'s printed certificate attests.
v1::Attestation AttestationOf(const v1::CertificateRecord& rec);

// "KPX1." and the SignedAttestation of `a` by `key`, in unpadded base64url.
absl::StatusOr<std::string> SignAttestation(const v1::Attestation& a,
                                            const crypto::PrivateKey& key);

// The attestation `payload` holds if its signature holds: made by a key of
// its exporter that `trust` says was valid at its issued_at (a key revoked
// later still vouches for what it signed before). InvalidArgument for a
// payload that does not read; Unauthenticated for a signature that does
// not hold.
absl::StatusOr<v1::Attestation> VerifyAttestation(absl::string_view payload,
                                                  const TrustList& trust);

// `a`'s short code: ten characters of A-Z and 2-9 without I, O (and 0, 1),
// grouped five and five ("K7QM2-X4TNA").
std::string ShortCode(const v1::Attestation& a);
// Whether `typed` is `a`'s short code, ignoring case, spaces and dashes.
bool ShortCodeMatches(const v1::Attestation& a, absl::string_view typed);

// What a printed certificate turns out to be, as the public page says it.
struct PaperCheck {
  // The QR code's signature holds, or the number and short code match a
  // certificate recorded here.
  bool authentic = false;
  std::string why_not;          // when not authentic, in one line
  v1::Attestation attestation;  // when authentic: what the paper should show
  // This node records the certificate: its state, and whether the paper is
  // the version recorded (false: an earlier version, amended since).
  bool recorded = false;
  v1::CertificateState state = v1::CERTIFICATE_STATE_UNSPECIFIED;
  bool current_version = false;
};

class Attestor {
 public:
  // `ctx` must outlive this.
  explicit Attestor(const NodeContext& ctx) : ctx_(ctx) {}

  // The QR payload and short code of a certificate this node issued:
  // NotFound if there is none, FailedPrecondition for one it received (only
  // the exporter signs the paper) or when no key of ours valid at its
  // issued_at is held any more.
  absl::StatusOr<v1::AttestationResponse> Attest(const std::string& number) const;

  // A QR payload, checked against the trust list in force and this ledger.
  // Only a storage failure is an error; a bad payload is a PaperCheck that
  // is not authentic.
  absl::StatusOr<PaperCheck> CheckPayload(absl::string_view payload) const;
  // A typed number and short code. Not authentic, with the same words,
  // whether the number is unknown or the code wrong.
  absl::StatusOr<PaperCheck> CheckCode(const std::string& number, absl::string_view code) const;

 private:
  // Fills `check`'s recorded fields from the ledger.
  absl::Status AddRecord(PaperCheck& check) const;

  const NodeContext& ctx_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_ATTESTATION_H_
