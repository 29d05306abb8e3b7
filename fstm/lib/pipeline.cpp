#include "fstm/lib/pipeline.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>

#include "fstm/lib/progress.h"
#include "io/extract.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "io/synth.h"

namespace fstm {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRunDataFile = "pipeline_data.json";

nlohmann::json read_json_or_null(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return nullptr;
  try {
    const std::vector<uint8_t> bytes = io::read_file(path.string());
    return nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const std::exception&) {
    return nullptr;  // torn or foreign: treated as "no record", so the step is redone
  }
}

// The record of the step that writes folder `dir`: a file beside it (the folder itself must stay
// empty for the synthetic generator), with the step's settings and whether it completed. Written
// (complete: false) before the step starts, so that a folder left by an interrupted step is known
// to be ours.
fs::path step_record(const fs::path& dir) { return fs::path(dir.string() + ".pipeline.json"); }

void write_step(const fs::path& dir, const nlohmann::json& settings, bool complete) {
  io::write_file_atomic(step_record(dir).string(),
                        nlohmann::json{{"settings", settings}, {"complete", complete}}.dump(2) + "\n");
}

bool step_complete(const fs::path& dir, const nlohmann::json& settings) {
  const nlohmann::json j = read_json_or_null(step_record(dir));
  return j.is_object() && j.value("complete", false) && j.contains("settings") && j["settings"] == settings;
}

// Empties `dir` for a step that is redone. Only a folder that a previous step wrote (it has the
// record) is deleted.
void clear_step_dir(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  FSTM_CHECK(fs::is_directory(dir, ec), dir.string(), ": exists and is not a directory");
  if (fs::is_empty(dir, ec)) return;
  FSTM_CHECK(fs::exists(step_record(dir), ec), dir.string(), ": exists and was not written by fstm (no ",
             step_record(dir).string(), "); refusing to replace it, choose another folder");
  fs::remove_all(dir, ec);
  FSTM_CHECK(!ec, dir.string(), ": cannot delete the previous contents (", ec.message(), ")");
}

}  // namespace

