// Evaluation of real/fake detectors (det and fst checkpoints) on a face index: ACC, frame AUC,
// video AUC (mean frame probability per video), EER and AP (fstm/lib/detection_metrics.h), per
// compression and manipulation method as the paper's Table 4, optionally under the robustness
// perturbations of its Table 7 (fstm/lib/perturbations.h).
//
// For compression c and method m, the test set is every real frame at c plus the fakes of m at c
// (as FF++ evaluations do); the "all" row takes the fakes of every method. Frames are scored with an
// InferencePlan (f32, or bf16 with --dtype bf16).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fstm/lib/detection_metrics.h"
#include "fstm/lib/model_loader.h"
#include "fstm/lib/perturbations.h"
#include "io/dataset.h"

namespace fstm {

// ---- scoring frames ----------------------------------------------------------------------------

struct ScoreOptions {
  // which frames of the index (empty = all)
  std::vector<std::string> splits, methods, compressions;
  int batch = 32;
  int workers = 2;
  DType dtype = DType::f32;
  Perturbation perturbation;
  uint64_t seed = 0;               // for the random perturbations (block, noise), per frame
  double max_bad_fraction = io::kDefaultMaxBadFraction;  // unreadable PNGs allowed (io/loader.h)
  std::string progress_label;      // empty: no progress bar
};

struct FrameScores {
  std::vector<int64_t> frames;     // indices into FaceIndex::frames, in index order
  std::vector<double> p_fake;      // softmax probability of class 1 (meaningful for 2-class models)
  std::vector<int64_t> predicted;  // argmax class
  int64_t bad_files = 0;           // unreadable PNGs (replaced by the loader and reported)
  int64_t non_finite = 0;          // frames whose logits are NaN or infinite (a diverged model)
  std::string backend;             // the plan's executor
};

// Identity accuracy of an encoder from its argmax per frame (scores.predicted), against each frame's
// source identity (v_s) or target identity (v_t, target = true), by kind of frame: reals, face
// swaps, and reenactments (whose target is not visible: io/dataset.h). partner_rate_real is how
// often a real face of A gets an identity A is paired with (B for a fake A_B or B_A): an encoder
// that learnt "A's context -> A's partner" scores high there. NaN where a kind has no frame.
struct IdentityAccuracy {
  double overall = 0, real = 0, swap = 0, reenactment = 0, partner_rate_real = 0;
  int64_t frames = 0, real_frames = 0;
  nlohmann::json to_json() const;  // acc, acc_real, acc_swap, acc_reenactment, partner_rate_real, frames, real_frames
};
IdentityAccuracy identity_accuracy(const io::FaceIndex& index, const FrameScores& scores, bool target);
// identity_accuracy of an encoder on the test split's frames at one compression.
IdentityAccuracy test_identity_accuracy(LoadedModel& encoder, const io::FaceIndex& index,
                                        const std::string& compression, bool progress);

// Scores the selected frames with `net` in eval mode (the caller's train/eval mode is restored).
FrameScores score_frames(ImageClassifier& net, const ModelConfig& config, const io::FaceIndex& index,
                         const ScoreOptions& options);

// ---- the report --------------------------------------------------------------------------------

struct EvalRow {
  std::string perturbation = "none", compression, method;  // method "all": every method together
  int64_t real_frames = 0, fake_frames = 0, videos = 0;
  DetectionMetrics frame;
  double video_auc = 0;
};

// Rows per compression x method of the scored frames (see above).
// With `thresholds` (compression -> threshold), each row also gets ACC and balanced ACC at its
// compression's threshold (DetectionMetrics::acc_at_threshold).
std::vector<EvalRow> summarize(const io::FaceIndex& index, const FrameScores& scores, const std::string& perturbation,
                               const std::map<io::Compression, double>* thresholds = nullptr);

struct EvalOptions {
  ModelSpec model;                         // --model CHECKPOINT (or --arch/--weights for a bare det state dict)
  std::string data;                        // the face index (fstm extract)
  std::string split = "test";              // "" or "all": every frame
  // "" or a split (val): per compression, the threshold of best balanced accuracy on that split's
  // frames (every method, no perturbation), applied to the rows beside ACC at 0.5
  std::string threshold_split;
  std::vector<std::string> compressions;   // empty: all
  std::vector<std::string> methods;        // manipulation methods (the reals are always in)
  std::vector<std::string> perturbations;  // "none", "blur:3", ...; empty: none
  int batch = 32;
  int workers = 2;
  int threads = 0;                         // 0: the default
  std::string dtype = "f32";
  uint64_t seed = 0;
  double max_bad_fraction = io::kDefaultMaxBadFraction;
  bool progress = true;
};

struct EvalReport {
  std::string model, model_description, data, split, backend, threshold_split;
  int64_t frames = 0, bad_files = 0;
  double seconds = 0;
  std::vector<EvalRow> rows;

  std::string table() const;         // readable, one block per perturbation (percentages)
  nlohmann::json to_json() const;    // fractions; NaN (one class missing) as null
};

// Throws naming the file when the index or checkpoint is missing or unusable, when the model is
// not a detector, or when no frame matches the filters.
EvalReport evaluate(const EvalOptions& options);
// The same for a network in memory (options.model is not used; options.data only names the index
// in the report). The network's train/eval mode is restored afterwards.
EvalReport evaluate(ImageClassifier& net, const ModelConfig& config, const io::FaceIndex& index,
                    const EvalOptions& options);

}  // namespace fstm
