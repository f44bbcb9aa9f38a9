// kpx::node::Sweeper: housekeeping over the certificate records.
//
// ExpireDue marks open certificates whose validity ran out EXPIRED (each
// in its own transition, re-checked under its lock, so a confirmation
// that arrived meanwhile wins). LogOverdue logs one line per certificate
// waiting for the importing authority longer than overdue_days.
// Both scan the certificate index; the background loop runs them once a
// minute and once a day. A failed read or write is logged and counted.
//
// Thread safety: each method may be called from any thread.
#ifndef KPX_NODE_SWEEPER_H_
#define KPX_NODE_SWEEPER_H_

#include <cstddef>
#include <cstdint>

#include "node/context.h"

namespace kpx::node {

class Sweeper {
 public:
  Sweeper(const NodeContext& ctx, uint32_t overdue_days);

  // Returns how many certificates it marked EXPIRED.
  size_t ExpireDue();
  // Returns how many overdue certificates it logged.
  size_t LogOverdue();

 private:
  // Expires `number` if it is still expirable; true if it did.
  bool Expire(const std::string& number, absl::Time now);

  const NodeContext& ctx_;
  const uint32_t overdue_days_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_SWEEPER_H_
