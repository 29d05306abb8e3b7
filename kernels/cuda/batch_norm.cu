// CUDA batch normalisation (kernels/batch_norm.h) over [M, C] = every axis but channels.
//
// Statistics use two passes in double (channel_sums in reduce.cu): the mean, then the centred
// sums sum(x - mean) and sum((x - mean)^2), whose combination var = E[(x-m)^2] - E[x-m]^2 corrects
// the rounding of the f32 mean. Per-channel finishing steps run one thread per channel; the
// normalisation and dx are elementwise kernels in f32.
#include "kernels/batch_norm.h"

#include "kernels/activation.h"
#include "kernels/elementwise.h"
#include "kernels/cuda/common.h"
#include "kernels/cuda/device_util.cuh"

namespace fstm::kernels::cuda {

namespace {

// y = (x - mean[c]) * inv[c] * gamma[c] + beta[c] with inv = stat[c] when stat_is_var is false, else
// 1 / sqrt(stat[c] + eps). mean and beta may be null (0).
__global__ void bn_apply_kernel(const float* x, const float* mean, const float* stat, bool stat_is_var, float eps,
                                const float* gamma, const float* beta, float* y, int64_t n, int64_t C) {
  FSTM_GRID_STRIDE(i, n) {
    const int64_t c = i % C;
    const float inv = stat_is_var ? 1.0f / sqrtf(stat[c] + eps) : stat[c];
    const float centred = mean ? x[i] - mean[c] : x[i];
    y[i] = centred * inv * gamma[c] + (beta ? beta[c] : 0.0f);
  }
}

// save_mean[c] = sum[c] / M
__global__ void bn_mean_kernel(const double* sum, int64_t M, int64_t C, float* save_mean) {
  FSTM_GRID_STRIDE(c, C) save_mean[c] = float(sum[c] / double(M));
}

// From the centred sums around save_mean (s1 = sum(x - m), s2 = sum((x - m)^2)): the batch mean and
// invstd, and the running statistics (unbiased variance), as PyTorch.
__global__ void bn_finish_train_kernel(const double* s1, const double* s2, int64_t M, int64_t C, float momentum,
                                       float eps, float* save_mean, float* save_invstd, float* running_mean,
                                       float* running_var) {
  FSTM_GRID_STRIDE(c, C) {
    const double shift = s1[c] / double(M);
    const double mean = double(save_mean[c]) + shift;
    double var = s2[c] / double(M) - shift * shift;  // biased: normalises
    if (var < 0.0) var = 0.0;
    save_mean[c] = float(mean);
    save_invstd[c] = float(1.0 / sqrt(var + double(eps)));
    if (running_mean) {
      const double unbiased = M > 1 ? var * double(M) / double(M - 1) : var;
      const double mom = momentum;
      running_mean[c] = float((1.0 - mom) * running_mean[c] + mom * mean);
      running_var[c] = float((1.0 - mom) * running_var[c] + mom * unbiased);
    }
  }
}

// From s1 = sum(dy) and s2 = sum(dy * (x - mean)): dgamma += s2 * invstd, dbeta += s1 (either may
// be null), and k1 = s1 / M, k2 = s2 * invstd / M for dx (when k is not null).
// invstd is save_invstd (stat_is_var false) or 1 / sqrt(running_var + eps).
__global__ void bn_finish_backward_kernel(const double* s1, const double* s2, const float* stat, bool stat_is_var,
                                          float eps, int64_t M, int64_t C, float* dgamma, float* dbeta, float* k) {
  FSTM_GRID_STRIDE(c, C) {
    const double invstd = stat_is_var ? 1.0 / sqrt(double(stat[c]) + double(eps)) : double(stat[c]);
    const double sum_dy = s1[c];
    const double sum_dy_xhat = s2[c] * invstd;
    if (dgamma) dgamma[c] += float(sum_dy_xhat);
    if (dbeta) dbeta[c] += float(sum_dy);
    if (k) {
      k[c] = float(sum_dy / double(M));
      k[C + c] = float(sum_dy_xhat / double(M));
    }
  }
}

// dx = gamma * invstd * (dy - k1 - xhat * k2),  xhat = (x - mean) * invstd
__global__ void bn_backward_dx_kernel(const float* dy, const float* x, const float* mean, const float* invstd,
                                      const float* gamma, const float* k, float* dx, int64_t n, int64_t C) {
  FSTM_GRID_STRIDE(i, n) {
    const int64_t c = i % C;
    const float inv = invstd[c];
    const float xhat = (x[i] - mean[c]) * inv;
    dx[i] = gamma[c] * inv * (dy[i] - k[c] - xhat * k[C + c]);
  }
}

using TensorList = std::initializer_list<const Tensor*>;

struct BnShape {
  int64_t M, C;
};

BnShape bn_shape(const char* op, const Tensor& x) {
  FSTM_CHECK(x.dim() >= 2, op, ": expected [N, ..., C], got ", x.describe());
  expect_f32(op, x);
  const int64_t C = x.size(-1);
  return {C ? x.numel() / C : 0, C};
}

void launch_apply(const Tensor& x, const float* mean, const float* stat, bool stat_is_var, float eps,
                  const Tensor& gamma, const float* beta, Tensor& y, int64_t C, cudaStream_t stream) {
  const int64_t n = x.numel();
  if (n == 0) return;
  bn_apply_kernel<<<grid_for(n), kThreads, 0, stream>>>(x.data<float>(), mean, stat, stat_is_var, eps,
                                                        gamma.data<float>(), beta, y.data<float>(), n, C);
  FSTM_CUDA_CHECK_LAUNCH("bn_apply_kernel");
}

}  // namespace

void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                              Tensor& running_var, float momentum, float eps, Tensor& y, Tensor& save_mean,
                              Tensor& save_invstd) {
  const char* op = "batch_norm_forward_train";
  OnDevice on(op, {&x, &gamma, &beta, &running_mean, &running_var, &y, &save_mean, &save_invstd});
  const auto [M, C] = bn_shape(op, x);
  FSTM_CHECK(M > 0, op, ": empty batch ", x.describe());
  for (const Tensor* t : TensorList{&gamma, &beta, &save_mean, &save_invstd}) expect_f32(op, *t, C);
  FSTM_CHECK(running_mean.defined() == running_var.defined(), op, ": running_mean and running_var go together");
  if (running_mean.defined()) {
    expect_f32(op, running_mean, C);
    expect_f32(op, running_var, C);
  }
  expect_f32(op, y, x.numel());

  Tensor sums = scratch_bytes(on.index, size_t(2 * C) * sizeof(double));
  double* s1 = static_cast<double*>(sums.raw_data());
  double* s2 = s1 + C;
  const float* px = x.data<float>();
  float* mean = save_mean.data<float>();
  float* invstd = save_invstd.data<float>();
  // Pass 1: the mean, stored in save_mean as the centre of pass 2.
  channel_sums(px, nullptr, nullptr, nullptr, M, C, s1, nullptr, on.index, on.stream);
  bn_mean_kernel<<<grid_for(C), kThreads, 0, on.stream>>>(s1, M, C, mean);
  FSTM_CUDA_CHECK_LAUNCH("bn_mean_kernel");
  // Pass 2: centred sums, then mean, invstd and the running statistics.
  channel_sums(px, mean, px, mean, M, C, s1, s2, on.index, on.stream);
  bn_finish_train_kernel<<<grid_for(C), kThreads, 0, on.stream>>>(s1, s2, M, C, momentum, eps, mean, invstd,
                                                                   f32_or_null(running_mean), f32_or_null(running_var));
  FSTM_CUDA_CHECK_LAUNCH("bn_finish_train_kernel");
  launch_apply(x, mean, invstd, false, eps, gamma, beta.data<float>(), y, C, on.stream);
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                             const Tensor& running_var, float eps, Tensor& y) {
  const char* op = "batch_norm_forward_eval";
  OnDevice on(op, {&x, &gamma, &beta, &running_mean, &running_var, &y});
  const auto [M, C] = bn_shape(op, x);
  for (const Tensor* t : TensorList{&gamma, &beta, &running_mean, &running_var}) expect_f32(op, *t, C);
  expect_f32(op, y, x.numel());
  launch_apply(x, running_mean.data<float>(), running_var.data<float>(), true, eps, gamma, beta.data<float>(), y, C,
               on.stream);
}

