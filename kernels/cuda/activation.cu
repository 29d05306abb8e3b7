// CUDA activations (kernels/activation.h), one kernel per direction with the activation as a
// uniform switch. Computed in f32 with expf (IEEE-accurate to a few ulp); the reference uses double.
#include "kernels/activation.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"

namespace fstm::kernels::cuda {

namespace {

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

__global__ void activation_forward_kernel(Activation a, const float* x, float* y, int64_t n) {
  FSTM_GRID_STRIDE(i, n) {
    const float v = x[i];
    switch (a) {
      case Activation::Identity: y[i] = v; break;
      case Activation::Relu: y[i] = v > 0.0f ? v : 0.0f; break;
      case Activation::Sigmoid: y[i] = sigmoid(v); break;
      case Activation::Silu: y[i] = v * sigmoid(v); break;
    }
  }
}

// x is read only for silu, y only for relu and sigmoid (the other may be null).
__global__ void activation_backward_kernel(Activation a, const float* dy, const float* x, const float* y, float* dx,
                                           int64_t n) {
  FSTM_GRID_STRIDE(i, n) {
    const float g = dy[i];
    switch (a) {
      case Activation::Identity: dx[i] = g; break;
      case Activation::Relu: dx[i] = y[i] > 0.0f ? g : 0.0f; break;
      case Activation::Sigmoid: {
        const float s = y[i];
        dx[i] = g * s * (1.0f - s);
        break;
      }
      case Activation::Silu: {
        const float v = x[i], s = sigmoid(v);
        dx[i] = g * s * (1.0f + v * (1.0f - s));
        break;
      }
    }
  }
}

}  // namespace

void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  OnDevice on("activation_forward", {&x, &y});
  const int64_t n = x.numel();
  expect_f32(activation_name(a), x);
  expect_f32(activation_name(a), y, n);
  if (n == 0) return;
  activation_forward_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(a, x.data<float>(), y.data<float>(), n);
  FSTM_CUDA_CHECK_LAUNCH("activation_forward_kernel");
}

void activation_backward(Activation a, const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx) {
  OnDevice on("activation_backward", {&dy, &x, &y, &dx});
  const int64_t n = dy.numel();
  const char* op = activation_name(a);
  expect_f32(op, dy);
  expect_f32(op, dx, n);
  const bool needs_x = a == Activation::Silu;
  const bool needs_y = a == Activation::Relu || a == Activation::Sigmoid;
  FSTM_CHECK(!needs_x || x.defined(), op, " backward needs the input x");
  FSTM_CHECK(!needs_y || y.defined(), op, " backward needs the output y");
  if (needs_x) expect_f32(op, x, n);
  if (needs_y) expect_f32(op, y, n);
  if (n == 0) return;
  activation_backward_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(
      a, dy.data<float>(), needs_x ? x.data<float>() : nullptr, needs_y ? y.data<float>() : nullptr, dx.data<float>(),
      n);
  FSTM_CUDA_CHECK_LAUNCH("activation_backward_kernel");
}

}  // namespace fstm::kernels::cuda
