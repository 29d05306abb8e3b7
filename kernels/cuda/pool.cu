// CUDA pooling (kernels/pool.h).
//
// Max pooling picks the first maximum in window order, like the reference and PyTorch. Its
// backward is a gather: each input element sums dy over the windows whose recomputed argmax it is,
// in the same (oh, ow) order as the reference, so no atomics, deterministic, and equal to the CPU.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/pool.h"

namespace fstm::kernels::cuda {

namespace {

// Index ih * W + iw of the first maximum of window (oh, ow) for channel c of image n (x points at
// image n); -1 when the window holds only padding. Same comparison as the reference, in f32 for
// every element type T (float, __nv_bfloat16, __half).
template <typename T>
__device__ int64_t window_argmax(const T* x, const PoolGeometry& g, int64_t oh, int64_t ow, int64_t c) {
  float best = -INFINITY;
  int64_t best_index = -1;
  for (int i = 0; i < g.kh; ++i) {
    const int64_t ih = oh * g.sh - g.ph + i;
    if (ih < 0 || ih >= g.H) continue;
    for (int j = 0; j < g.kw; ++j) {
      const int64_t iw = ow * g.sw - g.pw + j;
      if (iw < 0 || iw >= g.W) continue;
      const float v = static_cast<float>(x[(ih * g.W + iw) * g.C + c]);
      if (v > best || best_index < 0) {
        best = v;
        best_index = ih * g.W + iw;
      }
    }
  }
  return best_index;
}

// One thread per output element (n, oh, ow, c), c fastest.
template <typename T>
__global__ void max_pool_forward_kernel(const T* x, PoolGeometry g, T* y) {
  const int64_t total = g.N * g.Ho * g.Wo * g.C;
  FSTM_GRID_STRIDE(i, total) {
    const int64_t c = i % g.C;
    int64_t t = i / g.C;
    const int64_t ow = t % g.Wo;
    t /= g.Wo;
    const int64_t oh = t % g.Ho;
    const int64_t n = t / g.Ho;
    const T* xn = x + n * g.H * g.W * g.C;
    const int64_t best = window_argmax(xn, g, oh, ow, c);
    y[i] = best >= 0 ? xn[best * g.C + c] : T(-INFINITY);
  }
}

// One thread per input element (n, ih, iw, c): the windows that contain it are
// oh in [ceil((ih + ph - kh + 1) / sh), floor((ih + ph) / sh)] clipped to [0, Ho), same for ow.
__global__ void max_pool_backward_kernel(const float* dy, const float* x, PoolGeometry g, float* dx) {
  const int64_t total = g.N * g.H * g.W * g.C;
  FSTM_GRID_STRIDE(i, total) {
    const int64_t c = i % g.C;
    int64_t t = i / g.C;
    const int64_t iw = t % g.W;
    t /= g.W;
    const int64_t ih = t % g.H;
    const int64_t n = t / g.H;
    const int64_t oh_begin = ih + g.ph < g.kh ? 0 : (ih + g.ph - g.kh) / g.sh + 1;
    const int64_t oh_last = (ih + g.ph) / g.sh < g.Ho - 1 ? (ih + g.ph) / g.sh : g.Ho - 1;
    const int64_t ow_begin = iw + g.pw < g.kw ? 0 : (iw + g.pw - g.kw) / g.sw + 1;
    const int64_t ow_last = (iw + g.pw) / g.sw < g.Wo - 1 ? (iw + g.pw) / g.sw : g.Wo - 1;
    const float* xn = x + n * g.H * g.W * g.C;
    const int64_t self = ih * g.W + iw;
    float acc = 0.0f;
    for (int64_t oh = oh_begin; oh <= oh_last; ++oh)
      for (int64_t ow = ow_begin; ow <= ow_last; ++ow)
        if (window_argmax(xn, g, oh, ow, c) == self) acc += dy[((n * g.Ho + oh) * g.Wo + ow) * g.C + c];
    dx[i] = acc;
  }
}

// dx[n, h, w, c] = dy[n, c] / HW
__global__ void global_avg_pool_backward_kernel(const float* dy, float* dx, int64_t total, int64_t HWC, int64_t C,
                                                float hw) {
  FSTM_GRID_STRIDE(i, total) dx[i] = dy[(i / HWC) * C + i % C] / hw;
}

PoolGeometry geometry(const char* op, const Tensor& x, const Shape& y, const Pool2dParams& p) {
  FSTM_CHECK(x.dim() == 4, op, ": expected x [N, H, W, C], got ", x.describe());
  expect_f32(op, x);
  const Shape expected = max_pool2d_output_shape(x.shape(), p);
  FSTM_CHECK(y == expected, op, ": output shape ", y.str(), " should be ", expected.str(), " for ", x.describe());
  return {x.size(0), x.size(1), x.size(2), x.size(3), y[1], y[2],
          p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w};
}

}  // namespace

void max_pool_forward(DType t, const void* x, const PoolGeometry& g, void* y, cudaStream_t stream) {
  const int64_t total = g.N * g.Ho * g.Wo * g.C;
  if (total == 0) return;
  switch (t) {
    case DType::f32:
      max_pool_forward_kernel<<<grid_for(total), kThreads, 0, stream>>>(static_cast<const float*>(x), g,
                                                                          static_cast<float*>(y));
      break;
    case DType::bf16:
      max_pool_forward_kernel<<<grid_for(total), kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(x), g,
                                                                          static_cast<__nv_bfloat16*>(y));
      break;
    case DType::f16:
      max_pool_forward_kernel<<<grid_for(total), kThreads, 0, stream>>>(static_cast<const __half*>(x), g,
                                                                          static_cast<__half*>(y));
      break;
    default: throw Error(detail::concat("max_pool2d on CUDA: ", dtype_name(t), " is not f32, bf16 or f16"));
  }
  FSTM_CUDA_CHECK_LAUNCH("max_pool_forward_kernel");
}

