// Pooling. Max pooling: x [N, H, W, C] -> y [N, Ho, Wo, C], padding counts as -inf; ties pick the
// first maximum in window order (as PyTorch). Global average pooling: [N, H, W, C] -> [N, C]
// (torch's adaptive_avg_pool2d to 1x1 followed by flatten).
#pragma once
#include "tensor/tensor.h"

namespace fstm::kernels {

struct Pool2dParams {
  int kernel_h = 3, kernel_w = 3;
  int stride_h = 2, stride_w = 2;
  int pad_h = 1, pad_w = 1;
};
Shape max_pool2d_output_shape(const Shape& x, const Pool2dParams& p);

#define FSTM_POOL_KERNELS                                                                       \
  void max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y);                   \
  /* dx (assign): dy routed to the argmax of each window, recomputed from x. */                \
  void max_pool2d_backward(const Tensor& dy, const Tensor& x, const Pool2dParams& p, Tensor& dx); \
  void global_avg_pool_forward(const Tensor& x, Tensor& y);                                     \
  /* dx[n,h,w,c] = dy[n,c] / (H*W)  (assign) */                                                 \
  void global_avg_pool_backward(const Tensor& dy, Tensor& dx);

FSTM_POOL_KERNELS
namespace ref { FSTM_POOL_KERNELS }
namespace cpu { FSTM_POOL_KERNELS }
namespace cuda { FSTM_POOL_KERNELS }

}  // namespace fstm::kernels
