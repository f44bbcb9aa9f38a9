#include "node/batch_records.h"

namespace kpx::node {

absl::StatusOr<const v1::CertificateRecord*> BatchRecords::Get(const std::string& number) {
  auto it = records_.find(number);
  if (it == records_.end()) {
    absl::StatusOr<std::optional<v1::CertificateRecord>> rec = ledger_->GetCertificate(number);
    if (!rec.ok()) return rec.status();
    it = records_.emplace(number, *std::move(rec)).first;
  }
  return it->second.has_value() ? &*it->second : nullptr;
}

}  // namespace kpx::node
