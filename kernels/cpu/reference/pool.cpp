// Reference pooling.
#include <limits>

#include "kernels/pool.h"

namespace fstm::kernels::ref {

namespace {
// Index (h * W + w) of the first maximum in the window of output (oh, ow), channel c of image n;
// -1 when the window holds only padding.
int64_t argmax_in_window(const float* px, int64_t H, int64_t W, int64_t C, int64_t n, int64_t oh, int64_t ow,
                         int64_t c, const Pool2dParams& p) {
  float best = -std::numeric_limits<float>::infinity();
  int64_t best_index = -1;
  for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
    const int64_t ih = oh * p.stride_h - p.pad_h + kh;
    if (ih < 0 || ih >= H) continue;
    for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
      const int64_t iw = ow * p.stride_w - p.pad_w + kw;
      if (iw < 0 || iw >= W) continue;
      const float v = px[((n * H + ih) * W + iw) * C + c];
      if (v > best || best_index < 0) {
        best = v;
        best_index = ih * W + iw;
      }
    }
  }
  return best_index;
}
}  // namespace

void max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y) {
  // x [N, H, W, C] -> y [N, Ho, Wo, C]
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3), Ho = y.size(1), Wo = y.size(2);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t i = argmax_in_window(px, H, W, C, n, oh, ow, c, p);
          py[((n * Ho + oh) * Wo + ow) * C + c] = px[(n * H * W + i) * C + c];
        }
}

void max_pool2d_backward(const Tensor& dy, const Tensor& x, const Pool2dParams& p, Tensor& dx) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3), Ho = dy.size(1), Wo = dy.size(2);
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  for (int64_t i = 0; i < dx.numel(); ++i) pdx[i] = 0.0f;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oh = 0; oh < Ho; ++oh)
      for (int64_t ow = 0; ow < Wo; ++ow)
        for (int64_t c = 0; c < C; ++c) {
          const int64_t i = argmax_in_window(px, H, W, C, n, oh, ow, c, p);
          pdx[(n * H * W + i) * C + c] += pdy[((n * Ho + oh) * Wo + ow) * C + c];
        }
}

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  // x [N, H, W, C] -> y [N, C]
  const int64_t N = x.size(0), HW = x.size(1) * x.size(2), C = x.size(3);
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      double acc = 0;
      for (int64_t i = 0; i < HW; ++i) acc += px[(n * HW + i) * C + c];
      py[n * C + c] = float(acc / double(HW));
    }
}

void global_avg_pool_backward(const Tensor& dy, Tensor& dx) {
  const int64_t N = dx.size(0), HW = dx.size(1) * dx.size(2), C = dx.size(3);
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i)
      for (int64_t c = 0; c < C; ++c) pdx[(n * HW + i) * C + c] = pdy[n * C + c] / float(HW);
}

}  // namespace fstm::kernels::ref
