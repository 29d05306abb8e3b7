// Reference elementwise kernels: plain loops, the oracle for the fast paths.
#include "kernels/elementwise.h"

namespace fstm::kernels::ref {

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i) py[i] = pa[i] + pb[i];
}

void add_inplace(Tensor& y, const Tensor& x) {
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i) py[i] += px[i];
}

void mul(const Tensor& a, const Tensor& b, Tensor& y) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i) py[i] = pa[i] * pb[i];
}

void affine(const Tensor& x, float alpha, float beta, Tensor& y) {
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i) py[i] = alpha * px[i] + beta;
}

void mul_channel(const Tensor& x, const Tensor& s, Tensor& y) {
  // x [N, M, C] (M = product of the middle axes), s [N, C]
  const int64_t N = x.size(0), C = x.size(-1), M = x.numel() / (N * C);
  const float* px = x.data<float>();
  const float* ps = s.data<float>();
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t i = (n * M + m) * C + c;
        py[i] = px[i] * ps[n * C + c];
      }
}

void mul_channel_backward_scale(const Tensor& dy, const Tensor& x, Tensor& ds) {
  // ds[n, c] = sum_m dy[n, m, c] * x[n, m, c]
  const int64_t N = x.size(0), C = x.size(-1), M = x.numel() / (N * C);
  const float* pdy = dy.data<float>();
  const float* px = x.data<float>();
  float* pds = ds.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      double acc = 0;
      for (int64_t m = 0; m < M; ++m) {
        const int64_t i = (n * M + m) * C + c;
        acc += double(pdy[i]) * px[i];
      }
      pds[n * C + c] = float(acc);
    }
}

void mul_sample(const Tensor& x, const Tensor& s, Tensor& y) {
  // x [N, R] (R = everything after the batch axis), s [N]
  const int64_t N = x.size(0), R = N ? x.numel() / N : 0;
  const float* px = x.data<float>();
  const float* ps = s.data<float>();
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t r = 0; r < R; ++r) py[n * R + r] = px[n * R + r] * ps[n];
}

void concat_last(const std::vector<Tensor>& inputs, Tensor& y) {
  // inputs [L, C_i] (L = product of the leading axes) -> y [L, sum C_i]
  const int64_t Cy = y.size(-1), L = y.numel() / Cy;
  float* py = y.data<float>();
  int64_t offset = 0;
  for (const Tensor& in : inputs) {
    const int64_t C = in.size(-1);
    const float* pin = in.data<float>();
    for (int64_t l = 0; l < L; ++l)
      for (int64_t c = 0; c < C; ++c) py[l * Cy + offset + c] = pin[l * C + c];
    offset += C;
  }
}

void split_last(const Tensor& y, std::vector<Tensor>& outputs) {
  const int64_t Cy = y.size(-1), L = y.numel() / Cy;
  const float* py = y.data<float>();
  int64_t offset = 0;
  for (Tensor& out : outputs) {
    const int64_t C = out.size(-1);
    float* pout = out.data<float>();
    for (int64_t l = 0; l < L; ++l)
      for (int64_t c = 0; c < C; ++c) pout[l * C + c] = py[l * Cy + offset + c];
    offset += C;
  }
}

void sum_all(const Tensor& x, Tensor& y) {
  const float* px = x.data<float>();
  double acc = 0;
  for (int64_t i = 0; i < x.numel(); ++i) acc += px[i];
  y.data<float>()[0] = float(acc);
}

}  // namespace fstm::kernels::ref
