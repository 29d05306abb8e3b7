// parity_runner: runs a classifier (any make_classifier architecture) on weights and inputs written
// by tests/py_test_*_parity.py and writes back everything PyTorch is compared on: eval logits,
// train-mode logits and loss, every parameter gradient, the BatchNorm running statistics after the
// train step, and the losses of K (default 5) SGD-momentum and K AdamW steps.
//
//   parity_runner ARCH NUM_CLASSES WEIGHTS.safetensors INPUT.safetensors OUT.safetensors
//                 [--steps K] [--no-drop]
// INPUT holds "x" [N, H, W, 3] f32 (channels-last) and "labels" [N] i64. --steps sets the number
// of optimizer steps (0 skips them); --no-drop turns off dropout and stochastic depth
// (EfficientNet), so that a training step is deterministic.
//
// For ResNets it also writes "relu_masks": which ReLU outputs of the train-mode forward are
// positive (1) or zero (0), every ReLU in torchvision's call order (stem, then per block after bn1
// and after bn2 + identity), flattened and concatenated. A ReLU input within float rounding of 0
// can land on either side in two correct engines, and one such element moves the gradients
// upstream of it by percents; the test computes its float64 reference with these masks.
#include <iostream>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "io/safetensors.h"
#include "layers/classifier.h"
#include "layers/efficientnet.h"
#include "layers/optim.h"
#include "layers/resnet.h"

using namespace fstm;

namespace {

io::StateDict as_state_dict(const NamedTensors& named) {
  io::StateDict d;
  for (const auto& [name, t] : named) d.add(name, t);
  return d;
}

bool g_no_drop = false;

// The train-mode forward of a ResNet, block by block as ResNet::features runs it, keeping the
// output of every ReLU: returns the masks (1 where the output is positive) in torchvision's order.
Tensor resnet_relu_masks(ResNet& net, const Tensor& x) {
  NoGradGuard no_grad;
  std::vector<float> masks;
  auto keep = [&](const Tensor& y) {
    for (float v : y.to_vector()) masks.push_back(v > 0.0f ? 1.0f : 0.0f);
    return y;
  };
  Tensor h = net.maxpool->forward(keep(net.bn1->forward_relu(net.conv1->forward(x))));
  for (Sequential* layer : net.layers)
    for (size_t i = 0; i < layer->size(); ++i) {
      auto* b = dynamic_cast<BasicBlock*>(layer->at(i));
      FSTM_CHECK(b, net.arch(), ": layer child ", i, " is not a BasicBlock");
      const Tensor out = b->conv2->forward(keep(b->bn1->forward_relu(b->conv1->forward(h))));
      const Tensor identity = b->downsample ? b->downsample->forward(h) : h;
      h = keep(b->bn2->forward_relu(out, identity));
    }
  return Tensor::from_vector(masks, Shape{int64_t(masks.size())});
}

std::unique_ptr<ImageClassifier> load_model(const std::string& arch, int64_t classes, const io::SafetensorsFile& w) {
  auto model = make_classifier(arch, classes, 0);
  io::load_state_dict(w, as_state_dict(model->state_dict()));
  if (auto* e = dynamic_cast<EfficientNet*>(model.get()); e && g_no_drop) {
    e->set_dropout(0.0f);
    e->set_stochastic_depth(0.0f);
  }
  return model;
}

// Loss before each of `steps` optimizer steps, from the given weights, in train mode.
Tensor optimizer_losses(const std::string& arch, int64_t classes, const io::SafetensorsFile& w, const Tensor& x,
                        const Tensor& labels, bool adamw, int steps) {
  auto model = load_model(arch, classes, w);
  model->train();
  std::unique_ptr<Optimizer> opt;
  if (adamw) {
    AdamWOptions o;
    o.lr = 1e-3f;
    o.weight_decay = 4e-3f;
    opt = std::make_unique<AdamW>(model->named_parameters(), o);
  } else {
    SgdOptions o;
    o.lr = 0.01f;
    o.momentum = 0.9f;
    o.weight_decay = 1e-4f;
    opt = std::make_unique<SGD>(model->named_parameters(), o);
  }
  std::vector<float> losses;
  for (int i = 0; i < steps; ++i) {
    opt->zero_grad();
    Tensor loss = ops::cross_entropy(model->forward(x), labels);
    losses.push_back(loss.item());
    backward(loss);
    opt->step();
  }
  return Tensor::from_vector(losses, Shape{steps});
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 5;
  bool usage_error = argc < 6;
  for (int i = 6; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--no-drop") {
      g_no_drop = true;
    } else if (flag == "--steps" && i + 1 < argc) {
      steps = std::stoi(argv[++i]);
    } else {
      usage_error = true;
    }
  }
  if (usage_error) {
    std::cerr << "usage: parity_runner ARCH NUM_CLASSES WEIGHTS INPUT OUT [--steps K] [--no-drop]\n";
    return 2;
  }
  try {
    const std::string arch = argv[1];
    const int64_t classes = std::stoll(argv[2]);
    const io::SafetensorsFile weights = io::read_safetensors(argv[3]);
    const io::SafetensorsFile input = io::read_safetensors(argv[4]);
    const Tensor x = input.at("x"), labels = input.at("labels");
    io::StateDict out;

    if (auto fresh = make_classifier(arch, classes, 0); auto* e = dynamic_cast<EfficientNet*>(fresh.get())) {
      // The regularisation schedule as built: dropout, then each block's stochastic-depth probability.
      std::vector<float> probs{e->dropout()};
      for (const MBConv* b : e->blocks()) probs.push_back(b->stochastic_depth_prob());
      out.add("drop_probs", Tensor::from_vector(probs, Shape{int64_t(probs.size())}));
    }
    if (auto fresh = load_model(arch, classes, weights); auto* r = dynamic_cast<ResNet*>(fresh.get())) {
      r->train();  // a model of its own: this forward must not move the compared running statistics
      out.add("relu_masks", resnet_relu_masks(*r, x));
    }
    auto model = load_model(arch, classes, weights);
    model->eval();
    {
      NoGradGuard no_grad;
      out.add("eval_logits", model->forward(x));
    }
    model->train();
    Tensor logits = model->forward(x);
    Tensor loss = ops::cross_entropy(logits, labels);
    backward(loss);
    out.add("train_logits", logits.detach());
    out.add("train_loss", loss.detach());
    for (const auto& [name, p] : model->named_parameters()) out.add("grad." + name, p.grad());
    for (const auto& [name, b] : model->named_buffers()) out.add("buffer." + name, b);

    if (steps > 0) {
      out.add("sgd_losses", optimizer_losses(arch, classes, weights, x, labels, false, steps));
      out.add("adamw_losses", optimizer_losses(arch, classes, weights, x, labels, true, steps));
    }
    io::write_safetensors(argv[5], out);
  } catch (const std::exception& e) {
    std::cerr << "parity_runner: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
