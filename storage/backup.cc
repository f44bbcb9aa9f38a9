// Backups (RocksDB checkpoints), restore, and health of the ledger.
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "rocksdb/utilities/checkpoint.h"
#include "storage/ledger.h"
#include "storage/ledger_impl.h"

namespace kpx::storage {

absl::Status Ledger::WriteStatus() const {
  absl::MutexLock l(&impl_->mu);
  return impl_->writes_refused;
}

uint64_t Ledger::ApproximateSizeBytes() const {
  uint64_t total = 0;
  for (rocksdb::ColumnFamilyHandle* cf :
       {impl_->log_cf, impl_->certs_cf, impl_->outbox_cf, impl_->seen_cf, impl_->meta_cf}) {
    uint64_t sst = 0, mem = 0;
    impl_->db->GetIntProperty(cf, rocksdb::DB::Properties::kTotalSstFilesSize, &sst);
    impl_->db->GetIntProperty(cf, rocksdb::DB::Properties::kCurSizeAllMemTables, &mem);
    total += sst + mem;
  }
  return total;
}

absl::StatusOr<Head> Ledger::Checkpoint(const std::string& backup_dir) const {
  if (std::filesystem::exists(backup_dir)) {
    return absl::AlreadyExistsError(absl::StrCat("backup folder ", backup_dir, " already exists"));
  }
  rocksdb::Checkpoint* raw = nullptr;
  if (absl::Status s = FromRocks(rocksdb::Checkpoint::Create(impl_->db.get(), &raw), "checkpoint");
      !s.ok()) {
    return s;
  }
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // The head is read under the commit mutex and the checkpoint flushes the
  // memtables: the copy holds at least this head (appends after it may be
  // in it too; the copy is consistent either way, being one snapshot).
  const Head at = head();
  if (absl::Status s = FromRocks(checkpoint->CreateCheckpoint(backup_dir), "checkpoint"); !s.ok()) {
    return s;
  }
  return at;
}

namespace {

namespace fs = std::filesystem;

// Copies `backup_dir` into the empty folder `dir`, then opens and verifies
// the copy (closing it again before returning).
absl::StatusOr<VerifyResult> CopyAndVerify(const std::string& backup_dir, const std::string& dir) {
  std::error_code ec;
  fs::copy(backup_dir, dir, fs::copy_options::recursive, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot copy ", backup_dir, ": ", ec.message()));
  }
  absl::StatusOr<std::unique_ptr<Ledger>> ledger = Ledger::Open(dir);
  if (!ledger.ok()) {
    return absl::DataLossError(absl::StrCat("backup does not open: ", ledger.status().message()));
  }
  VerifyResult result = (*ledger)->Verify();
  if (!result.ok) {
    return absl::DataLossError(absl::StrCat("backup does not verify: entry ",
                                            result.first_bad_sequence, ": ", result.problem));
  }
  return result;
}

// Removes what a failed restore put in `dir`: the folder itself if the
// restore created it, else everything in it (it was empty before).
absl::Status Undo(const fs::path& dir, bool created) {
  std::error_code ec;
  if (created) {
    fs::remove_all(dir, ec);
  } else {
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      fs::remove_all(it->path(), ec);
      if (ec) break;
    }
  }
  if (ec)
    return absl::InternalError(absl::StrCat("cannot remove ", dir.string(), ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VerifyResult> Ledger::Restore(const std::string& backup_dir,
                                             const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(backup_dir, ec) || !fs::exists(fs::path(backup_dir) / "CURRENT", ec)) {
    return absl::NotFoundError(absl::StrCat(backup_dir, " is not a kpx ledger backup"));
  }
  const bool existed = fs::exists(dir, ec);
  if (existed && !fs::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(absl::StrCat("restore target ", dir, " is not a folder"));
  }
  if (existed && !fs::is_empty(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("restore target ", dir, " is not empty; restore only into an empty folder"));
  }
  if (!existed && !fs::create_directories(dir, ec)) {
    return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  absl::StatusOr<VerifyResult> result = CopyAndVerify(backup_dir, dir);
  if (result.ok()) return result;
  // Leave nothing behind: no damaged copy a node could start from, and an
  // empty target a retry can use.
  if (absl::Status undo = Undo(dir, !existed); !undo.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat(result.status().message(), "; and ", undo.message()));
  }
  return result;
}

}  // namespace kpx::storage
