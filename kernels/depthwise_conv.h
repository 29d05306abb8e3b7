// Depthwise convolution on the CPU: groups == Ci == Co, one kH x kW filter per channel, the layer
// that EfficientNet's MBConv blocks spend their time in. Same shapes and contract as
// kernels/conv2d.h (whose entry points call these when use_own_depthwise() in kernels/conv2d.cpp
// says so):
//   x [N, H, W, C]   w [C, 1, kH, kW]   b [C] or undefined   y [N, Ho, Wo, C]
// Channels are innermost in memory, so every kernel is a loop over output positions with a
// vector of channels as the unit of work; weights are repacked to [kH, kW, C] per call.
#pragma once
#include "kernels/conv2d.h"

namespace fstm::kernels {

// True for a depthwise convolution (w [C, 1, kH, kW] on C input channels, groups == C) that the
// kernels below handle: all of them (any stride, padding, dilation and kernel size).
bool is_depthwise(const Shape& x, const Shape& w, const Conv2dParams& p);

namespace cpu {

void depthwise_conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor& y);
// dx = conv_transpose(dy, w) (assign)
void depthwise_conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx);
// dw += corr(x, dy); db += sum(dy) (accumulate; db may be undefined)
void depthwise_conv2d_backward_weights(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw,
                                       Tensor& db);

}  // namespace cpu
}  // namespace fstm::kernels
