// Memory for tensors. The CPU allocator keeps freed memory for reuse, so a training step that
// allocates its activations every iteration does not call malloc per op: a best-fit pool of blocks
// split from larger segments and merged again when freed (tensor/block_pool.h). A request of any
// size can reuse memory freed by another size, so what the allocator holds tracks the most memory
// live at once. Blocks are 64-byte aligned (one cache line, one AVX-512 vector).
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
  size_t bytes_reserved = 0;   // held from the system: in use + cached
  size_t peak_bytes_in_use = 0;
  size_t segments = 0;         // system allocations held
  uint64_t allocations = 0;    // calls to allocate()
  uint64_t cache_hits = 0;     // of which served from the cache
  uint64_t system_allocations = 0;  // segments asked of the system (none in a steady loop)
};

Allocator& cpu_allocator();
AllocatorStats cpu_allocator_stats();
void reset_cpu_allocator_peak();

}  // namespace fstm
