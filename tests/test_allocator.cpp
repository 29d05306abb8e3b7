// The best-fit block pool behind the CPU allocator (tensor/block_pool.h), driven by a source that
// counts its segments and can be told to fail, and the allocator itself on a training-like pattern.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <random>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/block_pool.h"
#include "tensor/tensor.h"

using namespace fstm;

namespace {

constexpr size_t MiB = size_t(1) << 20;

// System memory, with a count of live segments and a budget after which allocate() fails.
struct CountingSource {
  std::map<void*, size_t> live;
  size_t budget = ~size_t(0);  // bytes the source will hand out in all
  size_t handed = 0;
  int releases = 0;

  BlockPool::Source source() {
    return {[this](size_t bytes) -> void* {
              if (handed + bytes > budget) return nullptr;
              void* p = std::aligned_alloc(BlockPool::kAlignment, bytes);
              live[p] = bytes;
              handed += bytes;
              return p;
            },
            [this](void* p, size_t bytes) {
              EXPECT_EQ(live.at(p), bytes) << "a segment released with another size than it had";
              live.erase(p);
              handed -= bytes;
              ++releases;
              std::free(p);
            }};
  }
};

}  // namespace

constexpr size_t S = 64 * MiB;

TEST(BlockPool, SplitsSegmentsAndMergesFreedNeighbours) {
  CountingSource src;
  {
    BlockPool pool(src.source(), 4 * S);
    // A freed segment serves two requests of half its size by splitting.
    char* a = static_cast<char*>(pool.allocate(S));
    EXPECT_EQ(src.live.size(), 1u);
    pool.deallocate(a);
    void* b = pool.allocate(S / 2);
    void* c = pool.allocate(S / 2);
    EXPECT_EQ(src.live.size(), 1u) << "a freed block should serve two requests of half its size";
    EXPECT_EQ(b, a);
    EXPECT_EQ(c, a + S / 2);
    // Freeing both merges them back: a request of S - 1 MiB fits without a new segment.
    pool.deallocate(b);
    pool.deallocate(c);
    EXPECT_EQ(pool.stats().bytes_free, S);
    void* d = pool.allocate(S - MiB);
    EXPECT_EQ(d, a);
    EXPECT_EQ(src.live.size(), 1u);
    // The 1 MiB left over is a free block of its own; S - 0.5 MiB needs a new segment and takes
    // all of it (a 0.5 MiB remainder is not worth a free block).
    void* e = pool.allocate(S - MiB / 2);
    EXPECT_EQ(src.live.size(), 2u);
    EXPECT_EQ(pool.stats().bytes_in_use, (S - MiB) + S);
    EXPECT_EQ(pool.stats().bytes_free, MiB);
    // A request beyond the minimum gets a segment of its size rounded up to 2 MiB.
    void* f = pool.allocate(2 * S + 3 * MiB);
    EXPECT_EQ(pool.stats().bytes_reserved, 2 * S + (2 * S + 4 * MiB));
    EXPECT_EQ(pool.block_size(f), 2 * S + 3 * MiB);
    pool.deallocate(d);
    pool.deallocate(e);
    pool.deallocate(f);
    EXPECT_EQ(pool.stats().bytes_in_use, 0u);
    EXPECT_EQ(pool.stats().bytes_free, pool.stats().bytes_reserved);
  }
  EXPECT_TRUE(src.live.empty()) << "the pool's destructor left segments behind";
}

TEST(BlockPool, TakesTheSmallestFreeBlockThatFits) {
  CountingSource src;
  BlockPool pool(src.source(), 4 * S);
  pool.deallocate(pool.allocate(40 * MiB));
  // The freed segment, carved: [A 20][4][B 8][4][C 4] MiB; then A, B and C are freed.
  char* a = static_cast<char*>(pool.allocate(20 * MiB));
  pool.allocate(4 * MiB);
  char* b = static_cast<char*>(pool.allocate(8 * MiB));
  pool.allocate(4 * MiB);
  char* c = static_cast<char*>(pool.allocate(4 * MiB));
  ASSERT_EQ(src.live.size(), 1u);
  pool.deallocate(a);
  pool.deallocate(b);
  pool.deallocate(c);
  EXPECT_EQ(pool.allocate(6 * MiB), b) << "best fit for 6 MiB is the 8 MiB block, not the 20 MiB one";
  EXPECT_EQ(pool.allocate(3 * MiB), c);
  EXPECT_EQ(pool.allocate(15 * MiB), a);
  EXPECT_EQ(src.live.size(), 1u);
  EXPECT_EQ(pool.stats().system_allocations, 1u);
}

