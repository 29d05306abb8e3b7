#include "tensor/block_pool.h"

#include <algorithm>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

namespace fstm {

namespace {
size_t round_up(size_t n, size_t step) { return (n + step - 1) / step * step; }
}  // namespace

size_t BlockPool::round_size(size_t bytes) { return round_up(bytes == 0 ? 1 : bytes, kAlignment); }

BlockPool::BlockPool(Source source, size_t max_cached_bytes)
    : source_(std::move(source)), max_cached_bytes_(max_cached_bytes) {}

BlockPool::~BlockPool() {
  // Every segment starts with the block that has no left neighbour; walk each to its end.
  std::vector<Block*> heads;
  for (const FreeSet* set : {&small_free_, &large_free_})
    for (Block* b : *set)
      if (!b->prev) heads.push_back(b);
  for (const auto& entry : in_use_)
    if (!entry.second->prev) heads.push_back(entry.second);
  for (Block* head : heads) {
    char* base = head->ptr;
    size_t bytes = 0;
    for (Block* b = head; b;) {
      bytes += b->size;
      Block* next = b->next;
      delete b;
      b = next;
    }
    source_.release(base, bytes);
  }
}

void* BlockPool::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  const bool small = size <= kSmallRequest;
  ++stats_.allocations;
  Block* block = take_best_fit(size, small);
  if (block)
    ++stats_.cache_hits;
  else
    block = new_segment(size, small);
  split(block, size);
  block->in_use = true;
  in_use_.emplace(block->ptr, block);
  stats_.bytes_free -= block->size;
  stats_.bytes_in_use += block->size;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return block->ptr;
}

void BlockPool::deallocate(void* ptr) {
  if (!ptr) return;
  auto it = in_use_.find(ptr);
  if (it == in_use_.end()) throw std::logic_error("BlockPool: freeing a pointer it did not hand out");
  Block* block = it->second;
  in_use_.erase(it);
  block->in_use = false;
  stats_.bytes_in_use -= block->size;
  stats_.bytes_free += block->size;
  free_set(block->small).insert(merge_with_free_neighbours(block));
  if (stats_.bytes_free > max_cached_bytes_) trim_cache();
}

size_t BlockPool::block_size(const void* ptr) const {
  auto it = in_use_.find(ptr);
  if (it == in_use_.end()) throw std::logic_error("BlockPool: no block in use at this pointer");
  return it->second->size;
}

BlockPool::Block* BlockPool::take_best_fit(size_t size, bool small) {
  FreeSet& set = free_set(small);
  Block key{nullptr, size};  // sorts before every free block of the same size
  auto it = set.lower_bound(&key);
  if (it == set.end()) return nullptr;
  Block* block = *it;
  set.erase(it);
  return block;
}

BlockPool::Block* BlockPool::new_segment(size_t size, bool small) {
  const size_t bytes = small ? kSmallSegment : round_up(size, kLargeSegmentStep);
  if (!small) release_free_large_segments(bytes);
  ++stats_.system_allocations;
  void* ptr = source_.allocate(bytes);
  if (!ptr) {  // give the free segments back and ask once more
    release_free_segments();
    ++stats_.system_allocations;
    ptr = source_.allocate(bytes);
    if (!ptr) throw std::bad_alloc();
  }
  ++stats_.segments;
  stats_.bytes_reserved += bytes;
  stats_.bytes_free += bytes;
  auto* block = new Block{static_cast<char*>(ptr), bytes};
  block->small = small;
  return block;
}

// Cuts `block` (free, in no set) to `size` when the remainder is worth keeping as a free block.
void BlockPool::split(Block* block, size_t size) {
  const size_t rest = block->size - size;
  if (rest < (block->small ? kMinSmallRemainder : kMinLargeRemainder)) return;
  auto* tail = new Block{block->ptr + size, rest};
  tail->small = block->small;
  tail->prev = block;
  tail->next = block->next;
  if (block->next) block->next->prev = tail;
  block->next = tail;
  block->size = size;
  free_set(tail->small).insert(tail);
}

// Merges a block that was just freed (in no set) with its free neighbours; returns the result.
BlockPool::Block* BlockPool::merge_with_free_neighbours(Block* block) {
  FreeSet& set = free_set(block->small);
  if (Block* prev = block->prev; prev && !prev->in_use) {
    set.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next) block->next->prev = prev;
    delete block;
    block = prev;
  }
  if (Block* next = block->next; next && !next->in_use) {
    set.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next) next->next->prev = block;
    delete next;
  }
  return block;
}

// `whole` is a free block that spans its segment and is in its free set.
void BlockPool::release_segment(Block* whole) {
  free_set(whole->small).erase(whole);
  source_.release(whole->ptr, whole->size);
  --stats_.segments;
  stats_.bytes_reserved -= whole->size;
  stats_.bytes_free -= whole->size;
  delete whole;
}

// The free blocks that span a whole segment, the largest first.
std::vector<BlockPool::Block*> BlockPool::whole_free_segments(bool small_too, bool large_too) const {
  std::vector<Block*> whole;
  if (small_too)
    for (Block* b : small_free_)
      if (!b->prev && !b->next) whole.push_back(b);
  if (large_too)
    for (Block* b : large_free_)
      if (!b->prev && !b->next) whole.push_back(b);
  std::sort(whole.begin(), whole.end(), [](const Block* a, const Block* b) { return a->size > b->size; });
  return whole;
}

void BlockPool::release_free_segments() {
  for (Block* b : whole_free_segments(true, true)) release_segment(b);
}

// Before a new large segment of `bytes`: if whole free large segments add up to it, give back
// enough of them (the largest first) that the new one takes their place instead of adding to them.
void BlockPool::release_free_large_segments(size_t bytes) {
  const std::vector<Block*> whole = whole_free_segments(false, true);
  size_t total = 0;
  for (const Block* b : whole) total += b->size;
  if (total < bytes) return;
  size_t released = 0;
  for (Block* b : whole) {
    if (released >= bytes) break;
    released += b->size;
    release_segment(b);
  }
}

// Returns whole free segments, the largest first, until the free memory is within the cap.
void BlockPool::trim_cache() {
  for (Block* b : whole_free_segments(true, true)) {
    if (stats_.bytes_free <= max_cached_bytes_) break;
    release_segment(b);
  }
}

}  // namespace fstm
