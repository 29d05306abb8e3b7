// Device-side helpers shared by the .cu files of kernels/cuda.
#pragma once
#include <cstdint>

// for (int64_t i = first; i < n; i += all threads)
#define FSTM_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

namespace fstm::kernels::cuda {

__device__ __forceinline__ double warp_sum(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over a 1-D block whose size is a multiple of 32 (at most 1024); every thread must call it,
// at most once per kernel. The result is valid in thread 0.
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_totals[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_sum(v);
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  v = threadIdx.x < warps ? warp_totals[threadIdx.x] : 0.0;
  if (warp == 0) v = warp_sum(v);
  return v;
}

}  // namespace fstm::kernels::cuda
