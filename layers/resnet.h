// ResNet-18/34 with torchvision's exact topology and parameter names (torchvision.models.resnet).
//
//   conv1 7x7/2 -> bn1 -> relu -> maxpool 3x3/2 -> layer1..layer4 -> avgpool -> fc
//   layer i: BasicBlocks with 64, 128, 256, 512 channels; the first block of layers 2-4 has
//   stride 2 and a 1x1/2 conv + BN shortcut named "downsample.0" / "downsample.1".
#pragma once
#include <memory>

#include "layers/basic.h"
#include "layers/classifier.h"

namespace fstm {

class BasicBlock : public Layer {
 public:
  BasicBlock(int64_t in_channels, int64_t channels, int stride, Rng& rng);
  Tensor forward(const Tensor& x) override;

  Conv2d* conv1;
  BatchNorm* bn1;
  Conv2d* conv2;
  BatchNorm* bn2;
  Sequential* downsample = nullptr;  // conv 1x1 + BN when the shape changes
};

class ResNet : public ImageClassifier {
 public:
  // depth 18 or 34
  ResNet(int depth, int64_t num_classes, uint64_t seed = 0);

  Tensor features(const Tensor& x) override;
  Tensor head(const Tensor& f) override;
  int64_t feature_dim() const override { return 512; }
  int64_t num_classes() const override { return num_classes_; }
  std::string arch() const override { return "resnet" + std::to_string(depth_); }
  std::string head_prefix() const override { return "fc."; }

  Conv2d* conv1;
  BatchNorm* bn1;
  MaxPool2d* maxpool;
  Sequential* layers[4];
  Linear* fc = nullptr;

 private:
  int depth_;
  int64_t num_classes_;
};

}  // namespace fstm
