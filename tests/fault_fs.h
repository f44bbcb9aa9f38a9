// For tests only: a RocksDB file system that makes the ledger's write-ahead
// log fail on command, to exercise what the ledger does after a failed
// synced write (storage::LedgerOptions::file_system).
//
// Only write-ahead log files (*.log) are affected; every other file (SSTs,
// MANIFEST, OPTIONS, the info LOG) goes straight to the wrapped file system.
// A WAL file holds what RocksDB appends in memory, as the page cache would,
// and hands it to the real file on a successful Sync/Fsync or on Close.
// When a sync fails, that unsynced data is either lost (the default: what
// Linux may do with dirty pages after a failed fsync) or kept (written to
// the real file anyway, so it can reappear after a reopen), as chosen.
//
// Thread safety: the controls may be called from any thread while the
// ledger runs; they take effect for the next Append / Sync.
#ifndef KPX_TESTS_FAULT_FS_H_
#define KPX_TESTS_FAULT_FS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "rocksdb/file_system.h"

namespace kpx::testing {

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  // What happens to the data appended since the last good sync when a sync
  // fails.
  enum class OnFailedSync { kLoseUnsynced, kKeepUnsynced };

  // Shared with the files it opens, which may outlive a control call.
  struct Controls {
    std::atomic<bool> fail_syncs{false};
    std::atomic<bool> fail_appends{false};
    std::atomic<OnFailedSync> on_failed_sync{OnFailedSync::kLoseUnsynced};
    std::atomic<uint64_t> failed_syncs{0};
    std::atomic<uint64_t> failed_appends{0};
  };

  explicit FaultFileSystem(
      std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());

  const char* Name() const override { return "KpxFaultFileSystem"; }

  // While true, every Sync/Fsync of a WAL file fails with an IOError.
  void FailSyncs(bool fail) { controls_->fail_syncs = fail; }
  // While true, every Append to a WAL file fails with an IOError and
  // appends nothing.
  void FailAppends(bool fail) { controls_->fail_appends = fail; }
  void SetOnFailedSync(OnFailedSync what) { controls_->on_failed_sync = what; }
  // Syncs / appends failed so far.
  uint64_t failed_syncs() const { return controls_->failed_syncs; }
  uint64_t failed_appends() const { return controls_->failed_appends; }

  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;

 private:
  // Wraps `*result` if `fname` is a WAL file and opening succeeded.
  rocksdb::IOStatus Wrap(const std::string& fname, rocksdb::IOStatus opened,
                         std::unique_ptr<rocksdb::FSWritableFile>* result);

  std::shared_ptr<Controls> controls_ = std::make_shared<Controls>();
};

}  // namespace kpx::testing

#endif  // KPX_TESTS_FAULT_FS_H_
