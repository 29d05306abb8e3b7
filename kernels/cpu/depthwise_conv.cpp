// Depthwise convolution, NHWC, on the CPU: OpenMP over output rows, SIMD over channels.
//
// Every kernel here is one of two loops over "tap tables". For one spatial axis, the table says for
// each output position o and kernel tap k which input position is read, or -1 (padding):
//   forward and weight gradient:  i = o * stride - pad + k * dilation
//   data gradient (transposed):   o' = (i + pad - k * dilation) / stride when that divides exactly
// so the forward pass and the data gradient are the same gather,
//   out[n, r, s, c] = bias[c] + sum_{kh, kw} in[n, rows[r][kh], cols[s][kw], c] * wt[kh, kw, c],
// and the weight gradient is its correlation form,
//   dwt[kh, kw, c] += sum_{n, r, s} dy[n, r, s, c] * x[n, rows[r][kh], cols[s][kw], c].
// A block of 32 channels (four AVX2 vectors) is accumulated in registers across all taps of one
// output position; channel counts that are not a multiple of 32 finish in blocks of 8, then 1.
//
// oneDNN 2.6 runs depthwise convolutions too (kernels/cpu/conv2d_onednn.cpp). Its weight gradient
// for kernels larger than 3x3 falls back to a generic kernel 4-6x slower than this one; its forward
// and data gradient (AVX-512 JIT) are about 3x faster than these loops at EfficientNet's shapes.
// kernels/conv2d.cpp picks accordingly; bench/bench_depthwise.cpp measures both.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/depthwise_conv.h"

namespace fstm::kernels {

bool is_depthwise(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return x.size() == 4 && w.size() == 4 && p.groups > 1 && x[3] == p.groups && w[0] == p.groups && w[1] == 1;
}

namespace cpu {

namespace {

// Input position read by output position o through tap k, or -1.
std::vector<int> forward_taps(int64_t out, int64_t in, int64_t kernel, int stride, int pad, int dilation) {
  std::vector<int> t(size_t(out * kernel));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t k = 0; k < kernel; ++k) {
      const int64_t i = o * stride - pad + k * dilation;
      t[size_t(o * kernel + k)] = (i >= 0 && i < in) ? int(i) : -1;
    }
  return t;
}

// The transposed table: for input position i (a row of dx) and tap k, the output position whose
// forward tap k read i, or -1.
std::vector<int> transposed_taps(int64_t in, int64_t out, int64_t kernel, int stride, int pad, int dilation) {
  std::vector<int> t(size_t(in * kernel));
  for (int64_t i = 0; i < in; ++i)
    for (int64_t k = 0; k < kernel; ++k) {
      const int64_t num = i + pad - k * dilation;
      const bool hit = num >= 0 && num % stride == 0 && num / stride < out;
      t[size_t(i * kernel + k)] = hit ? int(num / stride) : -1;
    }
  return t;
}

// One gather (or its correlation): `src` [N, srcH, srcW, C] is read through the tables at every
// position of `dst` [N, dstH, dstW, C].
struct Gather {
  int64_t N, srcH, srcW, dstH, dstW, C, kH, kW;
  std::vector<int> rows, cols;  // [dstH * kH], [dstW * kW]
};

Gather forward_gather(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  return {x[0], x[1], x[2], y[1], y[2], x[3], w[2], w[3],
          forward_taps(y[1], x[1], w[2], p.stride_h, p.pad_h, p.dilation_h),
          forward_taps(y[2], x[2], w[3], p.stride_w, p.pad_w, p.dilation_w)};
}

// wt[(kh * kW + kw) * C + c] = w[c, 0, kh, kw]: the taps of a channel block are contiguous.
std::vector<float> repack_weights(const Tensor& w) {
  const int64_t C = w.size(0), taps = w.size(2) * w.size(3);
  const float* pw = w.data<float>();
  std::vector<float> wt(size_t(C * taps));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < taps; ++t) wt[size_t(t * C + c)] = pw[c * taps + t];
  return wt;
}

// out[r, :, c0 .. c0 + CB) for one destination row r of one image.
template <int CB>
void gather_block(const Gather& g, const float* src_img, const int* rows, const float* wt, const float* bias,
                  float* dst_row, int64_t c0) {
  for (int64_t s = 0; s < g.dstW; ++s) {
    float acc[CB];
    for (int c = 0; c < CB; ++c) acc[c] = bias ? bias[c0 + c] : 0.0f;
    for (int64_t kh = 0; kh < g.kH; ++kh) {
      if (rows[kh] < 0) continue;
      const float* src_row = src_img + rows[kh] * g.srcW * g.C + c0;
      const int* cols = g.cols.data() + s * g.kW;
      for (int64_t kw = 0; kw < g.kW; ++kw) {
        if (cols[kw] < 0) continue;
        const float* xp = src_row + cols[kw] * g.C;
        const float* wp = wt + (kh * g.kW + kw) * g.C + c0;
        for (int c = 0; c < CB; ++c) acc[c] += xp[c] * wp[c];
      }
    }
    float* yp = dst_row + s * g.C + c0;
    for (int c = 0; c < CB; ++c) yp[c] = acc[c];
  }
}

void gather(const Gather& g, const float* src, const float* wt, const float* bias, float* dst) {
  const int64_t rows_total = g.N * g.dstH;
#pragma omp parallel for schedule(static)
  for (int64_t nr = 0; nr < rows_total; ++nr) {
    const int64_t n = nr / g.dstH, r = nr % g.dstH;
    const float* src_img = src + n * g.srcH * g.srcW * g.C;
    const int* rows = g.rows.data() + r * g.kH;
    float* dst_row = dst + nr * g.dstW * g.C;
    int64_t c0 = 0;
    for (; c0 + 32 <= g.C; c0 += 32) gather_block<32>(g, src_img, rows, wt, bias, dst_row, c0);
    for (; c0 + 8 <= g.C; c0 += 8) gather_block<8>(g, src_img, rows, wt, bias, dst_row, c0);
    for (; c0 < g.C; ++c0) gather_block<1>(g, src_img, rows, wt, bias, dst_row, c0);
  }
}

// partial[(kh * kW + kw) * C + c] += sum over row r of dy * x through the taps; dbias[c] += sum dy.
template <int CB>
void correlate_block(const Gather& g, const float* x_img, const int* rows, const float* dy_row, float* partial,
                     float* dbias, int64_t c0) {
  for (int64_t kh = 0; kh < g.kH; ++kh) {
    if (rows[kh] < 0) continue;
    const float* x_row = x_img + rows[kh] * g.srcW * g.C + c0;
    for (int64_t kw = 0; kw < g.kW; ++kw) {
      float acc[CB] = {};
      for (int64_t s = 0; s < g.dstW; ++s) {
        const int col = g.cols[size_t(s * g.kW + kw)];
        if (col < 0) continue;
        const float* xp = x_row + col * g.C;
        const float* dp = dy_row + s * g.C + c0;
        for (int c = 0; c < CB; ++c) acc[c] += dp[c] * xp[c];
      }
      float* pp = partial + (kh * g.kW + kw) * g.C + c0;
      for (int c = 0; c < CB; ++c) pp[c] += acc[c];
    }
  }
  if (dbias) {
    float acc[CB] = {};
    for (int64_t s = 0; s < g.dstW; ++s)
      for (int c = 0; c < CB; ++c) acc[c] += dy_row[s * g.C + c0 + c];
    for (int c = 0; c < CB; ++c) dbias[c0 + c] += acc[c];
  }
}

}  // namespace

