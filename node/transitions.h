// Pure builders of ledger transitions (storage::Transition): what each
// step of a certificate's life writes, in one atomic batch.
//
// Nothing here reads the ledger, the clock or a key: the inputs are the
// record as it stands, the message and the time, so each builder is unit
// tested on its own (tests/transitions_test.cc). The parts that lock,
// read and append (authority_desk, inbox, courier, sweeper) call these.
#ifndef KPX_NODE_TRANSITIONS_H_
#define KPX_NODE_TRANSITIONS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/message.pb.h"
#include "node/transport.h"
#include "node/trust_list.h"
#include "storage/ledger.h"

namespace kpx::node {

// Sets `rec`'s state to `state` and appends the history item saying so.
void AddHistory(v1::CertificateRecord& rec, v1::CertificateState state, absl::Time at,
                const std::string& message_id, const std::string& detail);

// "amended to version N (changed fields): reason", for `rec` just amended.
std::string AmendedDetail(const v1::CertificateRecord& rec);

// Stores the importer's confirmation `c` in `rec` with the discrepancies
// between it and the certificate (CompareFindings); notes their number in
// the last history item. Both sides call it, so both list the same.
void RecordConfirmation(v1::CertificateRecord& rec, const v1::ImportConfirmation& c);

// An on_sequenced hook that stamps the last history item of the record
// (and of each linked record) with the entry's sequence.
absl::Status StampHistory(const storage::Head& head, storage::Transition& t);

// Exporter, submit: the certificate recorded ISSUED, its message queued.
storage::Transition IssueTransition(const v1::Certificate& cert, const std::string& message_id,
                                    const v1::SignedMessage& msg, absl::Time now);

// Either side, a locally initiated change of `rec` to `to` whose message
// `msg` goes to the partner (cancel, confirm, reject, expiry). The message
// is queued behind any earlier one about the certificate still queued.
storage::Transition SendTransition(v1::CertificateRecord rec, v1::CertificateState to,
                                   const std::string& detail, const std::string& message_id,
                                   const v1::SignedMessage& msg, absl::Time now);

// What a node knows when it plans a message received from a peer.
// Another certificate's record as the batch stands (null if none).
using RecordLookup =
    std::function<absl::StatusOr<const v1::CertificateRecord*>(const std::string& number)>;

struct IncomingContext {
  const std::string& self;  // this node's Participant
  const std::string& peer;  // the sender, as TLS and the signature proved
  const TrustList& trust;
  absl::Time now;
  // Reads linked certificates (a replacement's predecessor and successor);
  // null: none are held. The caller holds their locks (LinkedNumbers).
  const RecordLookup* lookup = nullptr;
};

// The other certificates a message about `body`'s certificate may change,
// given its record `current` (null if none): a replacement's predecessor,
// and the successor of a replaced certificate. Lock them with it.
std::vector<std::string> LinkedNumbers(const v1::MessageBody& body,
                                       const v1::CertificateRecord* current);

// The transition that records `body` (verified, signed bytes `msg`) given
// the certificate's record as it stands (`current`, null if none):
//   certificate   -> a new IMPORTING record, RECEIVED (KP rules re-checked);
//                    a replacement also marks its predecessor REPLACED, or
//                    is DISPUTED if we decided on the predecessor already
//   void          -> our CONFIRMED IMPORTING record VOIDED
//   amendment     -> our IMPORTING record as amended (ApplyAmendment); if we
//                    had decided already, DISPUTED
//   confirmation  -> our EXPORTING record CONFIRMED (digest must match,
//                    CheckConfirmation), with its discrepancies
//   rejection     -> our EXPORTING record REJECTED (digest must match)
//   cancellation  -> the IMPORTING record CANCELLED; if the importer has
//                    decided already (CONFIRMED, REJECTED, EXPIRED), only
//                    noted: the decision stands (no record change)
//   expiry        -> our EXPORTING record EXPIRED
// A confirmation, rejection or expiry that finds our record CANCELLED or
// REPLACED crossed our cancellation or replacement and is applied: the
// importer's decision stands; a replacement it crossed becomes DISPUTED.
// The transition marks the message id seen; its on_sequenced is left for
// the caller (the receipt is signed once the sequence is known).
// Errors: InvalidArgument (malformed, wrong recipient, rules, digest),
// AlreadyExists (certificate received before), NotFound (no such record
// with this peer), FailedPrecondition (state does not allow it).
absl::StatusOr<storage::Transition> PlanIncoming(const IncomingContext& ctx,
                                                 const v1::MessageBody& body,
                                                 const v1::SignedMessage& msg,
                                                 const v1::CertificateRecord* current);

// The message queued for `rec`'s certificate right after `message_id`
// (held until that one has left the outbox), or null.
const std::string* QueuedAfter(const v1::CertificateRecord& rec, const std::string& message_id);

// Exporter or importer, after a delivery attempt that ended for good:
// `status` OK with the peer's checked `proof`, or a permanent refusal.
// Removes the item from the outbox and from `current`'s queue and records
// the receipt (RECEIPT) or the refusal (DELIVERY_FAILED); `next` (the
// outbox item QueuedAfter names, if any) is released: due now. The first
// receipt for a certificate message moves `current` from ISSUED to
// DELIVERED; its permanent refusal moves it from ISSUED to REFUSED, with
// the refusal as the history detail.
storage::Transition DeliveryTransition(const v1::OutboxItem& item, const absl::Status& status,
                                       const v1::DeliveryProof& proof,
                                       std::optional<v1::CertificateRecord> current,
                                       std::optional<v1::OutboxItem> next, absl::Time now);

// True for a certificate RECEIVED at the importer whose expires_at plus
// `grace` (the confirmation grace, NodeConfig.confirm_grace_days) has
// passed at `now`. Only the importer expires certificates: it then sends
// an Expiry message (SendTransition to EXPIRED), and the exporter records
// the expiry when that arrives, so one clock decides for both sides.
bool IsExpirable(const v1::CertificateRecord& rec, absl::Time now, absl::Duration grace);

// The detail recorded with an expiry.
const char* ExpiredDetail();

}  // namespace kpx::node

#endif  // KPX_NODE_TRANSITIONS_H_
