#include "fstm/lib/demo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

#include "autograd/autograd.h"
#include "fstm/lib/evaluator.h"
#include "fstm/lib/explain_study.h"
#include "fstm/lib/explainer.h"
#include "fstm/lib/heatmap.h"
#include "fstm/lib/model_loader.h"
#include "fstm/lib/progress.h"
#include "fstm/lib/report.h"
#include "fstm/lib/shapley.h"
#include "io/dataset.h"
#include "io/face.h"
#include "io/fs.h"
#include "io/loader.h"
#include "io/video.h"
#include "kernels/backend.h"

namespace fstm {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const char* const kCompressions[] = {"raw", "c23", "c40"};
constexpr ModelType kModels[] = {ModelType::det, ModelType::source, ModelType::target, ModelType::fst};

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }
double get(const json& j) { return j.is_number() ? j.get<double>() : kNaN; }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void say(const DemoOptions& o, const std::string& text) {
  if (o.progress) std::cerr << "demo: " << text << "\n";
}

// A step whose result is a JSON value: reused from OUT/cache/<name>.json when it was computed from
// the same inputs (`key`: the settings and the fingerprints of the files it read), else computed.
template <typename Compute>
json cached(const fs::path& out, const std::string& name, const json& key, bool& reused, Compute compute) {
  const fs::path path = out / "cache" / (name + ".json");
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    try {
      const std::vector<uint8_t> bytes = io::read_file(path.string());
      const json j = json::parse(bytes.begin(), bytes.end());
      if (j.at("key") == key) {
        reused = true;
        return j.at("value");
      }
    } catch (const std::exception&) {
      // unreadable: computed again
    }
  }
  reused = false;
  json value = compute();
  io::ensure_dir(path.parent_path().string());
  io::write_file_atomic(path.string(), json{{"key", key}, {"value", value}}.dump(1) + "\n");
  return value;
}

TrainOptions train_options(const DemoOptions& o, ModelType model, const std::string& index, const fs::path& out) {
  TrainOptions t;
  t.model = model;
  t.data = index;
  t.out = (out / "runs" / model_type_name(model)).string();
  t.compressions = {"raw"};  // c23/c40 are only seen at test time
  o.training.apply(t);
  t.fst_hidden = o.fst_hidden;
  t.seed = o.seed;
  t.threads = o.threads;
  t.progress = o.progress;
  t.stop = o.stop;
  return t;
}

// The checkpoint to evaluate and explain: the best validation score when there is one, else the last.
std::string chosen_checkpoint(const TrainResult& r) { return r.best.empty() ? r.last : r.best; }

// ---- evaluation --------------------------------------------------------------------------------

json detection_json(const EvalReport& report) {
  json j = json::object();
  for (const EvalRow& row : report.rows) {
    if (row.method != "all" || row.perturbation != "none") continue;
    j[row.compression] = {{"acc", num(row.frame.acc)},          {"balanced_acc", num(row.frame.balanced_acc)},
                          {"val_threshold", num(row.frame.threshold)},
                          {"acc_val_threshold", num(row.frame.acc_at_threshold)},
                          {"balanced_acc_val_threshold", num(row.frame.balanced_acc_at_threshold)},
                          {"auc", num(row.frame.auc)},
                          {"video_auc", num(row.video_auc)},    {"eer", num(row.frame.eer)},
                          {"ap", num(row.frame.ap)},            {"real_frames", row.real_frames},
                          {"fake_frames", row.fake_frames},     {"videos", row.videos}};
  }
  // per method at each compression (AUC), for the report
  json per_method = json::object();
  for (const EvalRow& row : report.rows)
    if (row.method != "all" && row.perturbation == "none") per_method[row.compression][row.method] = num(row.frame.auc);
  j["auc_per_method"] = per_method;
  return j;
}

json evaluate_detector(const DemoOptions& o, const std::string& checkpoint, const std::string& index) {
  EvalOptions e;
  e.model.model = checkpoint;
  e.data = index;
  e.split = "test";
  e.threshold_split = "val";
  e.threads = o.threads;
  e.progress = o.progress;
  return detection_json(evaluate(e));
}

// Identity accuracy of v_s / v_t on the test split per compression (fstm/lib/evaluator.h:
// identity_accuracy): on reals, face swaps and reenactments, and the partner rate on reals.
json evaluate_encoder(const DemoOptions& o, const std::string& checkpoint, const io::FaceIndex& index) {
  ModelSpec spec;
  spec.model = checkpoint;
  LoadedModel m = load_model(spec);
  json j = json::object();
  for (const char* c : kCompressions) j[c] = test_identity_accuracy(m, index, c, o.progress).to_json();
  return j;
}

// ---- explanations ------------------------------------------------------------------------------

struct Explainer {
  LoadedModel model;
  std::unique_ptr<ModelExplainer> shapley;  // compiled once for every map of this model
};

