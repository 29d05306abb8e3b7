#include "fstm/lib/hypotheses.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "fstm/lib/explain_study.h"
#include "fstm/lib/explainer.h"
#include "fstm/lib/heatmap.h"
#include "fstm/lib/model_loader.h"
#include "fstm/lib/progress.h"
#include "fstm/lib/report.h"
#include "io/fs.h"
#include "io/loader.h"
#include "io/video.h"
#include "tensor/random.h"

namespace fstm {

namespace {

namespace fs = std::filesystem;

// ---- small statistics ---------------------------------------------------------------------------

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json numbers(const std::vector<double>& v) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : v) a.push_back(number(x));
  return a;
}

std::string csv_number(double v) {
  if (!std::isfinite(v)) return "";
  std::ostringstream s;
  s.precision(9);
  s << v;
  return s.str();
}

void check_stop(const HypothesisOptions& o, const std::string& where) {
  if (o.stop && o.stop->load() != 0) throw Interrupted(o.stop->load(), "hypothesis: stopped while " + where);
}

// ---- data and models ----------------------------------------------------------------------------

struct Setup {
  std::string index_path, work;
  io::FaceIndex index;
  bool synthetic = false;
};

Setup prepare_data(const HypothesisOptions& o) {
  Setup s;
  s.work = o.work.empty() ? (fs::path(o.out) / "work").string() : o.work;
  SyntheticFacesOptions so = o.synthetic;
  so.progress = o.progress;
  so.stop = o.stop;
  s.index_path = face_index_or_synthetic(o.data, so, s.work);
  s.synthetic = o.data.empty();
  s.index = io::FaceIndex::load(s.index_path);
  FSTM_CHECK(!s.index.frames.empty(), s.index_path, ": the face index has no frames");
  return s;
}

bool has_videos(const io::FaceIndex& index, const std::string& split, const std::string& compression) {
  return std::any_of(index.videos.begin(), index.videos.end(), [&](const io::IndexVideo& v) {
    return v.split == split && io::compression_name(v.compression) == compression;
  });
}

// H3 follows the paper: the models train on raw faces and are explained on raw, c23 and c40.
std::string train_compression(const HypothesisOptions& o) { return o.hypothesis == 3 ? "raw" : o.compression; }

TrainOptions train_options(const HypothesisOptions& o, ModelType model, const std::string& arch,
                           const std::string& data, const std::string& out) {
  TrainOptions t;
  t.model = model;
  t.arch = arch;
  t.data = data;
  t.out = out;
  t.compressions = {train_compression(o)};
  o.training.apply(t);
  t.seed = o.seed;
  t.threads = o.threads;
  t.progress = o.progress;
  t.stop = o.stop;
  return t;
}

// Trains (or reuses) the run and returns the checkpoint of its best validation score, as the demo
// does, or its last one when it has no validation split.
std::string trained(const TrainOptions& t, nlohmann::json& record) {
  if (t.progress) std::cerr << "hypothesis: " << model_type_name(t.model) << " (" << t.arch << ") -> " << t.out << "\n";
  const TrainResult r = train_or_reuse(t);
  if (r.stopped_by_signal) throw Interrupted(r.stopped_by_signal, "hypothesis: stopped while training " + t.out);
  nlohmann::json epochs = nlohmann::json::array();
  for (const EpochMetrics& e : r.epochs) epochs.push_back(e.to_json());
  const std::string chosen = r.best.empty() ? r.last : r.best;
  record = {{"checkpoint", chosen}, {"trained", true}, {"epochs", epochs}, {"config", train_options_json(t)}};
  return chosen;
}

std::string model_kind_name(ModelType want) {
  return want == ModelType::det ? "real/fake detector (det or fst)" : std::string(model_type_name(want)) + " identity encoder";
}

// Loads a checkpoint and checks that it is the kind of model `flag` asks for.
LoadedModel load_kind(const std::string& path, const std::string& flag, ModelType want) {
  FSTM_CHECK(fs::exists(path), flag, " ", path, ": no such checkpoint");
  ModelSpec spec;
  spec.model = path;
  LoadedModel m = load_model(spec);
  const bool ok = want == ModelType::det ? m.config.detects() : m.config.type == want;
  FSTM_CHECK(ok, flag, " ", path, " holds a ", m.config.describe(), " model, but ", flag, " takes a ",
             model_kind_name(want));
  return m;
}

// The compressions the faces are explained at: H3 every one, H1/H2 the one given.
std::vector<std::string> explained_compressions(const HypothesisOptions& o) {
  if (o.hypothesis == 3) return {"raw", "c23", "c40"};
  return {o.compression};
}

// An identity encoder's accuracy on the test split (reals, swaps, partner rate) at the compressions
// its maps are read at: maps of an encoder that does not recognise the faces say nothing about Q.
nlohmann::json encoder_test_accuracy(const HypothesisOptions& o, const Setup& s, LoadedModel& encoder) {
  nlohmann::json j = nlohmann::json::object();
  for (const std::string& c : explained_compressions(o))
    if (has_videos(s.index, "test", c)) j[c] = test_identity_accuracy(encoder, s.index, c, o.progress).to_json();
  return j;
}

// v_d, v_s, v_t of one backbone: from the checkpoints given, else trained under WORK/runs/ARCH.
struct Encoders {
  std::string arch;
  LoadedModel det, source, target;
  nlohmann::json record;
};

Encoders encoders(const HypothesisOptions& o, const Setup& s, const std::string& arch, bool with_det = true) {
  Encoders e;
  e.arch = arch;
  const std::string runs = (fs::path(s.work) / "runs" / arch).string();
  const bool have_val = has_videos(s.index, "val", train_compression(o));
  auto get = [&](const std::string& given, const char* flag, ModelType type, LoadedModel& into, const char* key) {
    nlohmann::json rec;
    std::string path = given;
    if (path.empty()) {
      const bool encoder = type != ModelType::det;
      TrainOptions t = train_options(o, type, arch, s.index_path,
                                     runs + "/" + model_type_name(type) + (encoder ? "-all-" : "-") + train_compression(o));
      if (!have_val) t.val_split = "";  // (the encoders have none: they learn every split's identities)
      path = trained(t, rec);
    } else {
      rec = {{"checkpoint", path}, {"trained", false}};
    }
    into = load_kind(path, flag, type);
    rec["model"] = into.config.describe();
    if (type != ModelType::det) rec["test"] = encoder_test_accuracy(o, s, into);
    e.record[key] = rec;
  };
  if (with_det) get(o.det, "--det", ModelType::det, e.det, "v_d");
  get(o.source, "--source", ModelType::source, e.source, "v_s");
  get(o.target, "--target", ModelType::target, e.target, "v_t");
  return e;
}

// The class of identity `id` in an identity encoder's head, or -1 when it does not know it.
int64_t identity_class(const LoadedModel& m, const io::FaceIndex& index, const std::string& id) {
  const std::vector<std::string>& names = m.config.identity_names.empty() ? index.identities : m.config.identity_names;
  const auto it = std::find(names.begin(), names.end(), id);
  if (it == names.end()) return -1;
  const int64_t c = it - names.begin();
  return c < m.config.num_classes() ? c : -1;
}

// ---- choosing the faces -------------------------------------------------------------------------

