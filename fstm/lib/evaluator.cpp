#include "fstm/lib/evaluator.h"

#include <limits>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "fstm/lib/progress.h"
#include "io/loader.h"
#include "kernels/backend.h"
#include "layers/inference.h"

namespace fstm {

namespace {

// Restores a module's train/eval mode when it goes out of scope.
class ModeGuard {
 public:
  explicit ModeGuard(Module& m) : m_(m), training_(m.training()) {}
  ~ModeGuard() { m_.train(training_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  Module& m_;
  bool training_;
};

bool wanted(const std::vector<std::string>& filter, const std::string& value) {
  return filter.empty() || std::find(filter.begin(), filter.end(), value) != filter.end();
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s.empty() ? "all" : s;
}

}  // namespace

FrameScores score_frames(ImageClassifier& net, const ModelConfig& config, const io::FaceIndex& index,
                         const ScoreOptions& o) {
  FSTM_CHECK(o.batch >= 1, "scoring: batch size ", o.batch, " must be >= 1");
  ModeGuard mode(net);
  net.eval();
  io::LoaderOptions lo;
  lo.splits = o.splits;
  lo.methods = o.methods;
  lo.compressions = o.compressions;
  lo.batch_size = o.batch;
  lo.workers = std::max(1, o.workers);
  lo.max_bad_fraction = o.max_bad_fraction;
  lo.shuffle = false;
  lo.drop_last = false;
  lo.augment = false;
  lo.size = config.input_size;
  lo.norm = config.normalization;
  lo.device = net.device();
  lo.seed = o.seed;
  if (o.perturbation.kind != PerturbationKind::none) {
    const Perturbation p = o.perturbation;
    const uint64_t seed = o.seed;
    // Each frame gets its own stream, so a frame is perturbed the same way for every model.
    lo.transform = [p, seed](io::Image& im, int64_t frame) {
      Rng rng(seed ^ (0x9e3779b97f4a7c15ull * uint64_t(frame + 1)));
      apply_perturbation(im, p, rng);
    };
  }
  io::DataLoader loader(index, lo);
  const int64_t total = int64_t(loader.selection().size());
  const int64_t B = std::min<int64_t>(o.batch, total);
  const int S = loader.image_size();
  InferencePlan plan([&](const Tensor& x) { return net.forward(x); }, Shape{B, S, S, 3}, o.dtype, net.device());

  FrameScores out;
  out.backend = plan.backend();
  out.frames.reserve(size_t(total));
  out.p_fake.reserve(size_t(total));
  out.predicted.reserve(size_t(total));
  std::unique_ptr<ProgressBar> bar;
  if (!o.progress_label.empty()) bar = std::make_unique<ProgressBar>(o.progress_label, total, "frames", progress_stream());
  io::Batch b;
  while (loader.next(b)) {
    const int64_t n = b.size();
    Tensor in = plan.input_buffer();
    in.slice(0, n).copy_(in.dtype() == DType::f32 ? b.images : b.images.to(in.dtype()));
    const Tensor logits = plan.run_input_buffer().slice(0, n).to(Device::cpu());
    const Tensor probs = ops::softmax(logits.clone());
    const int64_t K = logits.size(1);
    const float* l = logits.data<float>();
    const float* p = probs.data<float>();
    for (int64_t i = 0; i < n; ++i) {
      bool finite = true;
      for (int64_t k = 0; k < K; ++k) finite = finite && std::isfinite(l[i * K + k]);
      out.non_finite += !finite;
      out.frames.push_back(b.frames[size_t(i)]);
      out.p_fake.push_back(K >= 2 ? double(p[i * K + 1]) : 0.0);
      out.predicted.push_back(int64_t(std::max_element(l + i * K, l + (i + 1) * K) - (l + i * K)));
    }
    if (bar) bar->add(n);
  }
  if (bar) bar->finish();
  out.bad_files = loader.bad_files();
  return out;
}

std::vector<EvalRow> summarize(const io::FaceIndex& index, const FrameScores& scores, const std::string& perturbation,
                               const std::map<io::Compression, double>* thresholds) {
  // compression -> method -> sample positions; reals under "original"
  std::map<int, std::map<std::string, std::vector<size_t>>> groups;
  for (size_t i = 0; i < scores.frames.size(); ++i) {
    const io::IndexVideo& v = index.videos[size_t(index.frames[size_t(scores.frames[i])].video)];
    groups[int(v.compression)][v.det ? v.method : std::string(io::kOriginal)].push_back(i);
  }
  // methods in FF++ order, then any others alphabetically
  auto method_rank = [](const std::string& m) {
    const auto& known = io::ffpp_methods();
    const auto it = std::find(known.begin(), known.end(), m);
    return it == known.end() ? known.size() : size_t(it - known.begin());
  };
  std::vector<EvalRow> rows;
  for (const auto& [compression_key, by_method] : groups) {
    const io::Compression compression = io::Compression(compression_key);  // a variable lambdas can capture
    const auto real_it = by_method.find(io::kOriginal);
    const std::vector<size_t> reals = real_it == by_method.end() ? std::vector<size_t>{} : real_it->second;
    std::vector<std::string> methods;
    for (const auto& [m, v] : by_method)
      if (m != io::kOriginal) methods.push_back(m);
    std::sort(methods.begin(), methods.end(), [&](const std::string& a, const std::string& b) {
      return std::make_pair(method_rank(a), a) < std::make_pair(method_rank(b), b);
    });
    auto make_row = [&](const std::string& method, const std::vector<size_t>& fakes) {
      EvalRow r;
      r.perturbation = perturbation;
      r.compression = io::compression_name(compression);
      r.method = method;
      r.real_frames = int64_t(reals.size());
      r.fake_frames = int64_t(fakes.size());
      std::vector<double> s;
      std::vector<int> y;
      std::vector<int64_t> video;
      for (const auto* part : {&reals, &fakes})
        for (size_t i : *part) {
          const io::IndexFrame& f = index.frames[size_t(scores.frames[i])];
          s.push_back(scores.p_fake[i]);
          y.push_back(index.videos[size_t(f.video)].det);
          video.push_back(f.video);
        }
      r.frame = detection_metrics(s, y);
      if (thresholds && thresholds->count(compression)) {
        r.frame.threshold = thresholds->at(compression);
        r.frame.acc_at_threshold = accuracy(s, y, r.frame.threshold);
        r.frame.balanced_acc_at_threshold = balanced_accuracy(s, y, r.frame.threshold);
      }
      std::vector<double> vs;
      std::vector<int> vy;
      video_scores(s, y, video, vs, vy);
      r.videos = int64_t(vs.size());
      r.video_auc = roc_auc(vs, vy);
      rows.push_back(r);
    };
    std::vector<size_t> all_fakes;
    for (const std::string& m : methods) {
      make_row(m, by_method.at(m));
      all_fakes.insert(all_fakes.end(), by_method.at(m).begin(), by_method.at(m).end());
    }
    if (methods.size() != 1) make_row(methods.empty() ? std::string(io::kOriginal) : "all", all_fakes);
  }
  return rows;
}

namespace {

std::string percent(double v) {
  if (std::isnan(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100.0 * v);
  return buf;
}

nlohmann::json number(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }

}  // namespace

std::string EvalReport::table() const {
  auto rows_per_compression = [&](const std::string& compression) {
    std::set<std::string> methods;
    for (const EvalRow& r : rows)
      if (r.compression == compression) methods.insert(r.method);
    return methods.size();
  };
  std::ostringstream s;
  s << "model " << model << ": " << model_description << "\n";
  s << "data  " << data << ", split " << (split.empty() ? "all" : split) << ", " << frames << " frames, " << backend
    << ", " << ProgressBar::format_duration(seconds) << "\n";
  if (bad_files) s << "warning: " << bad_files << " unreadable face images were replaced\n";
  std::string current = "\x01";
  char line[256];
  for (const EvalRow& r : rows) {
    if (r.perturbation != current) {
      current = r.perturbation;
      s << "\nperturbation: " << current << "\n";
      std::snprintf(line, sizeof line, "%-5s %-16s %8s %8s %7s %7s %7s %7s %7s %7s %7s\n", "comp", "method", "real",
                    "fake", "videos", "ACC", "bACC", "AUC", "vAUC", "EER", "AP");
      s << line;
    }
    std::snprintf(line, sizeof line, "%-5s %-16s %8lld %8lld %7lld %7s %7s %7s %7s %7s %7s\n", r.compression.c_str(),
                  r.method.c_str(), (long long)r.real_frames, (long long)r.fake_frames, (long long)r.videos,
                  percent(r.frame.acc).c_str(), percent(r.frame.balanced_acc).c_str(), percent(r.frame.auc).c_str(),
                  percent(r.video_auc).c_str(), percent(r.frame.eer).c_str(), percent(r.frame.ap).c_str());
    s << line;
  }
  s << "(percentages; ACC and balanced ACC (bACC) at 0.5; '-' where a class is missing)\n";
  if (!threshold_split.empty()) {
    s << "\nat the threshold of best balanced ACC on the " << threshold_split << " split:\n";
    std::snprintf(line, sizeof line, "%-12s %-5s %-16s %9s %7s %7s\n", "perturbation", "comp", "method", "threshold",
                  "ACC", "bACC");
    s << line;
    for (const EvalRow& r : rows) {
      std::snprintf(line, sizeof line, "%-12s %-5s %-16s %9.4f %7s %7s\n", r.perturbation.c_str(), r.compression.c_str(),
                    r.method.c_str(), r.frame.threshold, percent(r.frame.acc_at_threshold).c_str(),
                    percent(r.frame.balanced_acc_at_threshold).c_str());
      s << line;
    }
  }

  // Robustness summary as the paper's Table 7: frame AUC of every method together, per kind and
  // severity, for each compression.
  std::map<std::string, std::map<std::string, std::map<int, double>>> auc;  // compression -> kind -> severity
  std::map<std::string, double> clean;
  for (const EvalRow& r : rows) {
    if (r.method != "all" && rows_per_compression(r.compression) > 1) continue;
    const Perturbation p = parse_perturbation(r.perturbation);
    if (p.kind == PerturbationKind::none) {
      clean[r.compression] = r.frame.auc;
    } else {
      auc[r.compression][p.name().substr(0, p.name().find(':'))][p.severity] = r.frame.auc;
    }
  }
  for (const auto& [compression, kinds] : auc) {
    s << "\nrobustness, " << compression << ": frame AUC";
    if (clean.count(compression)) s << " (clean " << percent(clean[compression]) << ")";
    s << "\n";
    std::snprintf(line, sizeof line, "%-12s %7s %7s %7s %7s %7s %7s\n", "perturbation", "1", "2", "3", "4", "5", "mean");
    s << line;
    for (const auto& [kind, by_severity] : kinds) {
      std::snprintf(line, sizeof line, "%-12s", kind.c_str());
      s << line;
      double sum = 0;
      int n = 0;
      for (int level = 1; level <= 5; ++level) {
        const auto it = by_severity.find(level);
        const double v = it == by_severity.end() ? std::nan("") : it->second;
        std::snprintf(line, sizeof line, " %7s", percent(v).c_str());
        s << line;
        if (!std::isnan(v)) sum += v, ++n;
      }
      std::snprintf(line, sizeof line, " %7s\n", n ? percent(sum / n).c_str() : "-");
      s << line;
    }
  }
  return s.str();
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json rows_json = nlohmann::json::array();
  for (const EvalRow& r : rows)
    rows_json.push_back({{"perturbation", r.perturbation},
                         {"compression", r.compression},
                         {"method", r.method},
                         {"real_frames", r.real_frames},
                         {"fake_frames", r.fake_frames},
                         {"videos", r.videos},
                         {"acc", number(r.frame.acc)},
                         {"balanced_acc", number(r.frame.balanced_acc)},
                         {"threshold", number(r.frame.threshold)},
                         {"acc_at_threshold", number(r.frame.acc_at_threshold)},
                         {"balanced_acc_at_threshold", number(r.frame.balanced_acc_at_threshold)},
                         {"auc", number(r.frame.auc)},
                         {"video_auc", number(r.video_auc)},
                         {"eer", number(r.frame.eer)},
                         {"ap", number(r.frame.ap)}});
  return {{"model", model},   {"model_description", model_description}, {"data", data}, {"split", split},
          {"threshold_split", threshold_split},
          {"frames", frames}, {"bad_files", bad_files}, {"backend", backend}, {"seconds", seconds},
          {"rows", rows_json}};
}

EvalReport evaluate(const EvalOptions& o) {
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  for (const std::string& p : o.perturbations) parse_perturbation(p);  // bad names fail before loading anything
  LoadedModel m = load_model(o.model);
  FSTM_CHECK(std::filesystem::exists(o.data), o.data, ": no such face index (write one with fstm extract)");
  try {
    EvalReport r = evaluate(*m.net, m.config, io::FaceIndex::load(o.data), o);
    r.model = m.source;
    return r;
  } catch (const Error& e) {
    throw Error(detail::concat(m.source, ": ", e.what()));
  }
}

EvalReport evaluate(ImageClassifier& net, const ModelConfig& config, const io::FaceIndex& index, const EvalOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  const DType dtype = parse_dtype(o.dtype);
  FSTM_CHECK(dtype == DType::f32 || dtype == DType::bf16, "--dtype must be f32 or bf16, got '", o.dtype, "'");
  std::vector<Perturbation> perturbations;
  for (const std::string& p : o.perturbations) perturbations.push_back(parse_perturbation(p));
  if (perturbations.empty()) perturbations.push_back({});
  for (const std::string& c : o.compressions) io::parse_compression(c);  // throws on a bad name
  FSTM_CHECK(config.detects(), "a ", model_type_name(config.type),
             " encoder is an identity classifier; fstm eval scores real/fake detectors (det or fst checkpoints)");
  FSTM_CHECK(!index.frames.empty(), o.data, ": the index has no frames");

  ScoreOptions so;
  if (!o.split.empty() && o.split != "all") so.splits = {o.split};
  so.compressions = o.compressions;
  if (!o.methods.empty()) {
    so.methods = o.methods;
    so.methods.push_back(io::kOriginal);
  }
  int64_t matching = 0;
  for (const io::IndexFrame& f : index.frames) {
    const io::IndexVideo& v = index.videos[size_t(f.video)];
    matching += wanted(so.splits, v.split) && wanted(so.methods, v.method) &&
                wanted(so.compressions, io::compression_name(v.compression));
  }
  FSTM_CHECK(matching > 0, o.data, ": no frame matches split ", o.split.empty() ? "all" : o.split, ", methods ",
             join(o.methods), ", compressions ", join(o.compressions));
  so.batch = o.batch;
  so.workers = o.workers;
  so.max_bad_fraction = o.max_bad_fraction;
  so.dtype = dtype;
  so.seed = o.seed;

  std::map<io::Compression, double> thresholds;
  if (!o.threshold_split.empty()) {
    ScoreOptions sv = so;
    sv.splits = {o.threshold_split};
    sv.progress_label = o.progress ? "threshold on " + o.threshold_split : "";
    const FrameScores val = score_frames(net, config, index, sv);
    std::map<io::Compression, std::pair<std::vector<double>, std::vector<int>>> by;
    for (size_t i = 0; i < val.frames.size(); ++i) {
      const io::IndexVideo& v = index.videos[size_t(index.frames[size_t(val.frames[i])].video)];
      by[v.compression].first.push_back(val.p_fake[i]);
      by[v.compression].second.push_back(v.det);
    }
    for (const auto& [c, sy] : by) {
      const double t = best_balanced_threshold(sy.first, sy.second);
      if (std::isfinite(t)) thresholds[c] = t;
    }
    FSTM_CHECK(!thresholds.empty(), o.data, ": --threshold-from ", o.threshold_split,
               ": that split has no frames with both real and fake faces to choose a threshold on");
  }

  EvalReport report;
  report.threshold_split = o.threshold_split;
  report.model = "(in memory)";
  report.model_description = config.describe();
  report.data = o.data;
  report.split = o.split;
  for (const Perturbation& p : perturbations) {
    so.perturbation = p;
    so.progress_label = o.progress ? "eval " + p.name() : "";
    const FrameScores scores = score_frames(net, config, index, so);
    FSTM_CHECK(scores.non_finite == 0, "the model gives non-finite logits for ", scores.non_finite, " of ",
               scores.frames.size(), " frames (perturbation ", p.name(), "): its weights have diverged");
    report.frames = int64_t(scores.frames.size());
    report.bad_files = std::max(report.bad_files, scores.bad_files);
    report.backend = scores.backend;
    for (EvalRow& r : summarize(index, scores, p.name(), &thresholds)) report.rows.push_back(std::move(r));
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

IdentityAccuracy identity_accuracy(const io::FaceIndex& index, const FrameScores& scores, bool target) {
  std::map<int, std::set<int>> partners;  // identity -> identities it is paired with
  for (const io::IndexVideo& v : index.videos)
    if (v.det && v.source != v.target) {
      partners[v.source].insert(v.target);
      partners[v.target].insert(v.source);
    }
  std::map<std::string, std::pair<int64_t, int64_t>> by_kind;  // kind -> (right, frames)
  int64_t partner_answers = 0;
  for (size_t i = 0; i < scores.frames.size(); ++i) {
    const io::IndexVideo& v = index.videos[size_t(index.frames[size_t(scores.frames[i])].video)];
    const int label = target ? v.target : v.source;
    auto& [right, frames] = by_kind[!v.det ? "real" : v.target_visible ? "swap" : "reenactment"];
    right += scores.predicted[i] == label;
    frames += 1;
    if (!v.det && partners.count(v.source)) partner_answers += int64_t(partners.at(v.source).count(int(scores.predicted[i])));
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto rate = [&](const std::string& kind) {
    auto it = by_kind.find(kind);
    return it == by_kind.end() ? nan : double(it->second.first) / double(it->second.second);
  };
  IdentityAccuracy a;
  int64_t right = 0;
  for (const auto& [_, rf] : by_kind) {
    right += rf.first;
    a.frames += rf.second;
  }
  a.overall = a.frames ? double(right) / double(a.frames) : nan;
  a.real = rate("real");
  a.swap = rate("swap");
  a.reenactment = rate("reenactment");
  a.real_frames = by_kind.count("real") ? by_kind["real"].second : 0;
  a.partner_rate_real = a.real_frames ? double(partner_answers) / double(a.real_frames) : nan;
  return a;
}

nlohmann::json IdentityAccuracy::to_json() const {
  return {{"acc", number(overall)},
          {"acc_real", number(real)},
          {"acc_swap", number(swap)},
          {"acc_reenactment", number(reenactment)},
          {"partner_rate_real", number(partner_rate_real)},
          {"frames", frames},
          {"real_frames", real_frames}};
}

IdentityAccuracy test_identity_accuracy(LoadedModel& encoder, const io::FaceIndex& index,
                                        const std::string& compression, bool progress) {
  ScoreOptions so;
  so.splits = {"test"};
  so.compressions = {compression};
  if (progress) so.progress_label = std::string(model_type_name(encoder.config.type)) + " " + compression;
  return identity_accuracy(index, score_frames(*encoder.net, encoder.config, index, so),
                           encoder.config.type == ModelType::target);
}

}  // namespace fstm
