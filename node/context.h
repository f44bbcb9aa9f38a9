// kpx::node::NodeContext: what every part of a node shares.
//
// Node owns each of these and builds its parts (authority_desk, queries,
// inbox, courier, sweeper) with a NodeContext; it outlives every part, and
// every pointer in it stays valid for the node's lifetime. The parts read
// it from any thread; nothing in it is reassigned after construction
// (the keyring and the observer slot are thread-safe themselves).
#ifndef KPX_NODE_CONTEXT_H_
#define KPX_NODE_CONTEXT_H_

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "node/certificate_locks.h"
#include "node/keyring.h"
#include "node/observer.h"
#include "storage/ledger.h"

namespace kpx::node {

struct NodeContext {
  std::string participant;
  storage::Ledger* ledger = nullptr;
  Keyring* keyring = nullptr;
  CertificateLocks* locks = nullptr;
  ObserverSlot* observer = nullptr;
  std::function<absl::Time()> clock;

  absl::Time Now() const { return clock(); }
};

}  // namespace kpx::node

#endif  // KPX_NODE_CONTEXT_H_
