// Device-side dtype conversion for Tensor::to(DType) on CUDA tensors. Every pair goes through the
// same steps as the host conversion in tensor/tensor.cpp (load as double, store rounding to
// nearest even for bf16/f16, truncating for integers, clamping for u8), so the device and the host
// give identical bits, including NaN (quiet NaN 0x7fc0-style for bf16, 0x7e00 for f16).
#include <cuda_fp16.h>

#include "tensor/cuda/cuda_internal.h"

namespace fstm::cuda {

namespace {

__device__ uint16_t bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

__device__ uint16_t f16_bits(float f) {
  const uint16_t sign = uint16_t((__float_as_uint(f) >> 16) & 0x8000u);
  if (isnan(f)) return uint16_t(sign | 0x7e00u);  // the host's NaN
  return __half_as_ushort(__float2half_rn(f));    // IEEE round to nearest even, subnormals, overflow to inf
}

__device__ double load(const void* src, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(src)[i];
    case DType::bf16: return __uint_as_float(uint32_t(static_cast<const uint16_t*>(src)[i]) << 16);
    case DType::f16: return __half2float(__ushort_as_half(static_cast<const uint16_t*>(src)[i]));
    case DType::i64: return double(static_cast<const int64_t*>(src)[i]);
    case DType::i32: return static_cast<const int32_t*>(src)[i];
    case DType::u8: return static_cast<const uint8_t*>(src)[i];
  }
  return 0;
}

__device__ void store(void* dst, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(dst)[i] = float(v); break;
    case DType::bf16: static_cast<uint16_t*>(dst)[i] = bf16_bits(float(v)); break;
    case DType::f16: static_cast<uint16_t*>(dst)[i] = f16_bits(float(v)); break;
    case DType::i64: static_cast<int64_t*>(dst)[i] = int64_t(v); break;
    case DType::i32: static_cast<int32_t*>(dst)[i] = int32_t(v); break;
    case DType::u8: static_cast<uint8_t*>(dst)[i] = uint8_t(fmin(fmax(v, 0.0), 255.0)); break;
  }
}

// One element per thread and grid-stride; the dtype switch is uniform across the grid.
__global__ void convert_kernel(const void* src, DType from, void* dst, DType to, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    store(dst, to, i, load(src, from, i));
}

}  // namespace

bool convert_on_device(const void* src, DType from, void* dst, DType to, int64_t n, cudaStream_t stream) {
  if (n <= 0) return true;
  constexpr int kThreads = 256;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = unsigned(blocks < 65536 ? blocks : 65536);
  convert_kernel<<<grid, kThreads, 0, stream>>>(src, from, dst, to, n);
  FSTM_CUDA_CHECK_LAUNCH("convert_kernel");
  return true;
}

bool kernels_runnable(std::string* why) {
  cudaFuncAttributes attributes{};
  const cudaError_t status = cudaFuncGetAttributes(&attributes, convert_kernel);
  if (status == cudaSuccess) return true;
  if (why) *why = cudaGetErrorString(status);
  (void)cudaGetLastError();
  return false;
}

}  // namespace fstm::cuda
