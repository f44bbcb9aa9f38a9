// kpx::node::BatchRecords: certificate records as one batch leaves them.
//
// When several messages of one batch touch the same certificate (a
// certificate and its cancellation; a certificate's receipt and a later
// message's), each must see the record as the earlier ones changed it.
// BatchRecords reads a record from the ledger once, then serves the
// batch's own version. Used by the inbox and the courier, under the
// certificates' locks for the whole batch.
//
// Thread safety: one batch, one thread. The ledger must outlive it.
#ifndef KPX_NODE_BATCH_RECORDS_H_
#define KPX_NODE_BATCH_RECORDS_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "kpx/v1/ledger.pb.h"
#include "storage/ledger.h"

namespace kpx::node {

class BatchRecords {
 public:
  explicit BatchRecords(const storage::Ledger* ledger) : ledger_(ledger) {}

  // The record of `number` as the batch has left it; null if there is
  // none. The pointer stays valid until the next Set of that number.
  absl::StatusOr<const v1::CertificateRecord*> Get(const std::string& number);
  // The batch changed `number`'s record to `rec`.
  void Set(const std::string& number, v1::CertificateRecord rec) {
    records_[number] = std::move(rec);
  }

 private:
  const storage::Ledger* const ledger_;
  std::map<std::string, std::optional<v1::CertificateRecord>> records_;  // nullopt: none
};

}  // namespace kpx::node

#endif  // KPX_NODE_BATCH_RECORDS_H_
