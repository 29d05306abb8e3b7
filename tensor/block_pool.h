// A best-fit pool of memory blocks carved out of larger segments: the bookkeeping behind the CPU
// caching allocator (tensor/allocator.cpp), kept apart from the system calls so that the tests can
// drive it with a source that counts and fails on demand (tests/test_allocator.cpp).
//
// Why not a cache of exact sizes: a training step frees activations of one size and asks for
// another (a conv output of 25 MB, then a gradient of 12.5 MB, then 6 MB...). An exact-size cache
// keeps every freed block for a size that may not come back, so its memory grows to the sum of
// all the sizes ever live, not the most live at once. Here a freed block goes back to its segment,
// merges with free neighbours, and the next request of any size takes the smallest free block
// that holds it, splitting off the rest.
//
//   segment  [ used 8 MB | free 4 MB | used 2 MB | free 18 MB ]   <- one system allocation
//   request 3 MB -> best fit: the 4 MB block, split into used 3 MB + free 1 MB
//   free the 2 MB block -> merges with its free neighbours (1 MB + 2 MB + 18 MB = one 21 MB block)
//
// Blocks merge only with neighbours in their own segment. Two pools, as in PyTorch's CUDA
// allocator, keep small, short-lived blocks from splitting the large segments: requests up to
// kSmallRequest come from segments of kSmallSegment; a larger request that no free block holds gets
// a segment of its own size rounded up to kLargeSegmentStep. Whole free large segments that add up
// to that size are first given back to the system, so that the new segment takes their place:
// backward asks for gradients a little larger than the activations it has just freed, and keeping
// both would hold far more than is ever live. Every block size is a multiple of kAlignment, so
// every block stays aligned.
//
// Measured on the ResNet-18 training step (batch 32, 224 px, `fstm bench --mode train`, a 779 MB
// live peak): segments given back on a miss hold 838 MB (peak RSS 831 MB); without that, 1010 MB
// (RSS 977 MB); with segments of at least 64 MiB that are never given back on a miss, 882 MB, but
// a pattern of 26-48 MB blocks then holds 512 MiB against a 328 MiB peak (tests/test_allocator.cpp).
// A segment whose blocks are all free also goes back when the free memory exceeds
// max_cached_bytes, on release_free_segments(), and when the source fails (then the request is
// retried once).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>
#include <unordered_map>
#include <vector>

namespace fstm {

class BlockPool {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kSmallRequest = size_t(1) << 20;      // 1 MiB
  static constexpr size_t kSmallSegment = size_t(2) << 20;      // 2 MiB
  static constexpr size_t kLargeSegmentStep = size_t(2) << 20;  // 2 MiB
  // A split leaves a free remainder only if it is at least this big; else the request takes the
  // whole block (the waste is counted as in use).
  static constexpr size_t kMinSmallRemainder = 512;
  static constexpr size_t kMinLargeRemainder = size_t(1) << 20;

  // Where segments come from. allocate returns nullptr when out of memory (the pool then releases
  // its free segments and asks once more) and must return kAlignment-aligned memory.
  struct Source {
    std::function<void*(size_t)> allocate;
    std::function<void(void*, size_t)> release;
  };
  struct Stats {
    size_t bytes_in_use = 0;    // in blocks handed out
    size_t bytes_free = 0;      // in free blocks of live segments
    size_t bytes_reserved = 0;  // in live segments (in use + free)
    size_t peak_bytes_in_use = 0;
    size_t segments = 0;
    uint64_t allocations = 0;  // calls to allocate()
    uint64_t cache_hits = 0;   // of which served without a new segment
    uint64_t system_allocations = 0;  // segments asked of the source (a steady loop asks none)
  };

  BlockPool(Source source, size_t max_cached_bytes);
  ~BlockPool();  // releases every segment; blocks still in use become invalid
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // A block of at least `bytes` (0 counts as 1), kAlignment-aligned. Throws std::bad_alloc when
  // the source fails twice.
  void* allocate(size_t bytes);
  // Takes back a pointer from allocate(); nullptr is ignored, anything else throws.
  void deallocate(void* ptr);
  // Returns every segment whose blocks are all free to the source.
  void release_free_segments();

  const Stats& stats() const { return stats_; }
  void reset_peak() { stats_.peak_bytes_in_use = stats_.bytes_in_use; }
  // The size of the block behind ptr (for the tests; throws if ptr is not in use).
  size_t block_size(const void* ptr) const;

  static size_t round_size(size_t bytes);

 private:
  struct Block {
    char* ptr;
    size_t size;
    bool in_use = false;
    bool small = false;           // which pool its segment belongs to
    Block* prev = nullptr;        // neighbours in the segment, by address
    Block* next = nullptr;
  };
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : std::less<const char*>()(a->ptr, b->ptr);
    }
  };
  using FreeSet = std::set<Block*, BySizeThenAddress>;

  FreeSet& free_set(bool small) { return small ? small_free_ : large_free_; }
  Block* take_best_fit(size_t size, bool small);
  Block* new_segment(size_t size, bool small);
  void split(Block* block, size_t size);
  Block* merge_with_free_neighbours(Block* block);
  void release_segment(Block* whole);
  std::vector<Block*> whole_free_segments(bool small_too, bool large_too) const;
  void release_free_large_segments(size_t bytes);
  void trim_cache();

  Source source_;
  size_t max_cached_bytes_;
  FreeSet small_free_, large_free_;
  std::unordered_map<const void*, Block*> in_use_;
  Stats stats_;
};

}  // namespace fstm
