// Reference convolution: direct loops over every output and kernel tap. Slow and obvious.
//   x [N, H, W, Ci]   w [Co, Cig, kH, kW] with Cig = Ci / groups   y [N, Ho, Wo, Co]
// Output channel co belongs to group g = co / (Co / groups) and reads input channels
// g * Cig ... g * Cig + Cig - 1.
#include "kernels/conv2d.h"

namespace fstm::kernels::ref {

namespace {
struct Dims {
  int64_t N, H, W, Ci, Co, Cig, Cog, kH, kW, Ho, Wo;
};
Dims dims_of(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  return {x[0], x[1], x[2], x[3], w[0], w[1], w[0] / p.groups, w[2], w[3], y[1], y[2]};
}
}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p, Tensor& y) {
  const Dims d = dims_of(x.shape(), w.shape(), y.shape(), p);
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  const float* pb = b.defined() ? b.data<float>() : nullptr;
  float* py = y.data<float>();
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t oh = 0; oh < d.Ho; ++oh)
      for (int64_t ow = 0; ow < d.Wo; ++ow)
        for (int64_t co = 0; co < d.Co; ++co) {
          const int64_t g = co / d.Cog;
          double acc = pb ? pb[co] : 0.0;
          for (int64_t kh = 0; kh < d.kH; ++kh) {
            const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dilation_h;
            if (ih < 0 || ih >= d.H) continue;
            for (int64_t kw = 0; kw < d.kW; ++kw) {
              const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dilation_w;
              if (iw < 0 || iw >= d.W) continue;
              for (int64_t ci = 0; ci < d.Cig; ++ci)
                acc += double(px[((n * d.H + ih) * d.W + iw) * d.Ci + g * d.Cig + ci]) *
                       pw[((co * d.Cig + ci) * d.kH + kh) * d.kW + kw];
            }
          }
          py[((n * d.Ho + oh) * d.Wo + ow) * d.Co + co] = float(acc);
        }
}

void conv2d_backward_data(const Tensor& dy, const Tensor& w, const Conv2dParams& p, Tensor& dx) {
  // dx[n, ih, iw, ci] = sum over the outputs that read it of dy * w
  const Dims d = dims_of(dx.shape(), w.shape(), dy.shape(), p);
  const float* pdy = dy.data<float>();
  const float* pw = w.data<float>();
  std::vector<double> acc(size_t(dx.numel()), 0.0);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t oh = 0; oh < d.Ho; ++oh)
      for (int64_t ow = 0; ow < d.Wo; ++ow)
        for (int64_t co = 0; co < d.Co; ++co) {
          const int64_t g = co / d.Cog;
          const double gy = pdy[((n * d.Ho + oh) * d.Wo + ow) * d.Co + co];
          for (int64_t kh = 0; kh < d.kH; ++kh) {
            const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dilation_h;
            if (ih < 0 || ih >= d.H) continue;
            for (int64_t kw = 0; kw < d.kW; ++kw) {
              const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dilation_w;
              if (iw < 0 || iw >= d.W) continue;
              for (int64_t ci = 0; ci < d.Cig; ++ci)
                acc[size_t(((n * d.H + ih) * d.W + iw) * d.Ci + g * d.Cig + ci)] +=
                    gy * pw[((co * d.Cig + ci) * d.kH + kh) * d.kW + kw];
            }
          }
        }
  float* pdx = dx.data<float>();
  for (int64_t i = 0; i < dx.numel(); ++i) pdx[i] = float(acc[size_t(i)]);
}

void conv2d_backward_weights(const Tensor& dy, const Tensor& x, const Conv2dParams& p, Tensor& dw, Tensor& db) {
  // dw[co, ci, kh, kw] += sum_{n, oh, ow} dy[n, oh, ow, co] * x[n, ih, iw, g * Cig + ci]
  const Dims d = dims_of(x.shape(), dw.shape(), dy.shape(), p);
  const float* pdy = dy.data<float>();
  const float* px = x.data<float>();
  float* pdw = dw.data<float>();
  for (int64_t co = 0; co < d.Co; ++co) {
    const int64_t g = co / d.Cog;
    for (int64_t ci = 0; ci < d.Cig; ++ci)
      for (int64_t kh = 0; kh < d.kH; ++kh)
        for (int64_t kw = 0; kw < d.kW; ++kw) {
          double acc = 0;
          for (int64_t n = 0; n < d.N; ++n)
            for (int64_t oh = 0; oh < d.Ho; ++oh) {
              const int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dilation_h;
              if (ih < 0 || ih >= d.H) continue;
              for (int64_t ow = 0; ow < d.Wo; ++ow) {
                const int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dilation_w;
                if (iw < 0 || iw >= d.W) continue;
                acc += double(pdy[((n * d.Ho + oh) * d.Wo + ow) * d.Co + co]) *
                       px[((n * d.H + ih) * d.W + iw) * d.Ci + g * d.Cig + ci];
              }
            }
          pdw[((co * d.Cig + ci) * d.kH + kh) * d.kW + kw] += float(acc);
        }
  }
  if (db.defined()) {
    float* pdb = db.data<float>();
    for (int64_t co = 0; co < d.Co; ++co) {
      double acc = 0;
      for (int64_t i = 0; i < d.N * d.Ho * d.Wo; ++i) acc += pdy[i * d.Co + co];
      pdb[co] += float(acc);
    }
  }
}

}  // namespace fstm::kernels::ref