json ci_json(const MeanCi& c) { return {{"mean", num(c.mean)}, {"lo", num(c.lo)}, {"hi", num(c.hi)}, {"n", c.n}}; }

json ci_map_json(const std::map<std::string, MeanCi>& m) {
  json j = json::object();
  for (const auto& [k, c] : m) j[k] = ci_json(c);
  return j;
}

json summary_json(const StudySummary& s) {
  return {{"q_eq1", ci_json(s.q_eq1)},
          {"q_authors", ci_json(s.q_authors)},
          {"delta", ci_map_json(s.delta)},
          {"lift", ci_json(s.lift)},
          {"lift_over_ceiling", ci_json(s.lift_over_ceiling)},
          {"share_inside", ci_json(s.share_inside)},
          {"area_share", ci_json(s.area_share)},
          {"lift_ceiling", ci_json(s.lift_ceiling)},
          {"control_lift", ci_map_json(s.control_lift)},
          {"baseline_lift", ci_map_json(s.baseline_lift)},
          {"identity_lift", ci_map_json(s.identity_lift)},
          {"beats_controls", s.beats_controls()},
          {"margin_fake", ci_json(s.margin_fake)},
          {"margin_replaced", ci_json(s.margin_replaced)},
          {"margin_pristine", ci_json(s.margin_pristine)},
          {"v_input", ci_json(s.v_input)},
          {"v_baseline", ci_json(s.v_baseline)}};
}

// v_d's margin, fake logit minus real logit, on one face.
double det_margin(ModelExplainer& det, const io::Image& face, const io::Normalization& n) {
  const std::vector<float> l = det.logits(io::image_to_tensor(face, n));
  return double(l.at(1)) - double(l.at(0));
}

// Everything the demo runs a Shapley estimator with, compiled once.
struct StudyModels {
  std::map<std::string, Explainer> models;  // "det", "source", "target" under the black baseline
  // v_d under the grey and the pristine baseline, and the random-init control (black baseline)
  std::unique_ptr<ModelExplainer> det_grey, det_pristine, random_init;
  std::unique_ptr<ImageClassifier> random_net;
  GridGeometry geometry;
  int64_t planned = 0;
};

std::unique_ptr<ModelExplainer> explainer_for(ImageClassifier& net, const LoadedModel& m, int size,
                                              ShapleyOptions so, Baseline baseline) {
  so.baseline = baseline;
  so.normalization = m.normalization;
  return std::make_unique<ModelExplainer>(net, size, so);
}

StudyModels load_study_models(const DemoOptions& o, const std::map<std::string, std::string>& checkpoints, int size) {
  ShapleyOptions so;
  so.grid = o.explain_grid;
  so.samples = o.explain_samples;
  so.seed = o.seed;
  StudyModels s;
  for (const char* name : {"det", "source", "target"}) {
    ModelSpec spec;
    spec.model = checkpoints.at(name);
    Explainer e;
    e.model = load_model(spec);
    e.shapley = explainer_for(*e.model.net, e.model, size, so, Baseline::Black);
    s.models.emplace(name, std::move(e));
  }
  const LoadedModel& det = s.models.at("det").model;
  s.det_grey = explainer_for(*det.net, det, size, so, Baseline::MeanColour);
  s.det_pristine = explainer_for(*det.net, det, size, so, Baseline::Pristine);
  // Control: the same architecture with random weights (a fixed seed), in eval mode.
  s.random_net = make_classifier(det.config.arch, 2, o.seed + 977);
  s.random_net->eval();
  s.random_init = explainer_for(*s.random_net, det, size, so, Baseline::Black);
  s.geometry = s.models.at("det").shapley->geometry();
  s.planned = s.models.at("det").shapley->planned_evaluations();
  return s;
}

