// fst_loss_runner: the FST-Matching training loss and its gradients, for tests/py_test_fst_parity.py.
//
//   fst_loss_runner MODEL.safetensors BATCH.safetensors OUT.safetensors
// MODEL is an fstm checkpoint of an fst model (metadata model/arch/identities/fst_head/...). BATCH
// holds "x" [N, H, W, 3] f32 (channels-last), "det", "source", "target" [N] i64, and metadata
// "bound" (logistic, clamp:C, none) and "mode" (train or eval). OUT gets "loss.<term>" and
// "loss.total" (scalars), "logits.det" [N, 2] and "grad.<parameter>" for every parameter.
#include <iostream>

#include "autograd/autograd.h"
#include "fstm/lib/model_loader.h"
#include "fstm/lib/models.h"
#include "io/safetensors.h"

using namespace fstm;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: fst_loss_runner MODEL.safetensors BATCH.safetensors OUT.safetensors\n";
    return 2;
  }
  try {
    ModelSpec spec;
    spec.model = argv[1];
    LoadedModel m = load_model(spec);
    const io::SafetensorsFile batch = io::read_safetensors(argv[2]);
    m.net->train(batch.metadata.at("mode") == "train");
    LossWeights w;
    w.interaction_loss = parse_interaction_bound(batch.metadata.at("bound"));
    const Losses L = compute_losses(*m.net, m.config.type, batch.at("x"), batch.at("det"), batch.at("source"),
                                    batch.at("target"), w);
    backward(L.total);
    io::StateDict out;
    out.add("loss.total", L.total.clone());
    for (const auto& [name, t] : L.terms) out.add("loss." + name, t.clone());
    out.add("logits.det", L.logits.detach().clone());
    for (const auto& [name, p] : m.net->named_parameters()) out.add("grad." + name, p.grad());
    io::write_safetensors(argv[3], out);
  } catch (const std::exception& e) {
    std::cerr << "fst_loss_runner: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