// Fake frames at `compression`: `per_method` faces per manipulation method, one per video (videos in a
// seeded order, the middle frame first), from the first split in `splits` that gives faces for the
// most methods. usable(video) filters videos (identities the encoders know, counterparts...).
std::vector<int64_t> select_faces(const io::FaceIndex& index, const std::string& compression,
                                  const std::vector<std::string>& splits, int per_method, uint64_t seed,
                                  const std::function<bool(const io::IndexVideo&)>& usable, std::string& split_used) {
  std::vector<std::vector<int64_t>> frames_of(index.videos.size());
  for (size_t f = 0; f < index.frames.size(); ++f) frames_of[size_t(index.frames[f].video)].push_back(int64_t(f));
  std::vector<int64_t> best;
  size_t best_methods = 0;
  for (const std::string& split : splits) {
    std::map<std::string, std::vector<size_t>> videos;  // method -> videos
    for (size_t v = 0; v < index.videos.size(); ++v) {
      const io::IndexVideo& iv = index.videos[v];
      if (iv.det == 1 && iv.split == split && io::compression_name(iv.compression) == compression &&
          !frames_of[v].empty() && usable(iv))
        videos[iv.method].push_back(v);
    }
    std::vector<int64_t> chosen;
    for (auto& [method, list] : videos) {
      Rng rng(seed ^ std::hash<std::string>{}(method));
      for (size_t i = list.size(); i > 1; --i) std::swap(list[i - 1], list[rng.below(i)]);
      int taken = 0;
      for (size_t round = 0; taken < per_method; ++round) {
        bool any = false;
        for (size_t v : list) {
          const std::vector<int64_t>& fr = frames_of[v];
          if (round >= fr.size()) continue;
          any = true;
          // the middle frame, then alternately after and before it
          const size_t mid = fr.size() / 2, k = round % 2 ? mid + (round + 1) / 2 : mid - round / 2;
          chosen.push_back(fr[k % fr.size()]);
          if (++taken == per_method) break;
        }
        if (!any) break;
      }
    }
    if (videos.size() > best_methods) {
      best_methods = videos.size();
      best = chosen;
      split_used = split;
    }
  }
  return best;
}

// ---- the manipulation masks of the synthetic data -------------------------------------------------

// The ground-truth mask of a fake face as fstm extract aligned it (explain_study.h), fitted to
// `size`; nullopt when the index has none (real faces, data sets without mask videos).
std::optional<io::Image> manipulation_mask(const io::FaceIndex& index, int64_t frame, int size) {
  AlignedTruth t = aligned_truth(index, frame, size);
  if (!t.why_not.empty()) return std::nullopt;
  return std::move(t.mask);
}

// ---- explaining ---------------------------------------------------------------------------------

struct ModelRun {
  const LoadedModel* model = nullptr;
  std::unique_ptr<ModelExplainer> explainer;
  std::vector<InstabilityCurve> curves;
};

ModelRun model_run(const LoadedModel& m, const HypothesisOptions& o) {
  ShapleyOptions so;
  so.grid = o.grid;
  so.samples = o.samples;
  so.seed = o.seed;
  so.normalization = m.normalization;  // the black baseline is pixel 0 under the model's normalisation
  check_grid_fits(o.grid, m.input_size, m.input_size);
  ModelRun r;
  r.model = &m;
  r.explainer = std::make_unique<ModelExplainer>(*m.net, m.input_size, so, o.batch);
  return r;
}

struct FaceInput {
  io::Image image;
  Tensor tensor;
};

FaceInput face_input(const io::FaceIndex& index, int64_t frame, const LoadedModel& m) {
  FaceInput in;
  in.image = io::load_face(index, index.frames[size_t(frame)], m.input_size);
  in.tensor = io::image_to_tensor(in.image, m.normalization);
  return in;
}

ShapleyMap explain(ModelRun& r, const io::FaceIndex& index, int64_t frame, int64_t cls, uint64_t seed) {
  const FaceInput in = face_input(index, frame, *r.model);
  ShapleyResult res = r.explainer->explain(in.tensor, cls, {}, int64_t(seed & 0x7fffffffffffffffULL));
  r.curves.push_back(res.curve);
  return res.phi;
}

double fake_probability(ModelRun& r, const io::FaceIndex& index, int64_t frame) {
  const std::vector<float> l = r.explainer->logits(face_input(index, frame, *r.model).tensor);
  return 1.0 / (1.0 + std::exp(double(l[0]) - double(l[1])));
}

// Every face gets its own seed, shared by its maps (so maps of one face differ by the model or the
// image, not by the permutations drawn).
uint64_t face_seed(const HypothesisOptions& o, int64_t frame) { return o.seed * 1000003ULL + uint64_t(frame); }

// The seed of a face's second maps (instability): permutations independent of face_seed's.
uint64_t second_seed(const HypothesisOptions& o, int64_t frame) { return face_seed(o, frame) ^ 0x5851f42d4c957f2dULL; }

// phi_d's faithfulness to the face's manipulation mask; NaN when the index has no mask for it.
Faithfulness mask_faithfulness(const io::FaceIndex& index, int64_t frame, ModelRun& d, const ShapleyMap& phi_d) {
  if (const auto m = manipulation_mask(index, frame, d.model->input_size))
    return manipulation_faithfulness(phi_d, d.explainer->geometry(), *m);
  return {NAN, NAN, NAN};
}

// With `twice`, each map is explained a second time with independent permutations, and the pair's
// map_instability recorded: the paper's instability of two maps of T samples each.
ExplainedFace explain_face(const io::FaceIndex& index, int64_t frame, const std::string& arch, ModelRun& d, ModelRun& s,
                           ModelRun& t, const HypothesisOptions& o, ProgressBar& bar,
                           bool twice = false) {
  const io::IndexFrame& f = index.frames[size_t(frame)];
  const io::IndexVideo& v = index.videos[size_t(f.video)];
  ExplainedFace e;
  e.frame = frame;
  e.arch = arch;
  e.method = v.method;
  e.video_id = v.video_id;
  e.compression = io::compression_name(v.compression);
  e.split = v.split;
  e.png = f.png;
  e.source_class = identity_class(*s.model, index, v.source_id);
  e.target_class = identity_class(*t.model, index, v.target_id);
  const uint64_t seed = face_seed(o, frame);
  e.p_fake = fake_probability(d, index, frame);
  e.phi_d = explain(d, index, frame, 1, seed);
  bar.add();
  e.phi_s = explain(s, index, frame, e.source_class, seed);
  bar.add();
  e.phi_t = explain(t, index, frame, e.target_class, seed);
  bar.add();
  if (twice) {
    const uint64_t seed2 = second_seed(o, frame);
    e.instability_d = map_instability(e.phi_d, explain(d, index, frame, 1, seed2));
    bar.add();
    e.instability_s = map_instability(e.phi_s, explain(s, index, frame, e.source_class, seed2));
    bar.add();
    e.instability_t = map_instability(e.phi_t, explain(t, index, frame, e.target_class, seed2));
    bar.add();
  }
  e.q_eq1 = q_tau_eq1(e.phi_d, e.phi_s, e.phi_t);
  e.q_authors = q_tau_authors(e.phi_d, e.phi_s, e.phi_t);
  e.faithfulness = mask_faithfulness(index, frame, d, e.phi_d);
  return e;
}

// The grids in the top (100 - percent)% of a map: value > sorted_ascending[floor(N * percent / 100)].
std::vector<bool> top_grids(const ShapleyMap& u, int percent) {
  std::vector<double> sorted = u;
  std::sort(sorted.begin(), sorted.end());
  const double thr = sorted[std::min(sorted.size() - 1, sorted.size() * size_t(percent) / 100)];
  std::vector<bool> top(u.size());
  for (size_t i = 0; i < u.size(); ++i) top[i] = u[i] > thr;
  return top;
}

// Fig. 3's last panel: +1 where a grid is in the top 20% of both max(phi_s, phi_t) and phi_d, +0.5
// in the identity encoders' top only, -0.5 in the detector's top only.
ShapleyMap overlap_map(const ExplainedFace& e) {
  const ShapleyMap s = unit_normalized(e.phi_s), t = unit_normalized(e.phi_t), d = unit_normalized(e.phi_d);
  ShapleyMap u(s.size());
  for (size_t i = 0; i < u.size(); ++i) u[i] = std::max(s[i], t[i]);
  const std::vector<bool> top_id = top_grids(u, 80), top_d = top_grids(d, 80);
  ShapleyMap out(u.size());
  for (size_t i = 0; i < u.size(); ++i) out[i] = top_id[i] && top_d[i] ? 1.0 : top_id[i] ? 0.5 : top_d[i] ? -0.5 : 0.0;
  return out;
}

