// Training of the method's models (fstm/lib/models.h) on a face index (fstm extract).
//
//   TrainOptions o;  o.model = ModelType::fst; o.data = "faces/index.json"; o.out = "runs/fst";
//   TrainResult r = train(o);             // or: fstm train --model fst --data ... --out ...
//
// A run directory holds:
//   config.json        every setting of the run (the resolved TrainOptions), written at the start
//   metrics.jsonl      one JSON line per completed epoch: epoch, step, lr, loss, losses{...},
//                      train_acc, val_acc/val_auc/val_frames when a val split exists, seconds, images_per_s
//   last.safetensors   written atomically every epoch (and every --checkpoint-every steps, and on
//                      Ctrl-C / max_steps): the model's state dict under its own names, the optimizer
//                      state under "optimizer.", and __metadata__ with the model (models.h:
//                      model_metadata), "format": "fstm-train-checkpoint", "config" (the options as
//                      JSON) and "trainer" (JSON: epoch and batch of the loader position, global step,
//                      best validation score, the running sums of the epoch in progress).
//                      `fstm predict/eval --model DIR/last.safetensors` load it directly.
//   best.safetensors   the model alone (same metadata, without optimizer) at the best validation
//                      score: val AUC for det/fst, val identity accuracy for source/target (only
//                      written when validation frames exist).
//
// Determinism: the same seed gives the same weights. All randomness comes from the seed: weight
// initialisation, the loader's shuffles and augmentations (seeded per epoch, batch and sample), and
// dropout masks, whose generators are reseeded from (seed, step) before every step. So --resume,
// which restores the model, the optimizer, the loader position and the step, continues exactly:
// an interrupted and resumed run ends with the same weights as an uninterrupted one.
// (Stochastic depth inside EfficientNet blocks draws from a generator the trainer cannot reach;
// with it active, a resumed run is equally valid but not bit-identical.)
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fstm/lib/models.h"
#include "io/loader.h"
#include "layers/optim.h"
#include "tensor/device.h"

namespace fstm {

enum class OptimizerKind { adamw, sgd };
OptimizerKind parse_optimizer(const std::string& name);  // "adamw", "sgd"; throws naming the choices
const char* optimizer_name(OptimizerKind kind);

// Every setting is typed; the strings a user types are parsed by fstm/cli (and, for config.json,
// by apply_train_config), never here.
struct TrainOptions {
  // what to train, on what, where
  ModelType model = ModelType::det;
  std::string arch = "resnet18";
  std::string data;           // face index JSON
  std::string out;            // run directory
  std::string init;           // torchvision weights (.safetensors) for the backbones; "" = random init

  // data
  std::string train_split = "train";
  std::string val_split = "val";           // "" = no validation
  std::vector<std::string> methods;        // manipulation methods to train on (reals always); empty = all
  std::vector<std::string> compressions;   // empty = all
  int size = 0;                            // input side; 0 = the index's
  std::optional<io::Balance> balance;      // none | oversample; unset = oversample for det/fst, none for encoders
  bool augment = true;                     // false turns every augmentation off
  bool photometric = true, jitter = true, flip = true;
  int workers = 2;
  double max_bad_fraction = io::kDefaultMaxBadFraction;  // unreadable face PNGs allowed (io/loader.h)

  // optimisation (defaults: the authors' configs)
  OptimizerKind optimizer = OptimizerKind::adamw;
  float lr = 1e-5f;
  float weight_decay = 4e-3f;
  float momentum = 0.9f;                   // sgd
  bool nesterov = false;                   // sgd
  LrSchedule::Kind schedule = LrSchedule::Kind::Constant;
  float warmup_epochs = 0.0f;              // linear warm-up, any schedule
  float step_epochs = 1.0f;                // step: decay every step_epochs epochs
  float gamma = 0.1f;                      // step: factor
  float min_lr = 0.0f;                     // cosine: final lr
  int batch = 128;
  int epochs = 10;
  int val_batch = 64;

  // FST-Matching loss: CE(det) + l_src CE(source) + l_tgt CE(target) + l_int L_int
  float l_src = 0.5f, l_tgt = 1.0f, l_int = 100.0f;
  InteractionLossOptions int_bound;        // logistic | clamp:C | none (Eq. 5 unbounded); fst_model.h
  FstHead fst_head = FstHead::mlp;         // mlp | linear (linear = the released code; its L_int is 0)
  int fst_hidden = 256;

  // run
  uint64_t seed = 0;
  int threads = 0;                         // 0 = the default
  Device device = Device::cpu();
  // CUDA: let cuDNN take non-deterministic (atomic) convolution algorithms, faster but no longer
  // bit-identical from run to run (kernels/cuda_options.h). The CPU paths are deterministic anyway.
  bool nondeterministic_algorithms = false;
  // CPU: oneDNN's Winograd convolutions (kernels/conv2d.h, set_fast_conv): about 1.5x faster per
  // ResNet step, with gradients that differ from the direct convolutions' by 0.3-2% (README,
  // Precision). Set for the run, restored after it.
  bool fast_conv = false;
  int64_t max_steps = 0;                   // > 0: stop (and save) after this many steps in total
  int64_t checkpoint_every = 0;            // > 0: also save last.safetensors every N steps

  // control (not part of the saved configuration)
  bool resume = false;                     // continue the run in `out` from last.safetensors
  bool progress = true;                    // progress bar on stderr
  const std::atomic<int>* stop = nullptr;  // when it becomes non-zero: save and return after the current step
};

// The settings as JSON (keys = field names = the CLI flags with '_' for '-'; typed values as the
// names the CLI takes: "fst", "adamw", "cosine", "clamp:2", "cuda:0", "" for an unset balance), and
// back. Unknown keys, unknown names and values of the wrong type throw naming `what` and the key.
nlohmann::json train_options_json(const TrainOptions& options);
void apply_train_config(TrainOptions& options, const nlohmann::json& config, const std::string& what);
std::vector<std::string> train_option_keys();

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based: epochs completed
  int64_t step = 0;
  double lr = 0, loss = 0, train_acc = 0, seconds = 0, images_per_s = 0;
  std::map<std::string, double> losses;
  int64_t val_frames = 0;
  double val_acc = 0, val_auc = 0;  // NaN when not measured
  int64_t bad_files = 0;            // unreadable face PNGs met so far in this process (skipped)
  nlohmann::json to_json() const;
};

struct TrainResult {
  ModelConfig config;
  std::string run_dir, last, best;   // best is "" when no validation happened
  int64_t epochs_completed = 0, steps = 0;
  double best_score = 0;             // NaN when no validation happened
  int stopped_by_signal = 0;         // the signal number when options.stop ended the run
  bool stopped_at_max_steps = false;
  int64_t bad_files = 0;             // unreadable face PNGs met (each reported once, replaced)
  std::vector<EpochMetrics> epochs;  // the epochs run by this call
};

// Throws fstm::Error on bad settings or data (a missing or empty index, a checkpoint of another
// model or architecture on --resume, identity counts that do not match), and when the loss becomes
// NaN or infinite (naming the step; last.safetensors keeps the last good state).
TrainResult train(const TrainOptions& options);

}  // namespace fstm
