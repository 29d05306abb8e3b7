// Reference batch norm over [M, C] (M = every axis but channels), in double for the statistics.
#include <cmath>
#include <vector>

#include "kernels/batch_norm.h"

namespace fstm::kernels::ref {

void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                              Tensor& running_var, float momentum, float eps, Tensor& y, Tensor& save_mean,
                              Tensor& save_invstd) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const float* px = x.data<float>();
  const float* pg = gamma.data<float>();
  const float* pb = beta.data<float>();
  float* py = y.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    double mean = 0, var = 0;
    for (int64_t m = 0; m < M; ++m) mean += px[m * C + c];
    mean /= double(M);
    for (int64_t m = 0; m < M; ++m) var += (px[m * C + c] - mean) * (px[m * C + c] - mean);
    var /= double(M);  // biased: used to normalise
    const double invstd = 1.0 / std::sqrt(var + eps);
    for (int64_t m = 0; m < M; ++m)
      py[m * C + c] = float((px[m * C + c] - mean) * invstd * pg[c] + pb[c]);
    save_mean.data<float>()[c] = float(mean);
    save_invstd.data<float>()[c] = float(invstd);
    if (running_mean.defined()) {
      float& rm = running_mean.data<float>()[c];
      float& rv = running_var.data<float>()[c];
      const double unbiased = M > 1 ? var * double(M) / double(M - 1) : var;
      rm = float((1.0 - momentum) * rm + momentum * mean);
      rv = float((1.0 - momentum) * rv + momentum * unbiased);
    }
  }
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                             const Tensor& running_var, float eps, Tensor& y) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(double(running_var.data<float>()[c]) + eps);
    const double mean = running_mean.data<float>()[c];
    for (int64_t m = 0; m < M; ++m)
      py[m * C + c] = float((px[m * C + c] - mean) * invstd * gamma.data<float>()[c] + beta.data<float>()[c]);
  }
}

void batch_norm_backward_train(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                               const Tensor& save_invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  // With xhat = (x - mean) * invstd:
  //   dbeta = sum dy,  dgamma = sum dy * xhat,
  //   dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma)
  const int64_t C = x.size(-1), M = x.numel() / C;
  const float* pdy = dy.data<float>();
  const float* px = x.data<float>();
  float* pdx = dx.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    const double mean = save_mean.data<float>()[c], invstd = save_invstd.data<float>()[c];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t m = 0; m < M; ++m) {
      sum_dy += pdy[m * C + c];
      sum_dy_xhat += pdy[m * C + c] * (px[m * C + c] - mean) * invstd;
    }
    const double g = gamma.data<float>()[c];
    for (int64_t m = 0; m < M; ++m) {
      const double xhat = (px[m * C + c] - mean) * invstd;
      pdx[m * C + c] = float(g * invstd / double(M) * (double(M) * pdy[m * C + c] - sum_dy - xhat * sum_dy_xhat));
    }
    dgamma.data<float>()[c] += float(sum_dy_xhat);
    dbeta.data<float>()[c] += float(sum_dy);
  }
}

void batch_norm_backward_eval(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& running_mean,
                              const Tensor& running_var, float eps, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const float* pdy = dy.data<float>();
  const float* px = x.data<float>();
  float* pdx = dx.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(double(running_var.data<float>()[c]) + eps);
    const double mean = running_mean.data<float>()[c];
    const double g = gamma.data<float>()[c];
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t m = 0; m < M; ++m) {
      pdx[m * C + c] = float(pdy[m * C + c] * g * invstd);
      sum_dy += pdy[m * C + c];
      sum_dy_xhat += pdy[m * C + c] * (px[m * C + c] - mean) * invstd;
    }
    if (dgamma.defined()) dgamma.data<float>()[c] += float(sum_dy_xhat);
    if (dbeta.defined()) dbeta.data<float>()[c] += float(sum_dy);
  }
}

// The fused ResNet epilogue, spelled out: batch norm, then + residual, then ReLU.
void batch_norm_relu_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& residual,
                                   Tensor& running_mean, Tensor& running_var, float momentum, float eps, Tensor& y,
                                   Tensor& save_mean, Tensor& save_invstd) {
  batch_norm_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps, y, save_mean, save_invstd);
  float* py = y.data<float>();
  const float* pr = residual.defined() ? residual.data<float>() : nullptr;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float z = pr ? py[i] + pr[i] : py[i];
    py[i] = z > 0.0f ? z : 0.0f;
  }
}

void batch_norm_relu_backward_train(const Tensor& dy, const Tensor& x, const Tensor& y, const Tensor& gamma,
                                    const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx, Tensor& dgamma,
                                    Tensor& dbeta, Tensor& dresidual) {
  Tensor dz = Tensor::empty(dy.shape());  // dL/d(bn(x) + residual)
  const float* pdy = dy.data<float>();
  const float* py = y.data<float>();
  float* pdz = dz.data<float>();
  for (int64_t i = 0; i < dy.numel(); ++i) pdz[i] = py[i] > 0.0f ? pdy[i] : 0.0f;
  if (dresidual.defined()) dresidual.copy_(dz);
  batch_norm_backward_train(dz, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

}  // namespace fstm::kernels::ref
