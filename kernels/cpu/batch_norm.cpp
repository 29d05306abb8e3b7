// Fast batch norm over x viewed as [M, C] (M = N*H*W rows; channels are contiguous in NHWC).
//
// Memory passes (these kernels are memory-bound):
//   train forward   2: statistics (read x), normalise (read x, write y)
//   train backward  2: sums (read dy, x), dx (read dy, x, write dx)
//   eval forward    1;  eval backward 1 (dx and the parameter sums together)
// The fused ResNet epilogue y = relu(bn(x) + residual) keeps those counts: the residual is read
// and the ReLU applied in the normalising pass, and backward masks dy by y > 0 as it reads it.
//
// Parallel over rows: each thread reduces a contiguous range of rows into per-channel partials.
// Statistics are numerically sound without a second pass over memory: each thread walks its rows in
// blocks of about 16 KiB, takes the block's mean and centred sum of squares in two sweeps over the
// block while it sits in L1, and merges blocks (and then threads) with Chan's parallel formula in
// double. Nothing computes E[x^2] - E[x]^2.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/batch_norm.h"

namespace fstm::kernels::cpu {

namespace {

constexpr int64_t kParallelGrain = 1 << 15;

int threads_for(int64_t elements) { return elements > kParallelGrain ? omp_get_max_threads() : 1; }

// Rows per block: about 16 KiB of one [M, C] tensor.
int64_t block_rows(int64_t C) { return std::clamp<int64_t>(4096 / C, 8, 1024); }

// Rows [begin, end) of thread t out of nt.
struct RowRange {
  int64_t begin, end;
};
RowRange rows_of_thread(int64_t M) {
  const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
  return {M * t / nt, M * (t + 1) / nt};
}

// Running mean and centred sum of squares (M2) of one channel set, merged with Chan's formula.
struct Moments {
  double count = 0;
  std::vector<double> mean, m2;
  explicit Moments(int64_t C = 0) : mean(size_t(C), 0.0), m2(size_t(C), 0.0) {}

  template <typename T>
  void merge(double n, const T* other_mean, const T* other_m2) {
    if (n <= 0) return;
    const double total = count + n, w = n / total, cross = count * n / total;
    for (size_t c = 0; c < mean.size(); ++c) {
      const double delta = double(other_mean[c]) - mean[c];
      mean[c] += delta * w;
      m2[c] += double(other_m2[c]) + delta * delta * cross;
    }
    count = total;
  }
};

// Per-channel mean and biased variance of x [M, C].
void channel_moments(const float* x, int64_t M, int64_t C, std::vector<double>& mean, std::vector<double>& var) {
  const int T = threads_for(M * C);
  std::vector<Moments> partial(static_cast<size_t>(T), Moments(C));
#pragma omp parallel num_threads(T)
  {
    const RowRange rows = rows_of_thread(M);
    Moments& mine = partial[size_t(omp_get_thread_num())];
    std::vector<float> bmean(static_cast<size_t>(C)), bdev(bmean), bm2(bmean);
    std::vector<double> block_mean(static_cast<size_t>(C)), block_m2(block_mean);
    const int64_t R = block_rows(C);
    for (int64_t r0 = rows.begin; r0 < rows.end; r0 += R) {
      const int64_t r1 = std::min(rows.end, r0 + R);
      const float inv_n = 1.0f / float(r1 - r0);
      std::fill(bmean.begin(), bmean.end(), 0.0f);
      std::fill(bdev.begin(), bdev.end(), 0.0f);
      std::fill(bm2.begin(), bm2.end(), 0.0f);
      float* __restrict bm = bmean.data();
      float* __restrict bd = bdev.data();
      float* __restrict bs = bm2.data();
      for (int64_t r = r0; r < r1; ++r) {
        const float* __restrict row = x + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) bm[c] += row[c];
      }
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) bm[c] *= inv_n;
      // Second sweep while the block is still in cache: deviations from the float block mean bm.
      // Their sum corrects bm to the exact block mean (bm carries the float rounding of the first
      // sweep, which would otherwise leak into the between-block term of the merge).
      for (int64_t r = r0; r < r1; ++r) {
        const float* __restrict row = x + r * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float d = row[c] - bm[c];
          bd[c] += d;
          bs[c] += d * d;
        }
      }
      const double n = double(r1 - r0);
      for (int64_t c = 0; c < C; ++c) {
        const size_t i = size_t(c);
        block_mean[i] = double(bm[c]) + double(bd[c]) / n;
        block_m2[i] = std::max(0.0, double(bs[c]) - double(bd[c]) * double(bd[c]) / n);
      }
      mine.merge(n, block_mean.data(), block_m2.data());
    }
  }
  Moments total(C);
  for (const Moments& m : partial) total.merge(m.count, m.mean.data(), m.m2.data());
  mean = total.mean;
  var.resize(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) var[size_t(c)] = total.m2[size_t(c)] / double(M);
}

