// Fused optimizer updates, one kernel per parameter tensor (torch.optim semantics).
#pragma once
#include "tensor/tensor.h"

namespace fstm::kernels {

struct SgdParams {
  float lr = 0.01f, momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
  bool first_step = true;  // torch initialises the momentum buffer with the first gradient
};
struct AdamWParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 1e-2f;
  int64_t step = 1;  // 1-based step count after this update, for bias correction
};

#define FSTM_OPTIM_KERNELS                                                                        \
  /* param, grad, momentum_buf: same shape, f32; momentum_buf may be undefined when momentum=0 */ \
  void sgd_step(Tensor& param, const Tensor& grad, Tensor& momentum_buf, const SgdParams& p);     \
  void adamw_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,         \
                  const AdamWParams& p);

FSTM_OPTIM_KERNELS
namespace ref { FSTM_OPTIM_KERNELS }
namespace cpu { FSTM_OPTIM_KERNELS }
namespace cuda { FSTM_OPTIM_KERNELS }

}  // namespace fstm::kernels