void depthwise_conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor& y) {
  const Gather g = forward_gather(x.shape(), w.shape(), y.shape(), p);
  const std::vector<float> wt = repack_weights(w);
  gather(g, x.data<float>(), wt.data(), b.defined() ? b.data<float>() : nullptr, y.data<float>());
}

void depthwise_conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx) {
  const Shape& xs = dx.shape();
  const Shape& ys = dy.shape();
  const Gather g{xs[0], ys[1], ys[2], xs[1], xs[2], xs[3], w.size(2), w.size(3),
                 transposed_taps(xs[1], ys[1], w.size(2), p.stride_h, p.pad_h, p.dilation_h),
                 transposed_taps(xs[2], ys[2], w.size(3), p.stride_w, p.pad_w, p.dilation_w)};
  const std::vector<float> wt = repack_weights(w);
  gather(g, dy.data<float>(), wt.data(), nullptr, dx.data<float>());
}

void depthwise_conv2d_backward_weights(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw,
                                       Tensor& db) {
  const Gather g = forward_gather(x.shape(), dw.shape(), dy.shape(), p);
  const int64_t taps = g.kH * g.kW, rows_total = g.N * g.dstH;
  const bool with_bias = db.defined();
  const int threads = std::max(1, std::min<int>(omp_get_max_threads(), int(rows_total)));
  // One private accumulator per thread, [taps * C] then [C] for the bias, summed in thread order.
  const int64_t stride = (taps + 1) * g.C;
  std::vector<float> partial(size_t(threads * stride), 0.0f);
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
#pragma omp parallel num_threads(threads)
  {
    float* mine = partial.data() + omp_get_thread_num() * stride;
    float* dbias = with_bias ? mine + taps * g.C : nullptr;
#pragma omp for schedule(static)
    for (int64_t nr = 0; nr < rows_total; ++nr) {
      const int64_t n = nr / g.dstH, r = nr % g.dstH;
      const float* x_img = px + n * g.srcH * g.srcW * g.C;
      const int* rows = g.rows.data() + r * g.kH;
      const float* dy_row = pdy + nr * g.dstW * g.C;
      int64_t c0 = 0;
      for (; c0 + 32 <= g.C; c0 += 32) correlate_block<32>(g, x_img, rows, dy_row, mine, dbias, c0);
      for (; c0 + 8 <= g.C; c0 += 8) correlate_block<8>(g, x_img, rows, dy_row, mine, dbias, c0);
      for (; c0 < g.C; ++c0) correlate_block<1>(g, x_img, rows, dy_row, mine, dbias, c0);
    }
  }
  float* pdw = dw.data<float>();  // [C, 1, kH, kW]
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t t = 0; t < taps; ++t) {
      float sum = 0.0f;
      for (int th = 0; th < threads; ++th) sum += partial[size_t(th * stride + t * g.C + c)];
      pdw[c * taps + t] += sum;
    }
  if (with_bias) {
    float* pdb = db.data<float>();
    for (int64_t c = 0; c < g.C; ++c) {
      float sum = 0.0f;
      for (int th = 0; th < threads; ++th) sum += partial[size_t(th * stride + taps * g.C + c)];
      pdb[c] += sum;
    }
  }
}

}  // namespace cpu
}  // namespace fstm::kernels
