// fstm predict: class scores for images (and, with FFmpeg and dlib, videos of faces).
#include <iostream>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "autograd/ops.h"
#include "fstm/detector.h"
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
  int frames = 32;
  std::string align = "landmarks";
};

bool is_video(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".mp4" || ext == ".avi" || ext == ".mov" || ext == ".mkv" || ext == ".webm";
}

// Videos go through the embedding API: faces detected, aligned as in training, frames scored, and
// the video's score is the mean frame probability of "fake".
nlohmann::json predict_video(Detector& detector, const std::string& path, bool print) {
  const VideoScore v = detector.score_video(path);
  nlohmann::json frames = nlohmann::json::array();
  for (const FrameScore& f : v.frames) {
    nlohmann::json j = {{"frame", f.frame}, {"face", f.face}};
    if (f.face) j["fake_probability"] = f.fake_probability;
    frames.push_back(j);
  }
  if (print)
    std::cout << path << ": " << (v.fake_probability >= 0.5f ? "FAKE" : "real") << " (p(fake) = " << v.fake_probability
              << ", " << v.faces << " of " << v.frames.size() << " sampled frames with a face)\n";
  return {{"file", path}, {"video", true}, {"fake_probability", v.fake_probability}, {"faces", v.faces},
          {"frame_count", v.frame_count}, {"fps", v.fps}, {"frames", frames}};
}

int run_predict(const PredictOptions& o) {
  std::unique_ptr<Detector> detector;
  if (std::any_of(o.inputs.begin(), o.inputs.end(), is_video)) {
    FSTM_CHECK(!o.model.model.empty(), "videos need a detector checkpoint: --model DIR/best.safetensors (det or fst)");
    DetectorOptions d;
    d.device = o.model.device;
    d.dtype = o.dtype;
    d.batch = o.batch;
    d.frames = o.frames;
    d.align = o.align;
    detector = std::make_unique<Detector>(Detector::load(o.model.model, d));
    std::cerr << "fstm predict: videos with " << detector->describe() << "\n";
  }
  const int images = int(std::count_if(o.inputs.begin(), o.inputs.end(), [](auto& p) { return !is_video(p); }));
  LoadedModel m;
  std::unique_ptr<InferencePlan> image_plan;
  if (images > 0) {
    m = load_model(o.model);
    const int S = m.input_size, B = std::max(1, std::min(o.batch, images));
    image_plan = std::make_unique<InferencePlan>([&](const Tensor& x) { return m.net->forward(x); },
                                                 Shape{B, S, S, 3}, parse_dtype(o.dtype), m.net->device());
    std::cerr << "fstm predict: " << m.net->arch() << " (" << m.net->num_classes() << " classes) from " << m.source
              << ", " << S << "x" << S << ", " << image_plan->backend() << "\n";
  }
  const int S = m.input_size;
  const int B = image_plan ? int(image_plan->input_shape()[0]) : 1;

  std::vector<nlohmann::json> results(o.inputs.size());  // in input order
  int failed = 0;
  Tensor batch = Tensor::zeros(Shape{B, S, S, 3});
  std::vector<size_t> files;  // input indices of the images in `batch`
  auto flush = [&] {
    if (files.empty()) return;
    Tensor logits = image_plan->run(batch.to(m.net->device()));
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
      if (is_video(path)) {
        results[index] = predict_video(*detector, path, !o.json);
        continue;
      }
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
    CLI::App* s = app.add_subcommand("predict", "Score images with a classifier (logits and probabilities), or videos with a detector");
    add_model_options(*s, o->model);
    s->add_option("--batch", o->batch, "Images per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--dtype", o->dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
    s->add_option("--frames", o->frames, "Frames sampled evenly from each video")->capture_default_str()
        ->check(CLI::PositiveNumber);
    s->add_option("--align", o->align, "Face alignment for videos: landmarks (5-point) or box (FF++ crop)")
        ->check(CLI::IsMember({"landmarks", "box"}))->capture_default_str();
    s->add_flag("--json", o->json, "Print a JSON list with file, logits and probs per image (video: fake_probability "
                "and per-frame scores)");
    s->add_option("inputs", o->inputs, "Images (PNG, JPEG, BMP) of faces, or videos (.mp4, .avi, .mov, .mkv)")
        ->required();
    return s;
  };
  c.run = [o] { return run_predict(*o); };
  return c;
}

}  // namespace fstm::cli