// One face: 9 maps (3 models x 3 compressions) and 3 more of v_d's raw face (grey and pristine
// baselines, random-init control). Writes the face's pictures to `pictures`.
FaceStudy study_face(StudyModels& s, const StudyFace& face, const io::FaceIndex& index, const AlignedTruth& truth,
                     int size, const fs::path& pictures, ProgressBar* bar, json& jf) {
  auto explain = [&](ModelExplainer& ex, const Tensor& x, int64_t target, const Tensor& pristine = {}) {
    int64_t shown = 0;
    ShapleyResult r = ex.explain(
        x, target,
        [&](int64_t done, int64_t) {
          if (bar) bar->add(done - shown);
          shown = done;
        },
        -1, pristine);
    if (bar) bar->add(s.planned - shown);
    return r;
  };
  FaceStudy st;
  std::map<std::string, std::map<std::string, ShapleyMap>> phi;  // model -> compression -> map
  std::map<std::string, io::Image> images;
  const io::Normalization norm = s.models.at("det").model.normalization;
  for (const char* c : kCompressions) {
    images[c] = io::load_face(index, index.frames[size_t(face.frame_at.at(c))], size);  // as evaluation sees it
    for (auto& [name, e] : s.models) {
      const int64_t target = name == "det" ? 1 : name == "source" ? face.source : face.target;
      FSTM_CHECK(target < e.model.config.num_classes(), e.model.source, " has no class ", target, " for ", face.video_id);
      const ShapleyResult r = explain(*e.shapley, io::image_to_tensor(images[c], e.model.normalization), target);
      phi[name][c] = r.phi;
      if (name == "det" && c == std::string("raw")) {
        st.v_input = r.v_full;
        st.v_baseline = r.v_empty;
      }
    }
  }
  st.q_eq1 = q_tau_eq1(phi["det"]["raw"], phi["source"]["raw"], phi["target"]["raw"]).q;
  st.q_authors = q_tau_authors(phi["det"]["raw"], phi["source"]["raw"], phi["target"]["raw"]).q;
  for (const char* name : {"det", "source", "target"})
    st.delta[name] = compression_delta(phi[name]["raw"], {phi[name]["c23"], phi[name]["c40"]});

  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = io::image_to_tensor(images["raw"], norm);
  st.margin_fake = det_margin(*s.models.at("det").shapley, images["raw"], norm);
  st.det.lift = st.margin_replaced = st.margin_pristine = nan;
  if (truth.why_not.empty()) {
    const GridGeometry& g = s.geometry;
    const Tensor pristine = io::image_to_tensor(truth.pristine, norm);
    st.det = manipulation_faithfulness(phi["det"]["raw"], g, truth.mask);
    st.baseline_lift["black"] = st.det.lift;
    for (const char* name : {"source", "target"})
      st.identity_lift[name] = manipulation_faithfulness(phi[name]["raw"], g, truth.mask).lift;
    st.baseline_lift["mean-colour"] = manipulation_faithfulness(explain(*s.det_grey, x, 1).phi, g, truth.mask).lift;
    st.baseline_lift["pristine"] =
        manipulation_faithfulness(explain(*s.det_pristine, x, 1, pristine).phi, g, truth.mask).lift;
    const ShapleyMap random_map = explain(*s.random_init, x, 1).phi;
    st.control_lift["random_init"] = manipulation_faithfulness(random_map, g, truth.mask).lift;
    st.control_lift["difference"] =
        manipulation_faithfulness(difference_map(x, make_baseline(x, Baseline::Black, {.normalization = norm}), g), g,
                                  truth.mask)
            .lift;
    st.control_lift["gaussian"] = manipulation_faithfulness(centred_gaussian_map(g), g, truth.mask).lift;
    st.margin_replaced =
        det_margin(*s.models.at("det").shapley, replace_manipulated(images["raw"], truth.pristine, truth.mask), norm);
    st.margin_pristine = det_margin(*s.models.at("det").shapley, truth.pristine, norm);
  } else {
    jf["faithfulness_missing"] = truth.why_not;
    if (bar) bar->add(3 * s.planned);
  }

  // pictures: the face and each model's overlay at each compression, the mask and the pristine face
  const std::string stem = face.method + "_" + face.video_id + "_frame" + std::to_string(face.frame);
  HeatmapOptions ho;
  ho.legend = 0;
  for (const char* c : kCompressions) {
    io::write_file_atomic((pictures / (stem + "_" + c + ".png")).string(), io::encode_png(images[c]));
    for (const char* name : {"det", "source", "target"})
      io::write_file_atomic((pictures / (stem + "_" + name + "_" + c + ".png")).string(),
                            io::encode_png(heatmap_overlay(images[c], phi[name][c], s.geometry, ho)));
  }
  if (truth.why_not.empty()) {
    io::write_file_atomic((pictures / (stem + "_mask.png")).string(), io::encode_png(truth.mask));
    io::write_file_atomic((pictures / (stem + "_pristine.png")).string(), io::encode_png(truth.pristine));
  }
  jf["stem"] = stem;
  json maps_json;
  for (const auto& [name, by_c] : phi)
    for (const auto& [c, m] : by_c) maps_json[name][c] = m;
  jf["phi"] = maps_json;
  return st;
}

json face_json(const StudyFace& face, const FaceStudy& st) {
  return {{"video", face.video_id},
          {"method", face.method},
          {"frame", face.frame},
          {"q_eq1", num(st.q_eq1)},
          {"q_authors", num(st.q_authors)},
          {"delta", {{"det", num(st.delta.at("det"))}, {"source", num(st.delta.at("source"))}, {"target", num(st.delta.at("target"))}}},
          {"lift", num(st.det.lift)},
          {"lift_ceiling", num(st.det.lift_ceiling)},
          {"area_share", num(st.det.area_share)},
          {"margin_fake", num(st.margin_fake)},
          {"margin_replaced", num(st.margin_replaced)},
          {"margin_pristine", num(st.margin_pristine)}};
}

