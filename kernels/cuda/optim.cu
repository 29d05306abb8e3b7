// Fused CUDA optimizer updates (kernels/optim.h): one pass over the parameter, its gradient and
// its state, written in the same order of operations as the reference (torch.optim semantics).
#include <cmath>

#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/optim.h"

namespace fstm::kernels::cuda {

namespace {

__global__ void sgd_kernel(float* w, const float* g, float* buf, int64_t n, SgdParams p) {
  FSTM_GRID_STRIDE(i, n) {
    float d = g[i] + p.weight_decay * w[i];
    if (p.momentum != 0.0f) {
      const float b = p.first_step ? d : p.momentum * buf[i] + (1.0f - p.dampening) * d;
      buf[i] = b;
      d = p.nesterov ? d + p.momentum * b : b;
    }
    w[i] -= p.lr * d;
  }
}

__global__ void adamw_kernel(float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float step_size, float bc2_sqrt) {
  FSTM_GRID_STRIDE(i, n) {
    const float gi = g[i];
    const float wi = w[i] * (1.0f - lr * weight_decay);  // decoupled weight decay
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / bc2_sqrt + eps;
    w[i] = wi - step_size * mi / denom;
  }
}

}  // namespace

void sgd_step(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& p) {
  OnDevice on("sgd_step", {&param, &grad, &momentum_buf});
  const int64_t n = param.numel();
  expect_f32("sgd_step", param);
  expect_f32("sgd_step", grad, n);
  if (p.momentum != 0.0f) {
    FSTM_CHECK(momentum_buf.defined(), "sgd_step: momentum ", p.momentum, " needs a momentum buffer for ",
               param.describe());
    expect_f32("sgd_step", momentum_buf, n);
  }
  if (n == 0) return;
  sgd_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(param.data<float>(), grad.data<float>(),
                                                      p.momentum != 0.0f ? momentum_buf.data<float>() : nullptr, n, p);
  FSTM_CUDA_CHECK_LAUNCH("sgd_kernel");
}

void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWParams& p) {
  OnDevice on("adamw_step", {&param, &grad, &exp_avg, &exp_avg_sq});
  const int64_t n = param.numel();
  expect_f32("adamw_step", param);
  expect_f32("adamw_step", grad, n);
  expect_f32("adamw_step", exp_avg, n);
  expect_f32("adamw_step", exp_avg_sq, n);
  FSTM_CHECK(p.step >= 1, "adamw_step: step must be >= 1, got ", p.step);
  if (n == 0) return;
  // Bias corrections on the host in double, as the reference.
  const double bc1 = 1.0 - std::pow(double(p.beta1), double(p.step));
  const double bc2 = 1.0 - std::pow(double(p.beta2), double(p.step));
  const float step_size = float(p.lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  adamw_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(param.data<float>(), grad.data<float>(),
                                                        exp_avg.data<float>(), exp_avg_sq.data<float>(), n, p.lr,
                                                        p.beta1, p.beta2, p.eps, p.weight_decay, step_size, bc2_sqrt);
  FSTM_CUDA_CHECK_LAUNCH("adamw_kernel");
}

}  // namespace fstm::kernels::cuda
