// Fast softmax cross-entropy and row gathers: rows in parallel, log-sum-exp per row.
//   logits [N, K] f32, labels/index [N] i64
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/loss.h"

namespace fstm::kernels::cpu {

namespace {

constexpr int64_t kParallelGrain = 1 << 14;

// probs[k] = exp(row[k] - max) / sum; returns log(sum exp(row)) for the loss.
double softmax_row(const float* row, int64_t K, float* probs) {
  const float mx = *std::max_element(row, row + K);
  double total = 0;
  for (int64_t k = 0; k < K; ++k) {
    const float e = std::exp(row[k] - mx);
    probs[k] = e;
    total += e;
  }
  const float inv = float(1.0 / total);
  for (int64_t k = 0; k < K; ++k) probs[k] *= inv;
  return double(mx) + std::log(total);
}

}  // namespace

void softmax(const Tensor& x, Tensor& probs) {
  const int64_t N = x.size(0), K = x.size(1);
  const float* px = x.data<float>();
  float* pp = probs.data<float>();
#pragma omp parallel for if (N * K > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) softmax_row(px + n * K, K, pp + n * K);
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  // loss = mean_n (logsumexp(logits[n]) - logits[n, label[n]])
  const int64_t N = logits.size(0), K = logits.size(1);
  const float* px = logits.data<float>();
  const int64_t* pl = labels.data<int64_t>();
  float* pp = probs.data<float>();
  double total = 0;
#pragma omp parallel for reduction(+ : total) if (N * K > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) total += softmax_row(px + n * K, K, pp + n * K) - px[n * K + pl[n]];
  loss.data<float>()[0] = float(total / double(N));
}

void cross_entropy_backward(const Tensor& dloss, const Tensor& probs, const Tensor& labels, Tensor& dlogits) {
  // dlogits = (probs - onehot(labels)) * dloss / N
  const int64_t N = probs.size(0), K = probs.size(1);
  const float scale = dloss.data<float>()[0] / float(N);
  const float* pp = probs.data<float>();
  const int64_t* pl = labels.data<int64_t>();
  float* pd = dlogits.data<float>();
#pragma omp parallel for if (N * K > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
#pragma omp simd
    for (int64_t k = 0; k < K; ++k) pd[n * K + k] = pp[n * K + k] * scale;
    pd[n * K + pl[n]] = (pp[n * K + pl[n]] - 1.0f) * scale;
  }
}

void gather_rows(const Tensor& x, const Tensor& index, Tensor& y) {
  const int64_t N = x.size(0), K = x.size(1);
  const float* px = x.data<float>();
  const int64_t* pi = index.data<int64_t>();
  float* py = y.data<float>();
  for (int64_t n = 0; n < N; ++n) py[n] = px[n * K + pi[n]];
}

void gather_rows_backward(const Tensor& dy, const Tensor& index, Tensor& dx) {
  // dx[n, k] = (k == index[n]) ? dy[n] : 0
  const int64_t N = dx.size(0), K = dx.size(1);
  const float* pdy = dy.data<float>();
  const int64_t* pi = index.data<int64_t>();
  float* pdx = dx.data<float>();
#pragma omp parallel for if (N * K > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    std::memset(pdx + n * K, 0, sizeof(float) * size_t(K));
    pdx[n * K + pi[n]] = pdy[n];
  }
}

}  // namespace fstm::kernels::cpu