// Freed segments too small for a request, but as large together, make way for a new one.
TEST(BlockPool, GivesBackFreeSegmentsThatAddUpToAMiss) {
  CountingSource src;
  BlockPool pool(src.source(), 4 * S);
  void* a = pool.allocate(10 * MiB);
  void* b = pool.allocate(12 * MiB);
  void* keep = pool.allocate(6 * MiB);
  pool.deallocate(a);
  pool.deallocate(b);
  pool.allocate(20 * MiB);  // 10 + 12 free, neither holds 20: both go back, one 20 MiB comes
  EXPECT_EQ(src.releases, 2);
  EXPECT_EQ(pool.stats().bytes_reserved, 20 * MiB + 6 * MiB);
  pool.deallocate(keep);
  pool.allocate(8 * MiB);  // 6 MiB free does not add up to 8: it stays, and 8 more come
  EXPECT_EQ(src.releases, 2);
  EXPECT_EQ(pool.stats().bytes_reserved, 20 * MiB + 6 * MiB + 8 * MiB);
  EXPECT_EQ(pool.stats().system_allocations, 5u);
}

TEST(BlockPool, SmallRequestsShareSegmentsAndStayAligned) {
  CountingSource src;
  BlockPool pool(src.source(), 256 * MiB);
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) {  // 100 x ~10 KB: one 2 MiB segment
    void* p = pool.allocate(10000 + i);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % BlockPool::kAlignment, 0u) << i;
    EXPECT_EQ(pool.block_size(p), BlockPool::round_size(10000 + i));
    blocks.push_back(p);
  }
  EXPECT_EQ(src.live.size(), 1u);
  // Small and large pools are apart: a large request does not split the small segment.
  void* large = pool.allocate(MiB + 1);
  EXPECT_EQ(src.live.size(), 2u);
  pool.deallocate(large);
  for (void* p : blocks) pool.deallocate(p);
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  EXPECT_EQ(pool.allocate(0), blocks[0]) << "a 0-byte request is a 64-byte block";
}

TEST(BlockPool, ReturnsWholeFreeSegmentsBeyondTheCap) {
  CountingSource src;
  BlockPool pool(src.source(), S + S / 2);
  void* a = pool.allocate(S);
  void* b = pool.allocate(S);
  pool.deallocate(a);
  EXPECT_EQ(src.releases, 0) << "one free segment is within the cap of 1.5 segments";
  pool.deallocate(b);
  EXPECT_EQ(src.releases, 1) << "two free segments are beyond the cap: one goes back";
  EXPECT_LE(pool.stats().bytes_free, S + S / 2);
  pool.release_free_segments();
  EXPECT_TRUE(src.live.empty());
  EXPECT_EQ(pool.stats().bytes_reserved, 0u);
  EXPECT_EQ(pool.stats().segments, 0u);
}

TEST(BlockPool, ReleasesFreeSegmentsAndRetriesWhenTheSourceFails) {
  CountingSource src;
  src.budget = S + S / 2;
  BlockPool pool(src.source(), 16 * S);
  void* a = pool.allocate(S);
  pool.deallocate(a);  // S cached; S + 2 MiB fits neither in it nor beside it in the budget
  void* b = pool.allocate(S + 2 * MiB);
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(src.releases, 1) << "the cached segment should have been given back before the retry";
  EXPECT_THROW(pool.allocate(S + 2 * MiB), std::bad_alloc);
  int x = 0;
  EXPECT_THROW(pool.deallocate(&x), std::logic_error);
}