// ---- tables ---------------------------------------------------------------------------------------

// "0.123 [0.050, 0.196]": a mean and its 95% interval.
std::string fmt_ci(const MeanCi& c, int decimals = 3) {
  if (!std::isfinite(c.lo)) return format_number(c.mean, decimals);
  return format_number(c.mean, decimals) + " [" + format_number(c.lo, decimals) + ", " + format_number(c.hi, decimals) + "]";
}

// A claim "x > 0" judged by the 95% interval of x's mean: held when the interval lies above 0,
// refuted when it lies below, undecided when it holds 0 (or there are fewer than two values).
enum class Verdict { holds, refuted, undecided };
Verdict above_zero(const MeanCi& c) {
  if (!std::isfinite(c.lo) || !std::isfinite(c.hi)) return Verdict::undecided;
  return c.lo > 0 ? Verdict::holds : c.hi < 0 ? Verdict::refuted : Verdict::undecided;
}
// Both claims must hold; either refuted refutes.
Verdict both(Verdict a, Verdict b) {
  if (a == Verdict::refuted || b == Verdict::refuted) return Verdict::refuted;
  return a == Verdict::holds && b == Verdict::holds ? Verdict::holds : Verdict::undecided;
}
const char* verdict_text(Verdict v) {
  return v == Verdict::holds ? "supported" : v == Verdict::refuted ? "contradicted" : "undecided (a 95% interval holds 0)";
}

void write_text(const std::string& path, const std::string& text) { io::write_file_atomic(path, text); }

std::string q_csv(const std::vector<QRow>& rows) {
  std::ostringstream s;
  s << "arch,method,faces,q_eq1,q_eq1_sd,q_eq1_lo,q_eq1_hi,q_authors,q_authors_sd,q_authors_lo,q_authors_hi,"
       "positive_share,mask_share,mask_area,mask_lift\n";
  for (const QRow& r : rows)
    s << r.arch << "," << r.method << "," << r.faces << "," << csv_number(r.q_eq1) << "," << csv_number(r.q_eq1_sd) << ","
      << csv_number(r.q_eq1_ci.lo) << "," << csv_number(r.q_eq1_ci.hi) << "," << csv_number(r.q_authors) << ","
      << csv_number(r.q_authors_sd) << "," << csv_number(r.q_authors_ci.lo) << "," << csv_number(r.q_authors_ci.hi) << ","
      << csv_number(r.positive_share) << ","
      << csv_number(r.mask_share) << "," << csv_number(r.mask_area) << "," << csv_number(r.mask_lift) << "\n";
  return s.str();
}

nlohmann::json q_row_json(const QRow& r) {
  return {{"arch", r.arch},
          {"method", r.method},
          {"faces", r.faces},
          {"q_eq1", number(r.q_eq1)},
          {"q_eq1_sd", number(r.q_eq1_sd)},
          {"q_authors", number(r.q_authors)},
          {"q_authors_sd", number(r.q_authors_sd)},
          {"q_eq1_ci95", {number(r.q_eq1_ci.lo), number(r.q_eq1_ci.hi)}},
          {"q_authors_ci95", {number(r.q_authors_ci.lo), number(r.q_authors_ci.hi)}},
          {"positive_share", number(r.positive_share)},
          {"q_eq1_per_threshold", numbers(r.q_eq1_per_threshold)},
          {"q_authors_per_threshold", numbers(r.q_authors_per_threshold)},
          {"mask_share", number(r.mask_share)},
          {"mask_area", number(r.mask_area)},
          {"mask_lift", number(r.mask_lift)}};
}

std::vector<std::vector<std::string>> q_table_rows(const std::vector<QRow>& rows, bool masks) {
  std::vector<std::vector<std::string>> t = {
      {"backbone", "method", "faces", "Q (Eq. 1)", "Q (authors' code)", "faces with Q > 0"}};
  if (masks) t[0].insert(t[0].end(), {"phi_d+ inside mask", "mask area", "lift"});
  for (const QRow& r : rows) {
    std::vector<std::string> row = {r.arch,
                                    r.method,
                                    std::to_string(r.faces),
                                    fmt_ci(r.q_eq1_ci),
                                    fmt_ci(r.q_authors_ci, 4),
                                    format_number(100 * r.positive_share, 0) + "%"};
    if (masks) {
      row.push_back(format_number(r.mask_share));
      row.push_back(format_number(r.mask_area));
      row.push_back(format_number(r.mask_lift, 2));
    }
    t.push_back(row);
  }
  return t;
}

std::string instability_csv(const std::map<std::string, InstabilityCurve>& curves) {
  std::ostringstream s;
  s << "model,samples_per_half,instability,stddev,runs\n";
  for (const auto& [name, curve] : curves)
    for (const InstabilityPoint& p : curve)
      s << name << "," << p.samples << "," << csv_number(p.instability) << "," << csv_number(p.stddev) << "," << p.runs
        << "\n";
  return s.str();
}

std::vector<double> threshold_axis() {
  std::vector<double> x;
  for (int p : q_threshold_percents()) x.push_back(p / 100.0);
  return x;
}

std::vector<std::vector<std::string>> eval_table(const std::vector<std::pair<std::string, const EvalReport*>>& reports) {
  std::vector<std::vector<std::string>> t = {{"detector", "test set", "real / fake frames", "ACC", "AUC", "video AUC"}};
  for (const auto& [name, r] : reports)
    for (const EvalRow& row : r->rows)
      t.push_back({name, row.method + " (" + row.compression + ")",
                   std::to_string(row.real_frames) + " / " + std::to_string(row.fake_frames),
                   format_number(100 * row.frame.acc, 1), format_number(100 * row.frame.auc, 1),
                   format_number(100 * row.video_auc, 1)});
  return t;
}

std::string eval_csv(const std::vector<std::pair<std::string, const EvalReport*>>& reports) {
  std::ostringstream s;
  s << "detector,compression,method,real_frames,fake_frames,acc,auc,video_auc,eer,ap\n";
  for (const auto& [name, r] : reports)
    for (const EvalRow& row : r->rows)
      s << name << "," << row.compression << "," << row.method << "," << row.real_frames << "," << row.fake_frames << ","
        << csv_number(row.frame.acc) << "," << csv_number(row.frame.auc) << "," << csv_number(row.video_auc) << ","
        << csv_number(row.frame.eer) << "," << csv_number(row.frame.ap) << "\n";
  return s.str();
}

const EvalRow* all_row(const EvalReport& r) {
  for (const EvalRow& row : r.rows)
    if (row.method == "all") return &row;
  return r.rows.empty() ? nullptr : &r.rows.front();
}

EvalReport evaluate_detector(const LoadedModel& m, const Setup& s, const HypothesisOptions& o, const std::string& label) {
  EvalOptions eo;
  eo.data = s.index_path;
  eo.split = has_videos(s.index, "test", o.compression) ? "test" : "all";
  eo.compressions = {o.compression};
  eo.threads = o.threads;
  eo.progress = o.progress;
  EvalReport r = evaluate(*m.net, m.config, s.index, eo);
  r.model = label;
  return r;
}

// ---- the report's common parts ------------------------------------------------------------------------

void describe_run(HtmlReport& report, const HypothesisOptions& o, const Setup& s, const std::string& split) {
  std::ostringstream p;
  p << "Data: " << s.index_path << (s.synthetic ? " (the synthetic default, fstm synth + extract)" : "") << ", "
    << s.index.frames.size() << " faces of " << s.index.videos.size() << " videos, " << s.index.settings.size
    << " px. Shapley maps: " << o.grid << "x" << o.grid << " grid, T = " << o.samples
    << " permutations, black baseline (pixel 0, the authors'), seed " << o.seed << "; v_d explains the fake class of fake faces, v_s/v_t the "
    << "ground-truth source/target identity. Faces explained come from the '" << split << "' split";
  if (split == "train")
    p << " (the identity encoders only know the identities they were trained on, and those are the train split's)";
  p << ".";
  report.paragraph(p.str());
}

