// Kernels of the CUDA inference executor (declared in kernels/cuda/inference_kernels.h), templated
// on the activation type T = float, __nv_bfloat16 or __half. Arithmetic is in f32; a bf16/f16
// result is rounded once when stored. The conv epilogue, which touches every convolution output,
// moves 16 bytes per load and store when the channel count allows; the others are simple
// grid-stride loops (they are rare in the networks fstm runs, or tiny).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/cuda/inference_kernels.h"

namespace fstm::kernels::cuda::infer {

namespace {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
  return __float2half_rn(v);
}

// Same formulas as kernels/cuda/activation.cu, so an f32 plan equals the eager CUDA path.
__device__ __forceinline__ float activate(Activation a, float v) {
  switch (a) {
    case Activation::Identity:
      return v;
    case Activation::Relu:
      return v > 0.0f ? v : 0.0f;
    case Activation::Sigmoid:
      return 1.0f / (1.0f + expf(-v));
    case Activation::Silu:
      return v * (1.0f / (1.0f + expf(-v)));
  }
  return v;
}

// V consecutive elements moved as one aligned load/store.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// One thread per pack of V elements; C % V == 0, so a pack never straddles two rows and its
// channels are c0 .. c0 + V - 1.
template <typename T, int V>
__global__ void conv_epilogue_kernel(T* y, const float* bias, int64_t packs, int64_t C, Epilogue e) {
  FSTM_GRID_STRIDE(p, packs) {
    Pack<T, V> out = reinterpret_cast<const Pack<T, V>*>(y)[p];
    const int64_t c0 = (p * V) % C;
    float v[V];
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = to_f32(out.v[j]) + (bias ? bias[c0 + j] : 0.0f);
    for (int k = 0; k < e.count; ++k) {
      if (e.steps[k].residual) {
        const Pack<T, V> r = reinterpret_cast<const Pack<T, V>*>(e.steps[k].residual)[p];
#pragma unroll
        for (int j = 0; j < V; ++j) v[j] += to_f32(r.v[j]);
      } else {
        const Activation a = e.steps[k].activation;
#pragma unroll
        for (int j = 0; j < V; ++j) v[j] = activate(a, v[j]);
      }
    }
#pragma unroll
    for (int j = 0; j < V; ++j) out.v[j] = from_f32<T>(v[j]);
    reinterpret_cast<Pack<T, V>*>(y)[p] = out;
  }
}

template <typename T>
__global__ void activation_kernel(Activation a, const T* x, T* y, int64_t n) {
  FSTM_GRID_STRIDE(i, n) y[i] = from_f32<T>(activate(a, to_f32(x[i])));
}

// Rounds the product and the sum separately, like kernels/cuda/elementwise.cu.
template <typename T>
__global__ void affine_kernel(const T* x, float alpha, float beta, T* y, int64_t n) {
  FSTM_GRID_STRIDE(i, n) y[i] = from_f32<T>(__fadd_rn(__fmul_rn(alpha, to_f32(x[i])), beta));
}

template <typename T>
__global__ void binary_kernel(Binary op, const T* a, const T* b, T* y, int64_t n) {
  FSTM_GRID_STRIDE(i, n) {
    const float u = to_f32(a[i]), w = to_f32(b[i]);
    y[i] = from_f32<T>(op == Binary::Add ? u + w : (op == Binary::Sub ? u - w : u * w));
  }
}

template <typename T>
__global__ void mul_channel_kernel(const T* x, const float* s, T* y, int64_t n, int64_t MC, int64_t C) {
  FSTM_GRID_STRIDE(i, n) y[i] = from_f32<T>(to_f32(x[i]) * s[(i / MC) * C + i % C]);
}

// One thread per (n, c); neighbouring threads read neighbouring channels (coalesced).
template <typename T>
__global__ void global_avg_pool_kernel(const T* x, int64_t N, int64_t HW, int64_t C, float* y) {
  FSTM_GRID_STRIDE(i, N * C) {
    const int64_t n = i / C, c = i % C;
    const T* xn = x + n * HW * C + c;
    float s = 0.0f;
    for (int64_t m = 0; m < HW; ++m) s += to_f32(xn[m * C]);
    y[i] = s / float(HW);
  }
}

template <typename T>
__global__ void concat_part_kernel(const T* x, int64_t L, int64_t C, T* y, int64_t Cy, int64_t offset) {
  FSTM_GRID_STRIDE(i, L * C) y[(i / C) * Cy + offset + i % C] = x[i];
}

// Non-negative floats order like their bit patterns as unsigned integers, so atomicMax on the
// bits is a float maximum. NaN and inf become +inf.
__device__ __forceinline__ unsigned abs_bits(float v) {
  const float a = fabsf(v);
  return isfinite(a) ? __float_as_uint(a) : 0x7f800000u;
}

__device__ __forceinline__ unsigned warp_max(unsigned v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = max(v, __shfl_down_sync(0xffffffffu, v, offset));
  return v;
}

// out (as unsigned bits) must be zeroed before; blockDim.x is a multiple of 32.
template <typename T>
__global__ void max_abs_diff_kernel(const T* a, const T* b, int64_t n, unsigned* out) {
  unsigned diff = 0, scale = 0;
  FSTM_GRID_STRIDE(i, n) {
    const float u = to_f32(a[i]), w = to_f32(b[i]);
    diff = max(diff, abs_bits(u - w));
    scale = max(scale, abs_bits(w));
  }
  diff = warp_max(diff);
  scale = warp_max(scale);
  if ((threadIdx.x & 31) == 0) {
    atomicMax(out, diff);
    atomicMax(out + 1, scale);
  }
}

template <typename T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) with the element type of dtype t.
template <typename F>
void with_type(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32:
      f(Tag<float>{});
      return;
    case DType::bf16:
      f(Tag<__nv_bfloat16>{});
      return;
    case DType::f16:
      f(Tag<__half>{});
      return;
    default:
      break;
  }
  throw Error(detail::concat("inference plan on CUDA: ", op, " does not support ", dtype_name(t)));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void conv_epilogue(DType t, void* y, const float* bias, int64_t n, int64_t C, const Epilogue& e, cudaStream_t s) {
  if (n == 0) return;
  FSTM_CHECK(e.count >= 0 && e.count <= kMaxEpilogueSteps, "conv epilogue: ", e.count, " steps");
  with_type(t, "conv epilogue", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = 16 / int(sizeof(T));  // 4 floats or 8 halves: 16 bytes
    bool vector = C % V == 0 && aligned16(y);
    for (int k = 0; k < e.count; ++k) vector = vector && (!e.steps[k].residual || aligned16(e.steps[k].residual));
    if (vector) {
      conv_epilogue_kernel<T, V><<<grid_for(n / V), kThreads, 0, s>>>(static_cast<T*>(y), bias, n / V, C, e);
    } else {
      conv_epilogue_kernel<T, 1><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(y), bias, n, C, e);
    }
    FSTM_CUDA_CHECK_LAUNCH("conv_epilogue_kernel");
  });
}