// The explanation study (fstm/lib/explain_study.h) on the demo's test fakes. Heatmap PNGs go to
// OUT/explain/ (the report embeds them).
json explain_faces(const DemoOptions& o, const std::map<std::string, std::string>& checkpoints,
                   const io::FaceIndex& index, const fs::path& out) {
  const std::vector<StudyFace> faces = pick_test_fakes(index, o.explain_faces);
  FSTM_CHECK(!faces.empty(), index.root, ": no test fake with faces at raw, c23 and c40 to explain");
  const int size = index.settings.size;
  StudyModels models = load_study_models(o, checkpoints, size);
  const fs::path pictures = out / "explain";
  io::ensure_dir(pictures.string());
  std::unique_ptr<ProgressBar> bar;
  if (o.progress)
    bar = std::make_unique<ProgressBar>("explain", int64_t(faces.size()) * 12 * models.planned, "forwards",
                                        progress_stream());
  json per_face = json::array();
  std::vector<FaceStudy> studies;
  for (const StudyFace& face : faces) {
    const AlignedTruth truth = aligned_truth(index, face.frame_at.at("raw"), size);
    json jf;
    studies.push_back(study_face(models, face, index, truth, size, pictures, bar.get(), jf));
    jf.update(face_json(face, studies.back()));
    per_face.push_back(jf);
  }
  if (bar) bar->finish();
  json summary = summary_json(summarize_study(studies));
  summary.update({{"faces", int64_t(faces.size())},
                  {"grid", o.explain_grid},
                  {"samples", o.explain_samples},
                  {"sampler", "permutation"},
                  {"baseline", "black"},
                  {"value", "logit"},
                  {"forwards_per_map", models.planned},
                  {"per_face", per_face}});
  return summary;
}

// ---- the report ----------------------------------------------------------------------------------

std::string pct(const json& j) { return format_number(get(j), 3); }
// "mean [lo, hi]" of a ci_json, or "-" when missing.
std::string ci(const json& j) {
  if (!j.is_object()) return "-";
  return pct(j.value("mean", json(nullptr))) + " [" + pct(j.value("lo", json(nullptr))) + ", " +
         pct(j.value("hi", json(nullptr))) + "]";
}

std::vector<unsigned char> read_png(const fs::path& p) {
  const std::vector<uint8_t> bytes = io::read_file(p.string());
  return {bytes.begin(), bytes.end()};
}

