// `fstm demo`: the whole method on the embedded synthetic FaceForensics++ in minutes on a CPU.
//
//   1. synthetic videos (raw, c23, c40) and their aligned faces (fstm/lib/pipeline.h)
//   2. train v_d (det), v_s (source), v_t (target) and the FST-Matching model (fst) on raw faces
//   3. evaluate v_d and FST on the test split at raw/c23/c40 (ACC, frame AUC, video AUC) and the
//      identity accuracy of v_s/v_t
//   4. Shapley maps (fstm/lib/shapley.h) of v_d, v_s, v_t on test fakes of every method at
//      raw/c23/c40 (fstm/lib/explain_study.h): Q_tau (Eq. 1 and the authors' variant), delta (Eq. 2),
//      faithfulness to the generator's ground-truth masks against three controls, and v_d's margin
//      with the manipulated pixels replaced by pristine ones; means with 95% confidence intervals
//   5. OUT/metrics.json and OUT/report.html (both written atomically)
//
// Every step is reused on a second run with the same settings (the data and the training runs by
// fstm/lib/pipeline.h, evaluation and explanations by a record of their inputs in OUT/cache/), and
// redone when its settings or inputs changed. A stop request (Ctrl-C) saves the training in
// progress and returns; the next run continues from there.
#pragma once
#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fstm/lib/pipeline.h"

namespace fstm {

struct DemoOptions {
  std::string out = "demo_out";
  bool quick = false;  // for tests: tiny data and models (demo_options(true))

  SyntheticFacesOptions data;
  // training: every model a ResNet-18 from random weights on raw faces, as pipeline.h's recipe says
  // (its comment gives the reasons for each model's epochs)
  TrainingRecipe training;
  int fst_hidden = 256;
  // explanations (fstm/lib/explain_study.h): test fakes from every method and several test pairs,
  // 12 maps each (v_d, v_s, v_t at raw/c23/c40; v_d under the grey and pristine baselines; a
  // random-init control), black baseline. The paper's L = 16, T = 100 take 25x the forwards.
  int explain_faces = 6, explain_grid = 8;
  int64_t explain_samples = 16;

  uint64_t seed = 0;
  int threads = 0;  // 0: the default
  bool progress = true;
  const std::atomic<int>* stop = nullptr;  // non-zero: save and return (see DemoResult)
};

// The settings of the full demo (sized to finish within 10 minutes on 2 CPU cores) or, with
// quick, of a run of well under a minute for the tests.
DemoOptions demo_options(bool quick);
// The settings that decide the results (what metrics.json records under "settings").
nlohmann::json demo_settings_json(const DemoOptions& options);

struct DemoResult {
  nlohmann::json metrics;                   // what OUT/metrics.json holds
  std::string metrics_path, report_path;    // "" when stopped early
  int stopped_by_signal = 0;                // the stop value when a stop request ended the run
  std::string stopped_in;                   // the step that was interrupted
};

// Throws fstm::Error on bad settings or an unusable OUT (a file, not writable, a folder of
// something else).
DemoResult run_demo(const DemoOptions& options);

// The readable summary: c23/c40 (and raw) AUC of v_d and FST side by side, the identity accuracy
// of v_s/v_t, and Q/delta.
std::string demo_summary(const nlohmann::json& metrics);

}  // namespace fstm
