#include "fstm/lib/compare.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "fstm/lib/evaluator.h"
#include "fstm/lib/fst_model.h"
#include "fstm/lib/metrics_shapley.h"
#include "fstm/lib/model_loader.h"
#include "fstm/lib/report.h"
#include "fstm/lib/trainer.h"
#include "io/fs.h"
#include "io/loader.h"

namespace fstm {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr ModelType kModels[] = {ModelType::det, ModelType::fst};
const char* model_label(const std::string& m) { return m == "det" ? "v_d" : "FST-Matching"; }

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

void validate(const CompareOptions& o) {
  FSTM_CHECK(!o.out.empty(), "compare: give an output folder (--out)");
  FSTM_CHECK(!o.compressions.empty(), "compare: give at least one compression (--compressions)");
  for (const std::string& c : o.compressions) io::parse_compression(c);  // throws on a bad name
  FSTM_CHECK(o.seeds >= 1 && o.seeds <= 100, "compare: --seeds must be between 1 and 100, got ", o.seeds);
  FSTM_CHECK(o.epochs >= 1 && o.batch >= 1 && o.lr > 0, "compare: --epochs and --batch must be >= 1 and --lr > 0");
  FSTM_CHECK(o.init.empty() || fs::exists(o.init), o.init, ": no such weights file (--init)");
}

std::string prepare_index(const CompareOptions& o, const std::string& work) {
  SyntheticFacesOptions so = o.synthetic;
  so.progress = o.progress;
  so.stop = o.stop;
  return face_index_or_synthetic(o.data, so, work);
}

// The same settings for both models: only `model` and FST-Matching's own loss settings differ.
TrainOptions train_options(const CompareOptions& o, ModelType model, const std::string& index,
                           const std::string& compression, uint64_t seed, const std::string& work) {
  TrainOptions t;
  t.model = model;
  t.arch = o.arch;
  t.data = index;
  t.init = o.init;
  t.out = (fs::path(work) / "runs" / (model_type_name(model) + ("-" + compression) + "-seed" + std::to_string(seed)))
              .string();
  t.compressions = {compression};
  t.photometric = false;
  t.optimizer = OptimizerKind::adamw;
  t.lr = o.lr;
  t.batch = o.batch;
  t.epochs = o.epochs;
  t.schedule = o.schedule;
  t.warmup_epochs = o.warmup_epochs;
  if (model == ModelType::fst) {  // FST's settings only, so that varying them reuses the v_d runs
    t.fst_hidden = o.fst_hidden;
    t.fst_head = o.fst_head;
    t.l_src = o.l_src;
    t.l_tgt = o.l_tgt;
    t.l_int = o.l_int;
    t.int_bound = o.interaction;
  }
  t.seed = seed;
  t.threads = o.threads;
  t.progress = o.progress;
  t.stop = o.stop;
  return t;
}

// The test split at `compressions`, with the val split's threshold.
std::map<std::string, CompareTest> test_model(const CompareOptions& o, const std::string& checkpoint,
                                              const std::string& index, const std::vector<std::string>& compressions) {
  EvalOptions e;
  e.model.model = checkpoint;
  e.data = index;
  e.split = "test";
  e.compressions = compressions;
  e.threshold_split = "val";
  e.threads = o.threads;
  e.progress = o.progress;
  std::map<std::string, CompareTest> out;
  for (const EvalRow& r : evaluate(e).rows) {
    CompareTest& t = out[r.compression];
    if (r.method == "all") {
      t.auc = r.frame.auc;
      t.video_auc = r.video_auc;
      t.acc = r.frame.acc;
      t.balanced_acc_val = r.frame.balanced_acc_at_threshold;
    } else {
      t.auc_per_method[r.method] = r.frame.auc;
    }
  }
  return out;
}

// Every frame of `split` at `compression`, as model `m` reads them (its input size and
// normalisation), in batches of 64 with no augmentation; `shuffle` mixes the split's frames.
io::LoaderOptions model_frames(const LoadedModel& m, const std::string& split, const std::string& compression,
                               bool shuffle) {
  io::LoaderOptions lo;
  lo.splits = {split};
  lo.compressions = {compression};
  lo.batch_size = 64;
  lo.shuffle = shuffle;
  lo.drop_last = false;
  lo.size = m.input_size;
  lo.norm = m.normalization;
  return lo;
}

// Accuracy of FST's source and target identity heads on up to `limit` training frames at
// `compression` (shuffled over the whole split). Training frames: the heads' classes are the
// train-split identities.
std::pair<double, double> fst_head_accuracy(const std::string& checkpoint, const std::string& index,
                                            const std::string& compression, int limit) {
  ModelSpec spec;
  spec.model = checkpoint;
  LoadedModel m = load_model(spec);
  auto* fst = dynamic_cast<FstModel*>(m.net.get());
  FSTM_CHECK(fst != nullptr, checkpoint, ": not an FST-Matching checkpoint");
  io::DataLoader loader(index, model_frames(m, "train", compression, true));
  NoGradGuard no_grad;
  fst->eval();
  int64_t right[2] = {0, 0}, seen = 0;
  io::Batch b;
  while (seen < limit && loader.next(b)) {
    const FstOutputs out = fst->forward_all(b.images, false);
    const Tensor* logits[2] = {&out.source, &out.target};
    const Tensor* labels[2] = {&b.source, &b.target};
    for (int k = 0; k < 2; ++k) {
      const std::vector<float> l = logits[k]->to_vector();
      const std::vector<int64_t> y = labels[k]->to_vector_i64();
      const int64_t K = logits[k]->shape()[1];
      for (int64_t i = 0; i < b.size(); ++i) {
        const auto row = l.begin() + i * K;
        right[k] += int64_t(std::max_element(row, row + K) - row) == y[size_t(i)];
      }
    }
    seen += b.size();
  }
  if (seen == 0) return {NAN, NAN};
  return {double(right[0]) / double(seen), double(right[1]) / double(seen)};
}

// The donor rate (compare.h) of each feature of the model (`features`: images -> one or more
// [N, C]) on the test split at `compression`: identities no model trained on.
std::vector<double> test_donor_rate(LoadedModel& m, const std::string& index, const std::string& compression,
                                    const std::function<std::vector<Tensor>(const Tensor&)>& features) {
  io::DataLoader loader(index, model_frames(m, "test", compression, false));
  const io::FaceIndex& fi = loader.index();
  NoGradGuard no_grad;
  m.net->eval();
  std::vector<std::vector<std::vector<float>>> rows;  // feature k -> frame -> row
  std::vector<const io::IndexVideo*> videos;          // frame -> its video
  io::Batch b;
  while (loader.next(b)) {
    const std::vector<Tensor> f = features(b.images);
    rows.resize(f.size());
    for (size_t k = 0; k < f.size(); ++k) {
      const std::vector<float> v = f[k].to_vector();
      const size_t C = size_t(f[k].size(1));
      for (size_t i = 0; i < b.frames.size(); ++i) rows[k].emplace_back(v.begin() + long(i * C), v.begin() + long((i + 1) * C));
    }
    for (int64_t i : b.frames) videos.push_back(&fi.videos[size_t(fi.frames[size_t(i)].video)]);
  }
  std::vector<double> out;
  for (const auto& r : rows) out.push_back(donor_rate(r, videos));
  return out;
}

// v_d: its pooled features. FST: the source and target identity features f^r = a * f.
void measure_donor_rate(CompareRun& run, const std::string& index, const std::string& compression) {
  ModelSpec spec;
  spec.model = run.checkpoint;
  LoadedModel m = load_model(spec);
  if (auto* fst = dynamic_cast<FstModel*>(m.net.get())) {
    const std::vector<double> v = test_donor_rate(m, index, compression, [&](const Tensor& x) {
      const Tensor f_s = fst->source_encoder->features(x), f_t = fst->target_encoder->features(x);
      return std::vector<Tensor>{ops::mul(fst->source_se->forward(f_s), f_s), ops::mul(fst->target_se->forward(f_t), f_t)};
    });
    if (v.size() == 2) run.source_donor_rate = v[0], run.target_donor_rate = v[1];
  } else {
    const std::vector<double> v =
        test_donor_rate(m, index, compression, [&](const Tensor& x) { return std::vector<Tensor>{m.net->features(x)}; });
    if (v.size() == 1) run.features_donor_rate = v[0];
  }
}

// The donor rate of the initialisation itself, when --init is a fstm checkpoint of a single-backbone
// model: whose identity its features carry on this data's unseen swaps before any training here.
void measure_init_donor_rate(CompareResult& res, const CompareOptions& o) {
  if (o.init.empty()) return;
  ModelSpec spec;
  spec.model = o.init;
  std::unique_ptr<LoadedModel> m;
  try {
    m = std::make_unique<LoadedModel>(load_model(spec));
  } catch (const Error&) {
    return;  // torchvision weights: no input size or normalisation to measure with
  }
  if (m->config.type == ModelType::fst) return;
  for (const std::string& c : o.compressions) {
    const std::vector<double> v =
        test_donor_rate(*m, res.index, c, [&](const Tensor& x) { return std::vector<Tensor>{m->net->features(x)}; });
    if (v.size() != 1) continue;
    res.init_donor_rate[c] = v[0];
    if (o.progress)
      std::cerr << "compare: the initialisation's donor rate at " << c << " is " << format_number(v[0]) << " ("
                << (v[0] > 0.5 ? "above one half: its features carry more of the donor's inner face than of the context"
                               : "not above one half: its features carry more of the context than of the donor")
                << ")\n";
  }
}

CompareRun train_and_test(const CompareOptions& o, ModelType model, const std::string& index,
                          const std::string& compression, uint64_t seed, const std::string& work) {
  const TrainOptions t = train_options(o, model, index, compression, seed, work);
  if (o.progress)
    std::cerr << "compare: " << model_label(model_type_name(model)) << " at " << compression << ", seed " << seed << "\n";
  const TrainResult r = train_or_reuse(t);
  if (r.stopped_by_signal) throw Interrupted(r.stopped_by_signal, "compare: stopped while training " + t.out);
  CompareRun run;
  run.model = model_type_name(model);
  run.train_compression = compression;
  run.seed = seed;
  run.steps = r.epochs.empty() ? r.steps : r.epochs.back().step;
  run.checkpoint = r.best.empty() ? r.last : r.best;  // both models: the best validation AUC
  // raw-trained models are also tested compressed (the H3 view)
  const std::vector<std::string> tests =
      compression == "raw" ? std::vector<std::string>{"raw", "c23", "c40"} : std::vector<std::string>{compression};
  run.tests = test_model(o, run.checkpoint, index, tests);
  measure_donor_rate(run, index, compression);
  if (model == ModelType::fst && !r.epochs.empty()) {
    run.losses = r.epochs.back().losses;
    auto term = [&](const char* k) { return run.losses.count(k) ? run.losses.at(k) : 0.0; };
    const double total = term("det") + t.l_src * term("source") + t.l_tgt * term("target") + t.l_int * term("interaction");
    run.interaction_share = total > 0 ? t.l_int * term("interaction") / total : NAN;
    run.identity_chance_ce = std::log(double(r.config.identities));
    std::tie(run.source_head_acc, run.target_head_acc) = fst_head_accuracy(r.last, index, compression, o.head_frames);
  }
  return run;
}

void summarise(CompareResult& res, const CompareOptions& o) {
  std::map<std::tuple<std::string, std::string, std::string>, std::vector<const CompareTest*>> by;
  for (const CompareRun& r : res.runs)
    for (const auto& [c, t] : r.tests) by[{r.model, r.train_compression, c}].push_back(&t);
  for (const auto& [key, tests] : by) {
    CompareCell cell;
    std::tie(cell.model, cell.train_compression, cell.test_compression) = key;
    cell.seeds = int(tests.size());
    std::vector<double> a, v, b;
    for (const CompareTest* t : tests) a.push_back(t->auc), v.push_back(t->video_auc), b.push_back(t->balanced_acc_val);
    std::tie(cell.auc, cell.auc_sd) = mean_sd(a);
    std::tie(cell.video_auc, cell.video_auc_sd) = mean_sd(v);
    std::tie(cell.balanced_acc_val, cell.balanced_acc_val_sd) = mean_sd(b);
    res.cells.push_back(cell);
  }
  for (const std::string& c : o.compressions) {
    CompareVerdict v;
    v.compression = c;
    for (int k = 0; k < o.seeds; ++k) {
      const CompareRun *d = nullptr, *f = nullptr;
      for (const CompareRun& r : res.runs)
        if (r.train_compression == c && r.seed == o.seed + uint64_t(k)) (r.model == "det" ? d : f) = &r;
      if (d && f) v.auc_difference.push_back(f->tests.at(c).auc - d->tests.at(c).auc);
    }
    std::tie(v.mean, v.sd) = mean_sd(v.auc_difference);
    const MeanCi ci = mean_ci95(v.auc_difference);
    v.lo = ci.lo;
    v.hi = ci.hi;
    v.fst_at_least_vd = std::isfinite(v.mean) && v.mean >= 0;
    v.verdict = v.lo > 0 ? "FST better" : v.hi < 0 ? "v_d better" : "no difference shown";
    res.verdicts.push_back(v);
  }
}

// ---- render ------------------------------------------------------------------------------------

// A float setting as a person wrote it: 0.001, not 0.0010000000474974513 (it was a float).
std::string shortest(double v) {
  std::ostringstream s;
  s << std::setprecision(6) << v;
  return s.str();
}

std::string pm(double mean, double sd) {
  return format_number(mean) + (std::isfinite(sd) ? " ± " + format_number(sd) : "");
}

const CompareCell* find_cell(const CompareResult& r, const std::string& model, const std::string& train,
                             const std::string& test) {
  for (const CompareCell& c : r.cells)
    if (c.model == model && c.train_compression == train && c.test_compression == test) return &c;
  return nullptr;
}

std::string csv(const CompareResult& r) {
  std::ostringstream s;
  s.precision(9);
  s << "model,train_compression,test_compression,seed,steps,auc,video_auc,acc,balanced_acc_val,interaction_share,"
       "source_head_acc,target_head_acc,features_donor_rate,source_donor_rate,target_donor_rate\n";
  auto n = [](double v) { return std::isfinite(v) ? std::to_string(v) : std::string(); };
  for (const CompareRun& run : r.runs)
    for (const auto& [c, t] : run.tests)
      s << run.model << "," << run.train_compression << "," << c << "," << run.seed << "," << run.steps << "," << n(t.auc)
        << "," << n(t.video_auc) << "," << n(t.acc) << "," << n(t.balanced_acc_val) << "," << n(run.interaction_share)
        << "," << n(run.source_head_acc) << "," << n(run.target_head_acc) << "," << n(run.features_donor_rate)
        << "," << n(run.source_donor_rate) << "," << n(run.target_donor_rate) << "\n";
  return s.str();
}

void report_table4(HtmlReport& h, const CompareResult& r) {
  std::vector<std::vector<std::string>> rows = {
      {"compression (train = test)", "seeds", "v_d frame AUC", "FST frame AUC", "FST - v_d (per seed)", "v_d video AUC",
       "FST video AUC", "v_d bal. ACC @val thr.", "FST bal. ACC @val thr."}};
  for (const CompareVerdict& v : r.verdicts) {
    const CompareCell *d = find_cell(r, "det", v.compression, v.compression),
                      *f = find_cell(r, "fst", v.compression, v.compression);
    if (!d || !f) continue;
    std::string per_seed;
    for (double x : v.auc_difference) per_seed += (per_seed.empty() ? "" : ", ") + format_number(x);
    rows.push_back({v.compression, std::to_string(d->seeds), pm(d->auc, d->auc_sd), pm(f->auc, f->auc_sd),
                    pm(v.mean, v.sd) + " (" + per_seed + ")", pm(d->video_auc, d->video_auc_sd),
                    pm(f->video_auc, f->video_auc_sd), pm(d->balanced_acc_val, d->balanced_acc_val_sd),
                    pm(f->balanced_acc_val, f->balanced_acc_val_sd)});
  }
  const std::string init = r.settings.value("init", std::string("random"));
  h.table(rows, "Mean ± SD over the seeds; both models trained and tested at the same compression, same steps, "
                "same initialisation (" + (init == "random" ? std::string("random, from the seed") : init) +
                ") and seeds (the paper's Table 4 protocol).");
}

void report_h3_view(HtmlReport& h, const CompareResult& r) {
  if (!find_cell(r, "det", "raw", "c40")) return;
  h.heading("Trained on raw, tested compressed (the H3 view, not Table 4)");
  std::vector<std::vector<std::string>> rows = {{"test", "v_d frame AUC", "FST frame AUC"}};
  for (const char* c : {"raw", "c23", "c40"}) {
    const CompareCell *d = find_cell(r, "det", "raw", c), *f = find_cell(r, "fst", "raw", c);
    rows.push_back({c, d ? pm(d->auc, d->auc_sd) : "-", f ? pm(f->auc, f->auc_sd) : "-"});
  }
  h.table(rows, "Mean ± SD over the seeds of the raw-trained models.");
}

void report_donor_rate(HtmlReport& h, const CompareResult& r) {
  std::vector<std::vector<std::string>> rows = {
      {"compression", "seed", "v_d features", "FST source identity features", "FST target identity features"}};
  std::map<std::pair<std::string, uint64_t>, std::vector<std::string>> by;  // (compression, seed) -> row
  for (const CompareRun& run : r.runs) {
    std::vector<std::string>& row = by[{run.train_compression, run.seed}];
    if (row.empty()) row = {run.train_compression, std::to_string(run.seed), "-", "-", "-"};
    if (run.model == "det") row[2] = format_number(run.features_donor_rate);
    if (run.model == "fst") row[3] = format_number(run.source_donor_rate), row[4] = format_number(run.target_donor_rate);
  }
  for (const auto& [key, row] : by) rows.push_back(row);
  for (const auto& [c, rate] : r.init_donor_rate)
    rows.push_back({c, "--init", format_number(rate) + " (the initialisation, before training)", "-", "-"});
  h.table(rows, "Donor rate on the test split's swaps (Deepfakes, FaceSwap, FaceShifter), identities no model "
                "trained on: the share of swap frames A_B whose features lie nearer (cosine) to the donor B's real "
                "frames than to the context A's. 1: the features carry the inner face's identity; 0: the context's. "
                "FST-Matching finds a swap by its target encoder seeing B where its source encoder sees A; a target "
                "encoder that gives A on unseen faces leaves nothing to match, however well its heads fit the "
                "training identities.");
}

void report_diagnostics(HtmlReport& h, const CompareResult& r) {
  h.heading("Why: the mechanism, measured");
  std::vector<std::vector<std::string>> rows = {{"compression", "seed", "FST source head acc (train frames)",
                                                 "target head acc", "CE source / target / chance ln K",
                                                 "interaction share of the loss"}};
  for (const CompareRun& run : r.runs) {
    if (run.model != "fst") continue;
    auto term = [&](const char* k) { return run.losses.count(k) ? run.losses.at(k) : NAN; };
    rows.push_back({run.train_compression, std::to_string(run.seed), format_number(run.source_head_acc),
                    format_number(run.target_head_acc),
                    format_number(term("source"), 2) + " / " + format_number(term("target"), 2) + " / " +
                        format_number(run.identity_chance_ce, 2),
                    format_number(run.interaction_share)});
  }
  h.table(rows, "FST-Matching finds a fake by matching identities: heads near chance give it nothing to match, "
                "and an interaction term that dominates the loss crowds out the detection term. Last epoch's terms; "
                "the heads' chance accuracy is 1/K (K = exp(chance CE)).");
  report_donor_rate(h, r);
  std::vector<std::string> methods;
  for (const CompareRun& run : r.runs)
    for (const auto& [c, t] : run.tests)
      for (const auto& [m, _] : t.auc_per_method)
        if (std::find(methods.begin(), methods.end(), m) == methods.end()) methods.push_back(m);
  std::vector<std::vector<std::string>> am = {{"compression"}};
  for (const std::string& m : methods) am[0].push_back(m);
  std::map<std::string, std::map<std::string, std::vector<double>>> per;  // compression -> method -> AUCs
  for (const CompareRun& run : r.runs)
    if (run.model == "det" && run.tests.count(run.train_compression))
      for (const auto& [m, a] : run.tests.at(run.train_compression).auc_per_method) per[run.train_compression][m].push_back(a);
  for (const auto& [c, by] : per) {
    std::vector<std::string> row = {c};
    for (const std::string& m : methods) {
      if (!by.count(m)) {
        row.push_back("-");
        continue;
      }
      const auto [mean, sd] = mean_sd(by.at(m));
      row.push_back(pm(mean, sd));
    }
    am.push_back(row);
  }
  h.table(am, "v_d's frame AUC per manipulation method (how much of each artifact survives the compression), "
              "mean ± SD over the seeds.");
}

std::string finding(const CompareResult& r) {
  std::ostringstream f;
  for (const CompareVerdict& v : r.verdicts) {
    if (v.auc_difference.empty()) continue;
    f << v.compression << ": FST - v_d frame AUC " << pm(v.mean, v.sd) << " over " << v.auc_difference.size()
      << " seeds";
    if (std::isfinite(v.lo))
      f << ", 95% interval [" << format_number(v.lo) << ", " << format_number(v.hi) << "]";
    f << ": " << v.verdict << ". ";
  }
  std::map<std::string, std::vector<double>> donor;  // compression -> FST target donor rates
  for (const CompareRun& run : r.runs)
    if (run.model == "fst" && std::isfinite(run.target_donor_rate)) donor[run.train_compression].push_back(run.target_donor_rate);
  for (const auto& [c, rates] : donor) {
    const auto [mean, sd] = mean_sd(rates);
    f << c << ": FST's target identity features have a donor rate of " << pm(mean, sd) << " on unseen test swaps ("
      << (mean > 0.5 ? "above one half: more swaps lie nearer the donor than the context"
                     : mean < 0.5 ? "below one half: more swaps lie nearer the context than the donor, so there is "
                                    "little identity to match"
                                  : "one half: the features do not tell the donor from the context")
      << "). ";
  }
  for (const auto& [c, rate] : r.init_donor_rate)
    f << c << ": the initialisation's own features have a donor rate of " << format_number(rate)
      << " before any training here. ";
  const std::string init = r.settings.value("init", std::string("random"));
  f << (init == "random" ? "Both models start from random weights (--init random); the paper's start from ImageNet "
                            "weights (--init FILE), and the default here is the synthetic identity init. "
                         : "Every backbone starts from " + init + ". ");
  f << "The paper (Table 4) reports FST-Matching ahead of its baselines, most at c40. With few seeds only a "
       "difference larger than the seeds' spread shows; a mean above 0 inside that spread is not a win.";
  return f.str();
}

}  // namespace

