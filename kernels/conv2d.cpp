#include "kernels/conv2d.h"

#include "kernels/depthwise_conv.h"
#include "kernels/dispatch.h"
#if FSTM_HAVE_ONEDNN
#include "kernels/cpu/onednn_common.h"
#endif

namespace fstm::kernels {

Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  const int64_t kh = w[2], kw = w[3];
  const int64_t ho = (x[1] + 2 * p.pad_h - p.dilation_h * (kh - 1) - 1) / p.stride_h + 1;
  const int64_t wo = (x[2] + 2 * p.pad_w - p.dilation_w * (kw - 1) - 1) / p.stride_w + 1;
  return Shape{x[0], ho, wo, w[0]};
}

void conv2d_check(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  FSTM_CHECK(x.dim() == 4, "conv2d: input must be [N, H, W, C], got ", x.describe());
  FSTM_CHECK(w.dim() == 4, "conv2d: weight must be [Co, Ci/groups, kH, kW], got ", w.describe());
  check_f32(x, "conv2d");
  check_f32(w, "conv2d");
  check_same_device(x, w, "conv2d");
  FSTM_CHECK(p.groups >= 1 && x.size(3) % p.groups == 0 && w.size(0) % p.groups == 0, "conv2d: ",
             p.groups, " groups do not divide input ", x.describe(), " and weight ", w.describe());
  FSTM_CHECK(w.size(1) * p.groups == x.size(3), "conv2d: weight ", w.describe(), " expects ",
             w.size(1) * p.groups, " input channels, input ", x.describe(), " has ", x.size(3));
  FSTM_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 && p.dilation_w >= 1 && p.pad_h >= 0 &&
                 p.pad_w >= 0,
             "conv2d: stride and dilation must be >= 1 and padding >= 0");
  if (b.defined()) {
    check_shape(b, Shape{w.size(0)}, "conv2d bias");
    check_same_device(x, b, "conv2d");
  }
  const Shape y = conv2d_output_shape(x.shape(), w.shape(), p);
  FSTM_CHECK(y[1] >= 1 && y[2] >= 1, "conv2d: input ", x.describe(), " is smaller than the ", w.size(2), "x",
             w.size(3), " kernel ", w.describe());
}

void set_fast_conv(bool enabled) {
#if FSTM_HAVE_ONEDNN
  onednn::set_conv2d_winograd(enabled);
#else
  (void)enabled;
#endif
}
bool fast_conv() {
#if FSTM_HAVE_ONEDNN
  return onednn::conv2d_winograd();
#else
  return false;
#endif
}

namespace {
// Depthwise convolutions on the fast CPU path go to kernels/cpu/depthwise_conv.cpp where it beats
// oneDNN 2.6 (bench/bench_depthwise.cpp): the weight gradient of kernels larger than 3x3 (for 5x5,
// oneDNN 2.6 picks a generic kernel instead of its depthwise one: 4-6x slower than ours), and
// everything in builds without oneDNN. oneDNN's forward and data gradient are about 3x faster.
enum class DepthwiseStep { Forward, BackwardData, BackwardWeights };
bool use_own_depthwise(const Tensor& on, const Shape& x, const Shape& w, const Conv2dParams& p, DepthwiseStep step) {
  if (on.is_cuda() || use_reference() || !is_depthwise(x, w, p)) return false;
  if (!FSTM_HAVE_ONEDNN) return true;
  return step == DepthwiseStep::BackwardWeights && w[2] * w[3] > 9;
}
}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor& y) {
  if (use_own_depthwise(x, x.shape(), w.shape(), p, DepthwiseStep::Forward))
    return cpu::depthwise_conv2d_forward(x, w, b, p, y);
  FSTM_DISPATCH_ONEDNN(x, conv2d_forward, x, w, b, p, y);
}
void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx) {
  if (use_own_depthwise(dy, dx.shape(), w.shape(), p, DepthwiseStep::BackwardData))
    return cpu::depthwise_conv2d_backward_data(dy, w, p, dx);
  FSTM_DISPATCH_ONEDNN(dy, conv2d_backward_data, dy, w, p, dx);
}
void conv2d_backward_weights(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw, Tensor& db) {
  if (use_own_depthwise(dy, x.shape(), dw.shape(), p, DepthwiseStep::BackwardWeights))
    return cpu::depthwise_conv2d_backward_weights(dy, x, p, dw, db);
  FSTM_DISPATCH_ONEDNN(dy, conv2d_backward_weights, dy, x, p, dw, db);
}

}  // namespace fstm::kernels