// "raw: reals 98.8%, swaps 96.7%, partner 1.3%; c23: ..." from encoder_test_accuracy's record.
std::string identity_accuracy_text(const nlohmann::json& test) {
  auto pct = [](const nlohmann::json& v) { return v.is_number() ? format_number(100 * v.get<double>(), 1) + "%" : "-"; };
  std::string out;
  for (const char* c : {"raw", "c23", "c40"}) {
    if (!test.contains(c)) continue;
    const nlohmann::json& a = test[c];
    out += (out.empty() ? "" : "; ") + std::string(c) + ": reals " + pct(a["acc_real"]) + ", swaps " +
           pct(a["acc_swap"]) + ", partner " + pct(a["partner_rate_real"]);
  }
  return out.empty() ? "-" : out;
}

void add_models(HtmlReport& report, const nlohmann::json& models) {
  std::vector<std::vector<std::string>> t = {
      {"model", "checkpoint", "what", "trained here", "last epoch", "identity accuracy on the test split"}};
  for (const auto& [name, rec] : models.items()) {
    std::string last = "-";
    if (rec.contains("epochs") && !rec["epochs"].empty()) {
      const nlohmann::json& e = rec["epochs"].back();
      last = "epoch " + std::to_string(e.value("epoch", 0)) + ", train acc " +
             format_number(100 * e.value("train_acc", NAN), 1) + "%";
      if (e.contains("val_acc") && e["val_acc"].is_number())
        last += ", val acc " + format_number(100 * e["val_acc"].get<double>(), 1) + "%";
    }
    t.push_back({name, rec.value("checkpoint", ""), rec.value("model", ""), rec.value("trained", false) ? "yes" : "no", last,
                 rec.contains("test") ? identity_accuracy_text(rec["test"]) : "-"});
  }
  report.table(t, "Models (v_s and v_t: the share of test faces whose true source / target identity they name; "
                  "partner: real faces of A named as an identity A is paired with)");
}

// The image, phi_s, phi_t, phi_d and the overlap of the top grids, one row per face.
void add_face_panels(HtmlReport& report, const std::vector<ExplainedFace>& faces, const io::FaceIndex& index, int size,
                     int grid, size_t max_faces) {
  const GridGeometry g = GridGeometry::make(size, size, grid);
  std::set<std::string> shown_methods;
  size_t shown = 0;
  for (const ExplainedFace& e : faces) {
    if (shown >= max_faces) break;
    if (shown_methods.count(e.method + e.arch)) continue;  // one face per method and backbone
    shown_methods.insert(e.method + e.arch);
    ++shown;
    const io::Image img = io::load_face(index, index.frames[size_t(e.frame)], size);
    HeatmapOptions ho;
    ho.legend = 0;
    std::vector<std::pair<std::vector<unsigned char>, std::string>> row = {
        {io::encode_png(img), e.method + " " + e.video_id + " (" + e.arch + "), p(fake) " + format_number(e.p_fake, 2)},
        {io::encode_png(heatmap_overlay(img, e.phi_s, g, ho)), "phi_s (source " + std::to_string(e.source_class) + ")"},
        {io::encode_png(heatmap_overlay(img, e.phi_t, g, ho)), "phi_t (target " + std::to_string(e.target_class) + ")"},
        {io::encode_png(heatmap_overlay(img, e.phi_d, g, ho)), "phi_d: Q " + format_number(e.q_eq1.q)},
        {io::encode_png(heatmap_image(overlap_map(e), g, ho)), "top 20%: red both, pink v_s/v_t, blue v_d"}};
    if (const auto m = manipulation_mask(index, e.frame, size)) row.push_back({io::encode_png(*m), "manipulation mask"});
    report.image_row(row, 128);
  }
}

void add_instability(HtmlReport& report, const std::map<std::string, InstabilityCurve>& curves) {
  std::vector<Series> series;
  for (const auto& [name, curve] : curves) {
    Series s;
    s.label = name;
    for (const InstabilityPoint& p : curve) {
      s.x.push_back(double(p.samples));
      s.y.push_back(p.instability);
    }
    series.push_back(s);
  }
  ChartOptions co;
  report.paragraph("Instability ||phi1 - phi2|| / ||phi1 + phi2|| of two maps of T samples each, the two halves of "
                   "one run of 2T permutations.");
  co.title = "Instability of two maps of T samples";
  co.x_label = "T (permutations of each map)";
  co.y_label = "instability";
  co.y_from_zero = true;
  report.line_chart(series, co);
}

std::string hypothesis_title(int h) {
  switch (h) {
    case 1: return "H1: the detector does not look where the identity encoders look (Q > 0)";
    case 2: return "H2: paired training data beats unpaired training data";
    default: return "H3: detector maps change under compression, identity maps do not";
  }
}

// ---- the hypotheses --------------------------------------------------------------------------------------

int faces_per_method(const HypothesisOptions& o) { return o.faces > 0 ? o.faces : 6; }

std::function<bool(const io::IndexVideo&)> known_to(const Encoders& e, const io::FaceIndex& index) {
  return [&e, &index](const io::IndexVideo& v) {
    return identity_class(e.source, index, v.source_id) >= 0 && identity_class(e.target, index, v.target_id) >= 0;
  };
}

std::map<std::string, InstabilityCurve> instability_of(const std::string& arch, ModelRun& d, ModelRun& s, ModelRun& t,
                                                       std::map<std::string, InstabilityCurve> into = {}) {
  into["v_d (" + arch + ")"] = average_instability_curves(d.curves);
  into["v_s (" + arch + ")"] = average_instability_curves(s.curves);
  into["v_t (" + arch + ")"] = average_instability_curves(t.curves);
  return into;
}

void run_h1(const HypothesisOptions& o, const Setup& s, HypothesisResult& res) {
  for (const std::string& arch : o.archs) {
    Encoders e = encoders(o, s, arch);
    if (res.input_size == 0) res.input_size = e.det.input_size;
    res.detectors.push_back(evaluate_detector(e.det, s, o, "v_d (" + arch + ")"));
    e.record["v_d"]["test"] = res.detectors.back().to_json();
    for (const auto& [k, rec] : e.record.items()) res.models[k + " (" + arch + ")"] = rec;
    const std::vector<int64_t> faces =
        select_faces(s.index, o.compression, o.splits, faces_per_method(o), o.seed, known_to(e, s.index), res.explain_split);
    FSTM_CHECK(!faces.empty(), s.index_path, ": no fake face at ", o.compression, " in the splits ",
               nlohmann::json(o.splits).dump(), " whose source and target identities both encoders know");
    ModelRun d = model_run(e.det, o), sr = model_run(e.source, o), t = model_run(e.target, o);
    const size_t twice = std::min(faces.size(), size_t(std::max(0, o.instability_faces)));
    ProgressBar bar("H1 maps (" + arch + ")", int64_t(3 * (faces.size() + twice)), "maps",
                    o.progress ? progress_stream() : nullptr);
    std::vector<ExplainedFace> explained;
    for (int64_t f : faces) {
      check_stop(o, "explaining");
      explained.push_back(explain_face(s.index, f, arch, d, sr, t, o, bar, explained.size() < twice));
    }
    bar.finish();
    for (const QRow& r : q_rows(explained, arch)) res.q_table.push_back(r);
    res.instability = instability_of(arch, d, sr, t, res.instability);
    res.faces.insert(res.faces.end(), explained.begin(), explained.end());
  }
}