double donor_rate(const std::vector<std::vector<float>>& rows, const std::vector<const io::IndexVideo*>& videos) {
  FSTM_CHECK(rows.size() == videos.size(), "donor rate: ", rows.size(), " feature rows for ", videos.size(), " frames");
  auto unit = [](const std::vector<float>& r) {
    std::vector<double> u(r.begin(), r.end());
    double n = 0;
    for (double x : u) n += x * x;
    n = std::sqrt(n);
    for (double& x : u) x = n > 0 ? x / n : 0.0;
    return u;
  };
  std::map<int, std::vector<double>> centroid;  // identity -> sum of its real frames' unit rows
  for (size_t i = 0; i < rows.size(); ++i) {
    if (videos[i]->det != 0) continue;
    const std::vector<double> u = unit(rows[i]);
    std::vector<double>& c = centroid[videos[i]->source];
    c.resize(u.size(), 0.0);
    for (size_t j = 0; j < u.size(); ++j) c[j] += u[j];
  }
  auto cosine = [](const std::vector<double>& u, const std::vector<double>& c) {
    double dot = 0, n = 0;
    for (size_t j = 0; j < u.size() && j < c.size(); ++j) dot += u[j] * c[j], n += c[j] * c[j];
    return n > 0 ? dot / std::sqrt(n) : 0.0;
  };
  int64_t donor = 0, asked = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const io::IndexVideo& v = *videos[i];
    if (v.det == 0 || !v.target_visible || v.source == v.target) continue;
    const auto a = centroid.find(v.source), d = centroid.find(v.target);
    if (a == centroid.end() || d == centroid.end()) continue;
    const std::vector<double> u = unit(rows[i]);
    donor += cosine(u, d->second) > cosine(u, a->second);
    ++asked;
  }
  return asked > 0 ? double(donor) / double(asked) : NAN;
}

