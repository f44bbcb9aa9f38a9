// kpx::node::Sweeper: housekeeping over the certificate records.
//
// ExpireDue, on the importing side only, marks RECEIVED certificates whose
// validity plus the confirmation grace ran out EXPIRED and tells the
// exporter (an Expiry message), each in its own transition, re-checked
// under its lock, so a confirmation made meanwhile wins. The exporter never
// expires a certificate by its own clock: it records the importer's Expiry. LogOverdue logs one
// line per certificate waiting for the importing authority longer than overdue_days. Both scan the
// certificate index; the background loop runs them once a minute and once a day. A failed read or
// write is logged and counted.
//
// Thread safety: each method may be called from any thread.
#ifndef KPX_NODE_SWEEPER_H_
#define KPX_NODE_SWEEPER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "node/context.h"

namespace kpx::node {

class Sweeper {
 public:
  // `queued` is called with the partner after an expiry queued its message
  // (wakes that partner's delivery lane).
  Sweeper(const NodeContext& ctx, uint32_t overdue_days, uint32_t confirm_grace_days,
          std::function<void(const std::string& recipient)> queued);

  // Returns how many certificates it marked EXPIRED.
  size_t ExpireDue();
  // Returns how many overdue certificates it logged.
  size_t LogOverdue();

 private:
  // Expires `number` if it is still expirable; true if it did.
  bool Expire(const std::string& number, absl::Time now);

  const NodeContext& ctx_;
  const uint32_t overdue_days_;
  const absl::Duration grace_;
  const std::function<void(const std::string& recipient)> queued_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_SWEEPER_H_