void render_h1(const HypothesisOptions& o, const Setup& s, const HypothesisResult& res, HtmlReport& report) {
  const bool have_masks = std::any_of(res.q_table.begin(), res.q_table.end(), [](const QRow& r) { return std::isfinite(r.mask_lift); });
  write_text(o.out + "/h1_q.csv", q_csv(res.q_table));
  write_text(o.out + "/instability.csv", instability_csv(res.instability));

  describe_run(report, o, s, res.explain_split);
  report.heading("Finding");
  std::ostringstream f;
  std::vector<Verdict> verdicts;
  for (const QRow& r : res.q_table) {
    if (r.method != "all") continue;
    const Verdict v = both(above_zero(r.q_eq1_ci), above_zero(r.q_authors_ci));
    verdicts.push_back(v);
    f << r.arch << ", " << r.faces << " faces: Q (Eq. 1) " << fmt_ci(r.q_eq1_ci) << ", the authors' variant "
      << fmt_ci(r.q_authors_ci, 4) << " (mean [95% interval]); " << format_number(100 * r.positive_share, 0)
      << "% of the faces have Q (Eq. 1) > 0. ";
  }
  Verdict overall = verdicts.empty() ? Verdict::undecided : verdicts.front();
  for (Verdict v : verdicts) overall = both(overall, v);
  f << "H1 is " << verdict_text(overall) << " on this data";
  // the two variants can point opposite ways: say so rather than let one of them decide silently
  bool split = false;
  for (const QRow& r : res.q_table)
    if (r.method == "all") {
      const Verdict a = above_zero(r.q_eq1_ci), b = above_zero(r.q_authors_ci);
      split = split || (a == Verdict::holds && b == Verdict::refuted) || (a == Verdict::refuted && b == Verdict::holds);
    }
  f << (split ? " by one variant of Q and supported by the other: the variants disagree in sign (Eq. 1 weighs each "
                "side by its own cell count, the authors' code divides both sums by L^2 after a ReLU)."
              : ".");
  report.note(f.str());
  std::vector<double> inst[3];
  for (const ExplainedFace& e : res.faces)
    inst[0].push_back(e.instability_d), inst[1].push_back(e.instability_s), inst[2].push_back(e.instability_t);
  const MeanCi id = mean_ci95(inst[0]), is = mean_ci95(inst[1]), it = mean_ci95(inst[2]);
  if (id.n > 0)
    report.paragraph("Instability of two maps of T = " + std::to_string(o.samples) + " samples each (independent "
                     "permutations, " + std::to_string(id.n) + " faces): v_d " + fmt_ci(id) + ", v_s " + fmt_ci(is) +
                     ", v_t " + fmt_ci(it) + ". The paper asks for T large enough that this is small.");
  report.paragraph("Paper (Table 1): Q > 0 for every manipulation method and backbone on FF++, that is, the detector's "
                   "positive Shapley mass lies outside the grids that carry the source/target identity.");
  report.heading("Q per manipulation method (Table 1)");
  report.table(q_table_rows(res.q_table, have_masks), "Mean [95% interval] over the faces; Q averages the thresholds 0.60..0.95");
  if (have_masks)
    report.paragraph("Faithfulness (synthetic data only): the share of phi_d's positive mass that lies inside the "
                     "generator's manipulation mask, against the mask's share of the image (lift = ratio; 1 = blind to "
                     "the mask).");
  report.heading("Examples (Fig. 3)");
  add_face_panels(report, res.faces, s.index, res.input_size, o.grid, 5 * o.archs.size());
  report.heading("Instability against T (Fig. 3, left)");
  add_instability(report, res.instability);
  report.heading("Detectors on the test split");
  std::vector<std::pair<std::string, const EvalReport*>> named;
  for (const EvalReport& r : res.detectors) named.emplace_back(r.model, &r);
  report.table(eval_table(named), "ACC/AUC in %");
  add_models(report, res.models);
}

int h2_identities(const HypothesisOptions& o, const io::FaceIndex& index) {
  if (o.identities > 0) return o.identities;
  std::map<std::string, std::set<std::string>> dirs;  // as io::build_h2_subsets counts pairs
  for (const io::IndexVideo& v : index.videos)
    if (v.split == "train" && v.det == 1)
      dirs[std::min(v.source_id, v.target_id) + "|" + std::max(v.source_id, v.target_id)].insert(v.video_id);
  int pairs = 0;
  for (const auto& [k, d] : dirs) pairs += d.size() >= 2;
  return std::max(2, std::min(40, 2 * (pairs / 2)));
}

void run_h2(const HypothesisOptions& o, const Setup& s, HypothesisResult& res) {
  const std::string arch = o.archs.front();
  // v_s, v_t as for H1; v_d is the paired or the unpaired detector, and H1's v_d (all of the train
  // split) is the baseline both are compared with
  Encoders e = encoders(o, s, arch, true);
  res.models = e.record;
  res.h2_all = evaluate_detector(e.det, s, o, "all train data");
  {
    const std::string runs = (fs::path(s.work) / "runs" / arch).string();
    res.h2_identities = h2_identities(o, s.index);
    const bool need_subsets = o.paired.empty() || o.unpaired.empty();
    std::string subset_paths[2];
    if (need_subsets) {
      const io::H2Subsets h = io::build_h2_subsets(s.index, res.h2_identities, o.seed, "train");
      const fs::path dir = fs::path(s.work) / "h2" / ("n" + std::to_string(res.h2_identities) + "-seed" + std::to_string(o.seed));
      io::ensure_dir(dir.string());
      io::FaceIndex p = h.paired, u = h.unpaired;
      subset_paths[0] = (dir / "paired.json").string();
      subset_paths[1] = (dir / "unpaired.json").string();
      p.save(subset_paths[0]);
      u.save(subset_paths[1]);
      nlohmann::json pairs = nlohmann::json::object();
      pairs["real_pairs"] = h.real_pairs;
      pairs["unpaired_fake_pairs"] = h.unpaired_fake_pairs;
      res.models["subsets"] = pairs;
    }
    LoadedModel dets[2];
    const char* names[2] = {"paired", "unpaired"};
    const std::string given[2] = {o.paired, o.unpaired};
    for (int k = 0; k < 2; ++k) {
      nlohmann::json rec;
      std::string path = given[k];
      if (path.empty()) {
        TrainOptions t = train_options(o, ModelType::det, arch, subset_paths[k],
                                       runs + "/h2-" + names[k] + "-n" + std::to_string(res.h2_identities) + "-" + o.compression);
        t.val_split = "";  // the subsets hold train videos only; both are tested on the test split below
        path = trained(t, rec);
      } else {
        rec = {{"checkpoint", path}, {"trained", false}};
      }
      dets[k] = load_kind(path, std::string("--") + names[k], ModelType::det);
      rec["model"] = dets[k].config.describe();
      res.models[std::string("v_d ") + names[k]] = rec;
    }
    res.h2_paired = evaluate_detector(dets[0], s, o, "paired");
    res.h2_unpaired = evaluate_detector(dets[1], s, o, "unpaired");

    const std::vector<int64_t> faces =
        select_faces(s.index, o.compression, o.splits, faces_per_method(o), o.seed, known_to(e, s.index), res.explain_split);
    FSTM_CHECK(!faces.empty(), s.index_path, ": no fake face at ", o.compression, " in the splits ",
               nlohmann::json(o.splits).dump(), " whose source and target identities both encoders know");
    ModelRun sr = model_run(e.source, o), t = model_run(e.target, o);
    ModelRun d[2] = {model_run(dets[0], o), model_run(dets[1], o)};
    ProgressBar bar("H2 maps", int64_t(4 * faces.size()), "maps", o.progress ? progress_stream() : nullptr);
    std::vector<ExplainedFace> by[2];
    for (int64_t f : faces) {
      check_stop(o, "explaining");
      // v_s and v_t once per face; only the detector differs
      ExplainedFace first = explain_face(s.index, f, names[0], d[0], sr, t, o, bar);
      ExplainedFace second = first;
      second.arch = names[1];
      second.p_fake = fake_probability(d[1], s.index, f);
      second.phi_d = explain(d[1], s.index, f, 1, face_seed(o, f));
      bar.add();
      second.q_eq1 = q_tau_eq1(second.phi_d, second.phi_s, second.phi_t);
      second.q_authors = q_tau_authors(second.phi_d, second.phi_s, second.phi_t);
      second.faithfulness = mask_faithfulness(s.index, f, d[1], second.phi_d);
      by[0].push_back(first);
      by[1].push_back(second);
    }
    bar.finish();
    std::vector<double> difference;
    for (size_t i = 0; i < by[0].size(); ++i) difference.push_back(by[0][i].q_eq1.q - by[1][i].q_eq1.q);
    res.h2_q_difference = mean_ci95(difference);
    for (int k = 0; k < 2; ++k) {
      for (const QRow& r : q_rows(by[k], names[k])) res.h2_q.push_back(r);
      res.faces.insert(res.faces.end(), by[k].begin(), by[k].end());
    }
    res.instability = instability_of(arch, d[0], sr, t);
    res.instability["v_d unpaired (" + arch + ")"] = average_instability_curves(d[1].curves);
  }
  res.input_size = e.source.input_size;
}