std::string file_fingerprint(const std::string& path) {
  const std::vector<uint8_t> bytes = io::read_file(path);
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

namespace {

// The parts of a run's settings that decide its weights at a given step. max_steps only says where
// the run stops (resuming is exact), and the index is compared by content, not by path.
nlohmann::json comparable_config(nlohmann::json config) {
  for (const char* key : {"threads", "workers", "checkpoint_every", "max_steps", "out", "data", "max_bad_fraction"})
    config.erase(key);
  // Settings added later compare equal to their absence in older runs' config.json when at their default.
  for (const char* key : {"nondeterministic_algorithms", "fast_conv"})
    if (config.value(key, false) == false) config.erase(key);
  return config;
}

// The saved trainer state of a run's last.safetensors (epoch, step, best), or null.
nlohmann::json saved_trainer_state(const io::SafetensorsFile& file) {
  const auto it = file.metadata.find("trainer");
  if (it == file.metadata.end()) return nullptr;
  try {
    return nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    return nullptr;
  }
}

void remove_run(const fs::path& dir) {
  std::error_code ec;
  for (const char* name : {"last.safetensors", "best.safetensors", "config.json", "metrics.jsonl", kRunDataFile})
    fs::remove(dir / name, ec);
}

}  // namespace

std::string face_index_or_synthetic(const std::string& data, const SyntheticFacesOptions& synthetic,
                                    const std::string& work) {
  if (data.empty()) return prepare_synthetic_faces(synthetic, (fs::path(work) / "synthetic").string()).index;
  FSTM_CHECK(fs::exists(data), data,
             ": no such face index (write one with fstm extract, or leave --data out for the synthetic default)");
  return data;
}

void make_tiny(SyntheticFacesOptions& o, int identities) {
  o.identities = identities;
  o.frames = 4;
  o.video_size = 64;
  o.face_size = 32;
  o.faces_per_video = 2;
}

int TrainingRecipe::epochs_of(ModelType model) const {
  switch (model) {
    case ModelType::det: return epochs_det;
    case ModelType::fst: return epochs_fst;
    case ModelType::target: return epochs_target;
    case ModelType::source: return epochs_encoders;
  }
  return epochs_encoders;
}

void TrainingRecipe::apply(TrainOptions& t) const {
  t.epochs = epochs_of(t.model);
  t.optimizer = OptimizerKind::adamw;
  t.lr = lr;
  t.batch = batch;
  t.schedule = schedule;
  t.warmup_epochs = warmup_epochs;
  t.photometric = false;
  if (t.model == ModelType::source || t.model == ModelType::target) {
    // The explained faces' identities must be classes of v_s/v_t (Q needs phi_s, phi_t of the true
    // source and target), so the encoders learn every identity: they train on every split and have
    // no validation split (val identities are not classes of a train-split head either). Their
    // accuracy is measured on the test split's frames (and at compressions they did not see).
    t.train_split = "all";
    t.val_split = "";
  }
  // v_t sees a face's own identity only on its real frames and other identities (the donors) on
  // every swap of it: oversampling the reals balances "this head is A" against "this inner face is B".
  if (t.model == ModelType::target) t.balance = io::Balance::oversample;
}

TrainingRecipe TrainingRecipe::tiny() {
  TrainingRecipe r;
  r.epochs_det = r.epochs_fst = r.epochs_encoders = r.epochs_target = 1;
  r.batch = 16;
  r.warmup_epochs = 0;
  return r;
}

nlohmann::json TrainingRecipe::to_json() const {
  return {{"epochs_det", epochs_det}, {"epochs_fst", epochs_fst},       {"epochs_encoders", epochs_encoders},
          {"epochs_target", epochs_target}, {"batch", batch},           {"lr", lr},
          {"schedule", LrSchedule::kind_name(schedule)}, {"warmup_epochs", warmup_epochs}};
}

nlohmann::json synthetic_faces_json(const SyntheticFacesOptions& o) {
  return {{"identities", o.identities},     {"frames", o.frames},
          {"video_size", o.video_size},     {"face_size", o.face_size},
          {"faces_per_video", o.faces_per_video}, {"seed", o.seed},
          {"compress", o.compress},         {"methods", io::synth_method_names(o.methods)},
          {"swap_colour_match", o.swap_colour_match}};
}

SyntheticFaces prepare_synthetic_faces(const SyntheticFacesOptions& options, const std::string& dir) {
  FSTM_CHECK(!dir.empty(), "prepare_synthetic_faces: no output folder given");
  FSTM_CHECK(options.face_size >= 16 && options.faces_per_video >= 1, "synthetic faces: face size must be >= 16 (got ",
             options.face_size, ") and faces per video >= 1 (got ", options.faces_per_video, ")");
  io::ensure_dir(dir);
  const fs::path data = fs::path(dir) / "data", faces = fs::path(dir) / "faces";
  SyntheticFaces out{data.string(), (faces / "index.json").string()};

  io::SynthOptions so;
  so.identities = options.identities;
  so.frames = options.frames;
  so.size = options.video_size;
  so.seed = options.seed;
  so.compress = options.compress;
  so.threads = options.threads;
  so.methods = options.methods;
  so.swap_colour_match = options.swap_colour_match;
  so.validate();

  // the videos
  nlohmann::json data_settings = synthetic_faces_json(options);
  for (const char* key : {"face_size", "faces_per_video"}) data_settings.erase(key);
  if (step_complete(data, data_settings)) {
    out.data_reused = true;
  } else {
    clear_step_dir(data);
    io::ensure_dir(data.string());
    write_step(data, data_settings, false);
    ProgressBar bar("synthetic data", options.identities * (1 + int(so.methods.size())), "videos",
                    options.progress ? progress_stream() : nullptr);
    const io::SynthProgress progress = [&](int done, int total, const std::string&) {
      if (total != bar.total()) bar.set_total(total);  // the generator's own count of its units
      bar.add(done - bar.done());
      // Throwing here stops the generator's workers (it rethrows the first exception).
      if (options.stop && options.stop->load() != 0)
        throw Interrupted(options.stop->load(), "interrupted while writing " + data.string());
    };
    io::write_synth_dataset(so, data.string(), true, progress);
    bar.finish();
    write_step(data, data_settings, true);
  }

  // the aligned faces, from the generator's own landmarks
  nlohmann::json face_settings = synthetic_faces_json(options);
  face_settings["ground_truth"] = true;  // faces extracted before the aligned masks existed are redone
  if (out.data_reused && step_complete(faces, face_settings)) {
    out.faces_reused = true;
    return out;
  }
  clear_step_dir(faces);
  io::ensure_dir(faces.string());
  write_step(faces, face_settings, false);
  io::ExtractOptions eo;
  eo.data = data.string();
  eo.out = faces.string();
  eo.frames = options.faces_per_video;
  eo.landmarks = (data / "ldm.json").string();
  eo.alignment.canvas = options.face_size;
  eo.alignment.face_width = 80.0f * float(options.face_size) / 224.0f;  // the authors' 80-of-224 framing
  eo.jobs = options.threads;
  if (!options.compress) eo.scan.compressions = {io::Compression::raw};
  const io::ScanResult preview = io::scan_ffpp(eo.data, eo.scan);
  ProgressBar bar("faces", int64_t(preview.videos.size()), "videos", options.progress ? progress_stream() : nullptr);
  eo.on_video = [&](int64_t, int64_t, const std::vector<io::SkipRecord>&) { bar.add(); };
  const io::ExtractReport r = io::extract_faces(eo);
  bar.finish();
  FSTM_CHECK(!r.index.frames.empty(), out.index, ": the extraction found no faces in ", data.string());
  write_step(faces, face_settings, true);
  return out;
}

SyntheticFacesOptions IdentityInitOptions::corpus() {
  SyntheticFacesOptions d;
  d.identities = 600;
  d.frames = 8;
  d.faces_per_video = 4;
  d.seed = 7;
  d.methods = {io::SynthMethod::deepfakes, io::SynthMethod::faceswap, io::SynthMethod::faceshifter};
  return d;
}

IdentityInitOptions IdentityInitOptions::quick() {
  IdentityInitOptions o;
  make_tiny(o.data, 8);
  o.epochs = 1;
  o.batch = 16;
  o.warmup_epochs = 0;
  return o;
}

std::string prepare_identity_init(const IdentityInitOptions& o, const std::string& dir) {
  SyntheticFacesOptions data = o.data;
  data.progress = o.progress;
  data.stop = o.stop;
  const SyntheticFaces corpus = prepare_synthetic_faces(data, (fs::path(dir) / "synthetic").string());
  TrainOptions t;
  t.model = ModelType::target;
  t.arch = o.arch;
  t.data = corpus.index;
  t.out = (fs::path(dir) / "run").string();
  t.train_split = "all";  // every identity of the corpus is a class; nothing is held out
  t.val_split = "";
  t.methods = io::synth_method_names(o.data.methods);
  t.compressions = {"raw", "c23", "c40"};
  t.balance = io::Balance::oversample;  // as v_t's recipe: a face's own label lives on its real frames only
  t.optimizer = OptimizerKind::adamw;
  t.lr = o.lr;
  t.schedule = LrSchedule::Kind::Cosine;
  t.warmup_epochs = o.warmup_epochs;
  t.batch = o.batch;
  t.epochs = o.epochs;
  t.seed = o.seed;
  t.threads = o.threads;
  t.progress = o.progress;
  t.stop = o.stop;
  const TrainResult r = train_or_reuse(t);
  if (r.stopped_by_signal)
    throw Interrupted(r.stopped_by_signal, "stopped while training the identity initialisation in " + t.out);
  return r.last;
}

std::vector<EpochMetrics> read_epoch_metrics(const std::string& path) {
  std::vector<EpochMetrics> out;
  std::ifstream in(path);
  if (!in) return out;
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  auto num = [&](const nlohmann::json& j, const char* key) {
    return j.contains(key) && j[key].is_number() ? j[key].get<double>() : kNaN;
  };
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      EpochMetrics m;
      m.epoch = j.at("epoch").get<int64_t>();
      m.step = j.at("step").get<int64_t>();
      m.lr = num(j, "lr");
      m.loss = num(j, "loss");
      m.train_acc = num(j, "train_acc");
      m.seconds = num(j, "seconds");
      m.images_per_s = num(j, "images_per_s");
      if (j.contains("losses")) j.at("losses").get_to(m.losses);
      m.val_frames = j.value("val_frames", int64_t(0));
      m.val_acc = num(j, "val_acc");
      m.val_auc = num(j, "val_auc");
      out.push_back(std::move(m));
    } catch (const nlohmann::json::exception&) {
      // a torn last line from a killed run
    }
  }
  return out;
}

