// EfficientNet-b3/b4 with torchvision's exact topology, initialisation and parameter names
// (torchvision.models.efficientnet, 0.14), so torchvision state dicts load unchanged.
//
//   features.0            stem: conv 3x3/2 (3 -> C0) + BN + SiLU            "features.0.{0,1}"
//   features.1 .. 7       stages of MBConv blocks                            "features.S.B.block.K..."
//   features.8            head: conv 1x1 (C7 -> 4 C7) + BN + SiLU
//   avgpool, classifier   Dropout (classifier.0), Linear (classifier.1)
//
// MBConv (one block of a stage):  x -> [expand 1x1 + BN + SiLU, skipped when the ratio is 1]
//   -> depthwise kxk/s + BN + SiLU -> squeeze-excitation -> project 1x1 + BN
//   -> (+ x through stochastic depth, when stride 1 and the channel count is unchanged)
// Squeeze-excitation: scale = sigmoid(fc2(silu(fc1(avgpool(h))))), h * scale; fc1/fc2 are 1x1
// convolutions with bias, fc1 squeezes to max(1, block input channels / 4).
//
// Channel widths are the b0 widths times the width multiplier, rounded by _make_divisible(8);
// block counts are ceil(b0 count x depth multiplier). BatchNorm uses torch's defaults
// (eps 1e-5, momentum 0.1). Block i of the T blocks drops its residual branch with probability
// 0.2 * i / T in training (torchvision's StochasticDepth "row": whole samples), and the
// classifier's dropout is 0.3 (b3) or 0.4 (b4).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/basic.h"
#include "layers/classifier.h"

namespace fstm {

// torchvision's _make_divisible(v, divisor): the nearest multiple of divisor, at least divisor,
// never more than 10% below v.
int64_t make_divisible(double v, int64_t divisor = 8);

// One row of EfficientNet's table (after the width/depth multipliers).
struct MBConvConfig {
  double expand_ratio;
  int kernel, stride;
  int64_t in_channels, out_channels;
  int layers;
};

// Conv2dNormActivation: conv (no bias) + BatchNorm + optional SiLU, children "0" and "1".
class ConvBnAct : public Layer {
 public:
  ConvBnAct(int64_t in, int64_t out, int kernel, int stride, int64_t groups, bool silu, Rng& rng);
  Tensor forward(const Tensor& x) override;

  Conv2d* conv;
  BatchNorm* bn;

 private:
  bool silu_;
};

// torchvision.ops.SqueezeExcitation with SiLU inside and a sigmoid scale.
class SqueezeExcitation : public Layer {
 public:
  SqueezeExcitation(int64_t channels, int64_t squeeze_channels, Rng& rng);
  Tensor forward(const Tensor& x) override;

  Conv2d* fc1;  // [squeeze, C, 1, 1] + bias
  Conv2d* fc2;  // [C, squeeze, 1, 1] + bias
};

class MBConv : public Layer {
 public:
  MBConv(const MBConvConfig& c, float stochastic_depth_prob, Rng& rng, uint64_t drop_seed);
  Tensor forward(const Tensor& x) override;

  bool use_residual() const { return use_residual_; }
  float stochastic_depth_prob() const { return drop_prob_; }
  void set_stochastic_depth_prob(float p);

  Sequential* block;

 private:
  bool use_residual_;
  float drop_prob_;
  Rng drop_rng_;
};

class EfficientNet : public ImageClassifier {
 public:
  // variant 3 or 4 (b3, b4). num_classes == 0 builds the backbone alone.
  EfficientNet(int variant, int64_t num_classes, uint64_t seed = 0);

  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& f) override;
  int64_t feature_dim() const override { return feature_dim_; }
  int64_t num_classes() const override { return num_classes_; }
  std::string arch() const override { return "efficientnet_b" + std::to_string(variant_); }
  std::string head_prefix() const override { return "classifier."; }

  // The image size torchvision's weights were trained at (300 for b3, 380 for b4).
  int native_size() const { return variant_ == 3 ? 300 : 380; }
  const std::vector<MBConvConfig>& stages() const { return stages_; }
  std::vector<MBConv*> blocks() const;  // every MBConv, in order

  // Regularisation in training mode. The defaults are torchvision's; setting both to 0 makes a
  // training step deterministic (the parity tests use it).
  void set_dropout(float p);
  float dropout() const { return dropout_; }
  void set_stochastic_depth(float max_prob);  // block i of T gets max_prob * i / T

  Sequential* feature_layers;  // "features"
  Sequential* classifier = nullptr;

 private:
  int variant_;
  int64_t num_classes_, feature_dim_;
  float dropout_;
  std::vector<MBConvConfig> stages_;
  Dropout* dropout_layer_ = nullptr;
  Linear* fc_ = nullptr;
};

// The rows of EfficientNet-b{variant}'s table, as torchvision builds them.
std::vector<MBConvConfig> efficientnet_stages(double width_mult, double depth_mult);

}  // namespace fstm