void write_report(const json& m, const fs::path& out, const std::string& path) {
  HtmlReport r("fstm demo: FST-Matching on synthetic FaceForensics++");
  const json& s = m["settings"];
  r.paragraph("Synthetic FaceForensics++ (" + std::to_string(s["data"]["identities"].get<int>()) + " identities, " +
              std::to_string(s["data"]["frames"].get<int>()) + " frames of " +
              std::to_string(s["data"]["video_size"].get<int>()) + " px per video, five manipulation methods, raw/c23/c40), " +
              std::to_string(s["data"]["faces_per_video"].get<int>()) + " aligned faces of " +
              std::to_string(s["data"]["face_size"].get<int>()) +
              " px per video from the generator's landmarks. All models: ResNet-18 from random init, AdamW lr " +
              format_number(s["lr"].get<double>(), 4) + ", " + s["schedule"].get<std::string>() + " schedule, batch " +
              std::to_string(s["batch"].get<int>()) + ", trained on raw faces only. Wall time " +
              ProgressBar::format_duration(m["seconds"].get<double>()) + ".");
  r.heading("Settings");
  r.table({{"setting", "value"},
           {"resolution (video / face)", std::to_string(s["data"]["video_size"].get<int>()) + " / " +
                                             std::to_string(s["data"]["face_size"].get<int>()) + " px"},
           {"epochs v_d / FST / v_s / v_t", std::to_string(s["epochs_det"].get<int>()) + " / " +
                                                 std::to_string(s["epochs_fst"].get<int>()) + " / " +
                                                 std::to_string(s["epochs_encoders"].get<int>()) + " / " +
                                                 std::to_string(s.value("epochs_target", s["epochs_encoders"].get<int>()))},
           {"warm-up epochs", format_number(s["warmup_epochs"].get<double>(), 2)},
           {"evaluated checkpoint", "best validation AUC (best.safetensors) for v_d and FST; last for v_s, v_t"},
           {"explanations", std::to_string(s["explain_faces"].get<int>()) + " test fakes, " +
                                std::to_string(s["explain_grid"].get<int>()) + "x" +
                                std::to_string(s["explain_grid"].get<int>()) + " grid, " +
                                std::to_string(s["explain_samples"].get<int64_t>()) + " permutations"},
           {"seed", std::to_string(s["seed"].get<uint64_t>())}});

  r.heading("Detection on the test split");
  std::vector<std::vector<std::string>> rows = {
      {"model", "compression", "ACC@0.5", "balanced ACC@0.5", "ACC@val threshold", "balanced ACC@val threshold",
       "frame AUC", "video AUC", "EER", "AP"}};
  for (const char* model : {"det", "fst"})
    for (const char* c : kCompressions) {
      const json& e = m[model][c];
      rows.push_back({model == std::string("det") ? "v_d" : "FST-Matching", c, pct(e["acc"]),
                      pct(e.value("balanced_acc", json(nullptr))), pct(e.value("acc_val_threshold", json(nullptr))),
                      pct(e.value("balanced_acc_val_threshold", json(nullptr))), pct(e["auc"]), pct(e["video_auc"]), pct(e["eer"]),
                      pct(e["ap"])});
    }
  const json& raw = m["det"]["raw"];
  r.table(rows, "All five methods' fakes and the real faces of the test identities, at each compression: " +
                    std::to_string(raw["real_frames"].get<int64_t>()) + " real and " +
                    std::to_string(raw["fake_frames"].get<int64_t>()) +
                    " fake faces each. One training seed per model, so no interval: a difference between the "
                    "two models here is not evidence. ACC counts every class-imbalanced face at threshold 0.5; "
                    "balanced ACC weighs both classes equally; the val threshold is the one of best balanced ACC on the "
                    "validation split at the same compression, applied here unchanged; the AUCs do not depend on a threshold.");
  std::vector<std::vector<std::string>> per_method = {{"model", "compression"}};
  for (const std::string& method : io::ffpp_methods()) per_method[0].push_back(method);
  for (const char* model : {"det", "fst"})
    for (const char* c : kCompressions) {
      std::vector<std::string> row = {model == std::string("det") ? "v_d" : "FST-Matching", c};
      for (const std::string& method : io::ffpp_methods())
        row.push_back(pct(m[model]["auc_per_method"].value(c, json::object()).value(method, json(nullptr))));
      per_method.push_back(row);
    }
  r.table(per_method, "Frame AUC per manipulation method.");

  r.heading("Identity encoders");
  std::vector<std::vector<std::string>> ids = {
      {"encoder", "compression", "on reals", "on face swaps", "on reenactments", "reals answered with the partner"}};
  for (const char* model : {"source", "target"})
    for (const char* c : kCompressions) {
      const json& e = m[model][c];
      ids.push_back({model == std::string("source") ? "v_s (source identity)" : "v_t (target identity)", c,
                     pct(e["acc_real"]), pct(e["acc_swap"]), pct(e["acc_reenactment"]), pct(e["partner_rate_real"])});
    }
  r.table(ids,
          "Test split accuracy of the argmax against the true source (v_s) or target (v_t). The encoders train on "
          "the raw faces of every split (so that the explained test faces' identities are classes of their "
          "heads): raw accuracy is on seen frames, c23/c40 on unseen ones. A reenactment A_B keeps A's face (B "
          "only drives the expression), so its target B cannot be seen: v_t does not train on reenactments, and "
          "its accuracy there is expected to be low. The last column is how often a real face of A gets the "
          "identity A is paired with: an encoder that learnt 'A's context -> A's partner' instead of identity.");

  r.heading("Training");
  for (ModelType type : kModels) {
    const char* model = model_type_name(type);
    const std::vector<EpochMetrics> epochs = read_epoch_metrics((out / "runs" / model / "metrics.jsonl").string());
    if (epochs.empty()) continue;
    Series loss{"training loss", {}, {}}, auc{"validation AUC", {}, {}};
    for (const EpochMetrics& e : epochs) {
      loss.x.push_back(double(e.epoch));
      loss.y.push_back(e.loss);
      if (std::isfinite(e.val_auc)) {
        auc.x.push_back(double(e.epoch));
        auc.y.push_back(e.val_auc);
      }
    }
    ChartOptions co;
    co.title = std::string(model) + ": loss per epoch";
    co.x_label = "epoch";
    co.y_label = "loss";
    co.y_from_zero = true;
    r.line_chart({loss}, co);
    if (!auc.x.empty()) {
      co.title = std::string(model) + ": validation AUC per epoch";
      co.y_label = "AUC";
      co.y_from_zero = false;
      r.line_chart({auc}, co);
    }
  }

  r.heading("Explanations");
  const json& x = m["explain"];
  const std::string L = std::to_string(x["grid"].get<int>());
  r.paragraph(std::to_string(x["faces"].get<int64_t>()) + " test fakes (every method in turn, from several test pairs), " +
              "Shapley maps over a " + L + "x" + L + " grid with " + std::to_string(x["samples"].get<int64_t>()) +
              " permutations, black baseline (pixel 0: the authors' masking), of the ground-truth class logit: fake "
              "for v_d, the true source identity for v_s, the true target identity for v_t. Red cells raise the "
              "logit, blue cells lower it. Every figure is a mean over the faces with its 95% confidence interval "
              "[lo, hi]; with few faces the intervals are wide, and no conclusion is drawn where they overlap.");
  r.heading("Where v_d's evidence is, without Shapley values", 3);
  r.table({{"v_d's margin (fake logit - real logit) on", "mean [95% CI]"},
           {"the fake face", ci(x["margin_fake"])},
           {"the fake with its manipulated pixels replaced by the pristine ones", ci(x["margin_replaced"])},
           {"the pristine face (the fake's source frame, aligned alike)", ci(x["margin_pristine"])}},
          "If v_d's evidence lies inside the manipulated region, replacing those pixels alone brings the fake down "
          "to the pristine face's level.");
  r.heading("Faithfulness of v_d's map to the ground-truth masks", 3);
  r.table({{"map", "lift over the mask's area share", "what it is"},
           {"v_d (black baseline)", ci(x["lift"]), "share of the positive mass on manipulated pixels / their area share"},
           {"control: |x - baseline| per cell", ci(x["control_lift"]["difference"]), "what hiding a cell changes in the input"},
           {"control: random-init network", ci(x["control_lift"]["random_init"]), "the same architecture, untrained"},
           {"control: centred Gaussian", ci(x["control_lift"]["gaussian"]), "faces are centred by alignment"}},
          std::string("v_d ") + (x["beats_controls"].get<bool>() ? "beats every control (its CI lies above theirs)"
                                                                 : "does not beat every control with non-overlapping CIs") +
              ". A lift of 1 is a map blind to the mask. The best possible map reaches the ceiling " + ci(x["lift_ceiling"]) +
              " (all mass on the cell the mask covers most); v_d's lift / ceiling is " + ci(x["lift_over_ceiling"]) +
              "; the masks cover " + ci(x["area_share"]) + " of the face.");
  r.table({{"baseline of v_d's map", "lift", "read it as"},
           {"black (the authors')", ci(x["baseline_lift"]["black"]), "where v_d looks, against a black face"},
           {"mean-colour (ImageNet's grey)", ci(x["baseline_lift"]["mean-colour"]),
            "a detector can read a grey face as fake: hidden inner cells then get negative values for the grey's "
            "sake"},
           {"pristine", ci(x["baseline_lift"]["pristine"]),
            "which differences from the real frame make the fake; outside the mask a fake equals its source, so "
            "those cells get about 0 whatever the model does: evidence of where the fake differs, not a "
            "faithfulness score"}},
          "The same faces and the same v_d under three baselines.");
  r.heading("Q and delta", 3);
  r.table({{"metric", "mean [95% CI]", "what it says"},
           {"Q (Eq. 1)", ci(x["q_eq1"]), "> 0: v_d relies on cells outside the identity encoders' top cells"},
           {"v_s / v_t lift over the mask", ci(x.value("identity_lift", json::object()).value("source", json(nullptr))) +
                                                " / " +
                                                ci(x.value("identity_lift", json::object()).value("target", json(nullptr))),
            "where the identity evidence lies: above 1, inside the manipulated region, where a faithful v_d looks "
            "too, which pulls Q below 0"},
           {"Q (authors' code: relu, / L^2)", ci(x["q_authors"]), "the same, as the released code computes it"},
           {"delta v_d", ci(x["delta"]["det"]), "mean cosine of the c23/c40 maps with the raw map"},
           {"delta v_s", ci(x["delta"]["source"]), ""},
           {"delta v_t", ci(x["delta"]["target"]), ""},
           {"v_d: v(input) / v(baseline)", ci(x["v_input"]) + " / " + ci(x["v_baseline"]),
            "the fake logit on the face and on the all-black image; the map sums to their difference"}},
          "");
  // every face is in metrics.json; the report pictures the first ones (one per method, round robin)
  constexpr size_t kPictured = 10;
  if (x["per_face"].size() > kPictured)
    r.paragraph("The first " + std::to_string(kPictured) + " of the " + std::to_string(x["per_face"].size()) +
                " faces; every face's numbers are in metrics.json (explain.per_face).");
  size_t pictured = 0;
  for (const json& f : x["per_face"]) {
    if (pictured++ == kPictured) break;
    const std::string stem = f["stem"].get<std::string>();
    r.heading(f["method"].get<std::string>() + " " + f["video"].get<std::string>() + " frame " +
                  std::to_string(f["frame"].get<int64_t>()) + ": Q " + pct(f["q_eq1"]) + ", delta v_d " +
                  pct(f["delta"]["det"]) + ", lift " + pct(f["lift"]) + " (ceiling " + pct(f["lift_ceiling"]) +
                  "), margin fake " + pct(f["margin_fake"]) + " -> " + pct(f["margin_replaced"]) +
                  " with pristine pixels in the mask",
              4);
    for (const char* c : kCompressions) {
      std::vector<std::pair<std::vector<unsigned char>, std::string>> row;
      row.push_back({read_png(out / "explain" / (stem + "_" + c + ".png")), std::string("face, ") + c});
      for (const char* name : {"det", "source", "target"})
        row.push_back({read_png(out / "explain" / (stem + "_" + name + "_" + c + ".png")),
                       std::string(name == std::string("det") ? "v_d" : name == std::string("source") ? "v_s" : "v_t") +
                           ", " + c});
      if (c == std::string("raw") && fs::exists(out / "explain" / (stem + "_mask.png"))) {
        row.push_back({read_png(out / "explain" / (stem + "_mask.png")), "manipulation mask"});
        row.push_back({read_png(out / "explain" / (stem + "_pristine.png")), "pristine (source frame)"});
      }
      r.image_row(row, 128);
    }
  }
  r.save(path);
}

}  // namespace

