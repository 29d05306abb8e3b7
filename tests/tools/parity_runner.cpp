// parity_runner: runs a ResNet on weights and inputs written by tests/py_test_resnet_parity.py and
// writes back everything PyTorch is compared on: eval logits, train-mode logits and loss, every
// parameter gradient, the BatchNorm running statistics after the train step, and the losses of 5
// SGD-momentum and 5 AdamW steps.
//
//   parity_runner ARCH NUM_CLASSES WEIGHTS.safetensors INPUT.safetensors OUT.safetensors
// INPUT holds "x" [N, H, W, 3] f32 (channels-last) and "labels" [N] i64.
#include <iostream>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "io/safetensors.h"
#include "layers/classifier.h"
#include "layers/optim.h"

using namespace fstm;

namespace {

io::StateDict as_state_dict(const NamedTensors& named) {
  io::StateDict d;
  for (const auto& [name, t] : named) d.add(name, t);
  return d;
}

std::unique_ptr<ImageClassifier> load_model(const std::string& arch, int64_t classes, const io::SafetensorsFile& w) {
  auto model = make_classifier(arch, classes, 0);
  io::load_state_dict(w, as_state_dict(model->state_dict()));
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
  if (argc != 6) {
    std::cerr << "usage: parity_runner ARCH NUM_CLASSES WEIGHTS INPUT OUT\n";
    return 2;
  }
  try {
    const std::string arch = argv[1];
    const int64_t classes = std::stoll(argv[2]);
    const io::SafetensorsFile weights = io::read_safetensors(argv[3]);
    const io::SafetensorsFile input = io::read_safetensors(argv[4]);
    const Tensor x = input.at("x"), labels = input.at("labels");
    io::StateDict out;

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

    out.add("sgd_losses", optimizer_losses(arch, classes, weights, x, labels, false, 5));
    out.add("adamw_losses", optimizer_losses(arch, classes, weights, x, labels, true, 5));
    io::write_safetensors(argv[5], out);
  } catch (const std::exception& e) {
    std::cerr << "parity_runner: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
