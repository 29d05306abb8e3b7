// The masked-batch kernel of the Shapley explainer (kernels/shapley_mask.h): a forward batch of
// 64 masked 224x224 images, as `fstm explain` writes them at L = 16 (consecutive steps of
// permutations), in f32 and bf16. Baselines in the same run: memcpy of the same bytes (the floor
// for any masking) and the reference kernel (one element at a time, converting per element).
// Bytes/s counts the bytes written.
//
//   build/bench/bench_shapley_mask --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstring>
#include <numeric>

#include "fstm/lib/masking.h"
#include "kernels/shapley_mask.h"
#include "tensor/random.h"

using namespace fstm;

namespace {

constexpr int kSide = 224, kGrid = 16, kBatch = 64;

struct Setup {
  GridGeometry g = GridGeometry::make(kSide, kSide, kGrid);
  Tensor image = Tensor::empty(Shape{kSide, kSide, 3});
  Tensor baseline = Tensor::zeros(Shape{kSide, kSide, 3});
  MaskBatch batch{kGrid * kGrid};
  Setup() {
    Rng rng(1);
    for (int64_t i = 0; i < image.numel(); ++i) image.data<float>()[i] = rng.normal();
    // a batch as the estimator makes it: steps 1..255 of permutations, straddling into the next
    const int players = kGrid * kGrid;
    for (int p = 0; p < 2; ++p) {
      std::vector<int32_t> order(static_cast<size_t>(players)), ranks(static_cast<size_t>(players));
      std::iota(order.begin(), order.end(), 0);
      for (int i = players - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i) + 1)]);
      for (int k = 0; k < players; ++k) ranks[size_t(order[size_t(k)])] = k;
      batch.add_permutation(ranks.data());
    }
    for (int r = 0; r < kBatch; ++r) batch.add_row(r < 40 ? 0 : 1, r < 40 ? 200 + r : r - 39);
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

void fused(benchmark::State& state, DType dtype) {
  Setup& s = setup();
  MaskSource src(s.image, s.baseline, s.g, dtype);
  Tensor out = Tensor::empty(Shape{kBatch, kSide, kSide, 3}, dtype);
  for (auto _ : state) {
    src.write(s.batch, out);
    benchmark::DoNotOptimize(out.raw_data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(out.nbytes()));
}

void reference(benchmark::State& state, DType dtype) {
  Setup& s = setup();
  MaskSource src(s.image, s.baseline, s.g, dtype);
  for (auto _ : state) benchmark::DoNotOptimize(src.build_reference(s.batch, dtype).raw_data());
  state.SetBytesProcessed(int64_t(state.iterations()) * kBatch * kSide * kSide * 3 * int64_t(dtype_size(dtype)));
}

void copy_floor(benchmark::State& state, DType dtype) {
  const size_t row = size_t(kSide) * kSide * 3 * dtype_size(dtype);
  std::vector<char> src(row), dst(row * kBatch);
  for (auto _ : state) {
    for (int r = 0; r < kBatch; ++r) std::memcpy(dst.data() + r * row, src.data(), row);
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(dst.size()));
}

}  // namespace

BENCHMARK_CAPTURE(fused, f32, DType::f32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(fused, bf16, DType::bf16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(copy_floor, f32, DType::f32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(copy_floor, bf16, DType::bf16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(reference, f32, DType::f32)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(reference, bf16, DType::bf16)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
