// CUDA elementwise and shape ops (kernels/elementwise.h). Memory-bound one-pass kernels with
// grid-stride loops. Sums, products and copies equal the CPU bit for bit; affine rounds the
// product and the sum separately (__fmul_rn/__fadd_rn), as the reference does when the host
// compiler does not fuse them.
#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"
#include "kernels/elementwise.h"

namespace fstm::kernels::cuda {

namespace {

__global__ void add_kernel(const float* a, const float* b, float* y, int64_t n) {
  FSTM_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

__global__ void add_inplace_kernel(float* y, const float* x, int64_t n) {
  FSTM_GRID_STRIDE(i, n) y[i] += x[i];
}

__global__ void mul_kernel(const float* a, const float* b, float* y, int64_t n) {
  FSTM_GRID_STRIDE(i, n) y[i] = a[i] * b[i];
}

__global__ void affine_kernel(const float* x, float alpha, float beta, float* y, int64_t n) {
  FSTM_GRID_STRIDE(i, n) y[i] = __fadd_rn(__fmul_rn(alpha, x[i]), beta);
}

// x [N, M, C], s [N, C]: y = x * s[n, c]
__global__ void mul_channel_kernel(const float* x, const float* s, float* y, int64_t n, int64_t MC, int64_t C) {
  FSTM_GRID_STRIDE(i, n) {
    const int64_t batch = i / MC;
    const int64_t c = i % C;
    y[i] = x[i] * s[batch * C + c];
  }
}

// x [N, R], s [N]: y = x * s[n]
__global__ void mul_sample_kernel(const float* x, const float* s, float* y, int64_t n, int64_t R) {
  FSTM_GRID_STRIDE(i, n) y[i] = x[i] * s[i / R];
}

}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  OnDevice on("add", {&y, &a, &b});
  const int64_t n = y.numel();
  expect_f32("add", a, n);
  expect_f32("add", b, n);
  expect_f32("add", y, n);
  if (n == 0) return;
  add_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(a.data<float>(), b.data<float>(), y.data<float>(), n);
  FSTM_CUDA_CHECK_LAUNCH("add_kernel");
}

void add_inplace(Tensor& y, const Tensor& x) {
  OnDevice on("add_inplace", {&y, &x});
  const int64_t n = y.numel();
  expect_f32("add_inplace", x, n);
  expect_f32("add_inplace", y, n);
  if (n == 0) return;
  add_inplace_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(y.data<float>(), x.data<float>(), n);
  FSTM_CUDA_CHECK_LAUNCH("add_inplace_kernel");
}

void mul(const Tensor& a, const Tensor& b, Tensor& y) {
  OnDevice on("mul", {&y, &a, &b});
  const int64_t n = y.numel();
  expect_f32("mul", a, n);
  expect_f32("mul", b, n);
  expect_f32("mul", y, n);
  if (n == 0) return;
  mul_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(a.data<float>(), b.data<float>(), y.data<float>(), n);
  FSTM_CUDA_CHECK_LAUNCH("mul_kernel");
}

void affine(const Tensor& x, float alpha, float beta, Tensor& y) {
  OnDevice on("affine", {&y, &x});
  const int64_t n = y.numel();
  expect_f32("affine", x, n);
  expect_f32("affine", y, n);
  if (n == 0) return;
  affine_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(x.data<float>(), alpha, beta, y.data<float>(), n);
  FSTM_CUDA_CHECK_LAUNCH("affine_kernel");
}

void mul_channel(const Tensor& x, const Tensor& s, Tensor& y) {
  OnDevice on("mul_channel", {&y, &x, &s});
  const int64_t n = x.numel();
  FSTM_CHECK(x.dim() >= 2, "mul_channel: expected x [N, ..., C], got ", x.describe());
  const int64_t N = x.size(0), C = x.size(-1);
  expect_f32("mul_channel", x);
  expect_f32("mul_channel", s, N * C);
  expect_f32("mul_channel", y, n);
  if (n == 0) return;
  mul_channel_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(x.data<float>(), s.data<float>(), y.data<float>(), n,
                                                             n / N, C);
  FSTM_CUDA_CHECK_LAUNCH("mul_channel_kernel");
}

void mul_channel_backward_scale(const Tensor& dy, const Tensor& x, Tensor& ds) {
  OnDevice on("mul_channel_backward_scale", {&ds, &dy, &x});
  FSTM_CHECK(x.dim() >= 2, "mul_channel_backward_scale: expected x [N, ..., C], got ", x.describe());
  const int64_t N = x.size(0), C = x.size(-1);
  expect_f32("mul_channel_backward_scale", x);
  expect_f32("mul_channel_backward_scale", dy, x.numel());
  expect_f32("mul_channel_backward_scale", ds, N * C);
  if (N * C == 0) return;
  const int64_t M = x.numel() / (N * C);
  middle_sums(dy.data<float>(), x.data<float>(), N, M, C, 1.0, ds.data<float>(), on.stream);
}

void mul_sample(const Tensor& x, const Tensor& s, Tensor& y) {
  OnDevice on("mul_sample", {&y, &x, &s});
  FSTM_CHECK(x.dim() >= 1, "mul_sample: expected x [N, ...], got ", x.describe());
  const int64_t n = x.numel(), N = x.size(0);
  expect_f32("mul_sample", x);
  expect_f32("mul_sample", s, N);
  expect_f32("mul_sample", y, n);
  if (n == 0) return;
  mul_sample_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(x.data<float>(), s.data<float>(), y.data<float>(), n,
                                                            n / N);
  FSTM_CUDA_CHECK_LAUNCH("mul_sample_kernel");
}

// Concatenation and split are strided 2-D copies: cudaMemcpy2DAsync moves L rows of C floats
// between row pitches C and Cy.
void concat_last(const std::vector<Tensor>& inputs, Tensor& y) {
  OnDevice on("concat_last", {&y});
  expect_f32("concat_last", y);
  FSTM_CHECK(y.dim() >= 1, "concat_last: expected an output with a last axis, got ", y.describe());
  const int64_t Cy = y.size(-1), L = Cy ? y.numel() / Cy : 0;
  int64_t offset = 0;
  for (const Tensor& in : inputs) {
    FSTM_CHECK(in.is_cuda() && in.device() == y.device(), "concat_last: ", in.describe(), " is not on ",
               y.device().str());
    expect_f32("concat_last", in);
    const int64_t C = in.size(-1);
    FSTM_CHECK(in.numel() == L * C && offset + C <= Cy, "concat_last: ", in.describe(), " does not fit output ",
               y.describe());
    if (L * C > 0)
      FSTM_CUDA_CHECK(cudaMemcpy2DAsync(y.data<float>() + offset, size_t(Cy) * sizeof(float), in.data<float>(),
                                        size_t(C) * sizeof(float), size_t(C) * sizeof(float), size_t(L),
                                        cudaMemcpyDeviceToDevice, on.stream));
    offset += C;
  }
  FSTM_CHECK(offset == Cy, "concat_last: inputs have ", offset, " channels in total, output ", y.describe());
}

void split_last(const Tensor& y, std::vector<Tensor>& outputs) {
  OnDevice on("split_last", {&y});
  expect_f32("split_last", y);
  FSTM_CHECK(y.dim() >= 1, "split_last: expected an input with a last axis, got ", y.describe());
  const int64_t Cy = y.size(-1), L = Cy ? y.numel() / Cy : 0;
  int64_t offset = 0;
  for (Tensor& out : outputs) {
    FSTM_CHECK(out.is_cuda() && out.device() == y.device(), "split_last: ", out.describe(), " is not on ",
               y.device().str());
    expect_f32("split_last", out);
    const int64_t C = out.size(-1);
    FSTM_CHECK(out.numel() == L * C && offset + C <= Cy, "split_last: ", out.describe(), " does not fit input ",
               y.describe());
    if (L * C > 0)
      FSTM_CUDA_CHECK(cudaMemcpy2DAsync(out.data<float>(), size_t(C) * sizeof(float), y.data<float>() + offset,
                                        size_t(Cy) * sizeof(float), size_t(C) * sizeof(float), size_t(L),
                                        cudaMemcpyDeviceToDevice, on.stream));
    offset += C;
  }
  FSTM_CHECK(offset == Cy, "split_last: outputs have ", offset, " channels in total, input ", y.describe());
}

void sum_all(const Tensor& x, Tensor& y) {
  OnDevice on("sum_all", {&x, &y});
  expect_f32("sum_all", x);
  expect_f32("sum_all", y, 1);
  sum_to_scalar(x.data<float>(), x.numel(), 1.0, y.data<float>(), on.index, on.stream);
}

}  // namespace fstm::kernels::cuda
