// kpx::node::Queries: reading certificates — one by number, or a filtered
// page of them in number order.
//
// MatchesFilter is the pure list filter (unit tested on its own). Paging:
// the page token is the last number of the previous page; a page is
// fetched with one extra record to learn whether another page exists.
//
// Thread safety: every method may be called from any thread; reads see
// committed state only.
#ifndef KPX_NODE_QUERIES_H_
#define KPX_NODE_QUERIES_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kpx/v1/ledger.pb.h"
#include "kpx/v1/service.pb.h"
#include "node/context.h"

namespace kpx::node {

// Page sizes of ListCertificates: the default and the most one page holds.
inline constexpr uint32_t kDefaultListPageSize = 50;
inline constexpr uint32_t kMaxListPageSize = 1000;
// A page holds at most this many bytes of records (at least one record):
// well below a client's 64 MiB receive limit.
inline constexpr size_t kMaxListPageBytes = 16 << 20;
inline constexpr int kMaxTraceSteps = 256;

// True if `r` passes every filter of `req` at `now`; `overdue_days` is the
// node's setting, used when req.overdue is set without a number of days.
bool MatchesFilter(const v1::ListCertificatesRequest& req, const v1::CertificateRecord& r,
                   absl::Time now, uint32_t overdue_days);

// How many certificates this node holds, by current state, and of them
// how many are overdue (waiting for the importing authority longer than
// the node's overdue_days) and confirmed with discrepancies.
struct CertificateCounts {
  std::map<v1::CertificateState, uint64_t> by_state;
  uint64_t overdue = 0;
  uint64_t discrepancies = 0;
};

class Queries {
 public:
  Queries(const NodeContext& ctx, uint32_t overdue_days);

  // NotFound if this node has no certificate with that number.
  absl::StatusOr<v1::CertificateRecord> Get(const std::string& number) const;
  absl::StatusOr<v1::ListCertificatesResponse> List(
      const v1::ListCertificatesRequest& request) const;
  // The chain of custody of `number`: from it, breadth first, the
  // certificate it replaces, the one that replaced it, and the import
  // certificates its goods arrived under (provenance), each with its record
  // where this node holds it; at most kMaxTraceSteps steps, each number
  // once. NotFound if this node does not hold `number`.
  absl::StatusOr<v1::TraceCertificateResponse> Trace(const std::string& number) const;
  // One pass over every record, keeping none in memory.
  absl::StatusOr<CertificateCounts> Count() const;

 private:
  const NodeContext& ctx_;
  const uint32_t overdue_days_;
};

}  // namespace kpx::node

#endif  // KPX_NODE_QUERIES_H_
