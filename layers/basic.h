// The basic layers, with torch.nn's parameter names, defaults and initialisation.
#pragma once
#include <memory>
#include <vector>

#include "autograd/ops.h"
#include "layers/module.h"
#include "tensor/random.h"

namespace fstm {

struct Conv2dOptions {
  int64_t in_channels = 0, out_channels = 0;
  int kernel = 3, stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = false;
};

class Conv2d : public Layer {
 public:
  Conv2d(const Conv2dOptions& o, Rng& rng);
  Tensor forward(const Tensor& x) override;
  const Conv2dOptions& options() const { return options_; }
  kernels::Conv2dParams params() const;

  Tensor weight;  // [out, in / groups, k, k]
  Tensor bias;    // [out] or undefined

 private:
  Conv2dOptions options_;
};

// BatchNorm over the channel (last) axis of [N, H, W, C] or [N, C] inputs (torch's BatchNorm2d
// and BatchNorm1d). Buffers: running_mean, running_var, num_batches_tracked (host i64 scalar).
class BatchNorm : public Layer {
 public:
  explicit BatchNorm(int64_t channels, float eps = 1e-5f, float momentum = 0.1f);
  Tensor forward(const Tensor& x) override;
  // relu(forward(x) + residual), residual optional: fused into one op in training mode.
  Tensor forward_relu(const Tensor& x, const Tensor& residual = Tensor());
  float eps() const { return eps_; }

  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  void count_batch();  // num_batches_tracked += 1 in training mode
  float eps_, momentum_;
};

class Linear : public Layer {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias, Rng& rng);
  Tensor forward(const Tensor& x) override;

  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
};

class ReLU : public Layer {
 public:
  Tensor forward(const Tensor& x) override { return ops::relu(x); }
};

class MaxPool2d : public Layer {
 public:
  explicit MaxPool2d(const kernels::Pool2dParams& p) : p_(p) {}
  Tensor forward(const Tensor& x) override { return ops::max_pool2d(x, p_); }

 private:
  kernels::Pool2dParams p_;
};

// adaptive_avg_pool2d to 1x1 + flatten: [N, H, W, C] -> [N, C]
class GlobalAvgPool : public Layer {
 public:
  Tensor forward(const Tensor& x) override { return ops::global_avg_pool(x); }
};

class Dropout : public Layer {
 public:
  Dropout(float p, uint64_t seed) : p_(p), rng_(seed) {}
  Tensor forward(const Tensor& x) override { return ops::dropout(x, p_, training(), rng_); }
  Rng& rng() { return rng_; }
  float p() const { return p_; }
  void set_p(float p) { p_ = p; }  // checked by ops::dropout

 private:
  float p_;
  Rng rng_;
};

// Children named "0", "1", ... as torch.nn.Sequential.
class Sequential : public Layer {
 public:
  Sequential() = default;
  template <typename L>
  L* add(std::unique_ptr<L> layer) {
    L* raw = register_module(std::to_string(layers_.size()), std::move(layer));
    layers_.push_back(raw);
    return raw;
  }
  Tensor forward(const Tensor& x) override;
  size_t size() const { return layers_.size(); }
  Layer* at(size_t i) const { return layers_[i]; }

 private:
  std::vector<Layer*> layers_;
};

}  // namespace fstm
