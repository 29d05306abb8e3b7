#include "layers/efficientnet.h"

#include <algorithm>
#include <cmath>

#include "layers/init.h"

namespace fstm {

int64_t make_divisible(double v, int64_t divisor) {
  int64_t rounded = std::max(divisor, int64_t(v + double(divisor) / 2.0) / divisor * divisor);
  if (double(rounded) < 0.9 * v) rounded += divisor;  // never round down by more than 10%
  return rounded;
}

std::vector<MBConvConfig> efficientnet_stages(double width_mult, double depth_mult) {
  // b0's table (EfficientNet paper, Table 1): expand ratio, kernel, stride, in, out, layers.
  const MBConvConfig b0[] = {{1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},   {6, 5, 2, 24, 40, 2},
                             {6, 3, 2, 40, 80, 3},  {6, 5, 1, 80, 112, 3},  {6, 5, 2, 112, 192, 4},
                             {6, 3, 1, 192, 320, 1}};
  std::vector<MBConvConfig> out;
  for (MBConvConfig c : b0) {
    c.in_channels = make_divisible(double(c.in_channels) * width_mult);
    c.out_channels = make_divisible(double(c.out_channels) * width_mult);
    c.layers = int(std::ceil(double(c.layers) * depth_mult));
    out.push_back(c);
  }
  return out;
}

namespace {

// Convolutions as torchvision's EfficientNet initialises them: kaiming_normal_(mode="fan_out"),
// zero bias.
std::unique_ptr<Conv2d> make_conv(int64_t in, int64_t out, int kernel, int stride, int64_t groups, bool bias,
                                  Rng& rng) {
  Conv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel = kernel;
  o.stride = stride;
  o.padding = (kernel - 1) / 2;
  o.groups = int(groups);
  o.bias = bias;
  auto c = std::make_unique<Conv2d>(o, rng);
  init::kaiming_normal_fan_out(c->weight, rng);
  if (bias) c->bias.zero_();
  return c;
}

}  // namespace

ConvBnAct::ConvBnAct(int64_t in, int64_t out, int kernel, int stride, int64_t groups, bool silu, Rng& rng)
    : silu_(silu) {
  conv = register_module("0", make_conv(in, out, kernel, stride, groups, false, rng));
  bn = register_module("1", std::make_unique<BatchNorm>(out));
}

Tensor ConvBnAct::forward(const Tensor& x) {
  Tensor y = bn->forward(conv->forward(x));
  return silu_ ? ops::silu(y) : y;
}

SqueezeExcitation::SqueezeExcitation(int64_t channels, int64_t squeeze_channels, Rng& rng) {
  fc1 = register_module("fc1", make_conv(channels, squeeze_channels, 1, 1, 1, true, rng));
  fc2 = register_module("fc2", make_conv(squeeze_channels, channels, 1, 1, 1, true, rng));
}

Tensor SqueezeExcitation::forward(const Tensor& x) {
  // The pooled vector as a 1x1 image, so fc1/fc2 are the torchvision 1x1 convolutions.
  const int64_t N = x.size(0), C = x.size(3);
  Tensor s = ops::reshape(ops::global_avg_pool(x), Shape{N, 1, 1, C});
  s = ops::sigmoid(fc2->forward(ops::silu(fc1->forward(s))));
  return ops::mul_channel(x, ops::reshape(s, Shape{N, C}));
}

MBConv::MBConv(const MBConvConfig& c, float stochastic_depth_prob, Rng& rng, uint64_t drop_seed)
    : use_residual_(c.stride == 1 && c.in_channels == c.out_channels),
      drop_prob_(stochastic_depth_prob),
      drop_rng_(drop_seed) {
  FSTM_CHECK(c.stride == 1 || c.stride == 2, "MBConv: stride ", c.stride, " is not 1 or 2");
  auto seq = std::make_unique<Sequential>();
  const int64_t expanded = make_divisible(double(c.in_channels) * c.expand_ratio);
  if (expanded != c.in_channels) seq->add(std::make_unique<ConvBnAct>(c.in_channels, expanded, 1, 1, 1, true, rng));
  seq->add(std::make_unique<ConvBnAct>(expanded, expanded, c.kernel, c.stride, expanded, true, rng));
  seq->add(std::make_unique<SqueezeExcitation>(expanded, std::max<int64_t>(1, c.in_channels / 4), rng));
  seq->add(std::make_unique<ConvBnAct>(expanded, c.out_channels, 1, 1, 1, false, rng));
  block = register_module("block", std::move(seq));
}

void MBConv::set_stochastic_depth_prob(float p) {
  FSTM_CHECK(p >= 0.0f && p < 1.0f, "stochastic depth probability ", p, " is outside [0, 1)");
  drop_prob_ = p;
}

Tensor MBConv::forward(const Tensor& x) {
  Tensor y = block->forward(x);
  if (!use_residual_) return y;
  return ops::add(ops::drop_path(y, drop_prob_, training(), drop_rng_), x);
}

namespace {
constexpr float kStochasticDepth = 0.2f;  // torchvision's default stochastic_depth_prob
}

EfficientNet::EfficientNet(int variant, int64_t num_classes, uint64_t seed)
    : variant_(variant), num_classes_(num_classes) {
  FSTM_CHECK(variant == 3 || variant == 4, "EfficientNet-b", variant, " is not supported (b3 or b4)");
  FSTM_CHECK(num_classes >= 0, arch(), ": negative class count ", num_classes);
  // torchvision: b3 = (width 1.2, depth 1.4, dropout 0.3), b4 = (1.4, 1.8, 0.4).
  const double width = variant == 3 ? 1.2 : 1.4, depth = variant == 3 ? 1.4 : 1.8;
  dropout_ = variant == 3 ? 0.3f : 0.4f;
  stages_ = efficientnet_stages(width, depth);
  Rng rng(seed);

  auto features = std::make_unique<Sequential>();
  features->add(std::make_unique<ConvBnAct>(3, stages_[0].in_channels, 3, 2, 1, true, rng));
  int total = 0;
  for (const MBConvConfig& s : stages_) total += s.layers;
  int block_id = 0;
  for (const MBConvConfig& s : stages_) {
    auto stage = std::make_unique<Sequential>();
    for (int b = 0; b < s.layers; ++b) {
      MBConvConfig c = s;
      if (b > 0) {
        c.in_channels = c.out_channels;
        c.stride = 1;
      }
      const float p = kStochasticDepth * float(block_id) / float(total);
      stage->add(std::make_unique<MBConv>(c, p, rng, seed * 1000003u + uint64_t(block_id) + 1));
      ++block_id;
    }
    features->add(std::move(stage));
  }
  const int64_t last_in = stages_.back().out_channels;
  feature_dim_ = 4 * last_in;
  features->add(std::make_unique<ConvBnAct>(last_in, feature_dim_, 1, 1, 1, true, rng));
  feature_layers = register_module("features", std::move(features));

  if (num_classes > 0) {
    auto head = std::make_unique<Sequential>();
    dropout_layer_ = head->add(std::make_unique<Dropout>(dropout_, seed * 1000003u));
    fc_ = head->add(std::make_unique<Linear>(feature_dim_, num_classes, true, rng));
    // torchvision: U(+-1/sqrt(out_features)) weights, zero bias.
    const float range = float(1.0 / std::sqrt(double(num_classes)));
    init::uniform(fc_->weight, -range, range, rng);
    fc_->bias.zero_();
    classifier = register_module("classifier", std::move(head));
  }
}

std::vector<MBConv*> EfficientNet::blocks() const {
  std::vector<MBConv*> out;
  for (size_t s = 1; s + 1 < feature_layers->size(); ++s) {
    auto* stage = static_cast<Sequential*>(feature_layers->at(s));
    for (size_t b = 0; b < stage->size(); ++b) out.push_back(static_cast<MBConv*>(stage->at(b)));
  }
  return out;
}

void EfficientNet::set_dropout(float p) {
  FSTM_CHECK(p >= 0.0f && p < 1.0f, arch(), ": dropout probability ", p, " is outside [0, 1)");
  dropout_ = p;
  if (dropout_layer_) dropout_layer_->set_p(p);
}

void EfficientNet::set_stochastic_depth(float max_prob) {
  const std::vector<MBConv*> all = blocks();
  for (size_t i = 0; i < all.size(); ++i)
    all[i]->set_stochastic_depth_prob(max_prob * float(i) / float(all.size()));
}

Tensor EfficientNet::features(const Tensor& x) {
  FSTM_CHECK(x.dim() == 4 && x.size(3) == 3, arch(), ": expected images [N, H, W, 3], got ", x.describe());
  return ops::global_avg_pool(feature_layers->forward(x));
}

Tensor EfficientNet::head(const Tensor& f) {
  FSTM_CHECK(classifier != nullptr, arch(), " was built without a classification head (num_classes = 0)");
  return classifier->forward(f);
}

}  // namespace fstm