void render_h2(const HypothesisOptions& o, const Setup& s, const HypothesisResult& res, HtmlReport& report) {
  const std::string arch = o.archs.front();

  const std::vector<std::pair<std::string, const EvalReport*>> evals = {
      {"paired", &res.h2_paired}, {"unpaired", &res.h2_unpaired}, {"all train data", &res.h2_all}};
  write_text(o.out + "/h2_detection.csv", eval_csv(evals));
  write_text(o.out + "/h2_q.csv", q_csv(res.h2_q));
  {
    std::ostringstream c;
    c << "detector,threshold,q_eq1,q_authors\n";
    for (const QRow& r : res.h2_q)
      if (r.method == "all")
        for (size_t i = 0; i < q_threshold_percents().size(); ++i)
          c << r.arch << "," << q_threshold_percents()[i] / 100.0 << "," << csv_number(r.q_eq1_per_threshold[i]) << ","
            << csv_number(r.q_authors_per_threshold[i]) << "\n";
    write_text(o.out + "/h2_q_curves.csv", c.str());
  }

  describe_run(report, o, s, res.explain_split);
  report.paragraph("Training subsets of the train split (io::build_h2_subsets): " + std::to_string(res.h2_identities) +
                   " real identities each. Paired: the fakes are made from exactly those identities. Unpaired: the same "
                   "reals with the fakes of other identity pairs. Both detectors (" + arch +
                   ") are trained alike and tested on the test split at " + o.compression + ".");
  const EvalRow *p = all_row(res.h2_paired), *u = all_row(res.h2_unpaired);
  auto all_q = [&](const std::string& name) {
    for (const QRow& r : res.h2_q)
      if (r.arch == name && r.method == "all") return r;
    return QRow{};
  };
  const QRow qp = all_q("paired"), qu = all_q("unpaired");
  report.heading("Finding");
  std::ostringstream f;
  const EvalRow* all = all_row(res.h2_all);
  if (p && u) {
    f << "Video AUC (the paper's measure): paired " << format_number(100 * p->video_auc, 1) << "%, unpaired "
      << format_number(100 * u->video_auc, 1) << "%";
    if (all) f << ", the whole train split " << format_number(100 * all->video_auc, 1) << "%";
    f << " (frame AUC " << format_number(100 * p->frame.auc, 1) << "% / " << format_number(100 * u->frame.auc, 1)
      << "%; one training run each, no interval). ";
  }
  f << "Mean Q (Eq. 1): paired " << fmt_ci(qp.q_eq1_ci) << ", unpaired " << fmt_ci(qu.q_eq1_ci)
    << "; per face, paired minus unpaired " << fmt_ci(res.h2_q_difference) << ". ";
  const bool better_auc = p && u && p->video_auc > u->video_auc;
  const Verdict q = above_zero(res.h2_q_difference);
  // the AUC comes from one run per detector: it can only withhold support, not refute
  const Verdict v = q == Verdict::holds && !better_auc ? Verdict::undecided : q;
  f << "H2 is " << verdict_text(v) << " on this data (paired " << (better_auc ? "higher" : "not higher")
    << " video AUC; Q difference " << (q == Verdict::holds ? "above 0" : q == Verdict::refuted ? "below 0" : "holds 0")
    << ").";
  report.note(f.str());
  report.paragraph("The subsets are unbalanced by design, as in the paper: the unpaired set's fakes come from identities "
                   "its reals do not show, so its detector cannot learn what a fake changes about a given face, only what "
                   "fakes look like. The whole train split (every pair) is the baseline both subsets are compared with.");
  report.paragraph("Paper (Table 2, Fig. 4): the detector trained on the paired set has higher ACC/AUC and higher Q_tau "
                   "than the one trained on an unpaired set of the same size (40 identities).");
  report.heading("Detection (Table 2)");
  report.table(eval_table(evals), "ACC/AUC in %, frames and videos of the test split");
  report.heading("Q_tau against the threshold (Fig. 4)");
  for (int variant = 0; variant < 2; ++variant) {
    std::vector<Series> series;
    for (const QRow& r : res.h2_q)
      if (r.method == "all")
        series.push_back({r.arch, threshold_axis(), variant == 0 ? r.q_eq1_per_threshold : r.q_authors_per_threshold});
    ChartOptions co;
    co.title = variant == 0 ? "Q_tau (Eq. 1)" : "Q_tau (the authors' code)";
    co.x_label = "threshold tau (quantile of max(phi_s, phi_t))";
    co.y_label = "Q_tau";
    report.line_chart(series, co);
  }
  report.table(q_table_rows(res.h2_q, false), "Q per method (the backbone column names the detector)");
  report.heading("Examples");
  add_face_panels(report, res.faces, s.index, res.input_size, o.grid, 10);
  add_models(report, res.models);
}

