// Convolution weights between torchvision's OIHW and the OHWI layout cuDNN wants for NHWC tensors.
// K = kH * kW taps; one thread per element of the destination (coalesced writes).
#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"

namespace fstm::kernels::cuda {

namespace {

// dst[o, k, i] = src[o, i, k]
__global__ void oihw_to_ohwi_kernel(const float* src, int64_t O, int64_t I, int64_t K, float* dst) {
  const int64_t total = O * I * K;
  FSTM_GRID_STRIDE(idx, total) {
    const int64_t i = idx % I;
    const int64_t t = idx / I;
    const int64_t k = t % K;
    const int64_t o = t / K;
    dst[idx] = src[(o * I + i) * K + k];
  }
}

// dst[o, i, k] += src[o, k, i]
__global__ void add_ohwi_to_oihw_kernel(const float* src, int64_t O, int64_t I, int64_t K, float* dst) {
  const int64_t total = O * I * K;
  FSTM_GRID_STRIDE(idx, total) {
    const int64_t k = idx % K;
    const int64_t t = idx / K;
    const int64_t i = t % I;
    const int64_t o = t / I;
    dst[idx] += src[(o * K + k) * I + i];
  }
}

}  // namespace

void oihw_to_ohwi(const float* src, int64_t O, int64_t I, int64_t K, float* dst, cudaStream_t stream) {
  const int64_t total = O * I * K;
  if (total <= 0) return;
  oihw_to_ohwi_kernel<<<grid_for(total), kThreads, 0, stream>>>(src, O, I, K, dst);
  FSTM_CUDA_CHECK_LAUNCH("oihw_to_ohwi_kernel");
}

void add_ohwi_to_oihw(const float* src, int64_t O, int64_t I, int64_t K, float* dst, cudaStream_t stream) {
  const int64_t total = O * I * K;
  if (total <= 0) return;
  add_ohwi_to_oihw_kernel<<<grid_for(total), kThreads, 0, stream>>>(src, O, I, K, dst);
  FSTM_CUDA_CHECK_LAUNCH("add_ohwi_to_oihw_kernel");
}

}  // namespace fstm::kernels::cuda
