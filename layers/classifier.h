// An image classifier = a backbone that pools an image to a feature vector, plus a head.
// ResNet and EfficientNet implement it with torchvision's parameter names, so their state
// dicts load unchanged. num_classes == 0 builds the backbone alone (the FST-Matching model
// attaches its own heads).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace fstm {

class ImageClassifier : public Layer {
 public:
  // x [N, H, W, 3] (normalised RGB) -> [N, feature_dim()]
  virtual Tensor features(const Tensor& x) = 0;
  // [N, feature_dim()] -> logits [N, num_classes()]
  virtual Tensor head(const Tensor& features) = 0;
  Tensor forward(const Tensor& x) override { return head(features(x)); }

  virtual int64_t feature_dim() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual std::string arch() const = 0;
  // Prefix of the head's parameters in the state dict ("fc." for ResNet), so ImageNet weights can
  // be loaded without their 1000-class head.
  virtual std::string head_prefix() const = 0;
};

// "resnet18", "resnet34", "efficientnet_b3", "efficientnet_b4". Throws fstm::Error listing the
// known names.
std::unique_ptr<ImageClassifier> make_classifier(const std::string& arch, int64_t num_classes, uint64_t seed = 0);
std::vector<std::string> known_architectures();

}  // namespace fstm
