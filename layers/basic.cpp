#include "layers/basic.h"

#include "layers/init.h"

namespace fstm {

Conv2d::Conv2d(const Conv2dOptions& o, Rng& rng) : options_(o) {
  FSTM_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.groups > 0 && o.in_channels % o.groups == 0 &&
                 o.out_channels % o.groups == 0,
             "Conv2d: ", o.in_channels, " -> ", o.out_channels, " channels do not fit ", o.groups, " groups");
  register_parameter("weight", &weight, Tensor::empty(Shape{o.out_channels, o.in_channels / o.groups, o.kernel, o.kernel}));
  init::default_weight(weight, rng);
  if (o.bias) {
    register_parameter("bias", &bias, Tensor::empty(Shape{o.out_channels}));
    init::default_bias(bias, init::fan_in(weight.shape()), rng);
  }
}

kernels::Conv2dParams Conv2d::params() const {
  kernels::Conv2dParams p;
  p.stride_h = p.stride_w = options_.stride;
  p.pad_h = p.pad_w = options_.padding;
  p.dilation_h = p.dilation_w = options_.dilation;
  p.groups = options_.groups;
  return p;
}

Tensor Conv2d::forward(const Tensor& x) { return ops::conv2d(x, weight, bias, params()); }

BatchNorm::BatchNorm(int64_t channels, float eps, float momentum) : eps_(eps), momentum_(momentum) {
  register_parameter("weight", &weight, Tensor::full(Shape{channels}, 1.0f));
  register_parameter("bias", &bias, Tensor::zeros(Shape{channels}));
  register_buffer("running_mean", &running_mean, Tensor::zeros(Shape{channels}));
  register_buffer("running_var", &running_var, Tensor::full(Shape{channels}, 1.0f));
  register_buffer("num_batches_tracked", &num_batches_tracked, Tensor::zeros(Shape{}, DType::i64), true);
}

Tensor BatchNorm::forward(const Tensor& x) {
  count_batch();
  return ops::batch_norm(x, weight, bias, running_mean, running_var, training(), momentum_, eps_);
}

Tensor BatchNorm::forward_relu(const Tensor& x, const Tensor& residual) {
  count_batch();
  return ops::batch_norm_relu(x, weight, bias, running_mean, running_var, training(), momentum_, eps_, residual);
}

void BatchNorm::count_batch() {
  if (training()) num_batches_tracked.data<int64_t>()[0] += 1;  // as torchvision's state dicts count
}

Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias, Rng& rng) {
  FSTM_CHECK(in_features > 0 && out_features > 0, "Linear: ", in_features, " -> ", out_features, " features");
  register_parameter("weight", &weight, Tensor::empty(Shape{out_features, in_features}));
  init::default_weight(weight, rng);
  if (has_bias) {
    register_parameter("bias", &bias, Tensor::empty(Shape{out_features}));
    init::default_bias(bias, in_features, rng);
  }
}

Tensor Linear::forward(const Tensor& x) { return ops::linear(x, weight, bias); }

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (Layer* l : layers_) h = l->forward(h);
  return h;
}

}  // namespace fstm
