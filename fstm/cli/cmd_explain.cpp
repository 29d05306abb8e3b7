// fstm explain: the sampled Shapley map of one image for one class (fstm/lib/shapley.h), as a
// JSON object, a heatmap overlay and the raw map.
//
//   fstm explain --model det.safetensors --image face.png --out maps/
//   fstm explain --arch resnet18 --num-classes 2 --weights w.safetensors --image face.png
//                --grid 16 --samples 100 --dtype bf16 --json
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "autograd/autograd.h"
#include "fstm/cli/commands.h"
#include "fstm/cli/options.h"
#include "fstm/lib/explainer.h"
#include "fstm/lib/heatmap.h"
#include "fstm/lib/model_loader.h"
#include "fstm/lib/progress.h"
#include "fstm/lib/shapley.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "kernels/backend.h"
#include "layers/classifier.h"

namespace fstm::cli {

namespace {

struct ExplainOptions {
  ModelSpec model;  // --model, or --arch/--num-classes/--weights; --size/--mean/--std/--device (options.h)
  std::string image, pristine, out;
  bool resize = false;
  int grid = 16;
  int64_t samples = 100;
  int64_t target = 0;
  CLI::Option* target_flag = nullptr;  // --class; absent: the predicted class
  std::string baseline = "black", value = "logit", sampler = "permutation", dtype = "f32";
  float blur_sigma = 0;
  bool antithetic = false;
  uint64_t seed = 0;
  double until_instability = 0;
  int batch = 64, threads = 0;
  bool json = false;
};

// An image at the model's input size: resized when asked, refused with both sizes otherwise.
io::Image load_model_image(const std::string& path, int size, bool resize) {
  io::Image img = io::load_image(path);
  if (img.width != size || img.height != size) {
    FSTM_CHECK(resize, path, " is ", img.width, "x", img.height, " but the model takes ", size, "x", size,
               " images (pass --resize to resize it)");
    img = io::resize_bilinear(img, size, size);
  }
  return img;
}

int run_explain(const ExplainOptions& o) {
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  ShapleyOptions so;
  so.grid = o.grid;
  so.samples = o.samples;
  so.sampler = parse_shapley_sampler(o.sampler);
  so.antithetic = o.antithetic;
  so.seed = o.seed;
  so.until_instability = o.until_instability;
  so.baseline = parse_baseline(o.baseline);
  so.blur_sigma = o.blur_sigma;
  so.value = parse_shapley_value(o.value);
  FSTM_CHECK(so.baseline != Baseline::Pristine || !o.pristine.empty(),
             "--baseline pristine needs --pristine FILE (the real counterpart of ", o.image, ")");
  FSTM_CHECK(o.samples >= 1, "--samples must be at least 1, got ", o.samples);
  FSTM_CHECK(o.grid >= 2, "--grid must be at least 2, got ", o.grid);
  FSTM_CHECK(o.batch >= 1, "--batch must be at least 1, got ", o.batch);
  const Device device = Device::parse(o.model.device);
  const DType dtype = parse_dtype(o.dtype);
  FSTM_CHECK(dtype == DType::f32 || dtype == DType::bf16, "--dtype must be f32 or bf16");

  const LoadedModel loaded = load_model(o.model);
  const int size = loaded.input_size;
  const int64_t num_classes = loaded.config.num_classes();
  so.normalization = loaded.normalization;
  const io::Image img = load_model_image(o.image, size, o.resize);
  Tensor pristine;
  if (!o.pristine.empty()) pristine = io::image_to_tensor(load_model_image(o.pristine, size, o.resize), loaded.normalization);
  check_grid_fits(o.grid, img.height, img.width);
  const GridGeometry geometry = GridGeometry::make(img.height, img.width, o.grid);
  check_shapley_options(so, geometry.players());
  const bool have_target = o.target_flag && o.target_flag->count() > 0;
  FSTM_CHECK(!have_target || (o.target >= 0 && o.target < num_classes), "--class ", o.target, " is out of range: the model has ", num_classes,
             " classes (0..", num_classes - 1, ")");

  ImageClassifier* model = loaded.net.get();
  const Tensor x = io::image_to_tensor(img, loaded.normalization);  // [1, S, S, 3]
  std::vector<float> logits;
  {
    NoGradGuard no_grad;
    logits = model->forward(x.to(device)).to_vector();
  }
  const int64_t predicted = int64_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  const int64_t target = have_target ? o.target : predicted;

  ModelExplainer explainer(*model, size, so, o.batch, dtype, device);
  const int64_t planned = explainer.planned_evaluations();
  const int64_t batch = std::min<int64_t>(o.batch, planned);
  ShapleyResult r;
  {
    ProgressBar bar("explain", planned, "forwards", progress_stream());
    int64_t shown = 0;
    r = explainer.explain(
        x, target,
        [&](int64_t done, int64_t) {
          bar.add(done - shown);
          shown = done;
        },
        -1, pristine);
  }

  nlohmann::json curve = nlohmann::json::array();
  for (const InstabilityPoint& p : r.curve) curve.push_back({p.samples, p.instability});
  const nlohmann::json j = {
      {"image", o.image},
      {"arch", loaded.config.arch},
      {"class", target},
      {"predicted_class", predicted},
      {"logits", logits},
      {"grid", o.grid},
      {"samples", r.samples},
      {"samples_requested", o.samples},
      {"sampler", shapley_sampler_name(so.sampler)},
      {"antithetic", o.antithetic},
      {"baseline", o.baseline},
      {"pristine", o.pristine.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.pristine)},
      {"value", o.value},
      {"seed", o.seed},
      {"dtype", o.dtype},
      {"device", device.str()},
      {"batch", batch},
      {"backend", explainer.backend()},
      {"phi", map_json(r.phi, o.grid)},
      {"v_full", r.v_full},
      {"v_empty", r.v_empty},
      {"efficiency_gap", r.efficiency_gap()},
      {"evaluations", r.evaluations},
      {"forward_rows", r.forward_rows},
      {"instability", r.instability},
      {"instability_curve", curve},
      {"stopped_early", r.stopped_early},
      {"seconds", r.seconds},
      {"timing",
       {{"mask_s", r.timing.mask_seconds},
        {"forward_s", r.timing.forward_seconds},
        {"readback_s", r.timing.readback_seconds},
        {"batches", r.timing.batches}}},
  };