CompareOptions CompareOptions::quick(CompareOptions o) {
  make_tiny(o.synthetic, 12);
  o.compressions = {"c40"};
  o.seeds = 2;
  o.epochs = 1;
  o.batch = 16;
  o.warmup_epochs = 0;
  o.fst_hidden = 32;
  o.head_frames = 64;
  o.identity = IdentityInitOptions::quick();
  return o;
}

// The synthetic identity init every backbone starts from when no --init is given (made or reused here).
std::string identity_init_weights(const CompareOptions& o, const std::string& work) {
  IdentityInitOptions io = o.identity;
  io.arch = o.arch;
  io.threads = o.threads;
  io.progress = o.progress;
  io.stop = o.stop;
  if (o.progress) std::cerr << "compare: the identity initialisation (the stand-in for pretrained weights)\n";
  return prepare_identity_init(io, (fs::path(work) / "identity-init").string());
}

CompareResult run_compare(const CompareOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  validate(options);
  const std::string work = options.work.empty() ? (fs::path(options.out) / "work").string() : options.work;
  CompareOptions o = options;
  CompareResult res;
  res.out = o.out;
  res.index = prepare_index(o, work);  // first: a missing --data is reported before anything is made
  const bool identity_init = o.init.empty() && o.identity_init;
  if (identity_init) o.init = identity_init_weights(o, work);
  const std::string init_name = identity_init ? "synthetic identity init (" + o.init + ")"
                                : o.init.empty() ? "random"
                                                 : o.init;
  res.settings = {{"compressions", o.compressions}, {"seeds", o.seeds},   {"seed", o.seed},
                  {"arch", o.arch},                 {"init", init_name},
                  {"epochs", o.epochs},             {"batch", o.batch},   {"lr", o.lr},
                  {"schedule", LrSchedule::kind_name(o.schedule)}, {"warmup_epochs", o.warmup_epochs},
                  {"fst_hidden", o.fst_hidden},     {"optimizer", "adamw"}, {"photometric_augmentation", false},
                  {"fst_head", fst_head_name(o.fst_head)}, {"l_src", o.l_src}, {"l_tgt", o.l_tgt},
                  {"l_int", o.l_int},               {"interaction_bound", interaction_bound_name(o.interaction)}};
  if (o.data.empty()) res.settings["data"] = synthetic_faces_json(o.synthetic);
  if (identity_init) {
    res.settings["identity_init"] = synthetic_faces_json(o.identity.data);
    res.settings["identity_init"]["epochs"] = o.identity.epochs;
  }
  measure_init_donor_rate(res, o);  // first: it tells in a minute whether the initialisation can help
  for (const std::string& c : o.compressions)
    for (int k = 0; k < o.seeds; ++k)
      for (ModelType m : kModels) res.runs.push_back(train_and_test(o, m, res.index, c, o.seed + uint64_t(k), work));
  summarise(res, o);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

json CompareResult::to_json() const {
  json runs_j = json::array();
  for (const CompareRun& r : runs) {
    json tests_j = json::object();
    for (const auto& [c, t] : r.tests) {
      json pm_j = json::object();
      for (const auto& [m, a] : t.auc_per_method) pm_j[m] = num(a);
      tests_j[c] = {{"auc", num(t.auc)}, {"video_auc", num(t.video_auc)}, {"acc", num(t.acc)},
                    {"balanced_acc_val_threshold", num(t.balanced_acc_val)}, {"auc_per_method", pm_j}};
    }
    json losses_j = json::object();
    for (const auto& [k, v] : r.losses) losses_j[k] = num(v);
    runs_j.push_back({{"model", r.model}, {"train_compression", r.train_compression}, {"seed", r.seed},
                      {"steps", r.steps}, {"checkpoint", r.checkpoint}, {"tests", tests_j}, {"losses", losses_j},
                      {"interaction_share", num(r.interaction_share)}, {"identity_chance_ce", num(r.identity_chance_ce)},
                      {"source_head_acc", num(r.source_head_acc)}, {"target_head_acc", num(r.target_head_acc)},
                      {"test_donor_rate",
                       {{"features", num(r.features_donor_rate)}, {"source", num(r.source_donor_rate)},
                        {"target", num(r.target_donor_rate)}}}});
  }
  json cells_j = json::array();
  for (const CompareCell& c : cells)
    cells_j.push_back({{"model", c.model}, {"train_compression", c.train_compression},
                       {"test_compression", c.test_compression}, {"seeds", c.seeds}, {"auc", num(c.auc)},
                       {"auc_sd", num(c.auc_sd)}, {"video_auc", num(c.video_auc)}, {"video_auc_sd", num(c.video_auc_sd)},
                       {"balanced_acc_val", num(c.balanced_acc_val)}, {"balanced_acc_val_sd", num(c.balanced_acc_val_sd)}});
  json verdicts_j = json::array();
  for (const CompareVerdict& v : verdicts) {
    json d = json::array();
    for (double x : v.auc_difference) d.push_back(num(x));
    verdicts_j.push_back({{"compression", v.compression}, {"fst_minus_vd_auc", d}, {"mean", num(v.mean)},
                          {"sd", num(v.sd)}, {"ci95", {num(v.lo), num(v.hi)}}, {"verdict", v.verdict},
                          {"fst_at_least_vd", v.fst_at_least_vd}});
  }
  json init_j = json::object();
  for (const auto& [c, rate] : init_donor_rate) init_j[c] = num(rate);
  return {{"index", index},       {"settings", settings}, {"runs", runs_j},
          {"cells", cells_j},     {"verdicts", verdicts_j}, {"init_donor_rate", init_j},
          {"seconds", seconds}};
}

namespace {

// A setting as a reader wants it: strings bare, floats shortest, lists "a, b", objects "key value, ...".
std::string setting_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return shortest(v.get<double>());
  if (!v.is_structured()) return v.dump();
  std::string out;
  for (const auto& [k, item] : v.items())
    out += (out.empty() ? "" : ", ") + (v.is_object() ? k + " " : std::string()) + setting_text(item);
  return out;
}

}  // namespace

void write_compare_outputs(const CompareResult& r) {
  io::ensure_dir(r.out);
  io::write_file_atomic(r.out + "/results.json", r.to_json().dump(1) + "\n");
  io::write_file_atomic(r.out + "/compare.csv", csv(r));
  HtmlReport h("fstm compare: v_d against FST-Matching (Table 4)");
  h.paragraph("Data: " + r.index + ".");
  std::vector<std::vector<std::string>> settings = {{"setting", "value"}};
  for (const auto& [k, v] : r.settings.items())
    if (k != "data") settings.push_back({k == "identity_init" ? "identity init's corpus and epochs" : k, setting_text(v)});
  if (r.settings.contains("data")) settings.push_back({"synthetic data", setting_text(r.settings["data"])});
  h.table(settings, "The same for both models, but fst_* and l_* and the interaction bound: FST-Matching's own.");
  h.heading("Finding");
  h.note(finding(r));
  h.heading("Same compression for training and test (Table 4)");
  report_table4(h, r);
  report_h3_view(h, r);
  report_diagnostics(h, r);
  h.save(r.out + "/report.html");
}

}  // namespace fstm