void max_pool2d_forward(const Tensor& x, const Pool2dParams& p, Tensor& y) {
  OnDevice on("max_pool2d_forward", {&x, &y});
  const PoolGeometry g = geometry("max_pool2d_forward", x, y.shape(), p);
  expect_f32("max_pool2d_forward", y);
  max_pool_forward(DType::f32, x.data<float>(), g, y.data<float>(), on.stream);
}

void max_pool2d_backward(const Tensor& dy, const Tensor& x, const Pool2dParams& p, Tensor& dx) {
  OnDevice on("max_pool2d_backward", {&dy, &x, &dx});
  const PoolGeometry g = geometry("max_pool2d_backward", x, dy.shape(), p);
  expect_f32("max_pool2d_backward", dy);
  expect_f32("max_pool2d_backward", dx, x.numel());
  const int64_t total = x.numel();
  if (total == 0) return;
  max_pool_backward_kernel<<<grid_for(total), kThreads, 0, on.stream>>>(dy.data<float>(), x.data<float>(), g,
                                                                        dx.data<float>());
  FSTM_CUDA_CHECK_LAUNCH("max_pool_backward_kernel");
}

void global_avg_pool_forward(const Tensor& x, Tensor& y) {
  OnDevice on("global_avg_pool_forward", {&x, &y});
  FSTM_CHECK(x.dim() == 4, "global_avg_pool_forward: expected x [N, H, W, C], got ", x.describe());
  const int64_t N = x.size(0), HW = x.size(1) * x.size(2), C = x.size(3);
  expect_f32("global_avg_pool_forward", x);
  expect_f32("global_avg_pool_forward", y, N * C);
  middle_sums(x.data<float>(), nullptr, N, HW, C, double(HW), y.data<float>(), on.stream);
}

void global_avg_pool_backward(const Tensor& dy, Tensor& dx) {
  OnDevice on("global_avg_pool_backward", {&dy, &dx});
  FSTM_CHECK(dx.dim() == 4, "global_avg_pool_backward: expected dx [N, H, W, C], got ", dx.describe());
  const int64_t N = dx.size(0), HW = dx.size(1) * dx.size(2), C = dx.size(3);
  expect_f32("global_avg_pool_backward", dy, N * C);
  expect_f32("global_avg_pool_backward", dx);
  const int64_t total = dx.numel();
  if (total == 0) return;
  global_avg_pool_backward_kernel<<<grid_for(total), kThreads, 0, on.stream>>>(dy.data<float>(), dx.data<float>(),
                                                                               total, HW * C, C, float(HW));
  FSTM_CUDA_CHECK_LAUNCH("global_avg_pool_backward_kernel");
}

}  // namespace fstm::kernels::cuda