void batch_norm_backward_train(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                               const Tensor& save_invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const char* op = "batch_norm_backward_train";
  OnDevice on(op, {&dy, &x, &gamma, &save_mean, &save_invstd, &dx, &dgamma, &dbeta});
  const auto [M, C] = bn_shape(op, x);
  FSTM_CHECK(M > 0, op, ": empty batch ", x.describe());
  for (const Tensor* t : TensorList{&gamma, &save_mean, &save_invstd}) expect_f32(op, *t, C);
  if (dgamma.defined()) expect_f32(op, dgamma, C);
  if (dbeta.defined()) expect_f32(op, dbeta, C);
  expect_f32(op, dy, x.numel());
  expect_f32(op, dx, x.numel());

  Tensor work = scratch_bytes(on.index, size_t(2 * C) * (sizeof(double) + sizeof(float)));
  double* s1 = static_cast<double*>(work.raw_data());
  double* s2 = s1 + C;
  float* k = reinterpret_cast<float*>(s2 + C);
  const float* mean = save_mean.data<float>();
  const float* invstd = save_invstd.data<float>();
  channel_sums(dy.data<float>(), nullptr, x.data<float>(), mean, M, C, s1, s2, on.index, on.stream);
  bn_finish_backward_kernel<<<grid_for(C), kThreads, 0, on.stream>>>(s1, s2, invstd, false, 0.0f, M, C,
                                                                      f32_or_null(dgamma), f32_or_null(dbeta), k);
  FSTM_CUDA_CHECK_LAUNCH("bn_finish_backward_kernel");
  const int64_t n = x.numel();
  bn_backward_dx_kernel<<<grid_for(n), kThreads, 0, on.stream>>>(dy.data<float>(), x.data<float>(), mean, invstd,
                                                                 gamma.data<float>(), k, dx.data<float>(), n, C);
  FSTM_CUDA_CHECK_LAUNCH("bn_backward_dx_kernel");
}

