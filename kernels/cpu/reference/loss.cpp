// Reference softmax cross-entropy and row gathers.
#include <algorithm>
#include <cmath>

#include "kernels/loss.h"

namespace fstm::kernels::ref {

void softmax(const Tensor& x, Tensor& probs) {
  // x [N, K]: probs[n, k] = exp(x[n, k] - max_n) / sum_j exp(x[n, j] - max_n)
  const int64_t N = x.size(0), K = x.size(1);
  const float* px = x.data<float>();
  float* pp = probs.data<float>();
  for (int64_t n = 0; n < N; ++n) {
    const float* row = px + n * K;
    const double mx = *std::max_element(row, row + K);
    double total = 0;
    for (int64_t k = 0; k < K; ++k) total += std::exp(row[k] - mx);
    for (int64_t k = 0; k < K; ++k) pp[n * K + k] = float(std::exp(row[k] - mx) / total);
  }
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  // loss = -1/N sum_n log softmax(logits)[n, labels[n]], via log-sum-exp for stability
  const int64_t N = logits.size(0), K = logits.size(1);
  const float* px = logits.data<float>();
  const int64_t* pl = labels.data<int64_t>();
  softmax(logits, probs);
  double total = 0;
  for (int64_t n = 0; n < N; ++n) {
    const float* row = px + n * K;
    const double mx = *std::max_element(row, row + K);
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += std::exp(row[k] - mx);
    total += mx + std::log(s) - row[pl[n]];
  }
  loss.data<float>()[0] = float(total / double(N));
}

void cross_entropy_backward(const Tensor& dloss, const Tensor& probs, const Tensor& labels, Tensor& dlogits) {
  const int64_t N = probs.size(0), K = probs.size(1);
  const float scale = dloss.data<float>()[0] / float(N);
  const float* pp = probs.data<float>();
  const int64_t* pl = labels.data<int64_t>();
  float* pd = dlogits.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) pd[n * K + k] = (pp[n * K + k] - (k == pl[n] ? 1.0f : 0.0f)) * scale;
}

void gather_rows(const Tensor& x, const Tensor& index, Tensor& y) {
  const int64_t N = x.size(0), K = x.size(1);
  for (int64_t n = 0; n < N; ++n) y.data<float>()[n] = x.data<float>()[n * K + index.data<int64_t>()[n]];
}

void gather_rows_backward(const Tensor& dy, const Tensor& index, Tensor& dx) {
  const int64_t N = dx.size(0), K = dx.size(1);
  float* pdx = dx.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) pdx[n * K + k] = (k == index.data<int64_t>()[n]) ? dy.data<float>()[n] : 0.0f;
}

}  // namespace fstm::kernels::ref