DemoOptions demo_options(bool quick) {
  DemoOptions o;
  o.quick = quick;
  if (!quick) return o;
  make_tiny(o.data, 6);
  o.training = TrainingRecipe::tiny();
  o.fst_hidden = 32;
  o.explain_faces = 2;
  o.explain_grid = 4;
  o.explain_samples = 4;
  return o;
}

json demo_settings_json(const DemoOptions& o) {
  json j = {{"quick", o.quick},
          {"data", synthetic_faces_json(o.data)},
          {"arch", "resnet18"},
          {"init", "random"},
          {"train_compressions", {"raw"}},
          {"photometric_augmentation", false},
          {"optimizer", "adamw"},
          {"fst_hidden", o.fst_hidden},
          {"explain_faces", o.explain_faces},
          {"explain_grid", o.explain_grid},
          {"explain_samples", o.explain_samples},
          {"seed", o.seed}};
  j.update(o.training.to_json());
  return j;
}

DemoResult run_demo(const DemoOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  DemoOptions o = options;
  FSTM_CHECK(!o.out.empty(), "demo: give an output folder (--out DIR)");
  FSTM_CHECK(o.training.epochs_det >= 1 && o.training.epochs_fst >= 1 && o.training.epochs_encoders >= 1 &&
                 o.training.epochs_target >= 1,
             "demo: epochs must be >= 1");
  FSTM_CHECK(o.explain_faces >= 1 && o.explain_grid >= 2 && o.explain_samples >= 1,
             "demo: explain at least 1 face on a grid of at least 2 with at least 1 sample");
  std::error_code ec;
  FSTM_CHECK(!fs::exists(o.out, ec) || fs::is_directory(o.out, ec), o.out,
             ": exists and is not a directory; give another --out");
  try {
    io::ensure_dir(o.out);
  } catch (const Error& e) {
    throw Error(detail::concat("demo: cannot create the output folder: ", e.what()));
  }
  const fs::path out(o.out);
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  o.data.seed = o.seed;
  o.data.progress = o.progress;
  o.data.stop = o.stop;

  DemoResult result;
  json steps = json::object();
  auto stopped = [&](const std::string& where) {
    result.stopped_in = where;
    result.stopped_by_signal = o.stop ? o.stop->load() : 0;
    return result;
  };

  // 1. data
  auto t = std::chrono::steady_clock::now();
  SyntheticFaces faces;
  try {
    faces = prepare_synthetic_faces(o.data, o.out);
  } catch (const Interrupted&) {
    return stopped("data");
  }
  steps["data"] = {{"seconds", seconds_since(t)}, {"reused", faces.data_reused && faces.faces_reused}};
  say(o, std::string("data ") + (faces.data_reused && faces.faces_reused ? "reused" : "written") + ": " + faces.index);
  if (o.stop && o.stop->load()) return stopped("data");
  const io::FaceIndex index = io::FaceIndex::load(faces.index);

  // 2. training
  std::map<std::string, std::string> checkpoints;
  std::map<std::string, std::string> fingerprints;
  for (ModelType type : kModels) {
    const char* model = model_type_name(type);
    t = std::chrono::steady_clock::now();
    say(o, std::string("training ") + model);
    const TrainResult r = train_or_reuse(train_options(o, type, faces.index, out));
    if (r.stopped_by_signal) return stopped(std::string("training ") + model);
    checkpoints[model] = chosen_checkpoint(r);
    fingerprints[model] = file_fingerprint(checkpoints[model]);
    steps[std::string("train_") + model] = {{"seconds", seconds_since(t)},
                                            {"epochs", r.epochs_completed},
                                            {"steps", r.steps},
                                            {"checkpoint", checkpoints[model]},
                                            {"best_validation", num(r.best_score)}};
  }

  // 3. evaluation
  json metrics;
  const json index_key = {{"index", file_fingerprint(faces.index)}};
  for (ModelType type : kModels) {
    const char* model = model_type_name(type);
    t = std::chrono::steady_clock::now();
    const json key = {{"checkpoint", fingerprints[model]}, {"data", index_key}};
    bool reused = false;
    const bool detector = type == ModelType::det || type == ModelType::fst;
    metrics[model] = cached(out, std::string("eval_") + model, key, reused, [&] {
      say(o, std::string("evaluating ") + model);
      return detector ? evaluate_detector(o, checkpoints[model], faces.index)
                      : evaluate_encoder(o, checkpoints[model], index);
    });
    steps[std::string("eval_") + model] = {{"seconds", seconds_since(t)}, {"reused", reused}};
    if (o.stop && o.stop->load()) return stopped(std::string("evaluating ") + model);
  }

  // 4. explanations
  t = std::chrono::steady_clock::now();
  {
    const json key = {{"checkpoints", {fingerprints["det"], fingerprints["source"], fingerprints["target"]}},
                      {"data", index_key},
                      {"faces", o.explain_faces},
                      {"grid", o.explain_grid},
                      {"samples", o.explain_samples},
                      {"seed", o.seed}};
    bool reused = false;
    metrics["explain"] = cached(out, "explain", key, reused, [&] {
      say(o, "explaining " + std::to_string(o.explain_faces) + " test fakes with v_d, v_s and v_t");
      return explain_faces(o, checkpoints, index, out);
    });
    // the pictures live beside the cache; a cached result without them is recomputed
    bool pictures = true;
    for (const json& f : metrics["explain"]["per_face"])
      pictures = pictures && fs::exists(out / "explain" / (f["stem"].get<std::string>() + "_det_raw.png"));
    if (!pictures) metrics["explain"] = explain_faces(o, checkpoints, index, out);
    steps["explain"] = {{"seconds", seconds_since(t)}, {"reused", reused && pictures}};
  }

  // 5. the report
  metrics["settings"] = demo_settings_json(o);
  metrics["settings"]["threads"] = kernels::num_threads();
  metrics["steps"] = steps;
  metrics["seconds"] = seconds_since(t0);
  result.metrics_path = (out / "metrics.json").string();
  result.report_path = (out / "report.html").string();
  io::write_file_atomic(result.metrics_path, metrics.dump(2) + "\n");
  write_report(metrics, out, result.report_path);
  result.metrics = metrics;
  return result;
}