// Per-channel sums for the backward passes: sum_dy[c] = sum_m g, sum_dyx[c] = sum_m g * (x - center[c]),
// with g = dy, or g = dy * (relu_out > 0) when relu_out is given (the fused ReLU's mask).
// When out is given, also writes out = g * out_scale[c] (or g itself without out_scale) in the same
// pass: dx in eval mode, the residual's gradient in the fused train mode (where out may be dy).
void channel_grad_sums(const float* dy, const float* relu_out, const float* x, const float* center, int64_t M,
                       int64_t C, std::vector<double>& sum_dy, std::vector<double>& sum_dyx, const float* out_scale,
                       float* out) {
  const int T = threads_for(M * C);
  std::vector<double> part(size_t(T) * 2 * size_t(C), 0.0);
#pragma omp parallel num_threads(T)
  {
    const RowRange rows = rows_of_thread(M);
    double* mine = part.data() + size_t(omp_get_thread_num()) * 2 * size_t(C);
    std::vector<float> b_dy(static_cast<size_t>(C)), b_dyx(static_cast<size_t>(C)), masked(static_cast<size_t>(C));
    const int64_t R = block_rows(C);
    for (int64_t r0 = rows.begin; r0 < rows.end; r0 += R) {  // float within a block, double across
      const int64_t r1 = std::min(rows.end, r0 + R);
      std::fill(b_dy.begin(), b_dy.end(), 0.0f);
      std::fill(b_dyx.begin(), b_dyx.end(), 0.0f);
      float* __restrict s1 = b_dy.data();
      float* __restrict s2 = b_dyx.data();
      for (int64_t r = r0; r < r1; ++r) {
        const float* g = dy + r * C;  // not __restrict: out may be dy itself (masked in place)
        const float* __restrict v = x + r * C;
        if (relu_out) {
          const float* __restrict yr = relu_out + r * C;
          float* __restrict gm = masked.data();
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) gm[c] = yr[c] > 0.0f ? g[c] : 0.0f;
          g = gm;
        }
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          s1[c] += g[c];
          s2[c] += g[c] * (v[c] - center[c]);
        }
        if (out) {
          float* o = out + r * C;
          if (out_scale) {
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) o[c] = g[c] * out_scale[c];
          } else {
            std::copy(g, g + C, o);
          }
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        mine[c] += s1[c];
        mine[C + c] += s2[c];
      }
    }
  }
  sum_dy.assign(size_t(C), 0.0);
  sum_dyx.assign(size_t(C), 0.0);
  for (int t = 0; t < T; ++t)
    for (int64_t c = 0; c < C; ++c) {
      sum_dy[size_t(c)] += part[size_t(t) * 2 * size_t(C) + size_t(c)];
      sum_dyx[size_t(c)] += part[size_t(t) * 2 * size_t(C) + size_t(C + c)];
    }
}

// y = ((x - center_hi[c]) - center_lo[c]) * scale[c] + shift[c]. The centre is subtracted before
// scaling (x * scale + (shift - mean * scale) cancels badly when |mean| >> std) and is given as a
// float pair hi + lo, so that a batch mean that float cannot hold exactly still centres exactly.
// Optional epilogue, applied to each row while it is in L1: + residual, then ReLU.
void normalize(const float* x, const float* center_hi, const float* center_lo, const float* scale, const float* shift,
               int64_t M, int64_t C, float* y, const float* residual = nullptr, bool relu = false) {
#pragma omp parallel for num_threads(threads_for(M* C)) schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const float* __restrict in = x + m * C;
    float* __restrict out = y + m * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) out[c] = ((in[c] - center_hi[c]) - center_lo[c]) * scale[c] + shift[c];
    if (residual) {
      const float* __restrict r = residual + m * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] += r[c];
    }
    if (relu) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = out[c] > 0.0f ? out[c] : 0.0f;
    }
  }
}