// Random sizes from 1 B to 80 MiB, allocated and freed in random order. Each block is filled
// with its own byte and checked at free: overlapping blocks, a bad split or a bad merge shows up
// as a foreign byte. The free memory's accounting must match the blocks at every step.
TEST(BlockPool, RandomTrafficNeverOverlapsAndAccountsExactly) {
  CountingSource src;
  BlockPool pool(src.source(), S + S / 2);
  std::mt19937 rng(7);
  struct Live {
    unsigned char* p;
    size_t bytes;
    unsigned char tag;
  };
  std::vector<Live> live;
  size_t live_bytes = 0, peak_live = 0;
  auto check_and_free = [&](size_t i) {
    const Live l = live[i];
    for (size_t k = 0; k < l.bytes; k += 997) ASSERT_EQ(l.p[k], l.tag) << "block " << i << " overwritten at " << k;
    ASSERT_EQ(l.p[l.bytes - 1], l.tag);
    live_bytes -= pool.block_size(l.p);
    pool.deallocate(l.p);
    live[i] = live.back();
    live.pop_back();
  };
  for (int step = 0; step < 3000; ++step) {
    if (live.empty() || rng() % 100 < 55) {
      const unsigned kind = rng() % 100;
      const size_t bytes = 1 + rng() % (kind < 60 ? 200000 : kind < 97 ? 6 * MiB : 80 * MiB);
      auto* p = static_cast<unsigned char*>(pool.allocate(bytes));
      const auto tag = static_cast<unsigned char>(rng());
      std::memset(p, tag, bytes);
      live.push_back({p, bytes, tag});
      live_bytes += pool.block_size(p);
      peak_live = std::max(peak_live, live_bytes);
    } else {
      check_and_free(rng() % live.size());
    }
    const BlockPool::Stats& s = pool.stats();
    ASSERT_EQ(s.bytes_in_use, live_bytes);
    ASSERT_EQ(s.bytes_in_use + s.bytes_free, s.bytes_reserved);
    size_t held = 0;
    for (const auto& [p, bytes] : src.live) held += bytes;
    ASSERT_EQ(held, s.bytes_reserved);
  }
  while (!live.empty()) check_and_free(live.size() - 1);
  EXPECT_EQ(pool.stats().peak_bytes_in_use, peak_live);
  EXPECT_LE(pool.stats().bytes_free, S + S / 2);
}

// The allocator on a training step's pattern: activations of several sizes allocated forward,
// freed backward while gradients a little larger appear. An exact-size cache ends up holding every
// activation and every gradient (about twice the peak); the pool holds about the peak, and the
// same after three steps as after one. Tensor::empty touches no page, so this costs no memory.
TEST(Allocator, ReuseAcrossSizesKeepsWhatItHoldsNearThePeak) {
  cpu_allocator().empty_cache();
  reset_cpu_allocator_peak();
  const AllocatorStats before = cpu_allocator_stats();
  AllocatorStats after_first_step;
  for (int step = 0; step < 3; ++step) {
    std::vector<Tensor> acts;
    for (int64_t c = 64; c <= 120; c += 8)  // 8 sizes, 26 to 48 MB
      acts.push_back(Tensor::empty(Shape{32, c, 56, 56}));
    while (!acts.empty()) {
      Tensor grad = Tensor::empty(Shape{acts.back().numel() + 4096});  // a size no activation has
      acts.pop_back();
    }
    if (step == 0) after_first_step = cpu_allocator_stats();
  }
  const AllocatorStats after = cpu_allocator_stats();
  const double peak = double(after.peak_bytes_in_use - before.bytes_in_use);
  const double held = double(after.bytes_reserved - before.bytes_reserved);
  EXPECT_LE(held, 1.25 * peak + 16.0 * MiB)
      << "the allocator holds " << held / MiB << " MiB against a peak of " << peak / MiB << " MiB live";
  EXPECT_EQ(after.system_allocations, after_first_step.system_allocations)
      << "steps after the first should reuse the first's memory";
}