std::string demo_summary(const json& m) {
  std::ostringstream s;
  auto cell = [](const json& v) {
    std::ostringstream c;
    c << std::setw(9) << format_number(get(v), 3);
    return c.str();
  };
  s << "frame AUC on the test split (video AUC in brackets)\n";
  s << "  compression        v_d          FST-Matching     higher (one training seed each)\n";
  for (const char* c : kCompressions) {
    const double d = get(m["det"][c]["auc"]), f = get(m["fst"][c]["auc"]);
    const std::string winner = !(std::isfinite(d) && std::isfinite(f)) ? "-" : d > f ? "v_d" : f > d ? "FST" : "tie";
    s << "  " << std::left << std::setw(12) << c << std::right << cell(m["det"][c]["auc"]) << " ("
      << format_number(get(m["det"][c]["video_auc"]), 3) << ")" << cell(m["fst"][c]["auc"]) << " ("
      << format_number(get(m["fst"][c]["video_auc"]), 3) << ")     " << winner << "\n";
  }
  s << "identity accuracy at raw (test split)   reals    swaps  reenact.  reals -> partner\n";
  for (const char* model : {"source", "target"}) {
    const json& e = m[model]["raw"];
    s << "  " << std::left << std::setw(36) << (model == std::string("source") ? "v_s (source)" : "v_t (target)")
      << std::right << cell(e["acc_real"]) << cell(e["acc_swap"]) << cell(e["acc_reenactment"])
      << cell(e["partner_rate_real"]) << "\n";
  }
  const json& x = m["explain"];
  s << "explanations, mean [95% CI] over " << x["faces"].get<int64_t>() << " test fakes, black baseline:\n"
    << "  v_d lift over the masks' area  " << ci(x["lift"]) << "  (controls: |x - baseline| "
    << ci(x["control_lift"]["difference"]) << ", random-init net " << ci(x["control_lift"]["random_init"])
    << ", centred Gaussian " << ci(x["control_lift"]["gaussian"]) << ")\n"
    << "  v_d margin: fake " << ci(x["margin_fake"]) << ", manipulated pixels replaced by pristine "
    << ci(x["margin_replaced"]) << ", pristine " << ci(x["margin_pristine"]) << "\n"
    << "  Q eq.1 " << ci(x["q_eq1"]) << ", Q authors " << ci(x["q_authors"]) << "; delta v_d " << ci(x["delta"]["det"])
    << ", v_s " << ci(x["delta"]["source"]) << ", v_t " << ci(x["delta"]["target"]) << "\n";
  return s.str();
}

}  // namespace fstm
