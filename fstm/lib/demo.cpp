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
const char* const kModels[] = {"det", "source", "target", "fst"};

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

TrainOptions train_options(const DemoOptions& o, const std::string& model, const std::string& index,
                           const fs::path& out) {
  TrainOptions t;
  t.model = model;
  t.data = index;
  t.out = (out / "runs" / model).string();
  t.compressions = {"raw"};  // c23/c40 are only seen at test time
  t.photometric = false;
  t.optimizer = "adamw";
  t.lr = o.lr;
  t.batch = o.batch;
  t.schedule = o.schedule;
  t.warmup_epochs = o.warmup_epochs;
  t.fst_hidden = o.fst_hidden;
  t.seed = o.seed;
  t.threads = o.threads;
  t.progress = o.progress;
  t.stop = o.stop;
  if (model == "det") t.epochs = o.epochs_det;
  if (model == "fst") t.epochs = o.epochs_fst;
  if (model == "source" || model == "target") {
    // The test faces' identities must be classes of v_s/v_t to be explained (Q needs phi_s, phi_t
    // of the true source and target), so the encoders learn every identity: they train on the raw
    // frames of every split and have no validation split (the val identities are not classes of
    // a train-split head either). Their accuracy is then measured on the test split, where the
    // c23/c40 frames are unseen.
    t.epochs = o.epochs_encoders;
    t.train_split = "all";
    t.val_split = "";
  }
  return t;
}

// The checkpoint to evaluate and explain: the best validation score when there is one, else the last.
std::string chosen_checkpoint(const TrainResult& r) { return r.best.empty() ? r.last : r.best; }

// ---- evaluation --------------------------------------------------------------------------------