void run_h3(const HypothesisOptions& o, const Setup& s, HypothesisResult& res) {
  // (method, video_id, frame) -> frame index, per compression
  std::map<std::string, std::map<std::string, int64_t>> at;
  auto key = [&](int64_t f) {
    const io::IndexFrame& fr = s.index.frames[size_t(f)];
    const io::IndexVideo& v = s.index.videos[size_t(fr.video)];
    return v.method + "/" + v.video_id + "/" + std::to_string(fr.frame);
  };
  for (size_t f = 0; f < s.index.frames.size(); ++f)
    at[io::compression_name(s.index.videos[size_t(s.index.frames[f].video)].compression)][key(int64_t(f))] = int64_t(f);
  for (const char* c : {"raw", "c23", "c40"})
    FSTM_CHECK(!at[c].empty(), s.index_path, ": H3 needs faces at raw, c23 and c40, but the index has none at ", c,
               " (extract with --compression raw,c23,c40)");
  std::vector<std::pair<std::string, std::vector<double>>> cos23, cos40;  // per (arch, model, method) row
  for (const std::string& arch : o.archs) {
    Encoders e = encoders(o, s, arch);
    for (const auto& [k, rec] : e.record.items()) res.models[k + " (" + arch + ")"] = rec;
    auto usable = known_to(e, s.index);
    // the raw face whose c23 and c40 versions exist too
    std::vector<int64_t> raw = select_faces(
        s.index, "raw", o.splits, faces_per_method(o) * 4, o.seed, usable, res.explain_split);
    std::vector<int64_t> faces;
    std::map<std::string, int> per_method;
    for (int64_t f : raw) {
      const std::string k = key(f);
      const std::string m = s.index.videos[size_t(s.index.frames[size_t(f)].video)].method;
      if (at["c23"].count(k) && at["c40"].count(k) && per_method[m] < faces_per_method(o)) faces.push_back(f), per_method[m]++;
    }
    FSTM_CHECK(!faces.empty(), s.index_path, ": no fake face with raw, c23 and c40 versions in the splits ",
               nlohmann::json(o.splits).dump(), " whose identities both encoders know");
    ModelRun runs[3] = {model_run(e.det, o), model_run(e.source, o), model_run(e.target, o)};
    const char* names[3] = {"v_d", "v_s", "v_t"};
    ProgressBar bar("H3 maps (" + arch + ")", int64_t(9 * faces.size()), "maps", o.progress ? progress_stream() : nullptr);
    // per model, per method: (cos c23, cos c40) of each face
    std::map<std::string, std::map<std::string, std::vector<std::array<double, 2>>>> cos;
    for (int64_t f : faces) {
      check_stop(o, "explaining");
      const io::IndexVideo& v = s.index.videos[size_t(s.index.frames[size_t(f)].video)];
      const int64_t cls[3] = {1, identity_class(e.source, s.index, v.source_id), identity_class(e.target, s.index, v.target_id)};
      const int64_t frames[3] = {f, at["c23"][key(f)], at["c40"][key(f)]};
      for (int m = 0; m < 3; ++m) {
        ShapleyMap phi[3];
        for (int c = 0; c < 3; ++c) {
          phi[c] = explain(runs[m], s.index, frames[c], cls[m], face_seed(o, f));
          bar.add();
        }
        cos[names[m]][v.method].push_back({cosine_similarity(phi[1], phi[0]), cosine_similarity(phi[2], phi[0])});
        cos[names[m]]["all"].push_back(cos[names[m]][v.method].back());
      }
    }
    bar.finish();
    res.instability = instability_of(arch, runs[0], runs[1], runs[2], res.instability);
    for (const char* m : names)
      for (const auto& [method, list] : cos[m]) {
        HypothesisResult::DeltaRow r;
        r.arch = arch;
        r.model = m;
        r.method = method;
        r.faces = int(list.size());
        std::vector<double> c23, c40, delta;
        for (const auto& c : list) c23.push_back(c[0]), c40.push_back(c[1]), delta.push_back((c[0] + c[1]) / 2);
        r.cos_c23 = mean_sd(c23).first;
        r.cos_c40 = mean_sd(c40).first;
        std::tie(r.delta, r.delta_sd) = mean_sd(delta);
        r.delta_ci = mean_ci95(delta);
        res.deltas.push_back(r);
      }
    // paired over the faces (the lists of "all" are in the same face order for every model)
    std::vector<double> gap_s, gap_t;
    const auto& ld = cos["v_d"]["all"];
    const auto& ls = cos["v_s"]["all"];
    const auto& lt = cos["v_t"]["all"];
    for (size_t i = 0; i < ld.size(); ++i) {
      const double dd = (ld[i][0] + ld[i][1]) / 2;
      gap_s.push_back((ls[i][0] + ls[i][1]) / 2 - dd);
      gap_t.push_back((lt[i][0] + lt[i][1]) / 2 - dd);
    }
    res.delta_gaps[arch] = {mean_ci95(gap_s), mean_ci95(gap_t)};
  }
  std::sort(res.deltas.begin(), res.deltas.end(), [](const auto& a, const auto& b) {
    return std::tie(a.arch, a.method, a.model) < std::tie(b.arch, b.method, b.model);
  });
  // "all" last within each backbone
  std::stable_partition(res.deltas.begin(), res.deltas.end(), [](const auto& r) { return r.method != "all"; });
}

void render_h3(const HypothesisOptions& o, const Setup& s, const HypothesisResult& res, HtmlReport& report) {
  {
    std::ostringstream c;
    c << "arch,model,method,faces,cos_c23,cos_c40,delta,delta_sd\n";
    for (const auto& r : res.deltas)
      c << r.arch << "," << r.model << "," << r.method << "," << r.faces << "," << csv_number(r.cos_c23) << ","
        << csv_number(r.cos_c40) << "," << csv_number(r.delta) << "," << csv_number(r.delta_sd) << "\n";
    write_text(o.out + "/h3_delta.csv", c.str());
  }
  write_text(o.out + "/instability.csv", instability_csv(res.instability));

  describe_run(report, o, s, res.explain_split);
  report.paragraph("Every face is explained at raw, c23 and c40 with the same permutations (same seed), by models trained "
                   "on raw faces (as in the paper); delta (Eq. 2) is the mean of cos(phi_c23, phi_raw) and cos(phi_c40, phi_raw).");
  report.heading("Finding");
  std::ostringstream f;
  Verdict overall = Verdict::holds;
  for (const std::string& arch : o.archs) {
    MeanCi d[3];
    for (const auto& r : res.deltas)
      if (r.arch == arch && r.method == "all") d[r.model == "v_d" ? 0 : r.model == "v_s" ? 1 : 2] = r.delta_ci;
    const auto gap = res.delta_gaps.find(arch);
    if (gap == res.delta_gaps.end()) continue;
    const auto& [gs, gt] = gap->second;
    const Verdict v = both(above_zero(gs), above_zero(gt));
    overall = both(overall, v);
    f << arch << " (" << d[0].n << " faces): delta v_d " << fmt_ci(d[0]) << ", v_s " << fmt_ci(d[1]) << ", v_t "
      << fmt_ci(d[2]) << "; per face, delta_s - delta_d " << fmt_ci(gs) << ", delta_t - delta_d " << fmt_ci(gt) << ". ";
  }
  f << "H3 is " << verdict_text(overall) << " on this data.";
  report.note(f.str());
  report.paragraph("Paper (Table 3): delta_d < delta_s, delta_t: the detector's maps move under compression much more "
                   "than the identity encoders' maps.");
  report.heading("delta per model and method (Table 3)");
  std::vector<std::vector<std::string>> t = {{"backbone", "model", "method", "faces", "cos(c23, raw)", "cos(c40, raw)", "delta"}};
  for (const auto& r : res.deltas)
    t.push_back({r.arch, r.model, r.method, std::to_string(r.faces), format_number(r.cos_c23), format_number(r.cos_c40),
                 fmt_ci(r.delta_ci)});
  report.table(t, "Mean [95% interval] over faces; higher = more stable");
  report.heading("Instability against T");
  add_instability(report, res.instability);
  add_models(report, res.models);
}

}  // namespace

HypothesisOptions HypothesisOptions::quick(HypothesisOptions o) {
  make_tiny(o.synthetic, 16);
  o.training = TrainingRecipe::tiny();
  o.grid = 4;
  o.samples = 4;
  o.faces = 1;
  o.instability_faces = 1;
  return o;
}

nlohmann::json ExplainedFace::to_json() const {
  const int L = int(std::lround(std::sqrt(double(phi_d.size()))));
  return {{"frame", frame},
          {"arch", arch},
          {"method", method},
          {"video_id", video_id},
          {"compression", compression},
          {"split", split},
          {"png", png},
          {"source_class", source_class},
          {"target_class", target_class},
          {"p_fake", number(p_fake)},
          {"q_eq1", number(q_eq1.q)},
          {"q_eq1_per_threshold", numbers(q_eq1.per_threshold)},
          {"q_authors", number(q_authors.q)},
          {"q_authors_per_threshold", numbers(q_authors.per_threshold)},
          {"mask_share", number(faithfulness.positive_share_inside)},
          {"mask_area", number(faithfulness.area_share)},
          {"mask_lift", number(faithfulness.lift)},
          {"instability_two_maps", {number(instability_d), number(instability_s), number(instability_t)}},
          {"phi_d", map_json(phi_d, L)},
          {"phi_s", map_json(phi_s, L)},
          {"phi_t", map_json(phi_t, L)}};
}

