// Fast fused optimizer updates: one pass over (param, grad, state), OpenMP + SIMD. The arithmetic is
// the reference's (kernels/cpu/reference/optim.cpp, torch.optim), element for element.
#include <cmath>

#include "kernels/optim.h"

namespace fstm::kernels::cpu {

namespace {
constexpr int64_t kParallelGrain = 1 << 15;
}

void sgd_step(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& p) {
  float* w = param.data<float>();
  const float* g = grad.data<float>();
  const int64_t n = param.numel();
  const float lr = p.lr, wd = p.weight_decay, mom = p.momentum, damp = 1.0f - p.dampening;
  if (mom == 0.0f) {
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
    return;
  }
  float* b = momentum_buf.data<float>();
  const bool first = p.first_step, nesterov = p.nesterov;
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float d = g[i] + wd * w[i];
    const float buf = first ? d : mom * b[i] + damp * d;
    b[i] = buf;
    w[i] -= lr * (nesterov ? d + mom * buf : buf);
  }
}

void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWParams& p) {
  float* w = param.data<float>();
  const float* g = grad.data<float>();
  float* m = exp_avg.data<float>();
  float* v = exp_avg_sq.data<float>();
  const int64_t n = param.numel();
  const double bc1 = 1.0 - std::pow(double(p.beta1), double(p.step));
  const double bc2 = 1.0 - std::pow(double(p.beta2), double(p.step));
  const float step_size = float(p.lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float decay = 1.0f - p.lr * p.weight_decay;  // decoupled weight decay
  const float b1 = p.beta1, b2 = p.beta2, eps = p.eps;
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float mi = b1 * m[i] + (1.0f - b1) * g[i];
    const float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    w[i] = w[i] * decay - step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
  }
}

}  // namespace fstm::kernels::cpu
