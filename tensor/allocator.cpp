#include "tensor/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace fstm {

namespace {

constexpr size_t kAlignment = 64;
// Blocks kept in the cache beyond this are returned to the system.
constexpr size_t kMaxCachedBytes = size_t(4) << 30;

// Rounds a request so that nearly equal sizes share cache entries.
size_t round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < (size_t(1) << 16)) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  return (bytes + 4095) / 4096 * 4096;
}

class CachingCpuAllocator final : public Allocator {
 public:
  ~CachingCpuAllocator() override { empty_cache(); }

  void* allocate(size_t bytes) override {
    const size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.allocations;
    auto it = free_.find(size);
    void* ptr = nullptr;
    if (it != free_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= size;
      ++stats_.cache_hits;
    } else {
      ptr = std::aligned_alloc(kAlignment, size);
      if (!ptr) {  // give the cache back and try once more before failing
        release_all_locked();
        ptr = std::aligned_alloc(kAlignment, size);
        if (!ptr) throw std::bad_alloc();
      }
    }
    stats_.bytes_in_use += size;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return ptr;
  }

  void deallocate(void* ptr, size_t bytes) override {
    if (!ptr) return;
    const size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.bytes_in_use -= size;
    if (stats_.bytes_cached + size > kMaxCachedBytes) {
      std::free(ptr);
      return;
    }
    free_[size].push_back(ptr);
    stats_.bytes_cached += size;
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mutex_);
    release_all_locked();
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

 private:
  void release_all_locked() {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    stats_.bytes_cached = 0;
  }

  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
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