void activation(DType t, Activation a, const void* x, void* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  with_type(t, "activation", [&](auto tag) {
    using T = typename decltype(tag)::type;
    activation_kernel<T><<<grid_for(n), kThreads, 0, s>>>(a, static_cast<const T*>(x), static_cast<T*>(y), n);
    FSTM_CUDA_CHECK_LAUNCH("activation_kernel");
  });
}

void affine(DType t, const void* x, float alpha, float beta, void* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  with_type(t, "affine", [&](auto tag) {
    using T = typename decltype(tag)::type;
    affine_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<const T*>(x), alpha, beta, static_cast<T*>(y), n);
    FSTM_CUDA_CHECK_LAUNCH("affine_kernel");
  });
}

void binary(DType t, Binary op, const void* a, const void* b, void* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  with_type(t, "add/sub/mul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    binary_kernel<T><<<grid_for(n), kThreads, 0, s>>>(op, static_cast<const T*>(a), static_cast<const T*>(b),
                                                      static_cast<T*>(y), n);
    FSTM_CUDA_CHECK_LAUNCH("binary_kernel");
  });
}

void mul_channel(DType t, const void* x, const float* sc, void* y, int64_t n, int64_t MC, int64_t C, cudaStream_t s) {
  if (n == 0) return;
  with_type(t, "mul_channel", [&](auto tag) {
    using T = typename decltype(tag)::type;
    mul_channel_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<const T*>(x), sc, static_cast<T*>(y), n, MC, C);
    FSTM_CUDA_CHECK_LAUNCH("mul_channel_kernel");
  });
}

void global_avg_pool(DType t, const void* x, int64_t N, int64_t HW, int64_t C, float* y, cudaStream_t s) {
  if (N * C == 0) return;
  with_type(t, "global_avg_pool", [&](auto tag) {
    using T = typename decltype(tag)::type;
    global_avg_pool_kernel<T><<<grid_for(N * C), kThreads, 0, s>>>(static_cast<const T*>(x), N, HW, C, y);
    FSTM_CUDA_CHECK_LAUNCH("global_avg_pool_kernel");
  });
}

void concat_part(DType t, const void* x, int64_t L, int64_t C, void* y, int64_t Cy, int64_t offset, cudaStream_t s) {
  if (L * C == 0) return;
  with_type(t, "concat", [&](auto tag) {
    using T = typename decltype(tag)::type;
    concat_part_kernel<T>
        <<<grid_for(L * C), kThreads, 0, s>>>(static_cast<const T*>(x), L, C, static_cast<T*>(y), Cy, offset);
    FSTM_CUDA_CHECK_LAUNCH("concat_part_kernel");
  });
}

void max_abs_diff(DType t, const void* a, const void* b, int64_t n, float* out, cudaStream_t s) {
  FSTM_CUDA_CHECK(cudaMemsetAsync(out, 0, 2 * sizeof(float), s));
  if (n == 0) return;
  with_type(t, "max_abs_diff", [&](auto tag) {
    using T = typename decltype(tag)::type;
    max_abs_diff_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<const T*>(a), static_cast<const T*>(b), n,
                                                            reinterpret_cast<unsigned*>(out));
    FSTM_CUDA_CHECK_LAUNCH("max_abs_diff_kernel");
  });
}

}  // namespace fstm::kernels::cuda::infer
