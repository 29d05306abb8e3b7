#include "layers/resnet.h"

#include "layers/init.h"

namespace fstm {

namespace {
std::unique_ptr<Conv2d> conv(int64_t in, int64_t out, int kernel, int stride, int padding, Rng& rng) {
  Conv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel = kernel;
  o.stride = stride;
  o.padding = padding;
  auto c = std::make_unique<Conv2d>(o, rng);
  init::kaiming_normal_fan_out(c->weight, rng);  // torchvision's ResNet initialisation
  return c;
}
}  // namespace

BasicBlock::BasicBlock(int64_t in_channels, int64_t channels, int stride, Rng& rng) {
  conv1 = register_module("conv1", conv(in_channels, channels, 3, stride, 1, rng));
  bn1 = register_module("bn1", std::make_unique<BatchNorm>(channels));
  conv2 = register_module("conv2", conv(channels, channels, 3, 1, 1, rng));
  bn2 = register_module("bn2", std::make_unique<BatchNorm>(channels));
  if (stride != 1 || in_channels != channels) {
    auto ds = std::make_unique<Sequential>();
    ds->add(conv(in_channels, channels, 1, stride, 0, rng));
    ds->add(std::make_unique<BatchNorm>(channels));
    downsample = register_module("downsample", std::move(ds));
  }
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = conv2->forward(bn1->forward_relu(conv1->forward(x)));
  Tensor identity = downsample ? downsample->forward(x) : x;
  return bn2->forward_relu(out, identity);  // relu(bn2(out) + identity)
}

ResNet::ResNet(int depth, int64_t num_classes, uint64_t seed) : depth_(depth), num_classes_(num_classes) {
  FSTM_CHECK(depth == 18 || depth == 34, "ResNet depth ", depth, " is not supported (18 or 34)");
  FSTM_CHECK(num_classes >= 0, "ResNet: negative class count ", num_classes);
  Rng rng(seed);
  const int blocks[4] = {2, 2, 2, 2};
  const int blocks34[4] = {3, 4, 6, 3};
  const int* counts = depth == 18 ? blocks : blocks34;

  conv1 = register_module("conv1", conv(3, 64, 7, 2, 3, rng));
  bn1 = register_module("bn1", std::make_unique<BatchNorm>(64));
  maxpool = register_module("maxpool", std::make_unique<MaxPool2d>(kernels::Pool2dParams{3, 3, 2, 2, 1, 1}));
  int64_t in = 64;
  for (int i = 0; i < 4; ++i) {
    const int64_t channels = 64 << i;
    auto layer = std::make_unique<Sequential>();
    for (int b = 0; b < counts[i]; ++b) {
      layer->add(std::make_unique<BasicBlock>(in, channels, (b == 0 && i > 0) ? 2 : 1, rng));
      in = channels;
    }
    layers[i] = register_module("layer" + std::to_string(i + 1), std::move(layer));
  }
  if (num_classes > 0) fc = register_module("fc", std::make_unique<Linear>(512, num_classes, true, rng));
}

Tensor ResNet::features(const Tensor& x) {
  FSTM_CHECK(x.dim() == 4 && x.size(3) == 3, arch(), ": expected images [N, H, W, 3], got ", x.describe());
  Tensor h = maxpool->forward(bn1->forward_relu(conv1->forward(x)));
  for (Sequential* layer : layers) h = layer->forward(h);
  return ops::global_avg_pool(h);
}

Tensor ResNet::head(const Tensor& f) {
  FSTM_CHECK(fc != nullptr, arch(), " was built without a classification head (num_classes = 0)");
  return fc->forward(f);
}

}  // namespace fstm
