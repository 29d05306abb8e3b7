#include "layers/init.h"

#include <cmath>

namespace fstm::init {

namespace {
int64_t receptive_field(const Shape& s) {
  int64_t r = 1;
  for (int i = 2; i < s.size(); ++i) r *= s[i];
  return r;
}
}  // namespace

int64_t fan_in(const Shape& s) { return s.size() >= 2 ? s[1] * receptive_field(s) : s[0]; }
int64_t fan_out(const Shape& s) { return s[0] * receptive_field(s); }

void uniform(Tensor& t, float lo, float hi, Rng& rng) {
  Tensor host = Tensor::empty(t.shape());
  float* p = host.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i) p[i] = rng.uniform(lo, hi);
  t.copy_(host);
}

void normal(Tensor& t, float mean, float std, Rng& rng) {
  Tensor host = Tensor::empty(t.shape());
  float* p = host.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i) p[i] = rng.normal(mean, std);
  t.copy_(host);
}

void kaiming_normal_fan_out(Tensor& t, Rng& rng) {
  normal(t, 0.0f, float(std::sqrt(2.0 / double(fan_out(t.shape())))), rng);
}

void default_weight(Tensor& t, Rng& rng) {
  const float bound = float(1.0 / std::sqrt(double(fan_in(t.shape()))));
  uniform(t, -bound, bound, rng);
}

void default_bias(Tensor& bias, int64_t weight_fan_in, Rng& rng) {
  const float bound = weight_fan_in > 0 ? float(1.0 / std::sqrt(double(weight_fan_in))) : 0.0f;
  uniform(bias, -bound, bound, rng);
}

}  // namespace fstm::init
