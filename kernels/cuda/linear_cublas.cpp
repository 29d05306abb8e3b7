// CUDA linear layer (kernels/linear.h) with cuBLAS SGEMM.
//
// cuBLAS is column-major: the buffer of a row-major [R, C] matrix is the column-major [C, R]
// matrix, its transpose. With x [N, I], w [O, I], y [N, O] (row-major):
//   forward  y^T [O, N]  = w x^T:     gemm(T, N, m=O, n=N, k=I, A=w lda I, B=x ldb I, C=y ldc O)
//   dx       dx^T [I, N] = w^T dy^T:  gemm(N, N, m=I, n=N, k=O, A=w lda I, B=dy ldb O, C=dx ldc I)
//   dw       dw^T [I, O] += x^T dy:   gemm(N, T, m=I, n=O, k=N, A=x lda I, B=dy ldb O, C=dw ldc I), beta 1
// Math mode CUBLAS_DEFAULT_MATH keeps f32 exact (no TF32) unless kernels::cuda::set_allow_tf32.
#include <cublas_v2.h>

#include <climits>

#include "kernels/cuda/common.h"
#include "kernels/cuda_options.h"
#include "kernels/linear.h"

namespace fstm::kernels::cuda {

namespace {

cublasHandle_t handle_for(int device) {
  cublasHandle_t h = ::fstm::cuda::cublas_handle(device);
  FSTM_CUBLAS_CHECK(cublasSetMathMode(h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  return h;
}

int as_int(const char* op, int64_t v) {
  FSTM_CHECK(v >= 0 && v <= INT_MAX, op, ": dimension ", v, " is too large for cuBLAS");
  return int(v);
}

struct LinearDims {
  int N, I, O;
};

LinearDims linear_dims(const char* op, const Tensor& x, const Tensor& w) {
  FSTM_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), op, ": expected x [N, in] and w [out, in], got ",
             x.describe(), " and ", w.describe());
  expect_f32(op, x);
  expect_f32(op, w);
  return {as_int(op, x.size(0)), as_int(op, x.size(1)), as_int(op, w.size(0))};
}

}  // namespace

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const char* op = "linear_forward";
  OnDevice on(op, {&x, &w, &b, &y});
  const auto [N, I, O] = linear_dims(op, x, w);
  expect_f32(op, y, int64_t(N) * O);
  if (b.defined()) expect_f32(op, b, O);
  if (int64_t(N) * O == 0) return;
  // y = b broadcast over rows, then y += x w^T (beta 1); without bias, beta 0.
  if (b.defined()) broadcast_rows(b.data<float>(), N, O, y.data<float>(), false, on.stream);
  if (I == 0) {
    if (!b.defined()) FSTM_CUDA_CHECK(cudaMemsetAsync(y.data<float>(), 0, y.nbytes(), on.stream));
    return;
  }
  const float alpha = 1.0f, beta = b.defined() ? 1.0f : 0.0f;
  FSTM_CUBLAS_CHECK(cublasSgemm(handle_for(on.index), CUBLAS_OP_T, CUBLAS_OP_N, O, N, I, &alpha, w.data<float>(), I,
                                x.data<float>(), I, &beta, y.data<float>(), O));
}

void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx) {
  const char* op = "linear_backward_data";
  OnDevice on(op, {&dy, &w, &dx});
  const auto [N, I, O] = linear_dims(op, dx, w);
  expect_f32(op, dy, int64_t(N) * O);
  expect_f32(op, dx);
  if (int64_t(N) * I == 0) return;
  if (O == 0) {
    FSTM_CUDA_CHECK(cudaMemsetAsync(dx.data<float>(), 0, dx.nbytes(), on.stream));
    return;
  }
  const float alpha = 1.0f, beta = 0.0f;
  FSTM_CUBLAS_CHECK(cublasSgemm(handle_for(on.index), CUBLAS_OP_N, CUBLAS_OP_N, I, N, O, &alpha, w.data<float>(), I,
                                dy.data<float>(), O, &beta, dx.data<float>(), I));
}

void linear_backward_weights(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db) {
  const char* op = "linear_backward_weights";
  OnDevice on(op, {&dy, &x, &dw, &db});
  const auto [N, I, O] = linear_dims(op, x, dw);
  expect_f32(op, dy, int64_t(N) * O);
  if (db.defined()) expect_f32(op, db, O);
  if (N == 0) return;  // nothing to accumulate
  if (int64_t(I) * O > 0) {
    const float alpha = 1.0f, beta = 1.0f;
    FSTM_CUBLAS_CHECK(cublasSgemm(handle_for(on.index), CUBLAS_OP_N, CUBLAS_OP_T, I, O, N, &alpha, x.data<float>(), I,
                                  dy.data<float>(), O, &beta, dw.data<float>(), I));
  }
  if (db.defined() && O > 0) {
    Tensor sums = scratch_bytes(on.index, size_t(O) * sizeof(double));
    double* s = static_cast<double*>(sums.raw_data());
    channel_sums(dy.data<float>(), nullptr, nullptr, nullptr, N, O, s, nullptr, on.index, on.stream);
    accumulate_doubles(s, O, db.data<float>(), on.stream);
  }
}

}  // namespace fstm::kernels::cuda
