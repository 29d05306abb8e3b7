// fstm predict: class scores for images (and, with FFmpeg and dlib, videos of faces).
#include <iostream>
#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "fstm/cli/commands.h"
#include "fstm/cli/options.h"
#include "layers/inference.h"

namespace fstm::cli {

namespace {

struct PredictOptions {
  ModelSpec model;
  std::vector<std::string> inputs;
  int batch = 16;
  std::string dtype = "f32";
  bool json = false;
};

int run_predict(const PredictOptions& o) {
  LoadedModel m = load_model(o.model);
  const int S = m.input_size;
  const int B = std::max(1, std::min<int>(o.batch, int(o.inputs.size())));
  InferencePlan plan([&](const Tensor& x) { return m.net->forward(x); }, Shape{B, S, S, 3}, parse_dtype(o.dtype),
                     m.net->device());
  std::cerr << "fstm predict: " << m.net->arch() << " (" << m.net->num_classes() << " classes) from " << m.source
            << ", " << S << "x" << S << ", " << plan.backend() << "\n";

  std::vector<nlohmann::json> results(o.inputs.size());  // in input order
  int failed = 0;
  Tensor batch = Tensor::zeros(Shape{B, S, S, 3});
  std::vector<size_t> files;  // input indices of the images in `batch`
  auto flush = [&] {
    if (files.empty()) return;
    Tensor logits = plan.run(batch.to(m.net->device()));
    Tensor probs = ops::softmax(logits.to(Device::cpu()));
    const int64_t K = logits.size(1);
    const std::vector<float> l = logits.to_vector(), p = probs.to_vector();
    for (size_t i = 0; i < files.size(); ++i) {
      const std::string& file = o.inputs[files[i]];
      nlohmann::json r = {{"file", file},
                          {"logits", std::vector<float>(l.begin() + int64_t(i) * K, l.begin() + int64_t(i + 1) * K)},
                          {"probs", std::vector<float>(p.begin() + int64_t(i) * K, p.begin() + int64_t(i + 1) * K)}};
      if (!o.json) {
        const auto& pr = r["probs"];
        const size_t best = size_t(std::max_element(pr.begin(), pr.end()) - pr.begin());
        std::cout << file << ": class " << best << " (p = " << pr[best].get<float>() << ")\n";
      }
      results[files[i]] = r;
    }
    files.clear();
    batch.zero_();
  };
  for (size_t index = 0; index < o.inputs.size(); ++index) {
    const std::string& path = o.inputs[index];
    try {
      io::Image im = io::load_image(path);
      if (im.width != S || im.height != S) im = io::resize_bilinear(im, S, S);
      io::image_into_batch(im, m.normalization, batch, int64_t(files.size()));
      files.push_back(index);
    } catch (const Error& e) {
      ++failed;
      std::cerr << "fstm predict: skipping " << e.what() << "\n";
      results[index] = {{"file", path}, {"error", e.what()}};
      continue;
    }
    if (int(files.size()) == B) flush();
  }
  flush();
  if (o.json) std::cout << nlohmann::json(results).dump(2) << "\n";
  if (failed) std::cerr << "fstm predict: " << failed << " of " << o.inputs.size() << " inputs failed\n";
  return failed ? 1 : 0;
}

}  // namespace

Command make_predict_command() {
  auto o = std::make_shared<PredictOptions>();
  Command c;
  c.add = [o](CLI::App& app) {
    CLI::App* s = app.add_subcommand("predict", "Score images with a classifier (logits and probabilities)");
    add_model_options(*s, o->model);
    s->add_option("--batch", o->batch, "Images per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--dtype", o->dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
    s->add_flag("--json", o->json, "Print a JSON list with file, logits and probs per input");
    s->add_option("inputs", o->inputs, "Image files (PNG, JPEG, BMP)")->required();
    return s;
  };
  c.run = [o] { return run_predict(*o); };
  return c;
}

}  // namespace fstm::cli
