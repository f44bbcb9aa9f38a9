// What `kpxctl trust show` and `kpxctl trust diff` print: a trust-list
// version and the difference between two, for the people who sign them.
// Pure functions over parsed lists; every value printed is made printable
// (node/text.h) and cut, so a hostile file cannot garble a terminal.
#ifndef KPX_GATEWAY_TRUST_TEXT_H_
#define KPX_GATEWAY_TRUST_TEXT_H_

#include <string>

#include "node/trust_list.h"

namespace kpx::gateway {

// Version, digest, issue time, publishers and threshold, each Participant
// (status, node, keys, offices, onboarding), and the signatures. With
// `signers` (the version before), says whose signatures verify and
// whether they reach its threshold.
std::string TrustListText(const node::TrustList& list, const node::TrustList* signers);

// One line per difference from `from` to `to`: version, publishers,
// threshold, Participants added or removed, and per Participant each
// field that changed ("BW status: ACTIVE -> SUSPENDED"). "no differences"
// when there are none.
std::string TrustListDiff(const node::TrustList& from, const node::TrustList& to);

}  // namespace kpx::gateway

#endif  // KPX_GATEWAY_TRUST_TEXT_H_
