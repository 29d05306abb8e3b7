// Fast global average pooling, NHWC: [N, H, W, C] <-> [N, C]. Max pooling is in pool_onednn.cpp.
#include <algorithm>

#include "kernels/pool.h"

namespace fstm::kernels::cpu {

namespace {
constexpr int64_t kParallelGrain = 1 << 15;
constexpr int64_t kChannelBlock = 64;  // channels per task: one 256-byte stripe of each row
}  // namespace

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  // y[n, c] = mean over HW of x[n, hw, c]; tasks are (image, block of channels) so that batch 1
  // still spreads over the cores. Sums are in double: HW reaches 112*112 in early layers.
  const int64_t N = x.size(0), HW = x.size(1) * x.size(2), C = x.size(3);
  const int64_t blocks = (C + kChannelBlock - 1) / kChannelBlock;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const double inv = 1.0 / double(HW);
#pragma omp parallel for collapse(2) if (x.numel() > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kChannelBlock, nc = std::min(kChannelBlock, C - c0);
      double acc[kChannelBlock] = {};
      for (int64_t i = 0; i < HW; ++i) {
        const float* row = px + (n * HW + i) * C + c0;
#pragma omp simd
        for (int64_t c = 0; c < nc; ++c) acc[c] += row[c];
      }
      for (int64_t c = 0; c < nc; ++c) py[n * C + c0 + c] = float(acc[c] * inv);
    }
}

void global_avg_pool_backward(const Tensor& dy, Tensor& dx) {
  // dx[n, hw, c] = dy[n, c] / HW
  const int64_t N = dx.size(0), HW = dx.size(1) * dx.size(2), C = dx.size(3);
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const float inv = 1.0f / float(HW);
#pragma omp parallel for collapse(2) if (dx.numel() > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < HW; ++i) {
      const float* g = pdy + n * C;
      float* out = pdx + (n * HW + i) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = g[c] * inv;
    }
}

}  // namespace fstm::kernels::cpu
