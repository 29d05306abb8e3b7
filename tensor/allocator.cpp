#include "tensor/allocator.h"

#include <cstdlib>
#include <mutex>

#include "tensor/block_pool.h"

namespace fstm {

namespace {

// Free memory kept beyond this goes back to the system (whole free segments, largest first).
constexpr size_t kMaxCachedBytes = size_t(4) << 30;

class CachingCpuAllocator final : public Allocator {
 public:
  void* allocate(size_t bytes) override {
    std::lock_guard<std::mutex> lock(mutex_);
    return pool_.allocate(bytes);
  }
  void deallocate(void* ptr, size_t) override {
    std::lock_guard<std::mutex> lock(mutex_);
    pool_.deallocate(ptr);
  }
  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    pool_.release_free_segments();
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    const BlockPool::Stats& s = pool_.stats();
    return {s.bytes_in_use, s.bytes_free, s.bytes_reserved, s.peak_bytes_in_use, s.segments,
            s.allocations, s.cache_hits, s.system_allocations};
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    pool_.reset_peak();
  }

 private:
  static BlockPool::Source system_memory() {
    return {[](size_t bytes) { return std::aligned_alloc(BlockPool::kAlignment, bytes); },
            [](void* ptr, size_t) { std::free(ptr); }};
  }

  std::mutex mutex_;
  BlockPool pool_{system_memory(), kMaxCachedBytes};
};

CachingCpuAllocator& instance() {
  // Never destroyed: tensors in static storage may be freed after main returns.
  static auto* a = new CachingCpuAllocator();
  return *a;
}

}  // namespace

Allocator& cpu_allocator() { return instance(); }
AllocatorStats cpu_allocator_stats() { return instance().stats(); }
void reset_cpu_allocator_peak() { instance().reset_peak(); }

}  // namespace fstm
