// Memory-bound kernels of a training step at ResNet-18's largest activation, [32, 56, 56, 64] f32
// (25.7 MB): batch norm train forward/backward, ReLU, add, fast path against the reference.
// The counter is the memory the kernel must move (bytes read + written once) per second; the
// numbers say how close each kernel gets to one pass over its operands. Calls rotate over four
// operand sets (about 400 MB) so that no input is still in the 32 MB L3 cache from the last call,
// as in a real training step.
#include <benchmark/benchmark.h>

#include <functional>
#include <string>

#include "kernels/activation.h"
#include "kernels/backend.h"
#include "kernels/batch_norm.h"
#include "kernels/elementwise.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace {

using fstm::Shape;
using fstm::Tensor;

const Shape kShape{32, 56, 56, 64};

Tensor random(const Shape& shape, fstm::Rng& rng) {
  Tensor t = Tensor::empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = rng.uniform(-1.0f, 1.0f);
  return t;
}

struct Operands {
  Tensor x, y, dy, dx, gamma, beta, rm, rv, mean, invstd, dgamma, dbeta;
  Operands() {
    fstm::Rng rng(1);
    const int64_t C = kShape.back();
    x = random(kShape, rng);
    dy = random(kShape, rng);
    y = Tensor::empty(kShape);
    dx = Tensor::empty(kShape);
    gamma = Tensor::full(Shape{C}, 1.0f);
    beta = Tensor::zeros(Shape{C});
    rm = Tensor::zeros(Shape{C});
    rv = Tensor::full(Shape{C}, 1.0f);
    mean = Tensor::empty(Shape{C});
    invstd = Tensor::empty(Shape{C});
    dgamma = Tensor::zeros(Shape{C});
    dbeta = Tensor::zeros(Shape{C});
    fstm::kernels::batch_norm_forward_train(x, gamma, beta, rm, rv, 0.1f, 1e-5f, y, mean, invstd);
  }
};

constexpr int kSets = 4;
Operands& operands(int set) {
  static Operands o[kSets];
  return o[set];
}

// tensors_moved: how many [N, H, W, C] tensors one pass must read or write.
void run(benchmark::State& state, fstm::kernels::CpuPath path, int tensors_moved,
         const std::function<void(Operands&)>& op) {
  fstm::kernels::set_cpu_path(path);
  for (int i = 0; i < kSets; ++i) op(operands(i));
  int set = 0;
  for (auto _ : state) {
    op(operands(set));
    set = (set + 1) % kSets;
  }
  fstm::kernels::set_cpu_path(fstm::kernels::CpuPath::Fast);
  state.counters["GB/s"] = benchmark::Counter(double(tensors_moved) * double(kShape.numel()) * 4.0 * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  using fstm::kernels::Activation;
  struct Op {
    const char* name;
    int moved;  // x read + y written = 2, and so on
    std::function<void(Operands&)> fn;
  };
  const Op ops[] = {
      {"bn_train_fwd", 3,  // read x (statistics), read x + write y
       [](Operands& o) { fstm::kernels::batch_norm_forward_train(o.x, o.gamma, o.beta, o.rm, o.rv, 0.1f, 1e-5f, o.y, o.mean, o.invstd); }},
      {"bn_train_bwd", 5,  // read dy, x (sums), read dy, x + write dx
       [](Operands& o) { fstm::kernels::batch_norm_backward_train(o.dy, o.x, o.gamma, o.mean, o.invstd, o.dx, o.dgamma, o.dbeta); }},
      {"bn_eval_fwd", 2,
       [](Operands& o) { fstm::kernels::batch_norm_forward_eval(o.x, o.gamma, o.beta, o.rm, o.rv, 1e-5f, o.y); }},
      {"relu_fwd", 2, [](Operands& o) { fstm::kernels::activation_forward(Activation::Relu, o.x, o.y); }},
      {"relu_bwd", 3, [](Operands& o) { fstm::kernels::activation_backward(Activation::Relu, o.dy, o.x, o.y, o.dx); }},
      {"silu_fwd", 2, [](Operands& o) { fstm::kernels::activation_forward(Activation::Silu, o.x, o.y); }},
      {"add", 3, [](Operands& o) { fstm::kernels::add(o.x, o.dy, o.y); }},
  };
  for (const Op& op : ops)
    for (auto [path, pname] : {std::pair{fstm::kernels::CpuPath::Fast, "fast"},
                               std::pair{fstm::kernels::CpuPath::Reference, "reference"}}) {
      const auto fn = op.fn;
      const int moved = op.moved;
      const fstm::kernels::CpuPath p = path;
      benchmark::RegisterBenchmark((std::string(op.name) + "/" + pname).c_str(),
                                   [p, moved, fn](benchmark::State& st) { run(st, p, moved, fn); })
          ->Unit(benchmark::kMillisecond)
          ->MeasureProcessCPUTime()
          ->UseRealTime();
    }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
