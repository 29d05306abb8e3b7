// Weight initialisation as torch.nn.init does it, drawing from fstm::Rng.
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fstm::init {

// fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field (torch's rule).
int64_t fan_in(const Shape& s);
int64_t fan_out(const Shape& s);

void uniform(Tensor& t, float lo, float hi, Rng& rng);
void normal(Tensor& t, float mean, float std, Rng& rng);
// torch.nn.init.kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / fan_out).
void kaiming_normal_fan_out(Tensor& t, Rng& rng);
// torch's default for Conv2d/Linear weights: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)).
void default_weight(Tensor& t, Rng& rng);
// torch's default bias: U(+-1/sqrt(fan_in of the weight)).
void default_bias(Tensor& bias, int64_t weight_fan_in, Rng& rng);

}  // namespace fstm::init
