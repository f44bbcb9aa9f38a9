#include "tests/fault_fs.h"

#include <mutex>
#include <string>
#include <utility>

namespace kpx::testing {
namespace {

bool IsWal(const std::string& fname) {
  return fname.size() > 4 && fname.compare(fname.size() - 4, 4, ".log") == 0;
}

// A WAL file whose appends wait in `pending_` until a sync (or Close) hands
// them to the real file. RocksDB closes its files before dropping them; one
// dropped unclosed loses its unsynced tail, as in a crash.
class WalFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  WalFile(std::unique_ptr<rocksdb::FSWritableFile> file,
          std::shared_ptr<FaultFileSystem::Controls> controls)
      : FSWritableFileOwnerWrapper(std::move(file)), controls_(std::move(controls)) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions&,
                           rocksdb::IODebugContext*) override {
    if (controls_->fail_appends) {
      ++controls_->failed_appends;
      return rocksdb::IOStatus::IOError("injected append failure");
    }
    std::lock_guard<std::mutex> lock(mu_);
    pending_.append(data.data(), data.size());
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo&,
                           rocksdb::IODebugContext* dbg) override {
    return Append(data, options, dbg);
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                     rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("FaultFileSystem: PositionedAppend on a WAL");
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice&, uint64_t, const rocksdb::IOOptions&,
                                     const rocksdb::DataVerificationInfo&,
                                     rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::NotSupported("FaultFileSystem: PositionedAppend on a WAL");
  }

  // Data stays pending, as flushed data stays in the page cache.
  rocksdb::IOStatus Flush(const rocksdb::IOOptions&, rocksdb::IODebugContext*) override {
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    return SyncPending(/*fsync=*/false, options, dbg);
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    return SyncPending(/*fsync=*/true, options, dbg);
  }
  rocksdb::IOStatus RangeSync(uint64_t, uint64_t, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override {
    return SyncPending(/*fsync=*/false, options, dbg);
  }
  rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (rocksdb::IOStatus s = WritePending(options, dbg); !s.ok()) return s;
    return target()->Truncate(size, options, dbg);
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    // Unsynced data reaches the disk eventually once the file is closed.
    if (rocksdb::IOStatus s = WritePending(options, dbg); !s.ok()) return s;
    return target()->Close(options, dbg);
  }
  uint64_t GetFileSize(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
    std::lock_guard<std::mutex> lock(mu_);
    return target()->GetFileSize(options, dbg) + pending_.size();
  }

 private:
  rocksdb::IOStatus SyncPending(bool fsync, const rocksdb::IOOptions& options,
                                rocksdb::IODebugContext* dbg) {
    std::lock_guard<std::mutex> lock(mu_);
    if (controls_->fail_syncs) {
      ++controls_->failed_syncs;
      if (controls_->on_failed_sync == FaultFileSystem::OnFailedSync::kKeepUnsynced) {
        if (rocksdb::IOStatus s = WritePending(options, dbg); !s.ok()) return s;
      } else {
        pending_.clear();
      }
      return rocksdb::IOStatus::IOError("injected sync failure");
    }
    if (rocksdb::IOStatus s = WritePending(options, dbg); !s.ok()) return s;
    return fsync ? target()->Fsync(options, dbg) : target()->Sync(options, dbg);
  }

  // Hands the pending bytes to the real file. Requires mu_.
  rocksdb::IOStatus WritePending(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) {
    if (pending_.empty()) return rocksdb::IOStatus::OK();
    rocksdb::IOStatus s = target()->Append(pending_, options, dbg);
    if (s.ok()) s = target()->Flush(options, dbg);
    if (s.ok()) pending_.clear();
    return s;
  }

  const std::shared_ptr<FaultFileSystem::Controls> controls_;
  std::mutex mu_;
  std::string pending_;
};

}  // namespace

FaultFileSystem::FaultFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(std::move(base)) {}

rocksdb::IOStatus FaultFileSystem::Wrap(const std::string& fname, rocksdb::IOStatus opened,
                                        std::unique_ptr<rocksdb::FSWritableFile>* result) {
  if (opened.ok() && IsWal(fname)) {
    *result = std::make_unique<WalFile>(std::move(*result), controls_);
  }
  return opened;
}

rocksdb::IOStatus FaultFileSystem::NewWritableFile(const std::string& fname,
                                                   const rocksdb::FileOptions& options,
                                                   std::unique_ptr<rocksdb::FSWritableFile>* result,
                                                   rocksdb::IODebugContext* dbg) {
  return Wrap(fname, target()->NewWritableFile(fname, options, result, dbg), result);
}

rocksdb::IOStatus FaultFileSystem::ReopenWritableFile(
    const std::string& fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  return Wrap(fname, target()->ReopenWritableFile(fname, options, result, dbg), result);
}

rocksdb::IOStatus FaultFileSystem::ReuseWritableFile(
    const std::string& fname, const std::string& old_fname, const rocksdb::FileOptions& options,
    std::unique_ptr<rocksdb::FSWritableFile>* result, rocksdb::IODebugContext* dbg) {
  return Wrap(fname, target()->ReuseWritableFile(fname, old_fname, options, result, dbg), result);
}

}  // namespace kpx::testing