  if (!o.out.empty()) {
    io::ensure_dir(o.out);
    const std::string stem = o.out + "/" + std::filesystem::path(o.image).stem().string();
    io::write_file_atomic(stem + "_shapley.png", io::encode_png(heatmap_overlay(img, r.phi, geometry)));
    io::write_file_atomic(stem + "_shapley_map.png", io::encode_png(heatmap_image(r.phi, geometry)));
    io::write_file_atomic(stem + "_shapley.csv", map_csv(r.phi, o.grid));
    io::write_file_atomic(stem + "_shapley.json", j.dump(1) + "\n");
  }
  if (o.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "class " << target << (have_target ? "" : " (predicted)") << ", " << o.grid << "x" << o.grid
              << " grid, " << r.samples << " samples (" << shapley_sampler_name(so.sampler) << "): " << r.evaluations
              << " forwards in " << ProgressBar::format_duration(r.seconds) << " on " << explainer.backend() << "\n"
              << o.value << " of class " << target << ": v(input) = " << r.v_full << ", v(" << o.baseline
              << " baseline) = " << r.v_empty << ", sum(phi) - (v(input) - v(baseline)) = "
              << r.efficiency_gap() << ", instability of the halves = " << r.instability << "\n";
    if (!o.out.empty()) std::cout << "wrote " << o.out << "/*_shapley.{png,csv,json}\n";
  }
  return 0;
}

}  // namespace

Command make_explain_command() {
  auto o = std::make_shared<ExplainOptions>();
  Command c;
  c.add = [o](CLI::App& app) {
    CLI::App* s = app.add_subcommand("explain", "Shapley map of one image: which grid cells drive a class's logit");
    add_model_options(*s, o->model);
    s->get_option("--model")->excludes("--arch")->excludes("--num-classes")->excludes("--weights");
    s->get_option("--size")->description("Input side in pixels (default: the checkpoint's, else 224; see --resize)");
    s->add_option("--image", o->image, "Image to explain")->required();
    s->add_flag("--resize", o->resize, "Resize the image to the model's size instead of refusing it");
    s->add_option("--grid", o->grid, "L: the image is split into L x L players")->capture_default_str();
    s->add_option("--samples", o->samples, "T: permutations (per-grid: samples per grid)")->capture_default_str();
    o->target_flag = s->add_option("--class", o->target, "Class to explain (default: the predicted one)");
    s->add_option("--baseline", o->baseline,
                  "Absent cells: black (pixel 0, the authors'), mean-colour (normalised 0: the normalisation's "
                  "mean colour), image-mean (the image's mean colour), blur, pristine (--pristine's pixels)")
        ->check(CLI::IsMember({"black", "mean-colour", "image-mean", "blur", "pristine"}))
        ->capture_default_str();
    s->add_option("--pristine", o->pristine,
                  "The real counterpart of --image (a fake's source frame, aligned alike), for --baseline pristine");
    s->add_option("--value", o->value,
                  "What a coalition is worth: logit (the class's, the paper's) or margin (the class's logit minus "
                  "the other class's; two-class models)")
        ->check(CLI::IsMember({"logit", "margin"}))
        ->capture_default_str();
    s->add_option("--blur-sigma", o->blur_sigma, "Blur baseline sigma in pixels (default: one cell side)");
    s->add_option("--sampler", o->sampler,
                  "permutation (sweeps), per-grid (the authors' sampler) or exact (all coalitions, grid <= 4)")
        ->check(CLI::IsMember({"permutation", "per-grid", "exact"}))
        ->capture_default_str();
    s->add_flag("--antithetic", o->antithetic, "Pair every sample with its reverse permutation");
    s->add_option("--seed", o->seed, "Random seed")->capture_default_str();
    s->add_option("--until-instability", o->until_instability,
                  "Stop once the two halves' instability is below this (T is the cap)");
    s->add_option("--dtype", o->dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
    s->add_option("--batch", o->batch, "Masked images per forward")->capture_default_str();
    s->add_option("--threads", o->threads, "CPU threads (default: all)")->check(CLI::NonNegativeNumber);
    s->add_option("--out", o->out, "Directory for <image>_shapley.png (overlay), _shapley_map.png, .csv and .json");
    s->add_flag("--json", o->json, "Print only the JSON result on stdout");
    return s;
  };
  c.run = [o] { return run_explain(*o); };
  return c;
}

}  // namespace fstm::cli
