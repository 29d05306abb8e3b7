// GPU op timings of fstm's CUDA kernels on the shapes of ResNet-18 (224x224 input), for
// bench/gpu_bench.py, which times the same ops in PyTorch on the same GPU and prints the ratios.
//
//   bench_cuda_ops --benchmark_format=json      (FSTM_BENCH_BATCH=64 sets the batch)
//
// Each benchmark iteration times kRepeat back-to-back calls with CUDA events on the compute
// stream and reports the mean per call (manual time, milliseconds). One call runs first, outside
// the timing, so cuDNN's algorithm search and the allocator's first cudaMalloc are not counted.
// Without a GPU every benchmark reports an error saying why and nothing is timed.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/activation.h"
#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/optim.h"
#include "kernels/pool.h"
#include "tensor/cuda_api.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace fstm;
namespace k = fstm::kernels;

namespace {

constexpr int kRepeat = 10;

int64_t batch() {
  const char* env = std::getenv("FSTM_BENCH_BATCH");
  const int64_t n = env ? std::atoll(env) : 0;
  return n > 0 ? n : 64;
}

Tensor random_gpu(const Shape& shape, Rng& rng) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(-1.0f, 1.0f);
  return t.to(Device::cuda(0));
}

// Mean GPU time of one call of fn, over kRepeat calls per benchmark iteration.
void time_on_gpu(benchmark::State& state, const std::function<void()>& fn) {
  fn();
  cuda::synchronize(0);
  cuda::Event start(0), stop(0);
  for (auto _ : state) {
    start.record();
    for (int i = 0; i < kRepeat; ++i) fn();
    stop.record();
    stop.synchronize();
    state.SetIterationTime(double(stop.elapsed_ms_since(start)) / 1000.0 / kRepeat);
  }
}

bool have_gpu(benchmark::State& state) {
  if (cuda_device_count() > 0) return true;
  const std::string why = cuda_status();
  state.SkipWithError(("no usable GPU: " + why).c_str());
  return false;
}

struct ConvShape {
  const char* name;
  int64_t H, W, Ci, Co, k, stride, pad;
};

// The distinct convolutions of ResNet-18 at 224x224.
const ConvShape kResNet18Convs[] = {
    {"conv1_7x7_3_64_s2", 224, 224, 3, 64, 7, 2, 3},
    {"layer1_3x3_64", 56, 56, 64, 64, 3, 1, 1},
    {"layer2_3x3_64_128_s2", 56, 56, 64, 128, 3, 2, 1},
    {"layer2_3x3_128", 28, 28, 128, 128, 3, 1, 1},
    {"layer2_down_1x1_64_128_s2", 56, 56, 64, 128, 1, 2, 0},
    {"layer3_3x3_128_256_s2", 28, 28, 128, 256, 3, 2, 1},
    {"layer3_3x3_256", 14, 14, 256, 256, 3, 1, 1},
    {"layer3_down_1x1_128_256_s2", 28, 28, 128, 256, 1, 2, 0},
    {"layer4_3x3_256_512_s2", 14, 14, 256, 512, 3, 2, 1},
    {"layer4_3x3_512", 7, 7, 512, 512, 3, 1, 1},
    {"layer4_down_1x1_256_512_s2", 14, 14, 256, 512, 1, 2, 0},
};

void bench_conv(benchmark::State& state, ConvShape c, int pass) {
  if (!have_gpu(state)) return;
  Rng rng(1);
  k::Conv2dParams p;
  p.stride_h = p.stride_w = int(c.stride);
  p.pad_h = p.pad_w = int(c.pad);
  Tensor x = random_gpu(Shape{batch(), c.H, c.W, c.Ci}, rng);
  Tensor w = random_gpu(Shape{c.Co, c.Ci, c.k, c.k}, rng);
  const Shape ys = k::conv2d_output_shape(x.shape(), w.shape(), p);
  Tensor y = Tensor::empty(ys, DType::f32, x.device());
  Tensor dy = random_gpu(ys, rng);
  Tensor dx = Tensor::empty(x.shape(), DType::f32, x.device());
  Tensor dw = Tensor::zeros(w.shape(), DType::f32, x.device());
  Tensor none;
  if (pass == 0) time_on_gpu(state, [&] { k::conv2d_forward(x, w, none, p, y); });
  if (pass == 1) time_on_gpu(state, [&] { k::conv2d_backward_data(dy, w, p, dx); });
  if (pass == 2) time_on_gpu(state, [&] { k::conv2d_backward_weights(dy, x, p, dw, none); });
}

void bench_linear(benchmark::State& state, int pass) {
  if (!have_gpu(state)) return;
  Rng rng(2);
  const int64_t N = batch(), I = 512, O = 1000;
  Tensor x = random_gpu(Shape{N, I}, rng), w = random_gpu(Shape{O, I}, rng), b = random_gpu(Shape{O}, rng);
  Tensor y = Tensor::empty(Shape{N, O}, DType::f32, x.device()), dy = random_gpu(Shape{N, O}, rng);
  Tensor dx = Tensor::empty(x.shape(), DType::f32, x.device());
  Tensor dw = Tensor::zeros(w.shape(), DType::f32, x.device());
  Tensor db = Tensor::zeros(b.shape(), DType::f32, x.device());
  if (pass == 0) time_on_gpu(state, [&] { k::linear_forward(x, w, b, y); });
  if (pass == 1) time_on_gpu(state, [&] { k::linear_backward_data(dy, w, dx); });
  if (pass == 2) time_on_gpu(state, [&] { k::linear_backward_weights(dy, x, dw, db); });
}