TrainResult train_or_reuse(TrainOptions options) {
  FSTM_CHECK(!options.out.empty(), "train_or_reuse: no run directory given");
  FSTM_CHECK(!options.data.empty() && fs::exists(options.data), options.data,
             ": no such face index (train_or_reuse needs one)");
  const fs::path run(options.out);
  const fs::path last = run / "last.safetensors", metrics = run / "metrics.jsonl";
  const nlohmann::json data_record = {{"index_hash", file_fingerprint(options.data)}};
  const nlohmann::json wanted = comparable_config(train_options_json(options));

  options.resume = false;
  std::error_code ec;
  if (fs::exists(last, ec)) {
    const nlohmann::json saved_config = read_json_or_null(run / "config.json");
    const bool same = saved_config.is_object() && comparable_config(saved_config) == wanted &&
                      read_json_or_null(run / kRunDataFile) == data_record;
    if (same) {
      options.resume = true;
      const io::SafetensorsFile file = io::read_safetensors(last.string());
      const nlohmann::json state = saved_trainer_state(file);
      const bool finished =
          state.is_object() && (state.value("epoch", int64_t(0)) >= options.epochs ||
                                (options.max_steps > 0 && state.value("step", int64_t(0)) >= options.max_steps));
      if (finished) {  // the result without building the trainer
        TrainResult r;
        r.config = model_config_from_metadata(file.metadata, last.string());
        r.run_dir = options.out;
        r.last = last.string();
        if (fs::exists(run / "best.safetensors", ec)) r.best = (run / "best.safetensors").string();
        r.epochs_completed = state.value("epoch", int64_t(0));
        r.steps = state.value("step", int64_t(0));
        r.best_score = state["best"].is_number() ? state["best"].get<double>() : std::nan("");
        r.stopped_at_max_steps = options.max_steps > 0 && r.steps >= options.max_steps;
        r.epochs = read_epoch_metrics(metrics.string());
        return r;
      }
    } else {
      std::cerr << "note: " << options.out
                << " holds a run with other settings or data; it is deleted and trained again\n";
      remove_run(run);
    }
  } else if (fs::exists(run / "config.json", ec)) {
    remove_run(run);  // a run killed before its first checkpoint: nothing to resume
  }
  if (!options.resume) {
    io::ensure_dir(options.out);
    io::write_file_atomic((run / kRunDataFile).string(), data_record.dump(2) + "\n");
  }
  TrainResult r = train(options);
  r.epochs = read_epoch_metrics(metrics.string());
  return r;
}

}  // namespace fstm