void batch_norm_backward_eval(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& running_mean,
                              const Tensor& running_var, float eps, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const char* op = "batch_norm_backward_eval";
  OnDevice on(op, {&dy, &x, &gamma, &running_mean, &running_var, &dx, &dgamma, &dbeta});
  const auto [M, C] = bn_shape(op, x);
  for (const Tensor* t : TensorList{&gamma, &running_mean, &running_var}) expect_f32(op, *t, C);
  if (dgamma.defined()) expect_f32(op, dgamma, C);
  if (dbeta.defined()) expect_f32(op, dbeta, C);
  expect_f32(op, dy, x.numel());
  expect_f32(op, dx, x.numel());
  // dx = dy * gamma * invstd (the statistics are constants)
  launch_apply(dy, nullptr, running_var.data<float>(), true, eps, gamma, nullptr, dx, C, on.stream);
  if ((!dgamma.defined() && !dbeta.defined()) || M == 0) return;
  Tensor sums = scratch_bytes(on.index, size_t(2 * C) * sizeof(double));
  double* s1 = static_cast<double*>(sums.raw_data());
  double* s2 = s1 + C;
  channel_sums(dy.data<float>(), nullptr, x.data<float>(), running_mean.data<float>(), M, C, s1, s2, on.index,
               on.stream);
  bn_finish_backward_kernel<<<grid_for(C), kThreads, 0, on.stream>>>(s1, s2, running_var.data<float>(), true, eps, M,
                                                                      C, f32_or_null(dgamma), f32_or_null(dbeta),
                                                                      nullptr);
  FSTM_CUDA_CHECK_LAUNCH("bn_finish_backward_kernel");
}

// ResNet's epilogue y = relu(bn(x) + residual). No fused kernel yet: batch norm, the residual add and
// the ReLU run in turn on the stream (the memory passes the CPU kernel's fusion saves are spent
// here), with the statistics and running-stat update of batch_norm_forward_train.
void batch_norm_relu_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& residual,
                                   Tensor& running_mean, Tensor& running_var, float momentum, float eps, Tensor& y,
                                   Tensor& save_mean, Tensor& save_invstd) {
  cuda::batch_norm_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean, save_invstd);
  if (residual.defined()) cuda::add_inplace(y, residual);
  cuda::activation_forward(Activation::Relu, y, y);
}

// dz = dy * (y > 0) into dresidual when defined (else a scratch tensor), then batch norm's backward.
void batch_norm_relu_backward_train(const Tensor& dy, const Tensor& x, const Tensor& y, const Tensor& gamma,
                                    const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx, Tensor& dgamma,
                                    Tensor& dbeta, Tensor& dresidual) {
  Tensor dz = dresidual.defined() ? dresidual : Tensor::empty(dy.shape(), DType::f32, dy.device());
  cuda::activation_backward(Activation::Relu, dy, y, y, dz);  // ReLU's derivative reads only y
  cuda::batch_norm_backward_train(dz, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

}  // namespace fstm::kernels::cuda
