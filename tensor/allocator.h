// Memory for tensors. The CPU allocator caches freed blocks by size, so a training step that
// allocates the same activations every iteration reuses them instead of calling malloc per op.
// Blocks are 64-byte aligned (one cache line, one AVX-512 vector).
#pragma once
#include <cstddef>
#include <cstdint>

namespace fstm {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) = 0;
  virtual void empty_cache() {}
};

struct AllocatorStats {
  size_t bytes_in_use = 0;     // handed out to live tensors
  size_t bytes_cached = 0;     // freed, kept for reuse
  size_t peak_bytes_in_use = 0;
  uint64_t allocations = 0;    // calls to allocate()
  uint64_t cache_hits = 0;     // of which served from the cache
};

Allocator& cpu_allocator();
AllocatorStats cpu_allocator_stats();
void reset_cpu_allocator_peak();

}  // namespace fstm
