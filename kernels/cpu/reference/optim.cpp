// Reference optimizer updates, written as torch.optim documents them.
#include <cmath>

#include "kernels/optim.h"

namespace fstm::kernels::ref {

void sgd_step(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& p) {
  float* w = param.data<float>();
  const float* g = grad.data<float>();
  for (int64_t i = 0; i < param.numel(); ++i) {
    float d = g[i] + p.weight_decay * w[i];
    if (p.momentum != 0.0f) {
      float& b = momentum_buf.data<float>()[i];
      b = p.first_step ? d : p.momentum * b + (1.0f - p.dampening) * d;
      d = p.nesterov ? d + p.momentum * b : b;
    }
    w[i] -= p.lr * d;
  }
}

void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWParams& p) {
  float* w = param.data<float>();
  const float* g = grad.data<float>();
  float* m = exp_avg.data<float>();
  float* v = exp_avg_sq.data<float>();
  const double bc1 = 1.0 - std::pow(double(p.beta1), double(p.step));
  const double bc2 = 1.0 - std::pow(double(p.beta2), double(p.step));
  const float step_size = float(p.lr / bc1);
  const float bc2_sqrt = float(std::sqrt(bc2));
  for (int64_t i = 0; i < param.numel(); ++i) {
    w[i] *= 1.0f - p.lr * p.weight_decay;  // decoupled weight decay
    m[i] = p.beta1 * m[i] + (1.0f - p.beta1) * g[i];
    v[i] = p.beta2 * v[i] + (1.0f - p.beta2) * g[i] * g[i];
    const float denom = std::sqrt(v[i]) / bc2_sqrt + p.eps;
    w[i] -= step_size * m[i] / denom;
  }
}

}  // namespace fstm::kernels::ref
