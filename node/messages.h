// The messages a node sends: pure builders of each payload, and sealing
// (addressing and signing) a body with the node's key in force.
//
// The builders read only their arguments; they are what docs/protocol.md
// describes, field by field. Thread-safe.
#ifndef KPX_NODE_MESSAGES_H_
#define KPX_NODE_MESSAGES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/message.pb.h"
#include "node/keyring.h"
#include "storage/ledger.h"

namespace kpx::node {

// Why an authority cancels, rejects, voids: a code from the published
// list (REASON_CODE_UNSPECIFIED is recorded as OTHER) and free text.
struct Reason {
  v1::ReasonCode code = v1::OTHER;
  std::string text;
};

// The exporter's certificate.
v1::MessageBody CertificateBody(const v1::Certificate& cert);
// The exporter cancels `number` before the importer decides.
v1::MessageBody CancellationBody(const std::string& number, const Reason& reason);
// The exporter corrects `rec` (ISSUED or DELIVERED) to `amended`.
v1::MessageBody AmendmentBody(const v1::CertificateRecord& rec, const v1::Certificate& amended,
                              const Reason& reason);
// The exporter voids `rec` (a CONFIRMED record) after confirmation.
v1::MessageBody VoidBody(const v1::CertificateRecord& rec, const Reason& reason);
// The importer confirms receipt of a shipment (BuildConfirmation, findings.h).
v1::MessageBody ConfirmationBody(v1::ImportConfirmation confirmation);
// The importer refuses the shipment of `rec`.
v1::MessageBody RejectionBody(const v1::CertificateRecord& rec, const Reason& reason);
// The importer's node: `rec` (RECEIVED) expired undecided at `now`.
v1::MessageBody ExpiryBody(const v1::CertificateRecord& rec, absl::Time now);
// Our tree head: the Merkle root of our first `tree_size` ledger entries.
// Sealed with an empty recipient (shown to anyone).
v1::MessageBody TreeHeadBody(uint64_t tree_size, const std::string& root);

// The certificate number a payload is about; empty for receipts and
// bodies without payload.
const std::string& CertificateNumberOf(const v1::MessageBody& body);

// A sealed message: the signed bytes and the id its header carries.
struct Sealed {
  std::string message_id;
  v1::SignedMessage message;
};

// Fills in `body`'s header (a new random message id, `keyring`'s
// Participant as sender, `recipient`, `now` as creation time) and signs it
// with the key in force at `now`. InvalidArgument, nothing signed, if the
// body breaks CheckBounds (node/bounds.h), which every receiver applies.
absl::StatusOr<Sealed> Seal(const Keyring& keyring, v1::MessageBody body,
                            const std::string& recipient, absl::Time now);

}  // namespace kpx::node

#endif  // KPX_NODE_MESSAGES_H_
