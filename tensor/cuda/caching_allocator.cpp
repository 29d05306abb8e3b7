#include "tensor/cuda/caching_allocator.h"

#include <cstdio>

#include "tensor/cuda/cuda_internal.h"

namespace fstm::cuda {

namespace {
constexpr size_t kSmallStep = 512;
constexpr size_t kLargeThreshold = size_t(1) << 20;
// No device has this much memory; larger requests are bugs (a negative size cast to size_t).
constexpr size_t kMaxRequest = size_t(1) << 52;
}  // namespace

std::string format_bytes(size_t bytes) {
  char text[64];
  if (bytes >= (size_t(1) << 30)) {
    std::snprintf(text, sizeof text, "%.2f GiB", double(bytes) / double(size_t(1) << 30));
  } else if (bytes >= (size_t(1) << 20)) {
    std::snprintf(text, sizeof text, "%.1f MiB", double(bytes) / double(size_t(1) << 20));
  } else if (bytes >= 1024) {
    std::snprintf(text, sizeof text, "%.1f KiB", double(bytes) / 1024.0);
  } else {
    std::snprintf(text, sizeof text, "%zu B", bytes);
  }
  return text;
}

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < kLargeThreshold) return (bytes + kSmallStep - 1) / kSmallStep * kSmallStep;
  const int log2 = 63 - __builtin_clzll(static_cast<unsigned long long>(bytes));  // >= 20
  const size_t step = size_t(1) << (log2 - 3);
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::take(FreeLists& lists, size_t size) {
  auto it = lists.find(size);
  if (it == lists.end() || it->second.empty()) return nullptr;
  void* ptr = it->second.back();
  it->second.pop_back();
  return ptr;
}

void* CachingAllocator::allocate(size_t bytes) {
  FSTM_CHECK(bytes <= kMaxRequest, "CUDA allocation of ", bytes, " bytes on cuda:", device_,
             " is larger than any device memory");
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.allocations;
  void* ptr = nullptr;
  if (capture_pool_ >= 0) {
    ptr = take(pools_.at(capture_pool_).free, size);
    if (ptr) {
      stats_.bytes_in_graph_pools -= size;
      ++stats_.cache_hits;
    } else {
      ptr = device_malloc_locked(size);
      pool_of_[ptr] = capture_pool_;
    }
  } else {
    ptr = take(free_, size);
    if (ptr) {
      stats_.bytes_cached -= size;
      ++stats_.cache_hits;
    } else {
      ptr = device_malloc_locked(size);
    }
  }
  stats_.bytes_in_use += size;
  if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t bytes) {
  if (!ptr) return;
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.bytes_in_use -= size;
  auto owner = pool_of_.find(ptr);
  if (owner == pool_of_.end() && capture_pool_ >= 0) {
    // Freed while a graph is captured: the graph may read it on replay, so eager code must not
    // get it back while the graph lives.
    owner = pool_of_.emplace(ptr, capture_pool_).first;
  }
  if (owner != pool_of_.end()) {
    auto pool = pools_.find(owner->second);
    if (pool != pools_.end()) {
      pool->second.free[size].push_back(ptr);
      stats_.bytes_in_graph_pools += size;
      return;
    }
    pool_of_.erase(owner);  // its graph is gone: the block is an ordinary one again
  }
  free_[size].push_back(ptr);
  stats_.bytes_cached += size;
}

void* CachingAllocator::device_malloc_locked(size_t size) {
  DeviceGuard guard(device_);
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, size);
  if (status == cudaSuccess) {
    ++stats_.device_mallocs;
    return ptr;
  }
  if (status != cudaErrorMemoryAllocation) throw_cuda_error(status, "cudaMalloc", __FILE__, __LINE__);
  (void)cudaGetLastError();  // the failure is handled here; do not let a later check report it
  // Give the cache back to the driver and try once more (not while capturing: cudaFree would
  // synchronise the device, which a capture forbids).
  if (capture_pool_ < 0 && stats_.bytes_cached > 0) {
    release_cache_locked();
    status = cudaMalloc(&ptr, size);
    if (status == cudaSuccess) {
      ++stats_.device_mallocs;
      ++stats_.oom_retries;
      return ptr;
    }
    if (status != cudaErrorMemoryAllocation) throw_cuda_error(status, "cudaMalloc", __FILE__, __LINE__);
    (void)cudaGetLastError();
  }
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
  throw Error(detail::concat("CUDA out of memory on cuda:", device_, ": tried to allocate ", format_bytes(size),
                             "; ", format_bytes(stats_.bytes_in_use), " in use by tensors, ",
                             format_bytes(stats_.bytes_cached), " cached, ",
                             format_bytes(stats_.bytes_in_graph_pools), " reserved by CUDA graphs; the device has ",
                             format_bytes(free_bytes), " free of ", format_bytes(total_bytes),
                             capture_pool_ >= 0 ? " (during CUDA graph capture)" : "",
                             ". Use a smaller batch or free tensors."));
}

void CachingAllocator::release_cache_locked() {
  DeviceGuard guard(device_);
  // Blocks in the cache may still be used by queued kernels of their previous owner.
  FSTM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (auto& [size, blocks] : free_) {
    for (void* p : blocks) {
      FSTM_CUDA_CHECK(cudaFree(p));
      ++stats_.device_frees;
    }
  }
  free_.clear();
  stats_.bytes_cached = 0;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (capture_pool_ >= 0) return;  // cudaFree is not allowed during a capture
  release_cache_locked();
}

MemoryStats CachingAllocator::stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
}

int CachingAllocator::create_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  const int id = next_pool_++;
  pools_.emplace(id, Pool{});
  return id;
}

void CachingAllocator::begin_capture(int pool) {
  std::lock_guard<std::mutex> lock(mutex_);
  FSTM_CHECK(capture_pool_ < 0, "cuda:", device_, ": a CUDA graph is already being captured");
  FSTM_CHECK(pools_.count(pool) == 1, "cuda:", device_, ": unknown graph memory pool ", pool);
  capture_pool_ = pool;
}

void CachingAllocator::end_capture() {
  std::lock_guard<std::mutex> lock(mutex_);
  capture_pool_ = -1;
}

void CachingAllocator::release_pool(int pool) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = pools_.find(pool);
  if (it == pools_.end()) return;
  for (auto& [size, blocks] : it->second.free) {
    for (void* p : blocks) {
      pool_of_.erase(p);
      free_[size].push_back(p);
      stats_.bytes_in_graph_pools -= size;
      stats_.bytes_cached += size;
    }
  }
  pools_.erase(it);
  if (capture_pool_ == pool) capture_pool_ = -1;
}

}  // namespace fstm::cuda
