#include "kernels/pool.h"

#include "kernels/dispatch.h"

namespace fstm::kernels {

Shape max_pool2d_output_shape(const Shape& x, const Pool2dParams& p) {
  FSTM_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1,
             "max_pool2d: kernel and stride must be >= 1");
  FSTM_CHECK(2 * p.pad_h <= p.kernel_h && 2 * p.pad_w <= p.kernel_w,
             "max_pool2d: padding must be at most half the kernel (as in PyTorch)");
  const int64_t ho = (x[1] + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  const int64_t wo = (x[2] + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  FSTM_CHECK(ho >= 1 && wo >= 1, "max_pool2d: input ", x.str(), " is smaller than the ", p.kernel_h, "x",
             p.kernel_w, " window");
  return Shape{x[0], ho, wo, x[3]};
}

void max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y) {
  FSTM_DISPATCH_ONEDNN(x, max_pool2d_forward, x, p, y);
}
void max_pool2d_backward(const Tensor& dy, const Tensor& x, const Pool2dParams& p, Tensor& dx) {
  FSTM_DISPATCH_ONEDNN(dy, max_pool2d_backward, dy, x, p, dx);
}
void global_avg_pool_forward(const Tensor& x, Tensor& y) { FSTM_DISPATCH(x, global_avg_pool_forward, x, y); }
void global_avg_pool_backward(const Tensor& dy, Tensor& dx) { FSTM_DISPATCH(dy, global_avg_pool_backward, dy, dx); }

}  // namespace fstm::kernels
