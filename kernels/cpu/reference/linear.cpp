// Reference linear layer: y = x W^T + b.
#include "kernels/linear.h"

namespace fstm::kernels::ref {

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  // x [N, I], w [O, I], y [N, O]
  const int64_t N = x.size(0), I = x.size(1), O = w.size(0);
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double acc = b.defined() ? b.data<float>()[o] : 0.0;
      for (int64_t i = 0; i < I; ++i) acc += double(px[n * I + i]) * pw[o * I + i];
      py[n * O + o] = float(acc);
    }
}

void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) {
  // dx [N, I] = dy [N, O] * w [O, I]
  const int64_t N = dy.size(0), O = w.size(0), I = w.size(1);
  const float* pdy = dy.data<float>();
  const float* pw = w.data<float>();
  float* pdx = dx.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < I; ++i) {
      double acc = 0;
      for (int64_t o = 0; o < O; ++o) acc += double(pdy[n * O + o]) * pw[o * I + i];
      pdx[n * I + i] = float(acc);
    }
}

void linear_backward_weights(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db) {
  // dw [O, I] += dy^T [O, N] * x [N, I];  db [O] += sum_n dy
  const int64_t N = x.size(0), I = x.size(1), O = dw.size(0);
  const float* pdy = dy.data<float>();
  const float* px = x.data<float>();
  float* pdw = dw.data<float>();
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t i = 0; i < I; ++i) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) acc += double(pdy[n * O + o]) * px[n * I + i];
      pdw[o * I + i] += float(acc);
    }
    if (db.defined()) {
      double acc = 0;
      for (int64_t n = 0; n < N; ++n) acc += pdy[n * O + o];
      db.data<float>()[o] += float(acc);
    }
  }
}

}  // namespace fstm::kernels::ref
