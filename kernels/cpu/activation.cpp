// Fast activations: one pass over memory, OpenMP across cores, SIMD within. Sigmoid and SiLU need
// exp, which the compiler does not vectorise from libm (expf is a scalar call) nor from a scalar
// polynomial (its range clamp is a float compare, which GCC keeps as a branch under the default
// -ftrapping-math), so they are written on 8-lane GCC/Clang vector types.
#include <bit>
#include <cstdint>
#include <cstring>

#include "kernels/activation.h"

namespace fstm::kernels::cpu {

namespace {

constexpr int64_t kParallelGrain = 1 << 15;

using f32x8 = float __attribute__((vector_size(32)));
using i32x8 = int32_t __attribute__((vector_size(32)));
constexpr int kLanes = 8;

f32x8 splat(float v) { return v + f32x8{}; }
f32x8 load8(const float* p) {
  f32x8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof v); }

// exp(x) for float, within 2 ulp over the range that matters here. Cody-Waite range reduction
// x = n ln2 + r with |r| <= ln2/2 (n rounded by the 1.5 * 2^23 trick), a degree-7 polynomial for
// exp(r) (the classic Cephes coefficients), and 2^n built in the exponent bits. Inputs are clamped
// to [-87, 88], where 2^n stays a normal float; beyond that sigmoid is 0 or 1 to float precision.
f32x8 exp8(f32x8 x) {
  x = x < -87.0f ? splat(-87.0f) : x;
  x = x > 88.0f ? splat(88.0f) : x;
  const f32x8 n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const f32x8 r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in two: n*ln2 exact
  f32x8 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const f32x8 e = p * r * r + r + 1.0f;
  const i32x8 bits = (__builtin_convertvector(n, i32x8) + 127) << 23;
  return e * std::bit_cast<f32x8>(bits);
}

f32x8 sigmoid8(f32x8 x) { return 1.0f / (1.0f + exp8(-x)); }

// y[i] = op(a[i..i+8), b[i..i+8)) over n elements; the last partial vector goes through padded copies.
template <typename Op>
void map8(const float* a, const float* b, float* y, int64_t n, Op op) {
  const int64_t full = n / kLanes * kLanes;
#pragma omp parallel for if (n > kParallelGrain) schedule(static)
  for (int64_t i = 0; i < full; i += kLanes) store8(y + i, op(load8(a + i), load8(b + i)));
  if (full < n) {
    float ta[kLanes] = {}, tb[kLanes] = {}, ty[kLanes];
    const size_t rest = sizeof(float) * size_t(n - full);
    std::memcpy(ta, a + full, rest);
    std::memcpy(tb, b + full, rest);
    store8(ty, op(load8(ta), load8(tb)));
    std::memcpy(y + full, ty, rest);
  }
}

}  // namespace

void activation_forward(Activation a, const Tensor& x, Tensor& y) {
  const float* px = x.data<float>();
  float* py = y.data<float>();
  const int64_t n = x.numel();
  switch (a) {
    case Activation::Identity:
      if (py != px) std::memcpy(py, px, sizeof(float) * size_t(n));
      break;
    case Activation::Relu:
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
      for (int64_t i = 0; i < n; ++i) py[i] = px[i] > 0.0f ? px[i] : 0.0f;
      break;
    case Activation::Sigmoid:
      map8(px, px, py, n, [](f32x8 v, f32x8) { return sigmoid8(v); });
      break;
    case Activation::Silu:
      map8(px, px, py, n, [](f32x8 v, f32x8) { return v * sigmoid8(v); });
      break;
  }
}

void activation_backward(Activation a, const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx) {
  const float* pdy = dy.data<float>();
  float* pdx = dx.data<float>();
  const int64_t n = dy.numel();
  switch (a) {
    case Activation::Identity:
      if (pdx != pdy) std::memcpy(pdx, pdy, sizeof(float) * size_t(n));
      break;
    case Activation::Relu: {
      const float* py = y.data<float>();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
      for (int64_t i = 0; i < n; ++i) pdx[i] = py[i] > 0.0f ? pdy[i] : 0.0f;
      break;
    }
    case Activation::Sigmoid: {
      const float* py = y.data<float>();
#pragma omp parallel for simd if (n > kParallelGrain) schedule(static)
      for (int64_t i = 0; i < n; ++i) pdx[i] = pdy[i] * py[i] * (1.0f - py[i]);
      break;
    }
    case Activation::Silu: {
      map8(x.data<float>(), pdy, pdx, n, [](f32x8 v, f32x8 g) {
        const f32x8 s = sigmoid8(v);
        return g * s * (1.0f + v * (1.0f - s));
      });
      break;
    }
  }
}

}  // namespace fstm::kernels::cpu
