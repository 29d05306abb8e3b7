// Batch normalisation over every axis but the last (channels): x is [N, H, W, C] or [N, C].
//
// Train mode normalises with the batch statistics and updates the running statistics as PyTorch
// does: running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance
// (n / (n - 1)) for running_var. The biased variance normalises.
// Eval mode normalises with the running statistics.
#pragma once
#include "tensor/tensor.h"

namespace fstm::kernels {

#define FSTM_BATCH_NORM_KERNELS                                                                   \
  /* y = (x - mean) * invstd * gamma + beta; saves the batch mean and invstd = 1/sqrt(var + eps) \
     and updates running_mean/running_var in place (skipped when they are undefined). */        \
  void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,         \
                                Tensor& running_mean, Tensor& running_var, float momentum,        \
                                float eps, Tensor& y, Tensor& save_mean, Tensor& save_invstd);    \
  void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,          \
                               const Tensor& running_mean, const Tensor& running_var, float eps,  \
                               Tensor& y);                                                        \
  /* Train mode: dx (assign) through the batch statistics; dgamma, dbeta (accumulate). */        \
  void batch_norm_backward_train(const Tensor& dy, const Tensor& x, const Tensor& gamma,          \
                                 const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx,  \
                                 Tensor& dgamma, Tensor& dbeta);                                  \
  /* Eval mode (statistics are constants): dx = dy * gamma * invstd (assign); dgamma, dbeta    \
     (accumulate). dgamma/dbeta may be undefined. */                                              \
  void batch_norm_backward_eval(const Tensor& dy, const Tensor& x, const Tensor& gamma,           \
                                const Tensor& running_mean, const Tensor& running_var, float eps, \
                                Tensor& dx, Tensor& dgamma, Tensor& dbeta);                       \
  /* ResNet's epilogue fused into train-mode batch norm: y = relu(bn(x) + residual), residual     \
     optional (undefined: y = relu(bn(x))). Same statistics and running-stat update as            \
     batch_norm_forward_train; saves two memory passes (four with a residual) per forward. */     \
  void batch_norm_relu_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,    \
                                     const Tensor& residual, Tensor& running_mean,                \
                                     Tensor& running_var, float momentum, float eps, Tensor& y,   \
                                     Tensor& save_mean, Tensor& save_invstd);                     \
  /* Its backward from the output y: dz = dy * (y > 0) goes to dresidual when defined (assign),  \
     then dx (assign), dgamma, dbeta (accumulate) as batch_norm_backward_train of dz.             \
     dresidual, or else dx, may be dy itself (overwritten in place). */                           \
  void batch_norm_relu_backward_train(const Tensor& dy, const Tensor& x, const Tensor& y,         \
                                      const Tensor& gamma, const Tensor& save_mean,               \
                                      const Tensor& save_invstd, Tensor& dx, Tensor& dgamma,      \
                                      Tensor& dbeta, Tensor& dresidual);

FSTM_BATCH_NORM_KERNELS
namespace ref { FSTM_BATCH_NORM_KERNELS }
namespace cpu { FSTM_BATCH_NORM_KERNELS }
namespace cuda { FSTM_BATCH_NORM_KERNELS }

}  // namespace fstm::kernels