// Train mode: the batch statistics as normalize() takes them (centre hi/lo, scale = gamma * invstd);
// saves mean and invstd and updates the running statistics (PyTorch's rule).
struct TrainNormalisation {
  std::vector<float> mean_hi, mean_lo, scale;
};
TrainNormalisation train_statistics(const Tensor& x, const Tensor& gamma, Tensor& running_mean, Tensor& running_var,
                                    float momentum, float eps, Tensor& save_mean, Tensor& save_invstd) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  std::vector<double> mean, var;
  channel_moments(x.data<float>(), M, C, mean, var);
  const float* g = gamma.data<float>();
  TrainNormalisation n{std::vector<float>(size_t(C)), std::vector<float>(size_t(C)), std::vector<float>(size_t(C))};
  for (int64_t c = 0; c < C; ++c) {
    const size_t i = size_t(c);
    const double invstd = 1.0 / std::sqrt(var[i] + eps);
    n.mean_hi[i] = float(mean[i]);
    n.mean_lo[i] = float(mean[i] - double(n.mean_hi[i]));
    n.scale[i] = float(g[c] * invstd);
    save_mean.data<float>()[c] = n.mean_hi[i];
    save_invstd.data<float>()[c] = float(invstd);
    if (running_mean.defined()) {
      // PyTorch: running = (1 - momentum) running + momentum batch, with the unbiased variance.
      float& rm = running_mean.data<float>()[c];
      float& rv = running_var.data<float>()[c];
      const double unbiased = M > 1 ? var[i] * double(M) / double(M - 1) : var[i];
      rm = float((1.0 - momentum) * rm + momentum * mean[i]);
      rv = float((1.0 - momentum) * rv + momentum * unbiased);
    }
  }
  return n;
}

// Train-mode dx from the sums of g (dy, masked by the fused ReLU): with xhat = (x - mean) * invstd,
// k = gamma * invstd:
//   dbeta = sum g,  dgamma = sum g * xhat,
//   dx = k * (g - dbeta / M) - k * invstd * dgamma / M * (x - mean)
// g is read from g_src, masked by relu_out > 0 when relu_out is given.
void train_backward_dx(const float* g_src, const float* relu_out, const float* x, const Tensor& gamma,
                       const float* mean, const float* invstd, const std::vector<double>& sum_dy,
                       const std::vector<double>& sum_dyx, int64_t M, int64_t C, float* dx, Tensor& dgamma,
                       Tensor& dbeta) {
  std::vector<float> k(static_cast<size_t>(C)), mean_dy(static_cast<size_t>(C)), kx(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const size_t i = size_t(c);
    const double s = invstd[c], kk = double(gamma.data<float>()[c]) * s, dgamma_c = sum_dyx[i] * s;
    k[i] = float(kk);
    mean_dy[i] = float(sum_dy[i] / double(M));
    kx[i] = float(kk * s * dgamma_c / double(M));
    dgamma.data<float>()[c] += float(dgamma_c);
    dbeta.data<float>()[c] += float(sum_dy[i]);
  }
  const float* pk = k.data();
  const float* pm = mean_dy.data();
  const float* pkx = kx.data();
#pragma omp parallel for num_threads(threads_for(M* C)) schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const float* g = g_src + m * C;  // g and out may be one buffer (dx written over dy): elementwise
    const float* __restrict v = x + m * C;
    float* out = dx + m * C;
    if (relu_out) {
      const float* __restrict yr = relu_out + m * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const float gc = yr[c] > 0.0f ? g[c] : 0.0f;
        out[c] = pk[c] * (gc - pm[c]) - pkx[c] * (v[c] - mean[c]);
      }
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) out[c] = pk[c] * (g[c] - pm[c]) - pkx[c] * (v[c] - mean[c]);
    }
  }
}

std::vector<float> eval_invstd(const Tensor& running_var, float eps) {
  const int64_t C = running_var.numel();
  std::vector<float> invstd(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) invstd[size_t(c)] = float(1.0 / std::sqrt(double(running_var.data<float>()[c]) + eps));
  return invstd;
}

}  // namespace

void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                              Tensor& running_var, float momentum, float eps, Tensor& y, Tensor& save_mean,
                              Tensor& save_invstd) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const TrainNormalisation n = train_statistics(x, gamma, running_mean, running_var, momentum, eps, save_mean, save_invstd);
  normalize(x.data<float>(), n.mean_hi.data(), n.mean_lo.data(), n.scale.data(), beta.data<float>(), M, C,
            y.data<float>());
}

