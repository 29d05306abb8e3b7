// Fully connected layer, torch.nn.Linear semantics: y = x W^T + b.
//   x [N, in]   w [out, in]   b [out] or undefined   y [N, out]
#pragma once
#include "tensor/tensor.h"

namespace fstm::kernels {

#define FSTM_LINEAR_KERNELS                                                                     \
  void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y);            \
  /* dx = dy W  (assign) */                                                                     \
  void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx);                     \
  /* dw += dy^T x; db += sum_n dy  (accumulate; db may be undefined) */                         \
  void linear_backward_weights(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db);

FSTM_LINEAR_KERNELS
namespace ref { FSTM_LINEAR_KERNELS }
namespace cpu { FSTM_LINEAR_KERNELS }
namespace cuda { FSTM_LINEAR_KERNELS }

}  // namespace fstm::kernels
