// Signing and verifying kpx messages (kpx.v1.SignedMessage).
//
// Signing serializes the MessageBody once and signs those bytes; the bytes
// travel as they are. Verification checks the signature over the received
// bytes (parsing them first only to read the claimed creation time, which
// picks the key) and checks the signer against the trust list.
#ifndef KPX_NODE_ENVELOPE_H_
#define KPX_NODE_ENVELOPE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "crypto/crypto.h"
#include "kpx/v1/message.pb.h"
#include "node/trust_list.h"

namespace kpx::node {

// How far ahead of our clock a peer's creation time may be.
inline constexpr absl::Duration kMaxClockSkew = absl::Minutes(5);
// Bounds on a SignedMessage's own fields, checked before anything else:
// the largest certificate (256 KiB) with room for its envelope.
inline constexpr size_t kMaxMessageBodyBytes = 320 * 1024;
inline constexpr size_t kMaxSignerBytes = 16;
inline constexpr size_t kMaxKeyIdBytes = 64;
inline constexpr size_t kMaxSignatureBytes = 256;
inline constexpr size_t kMaxResigningBytes = 256;

// Signs for one Participant with one key. Thread-safe (Sign is const).
class Signer {
 public:
  Signer(std::string participant, crypto::PrivateKey key)
      : participant_(std::move(participant)), key_(std::move(key)) {}

  const std::string& participant() const { return participant_; }
  const crypto::PrivateKey& key() const { return key_; }

  absl::StatusOr<v1::SignedMessage> Sign(const v1::MessageBody& body) const;
  // `msg` (ours, signed with a key since withdrawn) signed again at `now`:
  // the same body, this signer's key, and a Resigning naming the body's
  // digest, `now` and the key that signed it before.
  absl::StatusOr<v1::SignedMessage> Resign(const v1::SignedMessage& msg, absl::Time now) const;

 private:
  std::string participant_;
  crypto::PrivateKey key_;
};

// Verifies `msg` as sent by `expected_signer` at time `now`:
//   - its body, signer, key id and signature are within the bounds above,
//     and it has no unknown fields (InvalidArgument);
//   - the signer is `expected_signer` (PermissionDenied otherwise),
//   - the signer is an active Participant (PermissionDenied),
//   - key_id names a key of the signer that was valid when the message was
//     signed (SigningTime, at most kMaxClockSkew ahead of `now`) with the
//     declared algorithm, and the signature verifies over msg.body, or for
//     a re-signed message over ResigningInput (Unauthenticated);
//   - a re-signed message's Resigning parses, has no unknown fields, names
//     the body's digest and a time no earlier than the body's creation
//     (InvalidArgument),
//   - the body parses and its header names the signer as sender and carries
//     a well-formed message id and kind matching the payload
//     (InvalidArgument),
//   - the body meets CheckBounds (node/bounds.h; InvalidArgument).
// Error messages quote what the sender claimed only bounded and escaped.
// Returns the parsed body.
absl::StatusOr<v1::MessageBody> VerifyMessage(const v1::SignedMessage& msg,
                                              const std::string& expected_signer,
                                              const TrustList& trust, absl::Time now);

// The kind a body's header must declare for its payload;
// MESSAGE_KIND_UNSPECIFIED for a body without payload.
v1::MessageKind KindOf(const v1::MessageBody& body);

// SHA-256 of the body: what receipts and confirmations refer to. A
// re-signed message keeps its digest.
std::string MessageDigest(const v1::SignedMessage& msg);

// When `msg` claims it was signed (unchecked): the Resigning's resigned_at
// for a re-signed message, else its header's created_at; InfinitePast if
// the bytes do not parse.
absl::Time SigningTime(const v1::SignedMessage& msg);

// What a re-signed message's signature covers:
// "kpx-resigned-v1" || 0x00 || resigning.
std::string ResigningInput(const std::string& resigning);

v1::SignatureAlgorithm ToProtoAlgorithm(crypto::Algorithm a);

}  // namespace kpx::node

#endif  // KPX_NODE_ENVELOPE_H_
