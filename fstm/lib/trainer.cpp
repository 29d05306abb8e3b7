#include "fstm/lib/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <set>
#include <sstream>

#include "autograd/autograd.h"
#include "fstm/lib/evaluator.h"
#include "fstm/lib/progress.h"
#include "io/fs.h"
#include "io/loader.h"
#include "io/safetensors.h"
#include "kernels/backend.h"
#include "kernels/conv2d.h"
#include "kernels/cuda_options.h"
#include "layers/basic.h"
#include "layers/optim.h"

namespace fstm {

// ---- settings ------------------------------------------------------------------------------------

OptimizerKind parse_optimizer(const std::string& name) {
  if (name == "adamw") return OptimizerKind::adamw;
  if (name == "sgd") return OptimizerKind::sgd;
  throw Error("unknown optimizer '" + name + "' (adamw or sgd)");
}

const char* optimizer_name(OptimizerKind kind) { return kind == OptimizerKind::adamw ? "adamw" : "sgd"; }

// config.json holds the typed settings under the names the CLI takes (found by nlohmann::json
// through argument-dependent lookup, so they live in the types' namespaces).
void to_json(nlohmann::json& j, ModelType v) { j = model_type_name(v); }
void from_json(const nlohmann::json& j, ModelType& v) { v = parse_model_type(j.get<std::string>()); }
void to_json(nlohmann::json& j, OptimizerKind v) { j = optimizer_name(v); }
void from_json(const nlohmann::json& j, OptimizerKind& v) { v = parse_optimizer(j.get<std::string>()); }
void to_json(nlohmann::json& j, LrSchedule::Kind v) { j = LrSchedule::kind_name(v); }
void from_json(const nlohmann::json& j, LrSchedule::Kind& v) { v = LrSchedule::parse_kind(j.get<std::string>()); }
void to_json(nlohmann::json& j, const InteractionLossOptions& v) { j = interaction_bound_name(v); }
void from_json(const nlohmann::json& j, InteractionLossOptions& v) { v = parse_interaction_bound(j.get<std::string>()); }
void to_json(nlohmann::json& j, FstHead v) { j = fst_head_name(v); }
void from_json(const nlohmann::json& j, FstHead& v) { v = parse_fst_head(j.get<std::string>()); }
void to_json(nlohmann::json& j, const Device& v) { j = v.str(); }
void from_json(const nlohmann::json& j, Device& v) { v = Device::parse(j.get<std::string>()); }

namespace io {
void to_json(nlohmann::json& j, const std::optional<Balance>& v) { j = v ? balance_name(*v) : ""; }
void from_json(const nlohmann::json& j, std::optional<Balance>& v) {
  const std::string name = j.get<std::string>();
  v = name.empty() ? std::nullopt : std::optional<Balance>(parse_balance(name));
}
}  // namespace io

#define FSTM_TRAIN_FIELDS(X)                                                                                    \
  X(model) X(arch) X(data) X(out) X(init) X(train_split) X(val_split) X(methods) X(compressions) X(size)         \
  X(balance) X(augment) X(photometric) X(jitter) X(flip) X(workers) X(optimizer) X(lr) X(weight_decay)          \
  X(momentum) X(nesterov) X(schedule) X(warmup_epochs) X(step_epochs) X(gamma) X(min_lr) X(batch) X(epochs)     \
  X(val_batch) X(l_src) X(l_tgt) X(l_int) X(int_bound) X(fst_head) X(fst_hidden) X(seed) X(threads) X(device)  \
  X(nondeterministic_algorithms) X(fast_conv) X(max_steps) X(checkpoint_every) X(max_bad_fraction)

nlohmann::json train_options_json(const TrainOptions& o) {
  nlohmann::json j;
#define FSTM_TO_JSON(name) j[#name] = o.name;
  FSTM_TRAIN_FIELDS(FSTM_TO_JSON)
#undef FSTM_TO_JSON
  return j;
}

std::vector<std::string> train_option_keys() {
  return {
#define FSTM_KEY(name) #name,
      FSTM_TRAIN_FIELDS(FSTM_KEY)
#undef FSTM_KEY
  };
}

void apply_train_config(TrainOptions& o, const nlohmann::json& j, const std::string& what) {
  FSTM_CHECK(j.is_object(), what, ": the training configuration must be a JSON object");
  const std::vector<std::string> keys = train_option_keys();
  for (const auto& [key, value] : j.items())
    FSTM_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(), what, ": unknown setting '", key, "'");
  try {
#define FSTM_FROM_JSON(name) \
  if (j.contains(#name)) j.at(#name).get_to(o.name);
    FSTM_TRAIN_FIELDS(FSTM_FROM_JSON)
#undef FSTM_FROM_JSON
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(what, ": a setting has the wrong type: ", e.what()));
  } catch (const Error& e) {  // a name that is not one of the choices
    throw Error(detail::concat(what, ": ", e.what()));
  }
}

nlohmann::json EpochMetrics::to_json() const {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json j = {{"epoch", epoch},       {"step", step},       {"lr", lr},
                      {"loss", num(loss)},    {"losses", losses},   {"train_acc", num(train_acc)},
                      {"seconds", seconds},   {"images_per_s", images_per_s}, {"bad_files", bad_files}};
  if (val_frames > 0) {
    j["val_frames"] = val_frames;
    j["val_acc"] = num(val_acc);
    if (!std::isnan(val_auc)) j["val_auc"] = val_auc;
  }
  return j;
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
namespace fs = std::filesystem;

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9e3779b97f4a7c15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void collect_dropouts(Module& m, std::vector<Dropout*>& out) {
  if (auto* d = dynamic_cast<Dropout*>(&m)) out.push_back(d);
  for (const auto& [name, child] : m.children()) collect_dropouts(*child, out);
}

// The loader position, step and running sums of the epoch in progress: what --resume needs beyond
// the model and optimizer tensors.
struct TrainerState {
  int64_t epoch = 0, batch = 0, step = 0;
  double best = kNaN;
  // sums over the steps of the current epoch
  double loss = 0, correct = 0, samples = 0, seconds = 0;
  int64_t steps_in_epoch = 0;
  std::map<std::string, double> losses;

  nlohmann::json to_json() const {
    return {{"epoch", epoch}, {"batch", batch}, {"step", step}, {"best", std::isnan(best) ? nlohmann::json(nullptr) : nlohmann::json(best)},
            {"loss_sum", loss}, {"correct", correct}, {"samples", samples}, {"seconds", seconds},
            {"steps_in_epoch", steps_in_epoch}, {"loss_sums", losses}};
  }
  static TrainerState from_json(const std::string& text, const std::string& what) {
    TrainerState s;
    try {
      const nlohmann::json j = nlohmann::json::parse(text);
      j.at("epoch").get_to(s.epoch);
      j.at("batch").get_to(s.batch);
      j.at("step").get_to(s.step);
      s.best = j.at("best").is_null() ? kNaN : j.at("best").get<double>();
      j.at("loss_sum").get_to(s.loss);
      j.at("correct").get_to(s.correct);
      j.at("samples").get_to(s.samples);
      j.at("seconds").get_to(s.seconds);
      j.at("steps_in_epoch").get_to(s.steps_in_epoch);
      j.at("loss_sums").get_to(s.losses);
    } catch (const nlohmann::json::exception& e) {
      throw Error(detail::concat(what, ": malformed trainer state in the metadata: ", e.what()));
    }
    return s;
  }
  void reset_epoch() {
    loss = correct = samples = seconds = 0;
    steps_in_epoch = 0;
    losses.clear();
  }
};

double count_correct(const Tensor& logits, const Tensor& labels) {
  const Tensor l = logits.to(Device::cpu());
  const std::vector<int64_t> y = labels.to_vector_i64();
  const int64_t K = l.size(1);
  const float* p = l.data<float>();
  double right = 0;
  for (size_t i = 0; i < y.size(); ++i)
    right += int64_t(std::max_element(p + int64_t(i) * K, p + int64_t(i + 1) * K) - (p + int64_t(i) * K)) == y[i];
  return right;
}

class Trainer {
 public:
  explicit Trainer(const TrainOptions& o) : o_(o), fast_conv_before_(kernels::fast_conv()) {}
  ~Trainer() { kernels::set_fast_conv(fast_conv_before_); }
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  TrainResult run() {
    setup();
    if (o_.resume) {
      restore();
    } else {
      start_fresh();
    }
    loop();
    // The two splits' frames are disjoint: unreadable training PNGs plus the validation's.
    result_.bad_files = loader_->bad_files() + val_bad_files_;
    if (result_.bad_files > 0)
      log(detail::concat("warning: ", result_.bad_files, " unreadable face images were skipped (each reported above)"));
    return result_;
  }

 private:
  // ---- set-up ----------------------------------------------------------------------------------
  // The methods trained and validated on (reals always): --methods, or all; for the target encoder
  // without the reenactments, whose fakes do not show the target identity they are labelled with
  // (io/dataset.h: method_shows_target_identity). Empty = every method.
  std::vector<std::string> trained_methods() {
    if (type_ != ModelType::target) return o_.methods;
    std::vector<std::string> chosen, left_out;
    for (const std::string& m : o_.methods.empty() ? io::ffpp_methods() : o_.methods)
      (io::method_shows_target_identity(m) ? chosen : left_out).push_back(m);
    FSTM_CHECK(!chosen.empty(), "the target encoder needs fakes that show their target identity (face swaps: Deepfakes, "
               "FaceSwap, FaceShifter); --methods leaves only reenactments");
    if (!left_out.empty()) {
      std::string names;
      for (const std::string& m : left_out) names += (names.empty() ? "" : ", ") + m;
      log("target encoder: " + names + " left out (reenactments keep the source's identity: their target label "
          "cannot be seen in the face)");
    }
    return chosen;
  }

  void setup() {
    FSTM_CHECK(!o_.data.empty(), "give the face index to train on: --data INDEX.json (written by fstm extract)");
    FSTM_CHECK(!o_.out.empty(), "give a run directory: --out DIR");
    FSTM_CHECK(o_.epochs >= 1 && o_.batch >= 1 && o_.val_batch >= 1, "--epochs, --batch and --val-batch must be >= 1");
    FSTM_CHECK(o_.lr > 0 && std::isfinite(o_.lr), "--lr must be positive, got ", o_.lr);
    FSTM_CHECK(o_.weight_decay >= 0 && o_.l_src >= 0 && o_.l_tgt >= 0 && o_.l_int >= 0,
               "--weight-decay, --l-src, --l-tgt and --l-int must be >= 0");
    FSTM_CHECK(o_.warmup_epochs >= 0 && o_.step_epochs > 0 && o_.gamma > 0, "--warmup-epochs >= 0, --step-epochs > 0 and --gamma > 0");
    FSTM_CHECK(o_.max_steps >= 0 && o_.checkpoint_every >= 0, "--max-steps and --checkpoint-every must be >= 0");
    if (o_.threads > 0) kernels::set_num_threads(o_.threads);
    type_ = o_.model;
    schedule_.kind = o_.schedule;
    device_ = o_.device;
    kernels::cuda::set_deterministic_algorithms(!o_.nondeterministic_algorithms);
    if (o_.fast_conv) kernels::set_fast_conv(true);
    for (const std::string& c : o_.compressions) io::parse_compression(c);

    FSTM_CHECK(fs::exists(o_.data), o_.data, ": no such face index (write one with fstm extract)");
    index_ = io::FaceIndex::load(o_.data);
    FSTM_CHECK(!index_.frames.empty(), o_.data, ": the face index has no frames");

    // the training loader
    methods_ = trained_methods();
    io::LoaderOptions lo;
    lo.splits = {o_.train_split};
    if (o_.train_split.empty() || o_.train_split == "all") lo.splits.clear();
    lo.methods = methods_;
    if (!lo.methods.empty()) lo.methods.push_back(io::kOriginal);
    lo.compressions = o_.compressions;
    lo.batch_size = o_.batch;
    lo.workers = std::max(1, o_.workers);
    lo.shuffle = true;
    lo.drop_last = true;
    lo.seed = o_.seed;
    const bool detects = type_ == ModelType::det || type_ == ModelType::fst;
    lo.balance = o_.balance.value_or(detects ? io::Balance::oversample : io::Balance::none);
    FSTM_CHECK(lo.balance != io::Balance::weight, "--balance weight is not supported by the trainer (its losses are "
               "unweighted); use oversample or none");
    lo.augment = o_.augment;
    if (!o_.photometric) {
      const io::AugmentOptions none = io::AugmentOptions::none();
      lo.augment_options = none;
      lo.augment_options.align_jitter = true;
      lo.augment_options.flip_p = io::AugmentOptions{}.flip_p;
    }
    if (!o_.jitter) lo.augment_options.align_jitter = false;
    if (!o_.flip) lo.augment_options.flip_p = 0.0f;
    lo.size = o_.size;
    lo.device = device_;
    lo.max_bad_fraction = o_.max_bad_fraction;
    try {
      loader_ = std::make_unique<io::DataLoader>(index_, lo);
    } catch (const Error& e) {
      throw Error(detail::concat(o_.data, ": ", e.what(), " (split '", o_.train_split, "')"));
    }

    // the model
    config_.type = type_;
    config_.arch = o_.arch;
    config_.fst_head = o_.fst_head;
    config_.fst_hidden = o_.fst_hidden;
    config_.input_size = loader_->image_size();
    config_.normalization = lo.norm;
    if (type_ != ModelType::det) {
      int64_t k = 0;
      for (int64_t f : loader_->selection()) {
        const io::IndexVideo& v = index_.videos[size_t(index_.frames[size_t(f)].video)];
        k = std::max<int64_t>(k, std::max(v.source, v.target) + 1);
      }
      FSTM_CHECK(k >= 1 && k <= int64_t(index_.identities.size()), o_.data, ": the training frames have no valid identity labels");
      config_.identities = k;
      config_.identity_names.assign(index_.identities.begin(), index_.identities.begin() + k);
    }
    net_ = build_network(config_, o_.seed);
    if (!o_.init.empty()) {
      const int64_t n = load_backbone_weights(*net_, type_, o_.init);
      log("initialised the backbones from " + o_.init + " (" + std::to_string(n) + " tensors)");
    }
    net_->to(device_);
    net_->train();
    collect_dropouts(*net_, dropouts_);

    if (o_.optimizer == OptimizerKind::adamw) {
      AdamWOptions ao;
      ao.lr = o_.lr;
      ao.weight_decay = o_.weight_decay;
      optimizer_ = std::make_unique<AdamW>(net_->named_parameters(), ao);
    } else {
      SgdOptions so;
      so.lr = o_.lr;
      so.momentum = o_.momentum;
      so.weight_decay = o_.weight_decay;
      so.nesterov = o_.nesterov;
      optimizer_ = std::make_unique<SGD>(net_->named_parameters(), so);
    }
    steps_per_epoch_ = loader_->batches_per_epoch();
    schedule_.base_lr = o_.lr;
    schedule_.total_steps = int64_t(o_.epochs) * steps_per_epoch_;
    schedule_.warmup_steps = int64_t(std::lround(o_.warmup_epochs * double(steps_per_epoch_)));
    schedule_.step_size = std::max<int64_t>(1, std::lround(o_.step_epochs * double(steps_per_epoch_)));
    schedule_.gamma = o_.gamma;
    schedule_.min_lr = o_.min_lr;

    weights_.source = o_.l_src;
    weights_.target = o_.l_tgt;
    weights_.interaction = o_.l_int;
    weights_.interaction_loss = o_.int_bound;

    // validation frames
    if (!o_.val_split.empty()) {
      for (const io::IndexFrame& f : index_.frames) {
        const io::IndexVideo& v = index_.videos[size_t(f.video)];
        const bool method_ok = methods_.empty() || v.method == io::kOriginal ||
                               std::find(methods_.begin(), methods_.end(), v.method) != methods_.end();
        const bool comp_ok = o_.compressions.empty() ||
                             std::find(o_.compressions.begin(), o_.compressions.end(),
                                       io::compression_name(v.compression)) != o_.compressions.end();
        // an identity classifier can only be validated on identities its head knows
        const int64_t label = type_ == ModelType::source ? v.source : v.target;
        const bool label_ok = config_.detects() || (label >= 0 && label < config_.identities);
        val_frames_ += v.split == o_.val_split && method_ok && comp_ok && label_ok;
      }
    }

    paths_.dir = o_.out;
    paths_.last = (fs::path(o_.out) / "last.safetensors").string();
    paths_.best = (fs::path(o_.out) / "best.safetensors").string();
    paths_.config = (fs::path(o_.out) / "config.json").string();
    paths_.metrics = (fs::path(o_.out) / "metrics.jsonl").string();
    result_.config = config_;
    result_.run_dir = o_.out;
    result_.last = paths_.last;
    result_.best_score = kNaN;

    std::ostringstream s;
    s << config_.describe() << ", " << loader_->selection().size() << " training frames (" << loader_->class_counts()[0]
      << " real, " << loader_->class_counts()[1] << " fake; " << io::balance_name(lo.balance) << "), " << steps_per_epoch_ << " steps of "
      << o_.batch << " per epoch, " << val_frames_ << " validation frames, " << optimizer_name(o_.optimizer) << " lr " << o_.lr
      << " wd " << o_.weight_decay << ", " << config_.input_size << "x" << config_.input_size << " on "
      << device_.str() << " (" << kernels::num_threads() << " threads)";
    if (type_ == ModelType::fst)
      s << "; loss = det + " << o_.l_src << " source + " << o_.l_tgt << " target + " << o_.l_int << " interaction"
        << " (" << interaction_bound_name(weights_.interaction_loss) << ")";
    log(s.str());
  }

  // One line per epoch, appended; a failed append (a full disk) is an error, not a lost line.
  void append_metrics_line(const std::string& line) {
    std::ofstream f(paths_.metrics, std::ios::app);
    f << line << "\n";
    f.close();
    FSTM_CHECK(!f.fail(), paths_.metrics, ": cannot append the epoch's metrics (disk full or read-only?); ",
               paths_.last, " keeps the last saved state");
  }

  void start_fresh() {
    FSTM_CHECK(!fs::exists(paths_.last), paths_.dir, " already holds a run (", paths_.last,
               "); continue it with --resume or choose another --out");
    io::ensure_dir(paths_.dir);
    io::remove_stale_temp_files(paths_.dir);  // a run killed before its first checkpoint
    io::write_file_atomic(paths_.config, train_options_json(o_).dump(2) + "\n");
    io::write_file_atomic(paths_.metrics, std::string());
  }

  void restore() {
    FSTM_CHECK(fs::exists(paths_.last), "nothing to resume: ", paths_.last, " does not exist");
    if (const int n = io::remove_stale_temp_files(paths_.dir))
      log(detail::concat("removed ", n, " temporary file(s) an interrupted run left in ", paths_.dir));
    const io::SafetensorsFile file = io::read_safetensors(paths_.last);
    const ModelConfig saved = model_config_from_metadata(file.metadata, paths_.last);
    FSTM_CHECK(saved.type == config_.type, paths_.last, " holds a ", model_type_name(saved.type), " model, not ",
               model_type_name(config_.type));
    FSTM_CHECK(saved.arch == config_.arch, paths_.last, " is a ", saved.arch, " checkpoint, the run asks for ", config_.arch);
    FSTM_CHECK(saved.identities == config_.identities, paths_.last, " has ", saved.identities,
               " identity classes, but the training data (", o_.data, ") gives ", config_.identities);
    FSTM_CHECK(saved.type != ModelType::fst || (saved.fst_head == config_.fst_head && saved.fst_hidden == config_.fst_hidden),
               paths_.last, " has a ", fst_head_name(saved.fst_head), " head (", saved.fst_hidden,
               "), the run asks for ", fst_head_name(config_.fst_head), " (", config_.fst_hidden, ")");
    FSTM_CHECK(saved.input_size == config_.input_size, paths_.last, " was trained at ", saved.input_size,
               " pixels, the run uses ", config_.input_size);
    FSTM_CHECK(file.metadata.count("trainer"), paths_.last, " has no trainer state (is it a training checkpoint?)");
    state_ = TrainerState::from_json(file.metadata.at("trainer"), paths_.last);

    io::StateDict model_targets;
    for (const auto& [name, t] : net_->state_dict()) model_targets.add(name, t);
    io::LoadOptions lo;
    lo.ignore_prefixes = training_state_prefixes();
    io::load_state_dict(file, model_targets, lo);
    NamedTensors opt_state;
    const std::string prefix = "optimizer.";
    for (const auto& [name, t] : file.tensors)
      if (name.rfind(prefix, 0) == 0) opt_state.emplace_back(name.substr(prefix.size()), t);
    try {
      optimizer_->load_state(opt_state);
    } catch (const Error& e) {
      throw Error(detail::concat(paths_.last, ": ", e.what(), " (was it written with another --optimizer?)"));
    }
    FSTM_CHECK(state_.batch < steps_per_epoch_, paths_.last, " stopped at batch ", state_.batch, " of epoch ",
               state_.epoch + 1, ", but the data now gives ", steps_per_epoch_, " batches per epoch");
    loader_->seek({state_.epoch, state_.batch});
    result_.best_score = state_.best;
    if (fs::exists(paths_.best)) result_.best = paths_.best;

    // metrics.jsonl keeps the epochs the checkpoint has completed
    std::string kept;
    if (fs::exists(paths_.metrics)) {
      std::ifstream in(paths_.metrics);
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        try {
          if (nlohmann::json::parse(line).at("epoch").get<int64_t>() <= state_.epoch) kept += line + "\n";
        } catch (const nlohmann::json::exception&) {
          // a torn last line from a killed run: drop it
        }
      }
    }
    io::write_file_atomic(paths_.metrics, kept);
    log("resuming " + paths_.last + " at epoch " + std::to_string(state_.epoch + 1) + ", batch " +
        std::to_string(state_.batch) + " (step " + std::to_string(state_.step) + ")");
  }

  // ---- the loop ----------------------------------------------------------------------------------
  float lr_at(int64_t step) const {
    if (schedule_.kind == LrSchedule::Kind::Cosine) return schedule_.lr_at(step);
    float lr = schedule_.lr_at(step);
    if (step < schedule_.warmup_steps) lr *= float(step + 1) / float(schedule_.warmup_steps);
    return lr;
  }

  bool stop_requested() const { return o_.stop && o_.stop->load() != 0; }
  bool max_steps_reached() const { return o_.max_steps > 0 && state_.step >= o_.max_steps; }

  void loop() {
    if (state_.epoch >= o_.epochs) {
      log("the run has already completed " + std::to_string(state_.epoch) + " epochs (raise --epochs to continue)");
      result_.epochs_completed = state_.epoch;
      result_.steps = state_.step;
      return;
    }
    for (int64_t e = state_.epoch; e < o_.epochs; ++e) {
      std::unique_ptr<ProgressBar> bar;
      if (o_.progress)
        bar = std::make_unique<ProgressBar>("epoch " + std::to_string(e + 1) + "/" + std::to_string(o_.epochs),
                                            steps_per_epoch_, "steps", progress_stream());
      if (bar && state_.batch > 0) bar->add(state_.batch);
      io::Batch b;
      auto t0 = std::chrono::steady_clock::now();
      while (loader_->next(b)) {
        step(b);
        if (bar) bar->add();
        const auto t1 = std::chrono::steady_clock::now();
        state_.seconds += std::chrono::duration<double>(t1 - t0).count();
        t0 = t1;
        const io::LoaderPosition pos = loader_->position();
        const bool epoch_done = pos.epoch != e;
        if (epoch_done) continue;  // the epoch ends below (validation, metrics, checkpoint)
        state_.epoch = pos.epoch;
        state_.batch = pos.batch;
        if (stop_requested() || max_steps_reached()) {
          if (bar) bar->finish();
          save_last();
          finish_early();
          return;
        }
        if (o_.checkpoint_every > 0 && state_.step % o_.checkpoint_every == 0) save_last();
      }
      if (bar) bar->finish();
      end_epoch(e);
      if (stop_requested() || max_steps_reached()) {
        finish_early();
        return;
      }
    }
  }

  void step(const io::Batch& b) {
    const float lr = lr_at(state_.step);
    optimizer_->set_lr(lr);
    for (size_t i = 0; i < dropouts_.size(); ++i) dropouts_[i]->rng().reseed(mix(mix(o_.seed, uint64_t(state_.step)), i));
    optimizer_->zero_grad();
    const Losses L = compute_losses(*net_, type_, b.images, b.det, b.source, b.target, weights_);
    const float total = L.total.item();
    if (!std::isfinite(total)) {
      throw Error(detail::concat("training diverged: the loss is ", total, " at step ", state_.step + 1, " (epoch ",
                                 b.epoch + 1, ", batch ", b.batch + 1, "); ",
                                 fs::exists(paths_.last) ? paths_.last + " keeps the last good state"
                                                         : std::string("no checkpoint was written yet"),
                                 ". Lower --lr", type_ == ModelType::fst ? " or --l-int, or bound the interaction loss (--int-bound)" : "", "."));
    }
    backward(L.total);
    optimizer_->step();
    ++state_.step;
    ++state_.steps_in_epoch;
    state_.loss += total;
    for (const auto& [name, t] : L.terms) state_.losses[name] += t.item();
    state_.correct += count_correct(L.logits, main_labels(type_, b.det, b.source, b.target));
    state_.samples += double(b.size());
    last_lr_ = lr;
  }

  void end_epoch(int64_t e) {
    EpochMetrics m;
    m.epoch = e + 1;
    m.step = state_.step;
    m.lr = last_lr_;
    const double n = double(std::max<int64_t>(1, state_.steps_in_epoch));
    m.loss = state_.loss / n;
    for (const auto& [name, sum] : state_.losses) m.losses[name] = sum / n;
    m.train_acc = state_.samples > 0 ? state_.correct / state_.samples : kNaN;
    m.seconds = state_.seconds;
    m.images_per_s = state_.seconds > 0 ? state_.samples / state_.seconds : 0;
    m.val_acc = m.val_auc = kNaN;
    double score = kNaN;
    if (val_frames_ > 0) {
      validate(m);
      score = config_.detects() ? (std::isnan(m.val_auc) ? m.val_acc : m.val_auc) : m.val_acc;
    }
    m.bad_files = loader_->bad_files() + val_bad_files_;
    append_metrics_line(m.to_json().dump());
    const bool better = !std::isnan(score) && (std::isnan(state_.best) || score > state_.best);
    state_.epoch = e + 1;
    state_.batch = 0;
    state_.reset_epoch();
    if (better) {
      state_.best = score;
      save(paths_.best, false);
      result_.best = paths_.best;
      result_.best_score = score;
    }
    save_last();
    result_.epochs.push_back(m);
    result_.epochs_completed = state_.epoch;
    result_.steps = state_.step;
    std::ostringstream s;
    s.precision(4);
    s << "epoch " << m.epoch << "/" << o_.epochs << ": loss " << m.loss;
    for (const auto& [name, v] : m.losses)
      if (m.losses.size() > 1) s << ", " << name << " " << v;
    s << ", train acc " << m.train_acc;
    if (m.val_frames > 0) {
      s << ", val acc " << m.val_acc;
      if (!std::isnan(m.val_auc)) s << ", val AUC " << m.val_auc;
      if (better) s << " (best)";
    }
    s << ", " << ProgressBar::format_duration(m.seconds);
    log(s.str());
  }

  void validate(EpochMetrics& m) {
    ScoreOptions so;
    so.splits = {o_.val_split};
    so.methods = methods_;
    if (!so.methods.empty()) so.methods.push_back(io::kOriginal);
    so.compressions = o_.compressions;
    so.batch = o_.val_batch;
    so.workers = o_.workers;
    so.max_bad_fraction = o_.max_bad_fraction;
    so.progress_label = o_.progress ? "validation" : "";
    const FrameScores scores = score_frames(*net_, config_, index_, so);
    val_bad_files_ = std::max(val_bad_files_, scores.bad_files);
    FSTM_CHECK(scores.non_finite == 0, "training diverged: after epoch ", m.epoch, " the model gives non-finite logits for ",
               scores.non_finite, " of ", scores.frames.size(), " validation frames; ",
               fs::exists(paths_.last) ? paths_.last + " keeps the last good state" : std::string("no checkpoint was written yet"),
               ". Lower --lr", type_ == ModelType::fst ? " or --l-int, or bound the interaction loss (--int-bound)" : "", ".");
    std::vector<double> p;
    std::vector<int> y;
    int64_t right = 0, counted = 0;
    for (size_t i = 0; i < scores.frames.size(); ++i) {
      const io::IndexVideo& v = index_.videos[size_t(index_.frames[size_t(scores.frames[i])].video)];
      if (config_.detects()) {
        p.push_back(scores.p_fake[i]);
        y.push_back(v.det);
      } else {
        const int64_t label = type_ == ModelType::source ? v.source : v.target;
        if (label < 0 || label >= config_.identities) continue;  // an identity the head does not know
        right += scores.predicted[i] == label;
        ++counted;
      }
    }
    if (config_.detects()) {
      const DetectionMetrics d = detection_metrics(p, y);
      m.val_frames = d.samples;
      m.val_acc = d.acc;
      m.val_auc = d.auc;
    } else {
      m.val_frames = counted;
      m.val_acc = counted ? double(right) / double(counted) : kNaN;
    }
  }

  void finish_early() {
    result_.epochs_completed = state_.epoch;
    result_.steps = state_.step;
    if (stop_requested()) {
      result_.stopped_by_signal = o_.stop->load();
    } else {
      result_.stopped_at_max_steps = true;
    }
  }

  // ---- checkpoints ---------------------------------------------------------------------------------
  void save(const std::string& path, bool with_optimizer) {
    io::StateDict tensors;
    for (const auto& [name, t] : net_->state_dict()) tensors.add(name, t);
    if (with_optimizer)
      for (const auto& [name, t] : optimizer_->state()) tensors.add("optimizer." + name, t);
    io::Metadata extra;
    extra["format"] = with_optimizer ? "fstm-train-checkpoint" : "fstm-model";
    extra["trainer"] = state_.to_json().dump();
    extra["config"] = train_options_json(o_).dump();
    io::write_safetensors(path, tensors, model_metadata(config_, extra));
  }
  void save_last() {
    save(paths_.last, true);
    result_.steps = state_.step;
  }

  void log(const std::string& s) const {
    if (o_.progress) std::cerr << "fstm train: " << s << "\n";
  }

  TrainOptions o_;
  const bool fast_conv_before_;  // the process-wide setting, restored when the run ends
  ModelType type_ = ModelType::det;
  std::vector<std::string> methods_;  // trained_methods()
  Device device_;
  io::FaceIndex index_;
  std::unique_ptr<io::DataLoader> loader_;
  ModelConfig config_;
  std::unique_ptr<ImageClassifier> net_;
  std::vector<Dropout*> dropouts_;
  std::unique_ptr<Optimizer> optimizer_;
  LrSchedule schedule_;
  LossWeights weights_;
  int64_t steps_per_epoch_ = 0, val_frames_ = 0;
  float last_lr_ = 0;
  TrainerState state_;
  TrainResult result_;
  int64_t val_bad_files_ = 0;  // unreadable validation PNGs (the most any validation met)
  struct {
    std::string dir, last, best, config, metrics;
  } paths_;
};

}  // namespace

TrainResult train(const TrainOptions& options) { return Trainer(options).run(); }

}  // namespace fstm
