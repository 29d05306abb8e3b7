// 2-D convolution with stride, padding, dilation and groups (depthwise when groups == C).
//   x [N, H, W, Ci]   w [Co, Ci/groups, kH, kW] (torchvision layout)   b [Co] or undefined
//   y [N, Ho, Wo, Co] with Ho = (H + 2*pad_h - dil_h*(kH-1) - 1) / stride_h + 1
#pragma once
#include "tensor/tensor.h"

namespace fstm::kernels {

struct Conv2dParams {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
};

Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p);
// Throws fstm::Error naming the tensors when shapes, groups or dtypes do not fit.
void conv2d_check(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p);

#define FSTM_CONV2D_KERNELS                                                                        \
  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p,    \
                      Tensor& y);                                                                  \
  /* dx = conv_transpose(dy, w)              (assign) */                                           \
  void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx); \
  /* dw += corr(x, dy); db += sum(dy)         (accumulate; db may be undefined) */                 \
  void conv2d_backward_weights(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw, \
                               Tensor& db);

FSTM_CONV2D_KERNELS
namespace ref { FSTM_CONV2D_KERNELS }

// Fast convolutions (fstm train and fstm bench --fast-conv): oneDNN's Winograd kernels for dense 3x3
// stride-1 layers, where oneDNN has them. A ResNet-18 training step runs about 1.5x faster, and the
// rounding grows to 0.3-2% in the first layers' gradients (kernels/cpu/onednn_common.h), so it is
// off by default; FSTM_CONV_WINOGRAD=1 turns it on from the start. A process-wide setting. Builds
// without oneDNN have no such kernels: there it stays off.
void set_fast_conv(bool enabled);
bool fast_conv();
namespace cpu { FSTM_CONV2D_KERNELS }
namespace cuda { FSTM_CONV2D_KERNELS }

}  // namespace fstm::kernels
