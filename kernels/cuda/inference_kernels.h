// Internal to the CUDA inference executor (kernels/cuda/inference_cuda.cpp): the launchers of its
// own kernels (kernels/cuda/inference_kernels.cu). Every launcher takes the element type of the
// plan's activations (f32, bf16 or f16) as a DType and untyped device pointers, converts to f32
// for the arithmetic and rounds once on the store (round to nearest even). Pointers are those of
// the executor's buffers; all launches go to `stream` and are checked.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/activation.h"
#include "tensor/dtype.h"

namespace fstm::kernels::cuda::infer {

// What follows a convolution in the same pass over its output (see GraphOp::post_ops):
//   y = post_ops(y + bias)   with steps applied in order, a step either y += residual or y = act(y).
constexpr int kMaxEpilogueSteps = 4;
struct EpilogueStep {
  const void* residual = nullptr;  // non-null: add this tensor (same dtype and shape as y)
  Activation activation = Activation::Identity;
};
struct Epilogue {
  int count = 0;
  EpilogueStep steps[kMaxEpilogueSteps];
};

// y [M, C] in place: y = epilogue(y + bias[c]); bias f32 [C] or null.
void conv_epilogue(DType t, void* y, const float* bias, int64_t n, int64_t C, const Epilogue& e, cudaStream_t s);
void activation(DType t, Activation a, const void* x, void* y, int64_t n, cudaStream_t s);
// y = alpha * x + beta
void affine(DType t, const void* x, float alpha, float beta, void* y, int64_t n, cudaStream_t s);
enum class Binary { Add, Sub, Mul };
void binary(DType t, Binary op, const void* a, const void* b, void* y, int64_t n, cudaStream_t s);
// x [N, M, C] (n = N*M*C elements, MC = M*C), s f32 [N, C]: y = x * s[n, c]
void mul_channel(DType t, const void* x, const float* s, void* y, int64_t n, int64_t MC, int64_t C,
                 cudaStream_t stream);

// x [N, HW, C] -> y f32 [N, C] = mean over HW (accumulated in f32)
void global_avg_pool(DType t, const void* x, int64_t N, int64_t HW, int64_t C, float* y, cudaStream_t s);
// x [L, C] -> columns [offset, offset + C) of y [L, Cy]
void concat_part(DType t, const void* x, int64_t L, int64_t C, void* y, int64_t Cy, int64_t offset, cudaStream_t s);
// out[0] = max |a - b|, out[1] = max |b| over n elements (NaN or inf counts as +inf); out is
// device memory of two floats, overwritten. For the build-time check of fused convolutions.
void max_abs_diff(DType t, const void* a, const void* b, int64_t n, float* out, cudaStream_t s);

}  // namespace fstm::kernels::cuda::infer