std::vector<QRow> q_rows(const std::vector<ExplainedFace>& faces, const std::string& arch) {
  std::map<std::string, std::vector<const ExplainedFace*>> groups;
  for (const ExplainedFace& f : faces) {
    groups[f.method].push_back(&f);
    groups["all"].push_back(&f);
  }
  std::vector<QRow> rows;
  const size_t T = q_threshold_percents().size();
  for (const auto& [method, list] : groups) {
    QRow r;
    r.arch = arch;
    r.method = method;
    r.faces = int(list.size());
    std::vector<double> q1, qa, share, area, lift;
    std::vector<std::vector<double>> t1(T), ta(T);
    int positive = 0;
    for (const ExplainedFace* f : list) {
      q1.push_back(f->q_eq1.q);
      qa.push_back(f->q_authors.q);
      positive += f->q_eq1.q > 0;
      share.push_back(f->faithfulness.positive_share_inside);
      area.push_back(f->faithfulness.area_share);
      lift.push_back(f->faithfulness.lift);
      for (size_t i = 0; i < T; ++i) {
        if (i < f->q_eq1.per_threshold.size()) t1[i].push_back(f->q_eq1.per_threshold[i]);
        if (i < f->q_authors.per_threshold.size()) ta[i].push_back(f->q_authors.per_threshold[i]);
      }
    }
    std::tie(r.q_eq1, r.q_eq1_sd) = mean_sd(q1);
    std::tie(r.q_authors, r.q_authors_sd) = mean_sd(qa);
    r.q_eq1_ci = mean_ci95(q1);
    r.q_authors_ci = mean_ci95(qa);
    r.positive_share = list.empty() ? NAN : double(positive) / double(list.size());
    r.mask_share = mean_sd(share).first;
    r.mask_area = mean_sd(area).first;
    r.mask_lift = mean_sd(lift).first;
    for (size_t i = 0; i < T; ++i) {
      r.q_eq1_per_threshold.push_back(mean_sd(t1[i]).first);
      r.q_authors_per_threshold.push_back(mean_sd(ta[i]).first);
    }
    rows.push_back(r);
  }
  // methods in name order, "all" last
  std::stable_partition(rows.begin(), rows.end(), [](const QRow& r) { return r.method != "all"; });
  return rows;
}

nlohmann::json HypothesisResult::to_json() const {
  nlohmann::json j = {{"hypothesis", hypothesis}, {"index", index},   {"out", out},
                      {"explain_split", explain_split}, {"models", models}, {"seconds", seconds}};
  auto q_json = [](const std::vector<QRow>& rows) {
    nlohmann::json a = nlohmann::json::array();
    for (const QRow& r : rows) a.push_back(q_row_json(r));
    return a;
  };
  if (!q_table.empty()) j["q_table"] = q_json(q_table);
  if (hypothesis == 2) {
    j["h2"] = {{"identities", h2_identities},
               {"paired", h2_paired.to_json()},
               {"unpaired", h2_unpaired.to_json()},
               {"all_train_data", h2_all.to_json()},
               {"q_eq1_paired_minus_unpaired", {{"mean", number(h2_q_difference.mean)},
                                                {"ci95", {number(h2_q_difference.lo), number(h2_q_difference.hi)}},
                                                {"faces", h2_q_difference.n}}},
               {"q", q_json(h2_q)}};
  }
  if (!deltas.empty()) {
    nlohmann::json a = nlohmann::json::array();
    for (const DeltaRow& r : deltas)
      a.push_back({{"arch", r.arch},
                   {"model", r.model},
                   {"method", r.method},
                   {"faces", r.faces},
                   {"cos_c23", number(r.cos_c23)},
                   {"cos_c40", number(r.cos_c40)},
                   {"delta", number(r.delta)},
                   {"delta_sd", number(r.delta_sd)},
                   {"delta_ci95", {number(r.delta_ci.lo), number(r.delta_ci.hi)}}});
    j["deltas"] = a;
    nlohmann::json g = nlohmann::json::object();
    for (const auto& [arch, gaps] : delta_gaps)
      g[arch] = {{"delta_s_minus_delta_d", {{"mean", number(gaps.first.mean)}, {"ci95", {number(gaps.first.lo), number(gaps.first.hi)}}}},
                 {"delta_t_minus_delta_d", {{"mean", number(gaps.second.mean)}, {"ci95", {number(gaps.second.lo), number(gaps.second.hi)}}}},
                 {"faces", gaps.first.n}};
    j["delta_gaps"] = g;
  }
  nlohmann::json inst = nlohmann::json::object();
  for (const auto& [name, curve] : instability) {
    nlohmann::json pts = nlohmann::json::array();
    for (const InstabilityPoint& p : curve)
      pts.push_back({{"samples_per_half", p.samples}, {"instability", number(p.instability)}, {"stddev", number(p.stddev)}, {"runs", p.runs}});
    inst[name] = pts;
  }
  j["instability"] = inst;
  nlohmann::json fj = nlohmann::json::array();
  for (const ExplainedFace& f : faces) fj.push_back(f.to_json());
  j["faces"] = fj;
  return j;
}

HypothesisResult run_hypothesis(const HypothesisOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  FSTM_CHECK(o.hypothesis >= 1 && o.hypothesis <= 3, "hypothesis: there are three hypotheses (1, 2, 3), not ", o.hypothesis);
  FSTM_CHECK(!o.out.empty(), "hypothesis: give an output folder (--out)");
  FSTM_CHECK(!o.archs.empty(), "hypothesis: give at least one backbone (--archs)");
  FSTM_CHECK(o.grid >= 2, "hypothesis: --grid must be at least 2, got ", o.grid);
  FSTM_CHECK(o.samples >= 1, "hypothesis: --samples must be at least 1, got ", o.samples);
  FSTM_CHECK(o.faces >= 0 && o.batch >= 1 && o.training.batch >= 1 && o.training.epochs_det >= 1 &&
                 o.training.epochs_encoders >= 1 && o.training.epochs_target >= 1,
             "hypothesis: --faces must be >= 0; --batch, --train-batch and the epochs >= 1");
  const bool given = !o.det.empty() || !o.source.empty() || !o.target.empty() || !o.paired.empty() || !o.unpaired.empty();
  FSTM_CHECK(!given || o.archs.size() == 1, "hypothesis: checkpoints (--det/--source/--target/--paired/--unpaired) go "
                                            "with a single backbone, not --archs ", nlohmann::json(o.archs).dump());
  io::parse_compression(o.compression);
  // fail on unreadable checkpoints before anything long runs
  const std::pair<const std::string*, std::pair<const char*, ModelType>> checks[] = {
      {&o.det, {"--det", ModelType::det}},       {&o.source, {"--source", ModelType::source}},
      {&o.target, {"--target", ModelType::target}}, {&o.paired, {"--paired", ModelType::det}},
      {&o.unpaired, {"--unpaired", ModelType::det}}};
  for (const auto& [path, what] : checks)
    if (!path->empty()) load_kind(*path, what.first, what.second);

  Setup s = prepare_data(o);
  check_grid_fits(o.grid, s.index.settings.size, s.index.settings.size);
  io::ensure_dir(o.out);
  HypothesisResult res;
  res.hypothesis = o.hypothesis;
  res.index = s.index_path;
  res.out = o.out;
  HtmlReport report("fstm hypothesis " + std::to_string(o.hypothesis));
  report.heading(hypothesis_title(o.hypothesis), 1);
  // compute, then render: the result holds every number the CSV, JSON and HTML show
  if (o.hypothesis == 1) run_h1(o, s, res);
  if (o.hypothesis == 2) run_h2(o, s, res);
  if (o.hypothesis == 3) run_h3(o, s, res);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (o.hypothesis == 1) render_h1(o, s, res, report);
  if (o.hypothesis == 2) render_h2(o, s, res, report);
  if (o.hypothesis == 3) render_h3(o, s, res, report);
  report.paragraph("Run time " + ProgressBar::format_duration(res.seconds) + ". Tables as CSV and everything (maps "
                   "included) as JSON next to this file.");
  io::write_file_atomic(o.out + "/results.json", res.to_json().dump(1) + "\n");
  report.save(o.out + "/report.html");
  return res;
}

}  // namespace fstm
