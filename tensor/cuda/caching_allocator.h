// The caching device allocator of one CUDA device (see tensor/cuda_api.h for the big picture).
//
// Sizes are rounded to a size class: multiples of 512 bytes below 1 MiB, and above that eight
// classes per power of two (at most 12.5% waste). A freed block goes to the free list of its class
// and is handed to the next request of that class without a cudaMalloc. Reuse needs no event:
// every kernel and copy of the device runs on its single compute stream, so work queued with the
// new owner runs after the work queued by the old one.
//
// CUDA graphs bake pointers into the graph, so while a graph is being captured its allocations
// come from (and its frees go to) a private pool that eager code never reuses; blocks freed during
// the capture that came from the general cache are adopted by the pool too. release_pool() hands
// the pool's free blocks back to the general cache when the graph is destroyed.
#pragma once
#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/cuda_api.h"

namespace fstm::cuda {

class CachingAllocator final : public Allocator {
 public:
  CachingAllocator(int device, cudaStream_t stream) : device_(device), stream_(stream) {}

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) override;
  // Waits for the compute stream, then cudaFree's every cached block (not the graph pools).
  void empty_cache() override;

  MemoryStats stats();
  void reset_peak();

  // CUDA graph capture (kernels/cuda/graph.cpp).
  int create_pool();
  void begin_capture(int pool);
  void end_capture();
  void release_pool(int pool);

  // The size class of a request (exposed for the tests' arithmetic).
  static size_t round_size(size_t bytes);

 private:
  using FreeLists = std::map<size_t, std::vector<void*>>;
  struct Pool {
    FreeLists free;
  };
  static void* take(FreeLists& lists, size_t size);
  void* device_malloc_locked(size_t size);
  void release_cache_locked();

  const int device_;
  const cudaStream_t stream_;
  std::mutex mutex_;
  FreeLists free_;
  std::map<int, Pool> pools_;
  std::unordered_map<void*, int> pool_of_;  // blocks that belong to a graph pool
  int capture_pool_ = -1;
  int next_pool_ = 0;
  MemoryStats stats_;
};

// "1.50 GiB", "12.0 MiB", "512 B"
std::string format_bytes(size_t bytes);

}  // namespace fstm::cuda
