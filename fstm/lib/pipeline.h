// Reusable steps of the experiments (`fstm demo`, `fstm hypothesis`): the synthetic data set with
// its aligned faces, and training runs that are reused when they already exist.
//
// Every step leaves a record of the settings it ran with once it is complete, so that a second
// call with the same settings reuses the result, and a call with other settings redoes the step
// instead of mixing old and new results:
//   DIR/data.pipeline.json     the synthetic FF++ tree DIR/data (io/synth.h): settings, complete or not
//   DIR/faces.pipeline.json    the faces and DIR/faces/index.json (io/extract.h): the same
//   RUN/pipeline_data.json         the face index a training run was started on (a content hash)
// A training run's own config.json (fstm/lib/trainer.h) holds the rest of its settings.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "fstm/lib/trainer.h"
#include "io/synth.h"

namespace fstm {

struct SyntheticFacesOptions {
  int identities = 60, frames = 16, video_size = io::SynthOptions{}.size, face_size = 64, faces_per_video = 8;
  uint64_t seed = 0;
  bool compress = true;  // also c23/c40
  std::vector<io::SynthMethod> methods = io::all_synth_methods();
  float swap_colour_match = io::SynthOptions{}.swap_colour_match;
  int threads = 2;
  bool progress = true;
  // When it becomes non-zero, the data generation stops (throwing Interrupted) at the next video;
  // the face extraction cannot be cut short and finishes first. Nothing incomplete is ever reused.
  const std::atomic<int>* stop = nullptr;
};

struct SyntheticFaces {
  std::string data_dir, index;  // the FF++ tree and the face index JSON
  bool data_reused = false, faces_reused = false;
};

// Thrown when a step was cut short by SyntheticFacesOptions::stop.
class Interrupted : public Error {
 public:
  explicit Interrupted(int signal, const std::string& what) : Error(what), signal(signal) {}
  int signal;
};

// Writes DIR/data (the synthetic FF++ tree) and DIR/faces (aligned face PNGs + index.json, from the
// generator's ground-truth landmarks); each part is reused when a previous complete run with the same
// options left it, redone otherwise. Returns the paths. Throws fstm::Error when DIR (or DIR/faces)
// cannot be written, and when DIR/faces exists but was not written by this function (it is
// deleted before it is redone, so it must have a record).
SyntheticFaces prepare_synthetic_faces(const SyntheticFacesOptions& options, const std::string& dir);

// The face index an experiment runs on: `data` when given (it must exist), else the synthetic
// default made (or reused) under WORK/synthetic with `synthetic`'s sizes, progress and stop.
std::string face_index_or_synthetic(const std::string& data, const SyntheticFacesOptions& synthetic,
                                    const std::string& work);

// The settings that decide a synthetic data set (for records and reports).
nlohmann::json synthetic_faces_json(const SyntheticFacesOptions& options);
// The tiny data of the commands' --quick modes (tests): `identities` identities, 4 frames of 64 px
// per video, 2 faces of 32 px per video; the other fields are left as they are.
void make_tiny(SyntheticFacesOptions& options, int identities);

// Pretrained weights for the synthetic data: the stand-in for the ImageNet weights the paper's
// models start from (none can be downloaded here). A backbone learns v_t's task, naming the donor
// of a face swap, on a corpus of other synthetic people (seed 7, where the experiments use 0: other
// identities) made of the three face swaps only. A label's frames then share nothing but the inner
// face, so the network learns to read the inner face, the identity FST-Matching's target encoder
// has to match. Measured on the 240-identity comparison's unseen test swaps at c40 (README, Table 4
// section): a whole-face identity classifier's features lay nearer the donor than the context on
// 0.13 of them, this one's on 0.635 with 256-px frames and 0.465 with the default 128-px frames.
// The v_t checkpoint it writes is an --init for every backbone.
struct IdentityInitOptions {
  SyntheticFacesOptions data = corpus();
  std::string arch = "resnet18";
  int epochs = 5, batch = 32;
  float lr = 1e-3f, warmup_epochs = 0.5f;  // AdamW, cosine schedule, `fstm train`'s augmentation
  uint64_t seed = 0;
  int threads = 0;
  bool progress = true;
  const std::atomic<int>* stop = nullptr;  // non-zero: save the training in progress, throw Interrupted

