// Depthwise convolution at EfficientNet-b3's shapes (batch 16, 224x224): oneDNN 2.6
// (kernels::cpu::conv2d_*) against fstm's own loops (kernels::cpu::depthwise_conv2d_*), forward,
// data gradient and weight gradient. kernels/conv2d.cpp dispatches on what this measures.
//
//   build/bench/bench_depthwise --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// Times are CPU time per call (UseRealTime is off) so that a loaded machine inflates them less; run
// with OMP_NUM_THREADS=1 to compare single-core throughput.
#include <benchmark/benchmark.h>

#include "fstm_build_config.h"
#include "kernels/conv2d.h"
#include "kernels/depthwise_conv.h"
#include "tensor/random.h"

using namespace fstm;

namespace {

// H (= W), channels, kernel, stride of every depthwise layer shape in EfficientNet-b3 at 224.
struct Layer {
  int64_t H, C;
  int k, stride;
};
constexpr Layer kB3[] = {{112, 40, 3, 1}, {112, 24, 3, 1}, {112, 144, 3, 2}, {56, 192, 3, 1}, {56, 192, 5, 2},
                         {28, 288, 5, 1}, {28, 288, 3, 2}, {14, 576, 3, 1},  {14, 576, 5, 1}, {14, 816, 5, 1},
                         {14, 816, 5, 2}, {7, 1392, 5, 1}, {7, 1392, 3, 1},  {7, 2304, 3, 1}};
constexpr int64_t kBatch = 16;

enum Impl { kOnednn = 0, kOwn = 1 };
enum Step { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

Tensor filled(const Shape& s, Rng& rng) {
  Tensor t = Tensor::empty(s);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(-1.0f, 1.0f);
  return t;
}

void BM_Depthwise(benchmark::State& state) {
  const Layer& l = kB3[state.range(0)];
  const auto impl = Impl(state.range(1));
  const auto step = Step(state.range(2));
  kernels::Conv2dParams p;
  p.stride_h = p.stride_w = l.stride;
  p.pad_h = p.pad_w = l.k / 2;
  p.groups = int(l.C);
  Rng rng(1);
  Tensor x = filled(Shape{kBatch, l.H, l.H, l.C}, rng), w = filled(Shape{l.C, 1, l.k, l.k}, rng);
  Tensor b = filled(Shape{l.C}, rng);
  const Shape ys = kernels::conv2d_output_shape(x.shape(), w.shape(), p);
  Tensor y = Tensor::empty(ys), dy = filled(ys, rng), dx = Tensor::empty(x.shape());
  Tensor dw = Tensor::zeros(w.shape()), db = Tensor::zeros(b.shape());
  if (impl == kOnednn && !FSTM_HAVE_ONEDNN) {
    state.SkipWithError("built without oneDNN");
    return;
  }
  for (auto _ : state) {
    if (impl == kOwn) {
      if (step == kForward) kernels::cpu::depthwise_conv2d_forward(x, w, b, p, y);
      if (step == kBackwardData) kernels::cpu::depthwise_conv2d_backward_data(dy, w, p, dx);
      if (step == kBackwardWeights) kernels::cpu::depthwise_conv2d_backward_weights(dy, x, p, dw, db);
    } else {
#if FSTM_HAVE_ONEDNN
      if (step == kForward) kernels::cpu::conv2d_forward(x, w, b, p, y);
      if (step == kBackwardData) kernels::cpu::conv2d_backward_data(dy, w, p, dx);
      if (step == kBackwardWeights) kernels::cpu::conv2d_backward_weights(dy, x, p, dw, db);
#endif
    }
  }
  static const char* steps[] = {"fwd", "bwd_data", "bwd_weights"};
  state.SetLabel(std::string(impl == kOwn ? "own " : "onednn ") + steps[step] + " " + std::to_string(l.H) + "x" +
                 std::to_string(l.H) + "x" + std::to_string(l.C) + " k" + std::to_string(l.k) + "/" +
                 std::to_string(l.stride));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(x.nbytes() + y.nbytes()));
}

void all_layers(benchmark::internal::Benchmark* b) {
  for (int64_t step = 0; step < 3; ++step)
    for (int64_t i = 0; i < int64_t(std::size(kB3)); ++i)
      for (int64_t impl = 0; impl < 2; ++impl) b->Args({i, impl, step});
}

}  // namespace

BENCHMARK(BM_Depthwise)->Apply(all_layers)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