json detection_json(const EvalReport& report) {
  json j = json::object();
  for (const EvalRow& row : report.rows) {
    if (row.method != "all" || row.perturbation != "none") continue;
    j[row.compression] = {{"acc", num(row.frame.acc)},          {"auc", num(row.frame.auc)},
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
  e.threads = o.threads;
  e.progress = o.progress;
  return detection_json(evaluate(e));
}

// Identity accuracy of v_s / v_t on the test split per compression: the argmax against the
// video's source (v_s) or target (v_t) identity, on real and fake frames.
json evaluate_encoder(const DemoOptions& o, const std::string& checkpoint, const io::FaceIndex& index) {
  ModelSpec spec;
  spec.model = checkpoint;
  LoadedModel m = load_model(spec);
  json j = json::object();
  for (const char* c : kCompressions) {
    ScoreOptions so;
    so.splits = {"test"};
    so.compressions = {c};
    if (o.progress) so.progress_label = std::string(model_type_name(m.config.type)) + " " + c;
    const FrameScores s = score_frames(*m.net, m.config, index, so);
    int64_t right = 0, real_right = 0, reals = 0;
    for (size_t i = 0; i < s.frames.size(); ++i) {
      const io::IndexVideo& v = index.videos[size_t(index.frames[size_t(s.frames[i])].video)];
      const int label = m.config.type == ModelType::source ? v.source : v.target;
      const bool ok = s.predicted[i] == label;
      right += ok;
      if (!v.det) {
        ++reals;
        real_right += ok;
      }
    }
    const double n = double(s.frames.size());
    j[c] = {{"acc", num(n > 0 ? double(right) / n : kNaN)},
            {"acc_real", num(reals > 0 ? double(real_right) / double(reals) : kNaN)},
            {"acc_fake", num(n - double(reals) > 0 ? double(right - real_right) / (n - double(reals)) : kNaN)},
            {"frames", int64_t(s.frames.size())}};
  }
  return j;
}

// ---- explanations ------------------------------------------------------------------------------

struct Explainer {
  LoadedModel model;
  std::unique_ptr<ModelExplainer> shapley;  // compiled once for every map of this model
};

// The test fakes to explain: the first frame of the first test video of each method, in method
// order, at every compression (the same frame of the same video).
struct ExplainedFace {
  std::string video_id, method;
  int64_t frame = 0;
  int source = -1, target = -1;
  std::map<std::string, int64_t> frame_at;  // compression -> index into FaceIndex::frames
};

std::vector<ExplainedFace> pick_faces(const io::FaceIndex& index, int count) {
  std::vector<ExplainedFace> faces;
  for (const std::string& method : io::ffpp_methods()) {
    if (int(faces.size()) >= count) break;
    ExplainedFace face;
    for (size_t f = 0; f < index.frames.size(); ++f) {
      const io::IndexVideo& v = index.videos[size_t(index.frames[f].video)];
      if (v.split != "test" || v.method != method || v.compression != io::Compression::raw) continue;
      face.video_id = v.video_id;
      face.method = method;
      face.frame = index.frames[f].frame;
      face.source = v.source;
      face.target = v.target;
      break;
    }
    if (face.video_id.empty()) continue;
    for (size_t f = 0; f < index.frames.size(); ++f) {
      const io::IndexVideo& v = index.videos[size_t(index.frames[f].video)];
      if (v.method == method && v.video_id == face.video_id && index.frames[f].frame == face.frame)
        face.frame_at[io::compression_name(v.compression)] = int64_t(f);
    }
    if (face.frame_at.size() == 3) faces.push_back(face);
  }
  return faces;
}

// The generator's manipulation mask of a raw test frame, warped like the face: a similarity from
// the frame's 5 ground-truth points (ldm.json) to the face's points in the PNG. Empty when the
// mask video or the landmarks cannot be found.
io::Image aligned_mask(const std::string& data_dir, const io::LandmarkMap& landmarks, const io::FaceIndex& index,
                       int64_t frame_index, int width, int height, std::string& why_not) {
  const io::IndexFrame& f = index.frames[size_t(frame_index)];
  const io::IndexVideo& v = index.videos[size_t(f.video)];
  const fs::path mask_video =
      fs::path(data_dir) / "manipulated_sequences" / v.method / "masks" / "videos" / (v.video_id + ".mp4");
  if (!fs::exists(mask_video)) {
    why_not = mask_video.string() + " does not exist";
    return {};
  }
  const io::LandmarkEntry* entry = io::find_landmarks(landmarks, v.video, f.frame);
  if (!entry || !f.has_points) {
    why_not = "no landmarks for " + v.video + " frame " + std::to_string(f.frame);
    return {};
  }
  const std::vector<io::Image> frames = io::decode_video(mask_video.string());
  if (f.frame >= int64_t(frames.size())) {
    why_not = mask_video.string() + " has no frame " + std::to_string(f.frame);
    return {};
  }
  const io::FivePoints src = io::five_points(entry->landmark);
  const io::Mat3 to_face = io::fit_similarity(src.data(), f.points.data(), 5);
  return io::warp_image(frames[size_t(f.frame)], to_face, width, height);
}

std::vector<unsigned char> png_of(const io::Image& image) { return io::encode_png(image); }

double mean_of(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double x : v)
    if (std::isfinite(x)) {
      s += x;
      ++n;
    }
  return n ? s / n : kNaN;
}

// Maps of v_d, v_s, v_t for each face at raw/c23/c40 and their metrics. Heatmap PNGs go to
// OUT/explain/ (the report embeds them).
json explain_faces(const DemoOptions& o, const std::map<std::string, std::string>& checkpoints,
                   const io::FaceIndex& index, const std::string& data_dir, const fs::path& out) {
  const std::vector<ExplainedFace> faces = pick_faces(index, o.explain_faces);
  FSTM_CHECK(!faces.empty(), index.root, ": no test fake with faces at raw, c23 and c40 to explain");
  const int size = index.settings.size;
  ShapleyOptions so;
  so.grid = o.explain_grid;
  so.samples = o.explain_samples;
  so.seed = o.seed;

  std::map<std::string, Explainer> models;
  for (const char* name : {"det", "source", "target"}) {
    ModelSpec spec;
    spec.model = checkpoints.at(name);
    Explainer e;
    e.model = load_model(spec);
    e.shapley = std::make_unique<ModelExplainer>(*e.model.net, size, so);
    models.emplace(name, std::move(e));
  }
  const GridGeometry& geometry = models.at("det").shapley->geometry();
  const int64_t planned = models.at("det").shapley->planned_evaluations();

  const fs::path pictures = out / "explain";
  io::ensure_dir(pictures.string());
  io::LandmarkMap landmarks;
  std::string mask_note;
  try {
    landmarks = io::load_landmarks((fs::path(data_dir) / "ldm.json").string());
  } catch (const Error& e) {
    mask_note = e.what();
  }

  const int64_t maps = int64_t(faces.size()) * 3 * 3;
  std::unique_ptr<ProgressBar> bar;
  if (o.progress) bar = std::make_unique<ProgressBar>("explain", maps * planned, "forwards", progress_stream());
  json per_face = json::array();
  std::vector<double> q_eq1, q_authors, faith_share, faith_lift;
  std::map<std::string, std::vector<double>> deltas;
  for (const ExplainedFace& face : faces) {
    std::map<std::string, std::map<std::string, ShapleyMap>> phi;  // model -> compression -> map
    std::map<std::string, io::Image> images;
    for (const char* c : kCompressions) {
      const io::IndexFrame& f = index.frames[size_t(face.frame_at.at(c))];
      images[c] = io::load_face(index, f, size);  // as evaluation sees it
      for (auto& [name, e] : models) {
        const int64_t target = name == "det" ? 1 : name == "source" ? face.source : face.target;
        FSTM_CHECK(target < e.model.config.num_classes(), e.model.source, " has no class ", target, " for ", face.video_id);
        const Tensor x = io::image_to_tensor(images[c], e.model.normalization);
        int64_t shown = 0;
        const ShapleyResult r = e.shapley->explain(x, target, [&](int64_t done, int64_t) {
          if (bar) bar->add(done - shown);
          shown = done;
        });
        if (bar) bar->add(planned - shown);
        phi[name][c] = r.phi;
      }
    }
    const std::string stem = face.method + "_" + face.video_id + "_frame" + std::to_string(face.frame);
    json jf = {{"video", face.video_id}, {"method", face.method}, {"frame", face.frame}};
    // Q on the raw face (Eq. 1 and the authors' variant)
    const QResult qe = q_tau_eq1(phi["det"]["raw"], phi["source"]["raw"], phi["target"]["raw"]);
    const QResult qa = q_tau_authors(phi["det"]["raw"], phi["source"]["raw"], phi["target"]["raw"]);
    jf["q_eq1"] = num(qe.q);
    jf["q_authors"] = num(qa.q);
    q_eq1.push_back(qe.q);
    q_authors.push_back(qa.q);
    // delta of each model across compressions
    for (const char* name : {"det", "source", "target"}) {
      const double d = compression_delta(phi[name]["raw"], {phi[name]["c23"], phi[name]["c40"]});
      jf["delta"][name] = num(d);
      deltas[name].push_back(d);
    }
    // faithfulness of v_d's raw map to the ground-truth mask
    std::string why_not = mask_note;
    io::Image mask;
    if (why_not.empty())
      mask = aligned_mask(data_dir, landmarks, index, face.frame_at.at("raw"), size, size, why_not);
    if (!mask.empty()) {
      const Faithfulness fa = manipulation_faithfulness(phi["det"]["raw"], geometry, mask);
      jf["faithfulness"] = {{"positive_share_inside", num(fa.positive_share_inside)},
                            {"area_share", num(fa.area_share)},
                            {"lift", num(fa.lift)}};
      faith_share.push_back(fa.positive_share_inside);
      faith_lift.push_back(fa.lift);
      io::write_file_atomic((pictures / (stem + "_mask.png")).string(), png_of(mask));
    } else {
      jf["faithfulness"] = nullptr;
      jf["faithfulness_missing"] = why_not;
    }
    // pictures: the face and each model's overlay at each compression
    HeatmapOptions ho;
    ho.legend = 0;
    for (const char* c : kCompressions) {
      io::write_file_atomic((pictures / (stem + "_" + c + ".png")).string(), png_of(images[c]));
      for (const char* name : {"det", "source", "target"})
        io::write_file_atomic((pictures / (stem + "_" + name + "_" + c + ".png")).string(),
                              png_of(heatmap_overlay(images[c], phi[name][c], geometry, ho)));
    }
    jf["stem"] = stem;
    json maps_json;
    for (const auto& [name, by_c] : phi)
      for (const auto& [c, m] : by_c) maps_json[name][c] = m;
    jf["phi"] = maps_json;
    per_face.push_back(jf);
  }
  if (bar) bar->finish();
  json summary = {{"faces", int64_t(faces.size())},
                  {"grid", o.explain_grid},
                  {"samples", o.explain_samples},
                  {"sampler", "permutation"},
                  {"baseline", "zero"},
                  {"forwards_per_map", planned},
                  {"q_eq1", num(mean_of(q_eq1))},
                  {"q_authors", num(mean_of(q_authors))},
                  {"faithfulness_share_inside", num(mean_of(faith_share))},
                  {"faithfulness_lift", num(mean_of(faith_lift))},
                  {"per_face", per_face}};
  for (const auto& [name, v] : deltas) summary["delta"][name] = num(mean_of(v));
  return summary;
}

// ---- the report ----------------------------------------------------------------------------------

std::string pct(const json& j) { return format_number(get(j), 3); }

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
           {"epochs v_d / FST / v_s, v_t", std::to_string(s["epochs_det"].get<int>()) + " / " +
                                               std::to_string(s["epochs_fst"].get<int>()) + " / " +
                                               std::to_string(s["epochs_encoders"].get<int>())},
           {"warm-up epochs", format_number(s["warmup_epochs"].get<double>(), 2)},
           {"evaluated checkpoint", "best validation AUC (best.safetensors) for v_d and FST; last for v_s, v_t"},
           {"explanations", std::to_string(s["explain_faces"].get<int>()) + " test fakes, " +
                                std::to_string(s["explain_grid"].get<int>()) + "x" +
                                std::to_string(s["explain_grid"].get<int>()) + " grid, " +
                                std::to_string(s["explain_samples"].get<int64_t>()) + " permutations"},
           {"seed", std::to_string(s["seed"].get<uint64_t>())}});

  r.heading("Detection on the test split");
  std::vector<std::vector<std::string>> rows = {{"model", "compression", "ACC", "frame AUC", "video AUC", "EER", "AP"}};
  for (const char* model : {"det", "fst"})
    for (const char* c : kCompressions) {
      const json& e = m[model][c];
      rows.push_back({model == std::string("det") ? "v_d" : "FST-Matching", c, pct(e["acc"]), pct(e["auc"]),
                      pct(e["video_auc"]), pct(e["eer"]), pct(e["ap"])});
    }
  r.table(rows, "All five methods' fakes and the real faces of the test identities, at each compression.");
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
  std::vector<std::vector<std::string>> ids = {{"encoder", "compression", "accuracy", "on reals", "on fakes"}};
  for (const char* model : {"source", "target"})
    for (const char* c : kCompressions) {
      const json& e = m[model][c];
      ids.push_back({model == std::string("source") ? "v_s (source identity)" : "v_t (target identity)", c,
                     pct(e["acc"]), pct(e["acc_real"]), pct(e["acc_fake"])});
    }
  r.table(ids,
          "Test split. The encoders train on the raw faces of every split (so that the explained test faces' "
          "identities are classes of their heads): raw accuracy is on seen frames, c23/c40 on unseen ones.");

  r.heading("Training");
  for (const char* model : kModels) {
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
  r.paragraph("Shapley maps (" + std::to_string(x["grid"].get<int>()) + "x" + std::to_string(x["grid"].get<int>()) +
              " grid cells as players, " + std::to_string(x["samples"].get<int64_t>()) +
              " permutation samples, zero baseline) of the ground-truth class logit: fake for v_d, the true source "
              "identity for v_s, the true target identity for v_t. Red cells raise the logit, blue cells lower it.");
  r.table({{"metric", "value", "what it says"},
           {"Q (Eq. 1)", pct(x["q_eq1"]), "> 0: v_d relies on cells outside the identity encoders' top cells"},
           {"Q (authors' code: relu, / L^2)", pct(x["q_authors"]), "the same, as the released code computes it"},
           {"delta v_d", pct(x["delta"]["det"]), "mean cosine of the c23/c40 maps with the raw map"},
           {"delta v_s", pct(x["delta"]["source"]), ""},
           {"delta v_t", pct(x["delta"]["target"]), ""},
           {"v_d positive mass inside the mask", pct(x["faithfulness_share_inside"]),
            "share of the positive Shapley mass on manipulated pixels (ground-truth masks of the generator)"},
           {"lift over the mask's area", pct(x["faithfulness_lift"]), "> 1: better than a map blind to the mask"}},
          "Means over the explained faces.");
  for (const json& f : x["per_face"]) {
    const std::string stem = f["stem"].get<std::string>();
    r.heading(f["method"].get<std::string>() + " " + f["video"].get<std::string>() + " frame " +
                  std::to_string(f["frame"].get<int64_t>()) + ": Q " + pct(f["q_eq1"]) + ", delta v_d " +
                  pct(f["delta"]["det"]),
              3);
    for (const char* c : kCompressions) {
      std::vector<std::pair<std::vector<unsigned char>, std::string>> row;
      row.push_back({read_png(out / "explain" / (stem + "_" + c + ".png")), std::string("face, ") + c});
      for (const char* name : {"det", "source", "target"})
        row.push_back({read_png(out / "explain" / (stem + "_" + name + "_" + c + ".png")),
                       std::string(name == std::string("det") ? "v_d" : name == std::string("source") ? "v_s" : "v_t") +
                           ", " + c});
      if (c == std::string("raw") && fs::exists(out / "explain" / (stem + "_mask.png")))
        row.push_back({read_png(out / "explain" / (stem + "_mask.png")), "manipulation mask"});
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
  o.data.identities = 6;
  o.data.frames = 4;
  o.data.video_size = 64;
  o.data.face_size = 32;
  o.data.faces_per_video = 2;
  o.epochs_det = o.epochs_fst = o.epochs_encoders = 1;
  o.batch = 16;
  o.warmup_epochs = 0;
  o.fst_hidden = 32;
  o.explain_faces = 1;
  o.explain_grid = 4;
  o.explain_samples = 4;
  return o;
}

json demo_settings_json(const DemoOptions& o) {
  return {{"quick", o.quick},
          {"data", synthetic_faces_json(o.data)},
          {"arch", "resnet18"},
          {"init", "random"},
          {"train_compressions", {"raw"}},
          {"photometric_augmentation", false},
          {"optimizer", "adamw"},
          {"epochs_det", o.epochs_det},
          {"epochs_fst", o.epochs_fst},
          {"epochs_encoders", o.epochs_encoders},
          {"batch", o.batch},
          {"lr", o.lr},
          {"schedule", o.schedule},
          {"warmup_epochs", o.warmup_epochs},
          {"fst_hidden", o.fst_hidden},
          {"explain_faces", o.explain_faces},
          {"explain_grid", o.explain_grid},
          {"explain_samples", o.explain_samples},
          {"seed", o.seed}};
}

DemoResult run_demo(const DemoOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  DemoOptions o = options;
  FSTM_CHECK(!o.out.empty(), "demo: give an output folder (--out DIR)");
  FSTM_CHECK(o.epochs_det >= 1 && o.epochs_fst >= 1 && o.epochs_encoders >= 1, "demo: epochs must be >= 1");
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
  for (const char* model : kModels) {
    t = std::chrono::steady_clock::now();
    say(o, std::string("training ") + model);
    const TrainResult r = train_or_reuse(train_options(o, model, faces.index, out));
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
  for (const char* model : kModels) {
    t = std::chrono::steady_clock::now();
    const json key = {{"checkpoint", fingerprints[model]}, {"data", index_key}};
    bool reused = false;
    const bool detector = model == std::string("det") || model == std::string("fst");
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
      return explain_faces(o, checkpoints, index, faces.data_dir, out);
    });
    // the pictures live beside the cache; a cached result without them is recomputed
    bool pictures = true;
    for (const json& f : metrics["explain"]["per_face"])
      pictures = pictures && fs::exists(out / "explain" / (f["stem"].get<std::string>() + "_det_raw.png"));
    if (!pictures) metrics["explain"] = explain_faces(o, checkpoints, index, faces.data_dir, out);
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
  s << "  compression        v_d          FST-Matching     winner\n";
  for (const char* c : kCompressions) {
    const double d = get(m["det"][c]["auc"]), f = get(m["fst"][c]["auc"]);
    const std::string winner = !(std::isfinite(d) && std::isfinite(f)) ? "-" : d > f ? "v_d" : f > d ? "FST" : "tie";
    s << "  " << std::left << std::setw(12) << c << std::right << cell(m["det"][c]["auc"]) << " ("
      << format_number(get(m["det"][c]["video_auc"]), 3) << ")" << cell(m["fst"][c]["auc"]) << " ("
      << format_number(get(m["fst"][c]["video_auc"]), 3) << ")     " << winner << "\n";
  }
  s << "identity accuracy (test split)   raw      c23      c40\n";
  for (const char* model : {"source", "target"}) {
    s << "  " << std::left << std::setw(30) << (model == std::string("source") ? "v_s (source)" : "v_t (target)")
      << std::right;
    for (const char* c : kCompressions) s << cell(m[model][c]["acc"]);
    s << "\n";
  }
  const json& x = m["explain"];
  s << "explanations (" << x["faces"].get<int64_t>() << " faces): Q eq.1 " << format_number(get(x["q_eq1"]), 3)
    << ", Q authors " << format_number(get(x["q_authors"]), 4) << "; delta v_d "
    << format_number(get(x["delta"]["det"]), 3) << ", v_s " << format_number(get(x["delta"]["source"]), 3) << ", v_t "
    << format_number(get(x["delta"]["target"]), 3) << "; v_d mass inside the mask "
    << format_number(get(x["faithfulness_share_inside"]), 3) << " (lift " << format_number(get(x["faithfulness_lift"]), 2)
    << ")\n";
  return s.str();
}

}  // namespace fstm
