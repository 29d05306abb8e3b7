// CUDA softmax, cross-entropy and row gathers (kernels/loss.h). One warp per row of [N, K]
// (K is small: 2 classes or a few hundred identities); sums in double, exp in f32.
// Labels live on the device and cannot be checked on the host without a synchronisation, so a
// label outside [0, K) gives a NaN loss (and NaN in gather_rows) instead of reading out of bounds.
#include <cmath>

#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/loss.h"

namespace fstm::kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 4;

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ double warp_all_sum(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// probs = softmax(x) per row; when labels is not null, row_loss[n] = logsumexp(x[n]) - x[n, label].
__global__ void softmax_rows_kernel(const float* x, int64_t N, int64_t K, float* probs, const int64_t* labels,
                                    double* row_loss) {
  const int lane = threadIdx.x & 31;
  const int64_t first_row = int64_t(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
  const int64_t row_step = int64_t(gridDim.x) * kWarpsPerBlock;
  for (int64_t n = first_row; n < N; n += row_step) {  // uniform within a warp
    const float* row = x + n * K;
    float mx = -INFINITY;
    for (int64_t k = lane; k < K; k += 32) mx = fmaxf(mx, row[k]);
    mx = warp_max(mx);
    double total = 0.0;
    for (int64_t k = lane; k < K; k += 32) total += double(expf(row[k] - mx));
    total = warp_all_sum(total);
    for (int64_t k = lane; k < K; k += 32) probs[n * K + k] = float(double(expf(row[k] - mx)) / total);
    if (labels && lane == 0) {
      const int64_t label = labels[n];
      row_loss[n] = (label >= 0 && label < K) ? double(mx) + log(total) - double(row[label]) : double(NAN);
    }
  }
}

// dlogits[n, k] = (probs[n, k] - (k == label[n])) * dloss / N
__global__ void cross_entropy_backward_kernel(const float* dloss, const float* probs, const int64_t* labels, int64_t N,
                                              int64_t K, float* dlogits) {
  const float scale = dloss[0] / float(N);
  FSTM_GRID_STRIDE(i, N * K) {
    const int64_t n = i / K, k = i % K;
    dlogits[i] = (probs[i] - (k == labels[n] ? 1.0f : 0.0f)) * scale;
  }
}

__global__ void gather_rows_kernel(const float* x, const int64_t* index, int64_t N, int64_t K, float* y) {
  FSTM_GRID_STRIDE(n, N) {
    const int64_t k = index[n];
    y[n] = (k >= 0 && k < K) ? x[n * K + k] : NAN;
  }
}

__global__ void gather_rows_backward_kernel(const float* dy, const int64_t* index, int64_t N, int64_t K, float* dx) {
  FSTM_GRID_STRIDE(i, N * K) {
    const int64_t n = i / K, k = i % K;
    dx[i] = k == index[n] ? dy[n] : 0.0f;
  }
}

struct Rows {
  int64_t N, K;
};

Rows rows_of(const char* op, const Tensor& x) {
  FSTM_CHECK(x.dim() == 2, op, ": expected [N, K], got ", x.describe());
  expect_f32(op, x);
  return {x.size(0), x.size(1)};
}

unsigned row_blocks(int64_t N) {
  const int64_t blocks = ceil_div(N, kWarpsPerBlock);
  return unsigned(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}

}  // namespace

void softmax(const Tensor& x, Tensor& probs) {
  OnDevice on("softmax", {&x, &probs});
  const auto [N, K] = rows_of("softmax", x);
  expect_f32("softmax", probs, N * K);
  if (N * K == 0) return;
  softmax_rows_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, on.stream>>>(x.data<float>(), N, K,
                                                                            probs.data<float>(), nullptr, nullptr);
  FSTM_CUDA_CHECK_LAUNCH("softmax_rows_kernel");
}

void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss, Tensor& probs) {
  const char* op = "cross_entropy_forward";
  OnDevice on(op, {&logits, &labels, &loss, &probs});
  const auto [N, K] = rows_of(op, logits);
  FSTM_CHECK(N > 0 && K > 0, op, ": empty logits ", logits.describe());
  expect_i64(op, labels, N);
  expect_f32(op, loss, 1);
  expect_f32(op, probs, N * K);
  Tensor row_loss = scratch_bytes(on.index, size_t(N) * sizeof(double));
  double* rows = static_cast<double*>(row_loss.raw_data());
  softmax_rows_kernel<<<row_blocks(N), 32 * kWarpsPerBlock, 0, on.stream>>>(
      logits.data<float>(), N, K, probs.data<float>(), labels.data<int64_t>(), rows);
  FSTM_CUDA_CHECK_LAUNCH("softmax_rows_kernel");
  sum_to_scalar(rows, N, double(N), loss.data<float>(), on.index, on.stream);
}

void cross_entropy_backward(const Tensor& dloss, const Tensor& probs, const Tensor& labels, Tensor& dlogits) {
  const char* op = "cross_entropy_backward";
  OnDevice on(op, {&dloss, &probs, &labels, &dlogits});
  const auto [N, K] = rows_of(op, probs);
  expect_f32(op, dloss, 1);
  expect_i64(op, labels, N);
  expect_f32(op, dlogits, N * K);
  if (N * K == 0) return;
  cross_entropy_backward_kernel<<<grid_for(N * K), kThreads, 0, on.stream>>>(
      dloss.data<float>(), probs.data<float>(), labels.data<int64_t>(), N, K, dlogits.data<float>());
  FSTM_CUDA_CHECK_LAUNCH("cross_entropy_backward_kernel");
}

void gather_rows(const Tensor& x, const Tensor& index, Tensor& y) {
  OnDevice on("gather_rows", {&x, &index, &y});
  const auto [N, K] = rows_of("gather_rows", x);
  expect_i64("gather_rows", index, N);
  expect_f32("gather_rows", y, N);
  if (N == 0) return;
  gather_rows_kernel<<<grid_for(N), kThreads, 0, on.stream>>>(x.data<float>(), index.data<int64_t>(), N, K,
                                                              y.data<float>());
  FSTM_CUDA_CHECK_LAUNCH("gather_rows_kernel");
}

void gather_rows_backward(const Tensor& dy, const Tensor& index, Tensor& dx) {
  OnDevice on("gather_rows_backward", {&dy, &index, &dx});
  const auto [N, K] = rows_of("gather_rows_backward", dx);
  expect_i64("gather_rows_backward", index, N);
  expect_f32("gather_rows_backward", dy, N);
  if (N * K == 0) return;
  gather_rows_backward_kernel<<<grid_for(N * K), kThreads, 0, on.stream>>>(dy.data<float>(), index.data<int64_t>(), N,
                                                                           K, dx.data<float>());
  FSTM_CUDA_CHECK_LAUNCH("gather_rows_backward_kernel");
}

}  // namespace fstm::kernels::cuda
