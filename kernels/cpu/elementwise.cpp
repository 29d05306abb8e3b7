// Fast elementwise kernels: OpenMP across cores, simd within. These ops are memory-bound, so the
// aim is one pass over memory with all cores streaming.
#include "kernels/elementwise.h"

#include <cstring>

namespace fstm::kernels::cpu {

namespace {
// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 15;
}  // namespace

void add(const Tensor& a, const Tensor& b, Tensor& y) {
  const float* __restrict pa = a.data<float>();
  const float* __restrict pb = b.data<float>();
  float* __restrict py = y.data<float>();
  const int64_t n = y.numel();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = pa[i] + pb[i];
}

void add_inplace(Tensor& y, const Tensor& x) {
  const float* __restrict px = x.data<float>();
  float* __restrict py = y.data<float>();
  const int64_t n = y.numel();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] += px[i];
}

void mul(const Tensor& a, const Tensor& b, Tensor& y) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.data<float>();
  const int64_t n = y.numel();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = pa[i] * pb[i];
}

void affine(const Tensor& x, float alpha, float beta, Tensor& y) {
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const int64_t n = y.numel();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = alpha * px[i] + beta;
}

void mul_channel(const Tensor& x, const Tensor& s, Tensor& y) {
  const int64_t N = x.size(0), C = x.size(-1), M = x.numel() / (N * C);
  const float* px = x.data<float>();
  const float* ps = s.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for collapse(2) if (x.numel() > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      const float* __restrict xs = px + (n * M + m) * C;
      const float* __restrict ss = ps + n * C;
      float* __restrict ys = py + (n * M + m) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) ys[c] = xs[c] * ss[c];
    }
}

void mul_channel_backward_scale(const Tensor& dy, const Tensor& x, Tensor& ds) {
  const int64_t N = x.size(0), C = x.size(-1), M = x.numel() / (N * C);
  const float* pdy = dy.data<float>();
  const float* px = x.data<float>();
  float* pds = ds.data<float>();
#pragma omp parallel for if (x.numel() > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    float* __restrict acc = pds + n * C;
    std::memset(acc, 0, sizeof(float) * C);
    for (int64_t m = 0; m < M; ++m) {
      const float* __restrict d = pdy + (n * M + m) * C;
      const float* __restrict v = px + (n * M + m) * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) acc[c] += d[c] * v[c];
    }
  }
}

void mul_sample(const Tensor& x, const Tensor& s, Tensor& y) {
  const int64_t N = x.size(0), R = N ? x.numel() / N : 0;
  const float* px = x.data<float>();
  const float* ps = s.data<float>();
  float* py = y.data<float>();
#pragma omp parallel for if (x.numel() > kParallelGrain) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float scale = ps[n];
#pragma omp simd
    for (int64_t r = 0; r < R; ++r) py[n * R + r] = px[n * R + r] * scale;
  }
}

void concat_last(const std::vector<Tensor>& inputs, Tensor& y) {
  const int64_t Cy = y.size(-1), L = y.numel() / Cy;
  float* py = y.data<float>();
#pragma omp parallel for if (y.numel() > kParallelGrain) schedule(static)
  for (int64_t l = 0; l < L; ++l) {
    int64_t offset = 0;
    for (const Tensor& in : inputs) {
      const int64_t C = in.size(-1);
      std::memcpy(py + l * Cy + offset, in.data<float>() + l * C, sizeof(float) * C);
      offset += C;
    }
  }
}

void split_last(const Tensor& y, std::vector<Tensor>& outputs) {
  const int64_t Cy = y.size(-1), L = y.numel() / Cy;
  const float* py = y.data<float>();
#pragma omp parallel for if (y.numel() > kParallelGrain) schedule(static)
  for (int64_t l = 0; l < L; ++l) {
    int64_t offset = 0;
    for (Tensor& out : outputs) {
      const int64_t C = out.size(-1);
      std::memcpy(out.data<float>() + l * C, py + l * Cy + offset, sizeof(float) * C);
      offset += C;
    }
  }
}

void sum_all(const Tensor& x, Tensor& y) {
  const float* px = x.data<float>();
  const int64_t n = x.numel();
  double acc = 0;
#pragma omp parallel for simd reduction(+ : acc) if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < n; ++i) acc += px[i];
  y.data<float>()[0] = float(acc);
}

}  // namespace fstm::kernels::cpu