void bench_batch_norm(benchmark::State& state, int64_t H, int64_t C, int pass) {
  if (!have_gpu(state)) return;
  Rng rng(3);
  const Shape shape{batch(), H, H, C};
  Tensor x = random_gpu(shape, rng), dy = random_gpu(shape, rng);
  Tensor gamma = random_gpu(Shape{C}, rng), beta = random_gpu(Shape{C}, rng);
  Tensor rm = Tensor::zeros(Shape{C}, DType::f32, x.device());
  Tensor rv = Tensor::full(Shape{C}, 1.0f, DType::f32, x.device());
  Tensor y = Tensor::empty(shape, DType::f32, x.device()), dx = Tensor::empty(shape, DType::f32, x.device());
  Tensor mean = Tensor::empty(Shape{C}, DType::f32, x.device());
  Tensor invstd = Tensor::empty(Shape{C}, DType::f32, x.device());
  Tensor dg = Tensor::zeros(Shape{C}, DType::f32, x.device()), db = Tensor::zeros(Shape{C}, DType::f32, x.device());
  k::batch_norm_forward_train(x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, mean, invstd);
  if (pass == 0)
    time_on_gpu(state, [&] { k::batch_norm_forward_train(x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, mean, invstd); });
  if (pass == 1) time_on_gpu(state, [&] { k::batch_norm_backward_train(dy, x, gamma, mean, invstd, dx, dg, db); });
  if (pass == 2) time_on_gpu(state, [&] { k::batch_norm_forward_eval(x, gamma, beta, rm, rv, 1e-5f, y); });
}

void bench_max_pool(benchmark::State& state, int pass) {
  if (!have_gpu(state)) return;
  Rng rng(4);
  k::Pool2dParams p;  // 3x3, stride 2, pad 1
  Tensor x = random_gpu(Shape{batch(), 112, 112, 64}, rng);
  const Shape ys = k::max_pool2d_output_shape(x.shape(), p);
  Tensor y = Tensor::empty(ys, DType::f32, x.device()), dy = random_gpu(ys, rng);
  Tensor dx = Tensor::empty(x.shape(), DType::f32, x.device());
  if (pass == 0) time_on_gpu(state, [&] { k::max_pool2d_forward(x, p, y); });
  if (pass == 1) time_on_gpu(state, [&] { k::max_pool2d_backward(dy, x, p, dx); });
}

void bench_relu(benchmark::State& state, int pass) {
  if (!have_gpu(state)) return;
  Rng rng(5);
  const Shape shape{batch(), 56, 56, 64};
  Tensor x = random_gpu(shape, rng), dy = random_gpu(shape, rng);
  Tensor y = Tensor::empty(shape, DType::f32, x.device()), dx = Tensor::empty(shape, DType::f32, x.device());
  k::activation_forward(k::Activation::Relu, x, y);
  if (pass == 0) time_on_gpu(state, [&] { k::activation_forward(k::Activation::Relu, x, y); });
  if (pass == 1) time_on_gpu(state, [&] { k::activation_backward(k::Activation::Relu, dy, x, y, dx); });
}

void bench_adamw(benchmark::State& state) {
  if (!have_gpu(state)) return;
  Rng rng(6);
  const Shape shape{11689512};  // ResNet-18's parameter count, as one tensor
  Tensor w = random_gpu(shape, rng), g = random_gpu(shape, rng);
  Tensor m = Tensor::zeros(shape, DType::f32, w.device()), v = Tensor::zeros(shape, DType::f32, w.device());
  k::AdamWParams p;
  time_on_gpu(state, [&] { k::adamw_step(w, g, m, v, p); });
}

void add(const std::string& name, std::function<void(benchmark::State&)> fn) {
  benchmark::RegisterBenchmark(name.c_str(), std::move(fn))->UseManualTime()->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  static const char* const kPass[] = {"fwd", "bwd_data", "bwd_filter"};
  for (const ConvShape& c : kResNet18Convs)
    for (int pass = 0; pass < 3; ++pass)
      add(std::string("conv_") + kPass[pass] + "/" + c.name,
          [c, pass](benchmark::State& s) { bench_conv(s, c, pass); });
  static const char* const kLinearPass[] = {"fwd", "bwd_data", "bwd_weights"};
  for (int pass = 0; pass < 3; ++pass)
    add(std::string("linear_") + kLinearPass[pass] + "/512_1000",
        [pass](benchmark::State& s) { bench_linear(s, pass); });
  static const char* const kBnPass[] = {"train_fwd", "train_bwd", "eval_fwd"};
  for (int pass = 0; pass < 3; ++pass) {
    add(std::string("bn_") + kBnPass[pass] + "/56x56x64",
        [pass](benchmark::State& s) { bench_batch_norm(s, 56, 64, pass); });
    add(std::string("bn_") + kBnPass[pass] + "/7x7x512",
        [pass](benchmark::State& s) { bench_batch_norm(s, 7, 512, pass); });
  }
  add("maxpool_fwd/112x112x64", [](benchmark::State& s) { bench_max_pool(s, 0); });
  add("maxpool_bwd/112x112x64", [](benchmark::State& s) { bench_max_pool(s, 1); });
  add("relu_fwd/56x56x64", [](benchmark::State& s) { bench_relu(s, 0); });
  add("relu_bwd/56x56x64", [](benchmark::State& s) { bench_relu(s, 1); });
  add("adamw/11.7M", [](benchmark::State& s) { bench_adamw(s); });
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
