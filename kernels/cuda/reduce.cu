// Reductions shared by several ops (declared in kernels/cuda/common.h). All sums are accumulated
// in double with a fixed partition of the work, so results do not depend on timing and match the
// double-precision reference kernels closely.
#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"

namespace fstm::kernels::cuda {

namespace {

// Blocks of 32 channels x 8 rows: a warp reads 32 consecutive floats of a row (coalesced).
constexpr int kTileC = 32;
constexpr int kTileRows = 8;
constexpr int64_t kMaxChunks = 1024;

// partial1/2[chunk, c] = sums over rows [chunk * rows_per_chunk, ...) of one chunk (see channel_sums).
__global__ void channel_partials_kernel(const float* a, const float* ca, const float* b, const float* cb, int64_t M,
                                        int64_t C, int64_t rows_per_chunk, double* partial1, double* partial2) {
  const int64_t c = int64_t(blockIdx.x) * kTileC + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  const int64_t row_begin = chunk * rows_per_chunk;
  const int64_t row_end = row_begin + rows_per_chunk < M ? row_begin + rows_per_chunk : M;
  double s1 = 0.0, s2 = 0.0;
  if (c < C) {
    const double a_center = ca ? double(ca[c]) : 0.0;
    const double b_center = cb ? double(cb[c]) : 0.0;
    for (int64_t m = row_begin + threadIdx.y; m < row_end; m += kTileRows) {
      const double da = double(a[m * C + c]) - a_center;
      s1 += da;
      if (b) s2 += da * (double(b[m * C + c]) - b_center);
    }
  }
  __shared__ double t1[kTileRows][kTileC + 1];
  __shared__ double t2[kTileRows][kTileC + 1];
  t1[threadIdx.y][threadIdx.x] = s1;
  t2[threadIdx.y][threadIdx.x] = s2;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    double r1 = 0.0, r2 = 0.0;
    for (int k = 0; k < kTileRows; ++k) {
      r1 += t1[k][threadIdx.x];
      r2 += t2[k][threadIdx.x];
    }
    partial1[chunk * C + c] = r1;
    if (partial2) partial2[chunk * C + c] = r2;
  }
}

// s[c] = sum over chunks of partial[chunk, c]
__global__ void channel_combine_kernel(const double* partial1, const double* partial2, int64_t chunks, int64_t C,
                                       double* s1, double* s2) {
  FSTM_GRID_STRIDE(c, C) {
    double r1 = 0.0, r2 = 0.0;
    for (int64_t k = 0; k < chunks; ++k) {
      r1 += partial1[k * C + c];
      if (partial2) r2 += partial2[k * C + c];
    }
    s1[c] = r1;
    if (s2) s2[c] = r2;
  }
}

// out[n, c] = sum_m a[n,m,c] (* b[n,m,c]) / divisor; blocks of 32 channels x 8 rows, y over n.
__global__ void middle_sums_kernel(const float* a, const float* b, int64_t N, int64_t M, int64_t C, double divisor,
                                   float* out) {
  const int64_t c = int64_t(blockIdx.x) * kTileC + threadIdx.x;
  __shared__ double t[kTileRows][kTileC + 1];
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {  // uniform within the block
    double s = 0.0;
    if (c < C) {
      const float* an = a + n * M * C;
      const float* bn = b ? b + n * M * C : nullptr;
      for (int64_t m = threadIdx.y; m < M; m += kTileRows)
        s += bn ? double(an[m * C + c]) * double(bn[m * C + c]) : double(an[m * C + c]);
    }
    t[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
      double r = 0.0;
      for (int k = 0; k < kTileRows; ++k) r += t[k][threadIdx.x];
      out[n * C + c] = float(r / divisor);
    }
    __syncthreads();  // t is reused by the next n
  }
}

template <typename T>
__global__ void sum_partials_kernel(const T* x, int64_t n, double* partial) {
  double s = 0.0;
  FSTM_GRID_STRIDE(i, n) s += double(x[i]);
  s = block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_finish_kernel(const double* partial, int count, double divisor, float* out) {
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = float(s / divisor);
}

__global__ void accumulate_doubles_kernel(const double* src, int64_t n, float* dst) {
  FSTM_GRID_STRIDE(i, n) dst[i] += float(src[i]);
}

__global__ void broadcast_rows_kernel(const float* b, int64_t total, int64_t C, float* y, bool add) {
  FSTM_GRID_STRIDE(i, total) {
    const float v = b[i % C];
    y[i] = add ? y[i] + v : v;
  }
}

template <typename T>
void sum_to_scalar_impl(const T* x, int64_t n, double divisor, float* out, int device, cudaStream_t stream) {
  constexpr int64_t kMaxBlocks = 1024;
  const int64_t blocks = n > 0 ? (ceil_div(n, kThreads) < kMaxBlocks ? ceil_div(n, kThreads) : kMaxBlocks) : 1;
  Tensor partial = scratch_bytes(device, size_t(blocks) * sizeof(double));
  double* p = static_cast<double*>(partial.raw_data());
  sum_partials_kernel<T><<<unsigned(blocks), kThreads, 0, stream>>>(x, n, p);
  FSTM_CUDA_CHECK_LAUNCH("sum_partials_kernel");
  sum_finish_kernel<<<1, kThreads, 0, stream>>>(p, int(blocks), divisor, out);
  FSTM_CUDA_CHECK_LAUNCH("sum_finish_kernel");
}

}  // namespace

void channel_sums(const float* a, const float* ca, const float* b, const float* cb, int64_t M, int64_t C, double* s1,
                  double* s2, int device, cudaStream_t stream) {
  if (C <= 0) return;
  int64_t chunks = ceil_div(M, int64_t(kTileRows) * 32);  // about 32 rows per thread
  if (chunks < 1) chunks = 1;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  const int64_t rows_per_chunk = ceil_div(M, chunks);
  Tensor partial = scratch_bytes(device, size_t(chunks * C) * sizeof(double) * (b ? 2 : 1));
  double* p1 = static_cast<double*>(partial.raw_data());
  double* p2 = b ? p1 + chunks * C : nullptr;
  const dim3 grid(unsigned(ceil_div(C, kTileC)), unsigned(chunks));
  const dim3 block(kTileC, kTileRows);
  channel_partials_kernel<<<grid, block, 0, stream>>>(a, ca, b, cb, M, C, rows_per_chunk, p1, p2);
  FSTM_CUDA_CHECK_LAUNCH("channel_partials_kernel");
  channel_combine_kernel<<<grid_for(C), kThreads, 0, stream>>>(p1, p2, chunks, C, s1, b ? s2 : nullptr);
  FSTM_CUDA_CHECK_LAUNCH("channel_combine_kernel");
}

void middle_sums(const float* a, const float* b, int64_t N, int64_t M, int64_t C, double divisor, float* out,
                 cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  const dim3 grid(unsigned(ceil_div(C, kTileC)), unsigned(N < 65535 ? N : 65535));
  const dim3 block(kTileC, kTileRows);
  middle_sums_kernel<<<grid, block, 0, stream>>>(a, b, N, M, C, divisor, out);
  FSTM_CUDA_CHECK_LAUNCH("middle_sums_kernel");
}

void sum_to_scalar(const float* x, int64_t n, double divisor, float* out, int device, cudaStream_t stream) {
  sum_to_scalar_impl(x, n, divisor, out, device, stream);
}

void sum_to_scalar(const double* x, int64_t n, double divisor, float* out, int device, cudaStream_t stream) {
  sum_to_scalar_impl(x, n, divisor, out, device, stream);
}

void accumulate_doubles(const double* src, int64_t n, float* dst, cudaStream_t stream) {
  if (n <= 0) return;
  accumulate_doubles_kernel<<<grid_for(n), kThreads, 0, stream>>>(src, n, dst);
  FSTM_CUDA_CHECK_LAUNCH("accumulate_doubles_kernel");
}

void broadcast_rows(const float* b, int64_t M, int64_t C, float* y, bool add, cudaStream_t stream) {
  const int64_t total = M * C;
  if (total <= 0) return;
  broadcast_rows_kernel<<<grid_for(total), kThreads, 0, stream>>>(b, total, C, y, add);
  FSTM_CUDA_CHECK_LAUNCH("broadcast_rows_kernel");
}

}  // namespace fstm::kernels::cuda