  // 600 identities, 8 frames per video, 4 faces per video, seed 7, Deepfakes, FaceSwap, FaceShifter.
  static SyntheticFacesOptions corpus();
  // Tests: 8 identities of tiny data, 1 epoch, batch 16.
  static IdentityInitOptions quick();
};

// Makes (or reuses) DIR/synthetic (the corpus) and DIR/run (the training); returns the run's
// last.safetensors. Throws Interrupted when options.stop fires (the next call resumes).
std::string prepare_identity_init(const IdentityInitOptions& options, const std::string& dir);

// How the experiments (demo, hypotheses) train each model from random weights on the synthetic
// default: AdamW, a cosine schedule with warm-up, no photometric augmentation, and per-model epochs
// sized so that the models the explanations are read from work (README: v_d's raw test AUC >= 0.95;
// v_s and v_t >= 0.9 on real and swapped test faces, v_t's partner rate <= 0.1).
//   - The cosine schedule with warm-up (and evaluating at the best validation AUC) took v_d's raw test
//     AUC from 0.940 (constant lr, last checkpoint) to 0.953 at the same epochs.
//   - v_d: 10 epochs; with the generator's shared identity latent and no Deepfakes scale shortcut, 8
//     epochs left its raw test AUC at 0.938 with the validation AUC still rising (0.936 -> 0.950).
//   - v_t gets more epochs than v_s: it must read the inner face (a swap shows its target there, on
//     the source's head), and it trains on fewer frames (no reenactments). With 4 epochs its training
//     accuracy was 0.58 and still rising; with 2 (the hypotheses' old default) 0.06, near chance.
//   - FST gets 2 epochs in the demo to stay within 10 minutes on 2 cores: not a fair comparison with
//     v_d (fstm compare is: fstm/lib/compare.h).
// Sized for the default data (8 faces per video); fewer faces per video mean fewer steps per epoch.
struct TrainingRecipe {
  int epochs_det = 10, epochs_fst = 2, epochs_encoders = 4, epochs_target = 10;
  int batch = 32;
  float lr = 1e-3f;
  LrSchedule::Kind schedule = LrSchedule::Kind::Cosine;
  float warmup_epochs = 0.5f;

  int epochs_of(ModelType model) const;
  // The recipe's settings for t.model (set by the caller); the identity encoders learn every split's
  // identities (train_split "all", no validation) and v_t oversamples the real frames.
  void apply(TrainOptions& t) const;
  static TrainingRecipe tiny();  // the --quick modes: 1 epoch each, batch 16, no warm-up
  nlohmann::json to_json() const;
};

// train(options) unless options.out already holds a finished run with the same configuration, in
// which case it returns that run's result without training; an unfinished run is resumed.
// "The same configuration" is the saved config.json equal to train_options_json(options) except
// for threads, workers, checkpoint_every, max_steps, out and data, and the same face index content. A run with
// another configuration (or from another index) is deleted and trained again, with a note on stderr.
// options.resume is ignored (it is decided here). TrainResult::epochs holds every completed epoch of
// the run (from metrics.jsonl), also when nothing was trained by this call.
TrainResult train_or_reuse(TrainOptions options);

// FNV-1a of a file's bytes, as 16 hex digits: tells whether a step's input is the very file an
// earlier step used (a face index, a checkpoint).
std::string file_fingerprint(const std::string& path);

// The epochs recorded in a run's metrics.jsonl (a torn last line is skipped); empty when the file
// does not exist.
std::vector<EpochMetrics> read_epoch_metrics(const std::string& path);

}  // namespace fstm