void batch_norm_relu_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& residual,
                                   Tensor& running_mean, Tensor& running_var, float momentum, float eps, Tensor& y,
                                   Tensor& save_mean, Tensor& save_invstd) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const TrainNormalisation n = train_statistics(x, gamma, running_mean, running_var, momentum, eps, save_mean, save_invstd);
  normalize(x.data<float>(), n.mean_hi.data(), n.mean_lo.data(), n.scale.data(), beta.data<float>(), M, C,
            y.data<float>(), residual.defined() ? residual.data<float>() : nullptr, true);
}

void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                             const Tensor& running_var, float eps, Tensor& y) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const std::vector<float> invstd = eval_invstd(running_var, eps);
  std::vector<float> scale(static_cast<size_t>(C)), zero(static_cast<size_t>(C), 0.0f);
  for (int64_t c = 0; c < C; ++c) scale[size_t(c)] = float(double(gamma.data<float>()[c]) * invstd[size_t(c)]);
  normalize(x.data<float>(), running_mean.data<float>(), zero.data(), scale.data(), beta.data<float>(), M, C,
            y.data<float>());
}

void batch_norm_backward_train(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                               const Tensor& save_invstd, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const float* mean = save_mean.data<float>();
  std::vector<double> sum_dy, sum_dyx;
  channel_grad_sums(dy.data<float>(), nullptr, x.data<float>(), mean, M, C, sum_dy, sum_dyx, nullptr, nullptr);
  train_backward_dx(dy.data<float>(), nullptr, x.data<float>(), gamma, mean, save_invstd.data<float>(), sum_dy,
                    sum_dyx, M, C, dx.data<float>(), dgamma, dbeta);
}

void batch_norm_relu_backward_train(const Tensor& dy, const Tensor& x, const Tensor& y, const Tensor& gamma,
                                    const Tensor& save_mean, const Tensor& save_invstd, Tensor& dx, Tensor& dgamma,
                                    Tensor& dbeta, Tensor& dresidual) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const float* mean = save_mean.data<float>();
  float* dres = dresidual.defined() ? dresidual.data<float>() : nullptr;
  std::vector<double> sum_dy, sum_dyx;
  // The masked gradient dz is the residual's gradient: written once here, then read back by the dx
  // pass instead of dy and y.
  channel_grad_sums(dy.data<float>(), y.data<float>(), x.data<float>(), mean, M, C, sum_dy, sum_dyx, nullptr, dres);
  if (dres)
    train_backward_dx(dres, nullptr, x.data<float>(), gamma, mean, save_invstd.data<float>(), sum_dy, sum_dyx, M, C,
                      dx.data<float>(), dgamma, dbeta);
  else
    train_backward_dx(dy.data<float>(), y.data<float>(), x.data<float>(), gamma, mean, save_invstd.data<float>(),
                      sum_dy, sum_dyx, M, C, dx.data<float>(), dgamma, dbeta);
}

void batch_norm_backward_eval(const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& running_mean,
                              const Tensor& running_var, float eps, Tensor& dx, Tensor& dgamma, Tensor& dbeta) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  const std::vector<float> invstd = eval_invstd(running_var, eps);
  std::vector<float> k(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) k[size_t(c)] = float(double(gamma.data<float>()[c]) * invstd[size_t(c)]);
  if (!dgamma.defined() && !dbeta.defined()) {
    const std::vector<float> zero(static_cast<size_t>(C), 0.0f);
    normalize(dy.data<float>(), zero.data(), zero.data(), k.data(), zero.data(), M, C, dx.data<float>());
    return;
  }
  std::vector<double> sum_dy, sum_dyx;
  channel_grad_sums(dy.data<float>(), nullptr, x.data<float>(), running_mean.data<float>(), M, C, sum_dy, sum_dyx,
                    k.data(), dx.data<float>());
  for (int64_t c = 0; c < C; ++c) {
    if (dgamma.defined()) dgamma.data<float>()[c] += float(sum_dyx[size_t(c)] * invstd[size_t(c)]);
    if (dbeta.defined()) dbeta.data<float>()[c] += float(sum_dy[size_t(c)]);
  }
}

}  // namespace fstm::kernels::cpu
