// The paper's three hypotheses as experiments (`fstm hypothesis 1|2|3`), on a face index (fstm
// extract, or the synthetic default): each trains what it needs (or takes checkpoints), computes
// Shapley maps of v_d, v_s and v_t (fstm/lib/shapley.h), and writes CSV/JSON and a self-contained
// report.html (fstm/lib/report.h) into the output folder.
//
//   H1  Q > 0 for trained detectors: Q_tau (Eq. 1 and the authors' variant, fstm/lib/metrics_shapley.h)
//       per manipulation method and backbone (paper Table 1), example panels (Fig. 3), the
//       instability-vs-T curve, and on synthetic data the share of phi_d inside the manipulation mask.
//   H2  A detector trained on a paired subset (its reals are the sources/targets of its fakes) against
//       one trained on an unpaired subset of the same size (io::build_h2_subsets): ACC/AUC (Table 2)
//       and Q_tau at every threshold 0.60..0.95 (Fig. 4).
//   H3  delta (Eq. 2): the mean cosine of the c23 and c40 maps with the raw map, for v_d, v_s, v_t
//       (Table 3).
//
// Maps: v_d explains the fake class (1) of fake faces; v_s and v_t the ground-truth source and target
// identity. Identity encoders only know the identities they were trained on, so the encoders trained
// here learn the faces of every split (the detectors only the train split), and the faces explained
// come from the first split among --split (default: test, val, train) whose identities both encoders
// know: the test split, unless the encoders given as checkpoints do not know it.
//
// Verdicts follow from 95% confidence intervals over the faces (Student t): H1 is supported when
// the interval of the mean Q lies above 0; H3 when the per-face differences delta_s - delta_d and
// delta_t - delta_d both lie above 0; an interval that holds 0 is "undecided", not a verdict.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fstm/lib/evaluator.h"
#include "fstm/lib/metrics_shapley.h"
#include "fstm/lib/pipeline.h"
#include "fstm/lib/trainer.h"

namespace fstm {

struct HypothesisOptions {
  int hypothesis = 1;  // 1, 2 or 3
  std::string data;    // face index JSON; "" = the synthetic default, made under `work`
  std::string out;     // results and report.html
  std::string work;    // synthetic data and training runs, reused between calls; "" = OUT/work
  std::vector<std::string> archs = {"resnet18"};  // backbones of the models trained here

  // checkpoints instead of training (with one --arch): v_d, v_s, v_t; H2's two detectors
  std::string det, source, target, paired, unpaired;

  // data
  std::string compression = "c23";  // what H1/H2 train, test and explain on (H3: every one)
  std::vector<std::string> splits = {"test", "val", "train"};  // where explained faces come from
  int identities = 0;  // H2: real identities per subset; 0 = 40, or the most the train split allows
  // the default data: pipeline.h's synthetic set, the demo's (the training recipe is sized for it)
  SyntheticFacesOptions synthetic;

  // Shapley maps: the paper's settings (L = 16, T >= 100); quick() makes them small
  int grid = 16;
  int64_t samples = 100;  // T (permutations)
  int faces = 0;          // faces explained per manipulation method; 0 = 6 (30 over FF++'s five methods)
  // H1: the first faces whose three maps are explained a second time with independent permutations,
  // for the instability of two maps of T samples each (the paper's definition)
  int instability_faces = 5;
  int batch = 64;        // masked images per forward
  uint64_t seed = 0;

  // training (models not given as checkpoints): the demo's recipe (pipeline.h), so that the encoders
  // whose maps Q and delta compare are the ones the README shows working
  TrainingRecipe training;

  int threads = 0;  // 0: the default
  bool progress = true;
  const std::atomic<int>* stop = nullptr;  // non-zero: stop training/explaining and throw Interrupted

  // Small sizes for tests: a tiny synthetic set, one epoch per model, a 4 x 4 grid, 4 samples, 1 face per
  // method. Applied by quick_options() on top of the options given.
  static HypothesisOptions quick(HypothesisOptions base);
};

// One face's three maps and its Q values.
struct ExplainedFace {
  int64_t frame = 0;  // into the index's frames
  std::string arch, method, video_id, compression, split, png;
  int64_t source_class = 0, target_class = 0;
  double p_fake = 0;               // v_d's probability of fake
  ShapleyMap phi_d, phi_s, phi_t;  // raw maps, L x L
  QResult q_eq1, q_authors;
  Faithfulness faithfulness{NAN, NAN, NAN};  // phi_d against the manipulation mask (synthetic data)
  // map_instability of the map above and a second one of T samples with independent permutations
  // (H1's first instability_faces faces; NaN for the others)
  double instability_d = NAN, instability_s = NAN, instability_t = NAN;
  nlohmann::json to_json() const;
};

struct QRow {  // one line of Table 1 / one detector of Fig. 4
  std::string arch, method;  // method "all": every face together
  int faces = 0;
  double q_eq1 = 0, q_eq1_sd = 0, q_authors = 0, q_authors_sd = 0;
  MeanCi q_eq1_ci, q_authors_ci;  // 95% intervals of the means
  double positive_share = 0;  // faces with Q (Eq. 1) > 0
  std::vector<double> q_eq1_per_threshold, q_authors_per_threshold;  // means over faces, t = 0.60..0.95
  // faithfulness of phi_d (means over the faces with a mask; NaN without masks): the share of its
  // positive mass inside the mask, the mask's area share, their ratio
  double mask_share = NAN, mask_area = NAN, mask_lift = NAN;
};
// Means and standard deviations over `faces`, per method and "all" (NaN thresholds left out).
std::vector<QRow> q_rows(const std::vector<ExplainedFace>& faces, const std::string& arch);

struct HypothesisResult {
  int hypothesis = 0;
  std::string index, out, explain_split;
  nlohmann::json models;  // what was trained or loaded: paths, descriptions, test metrics
  double seconds = 0;
  int input_size = 0;     // the models' input side (the report's face panels)
  // H1
  std::vector<EvalReport> detectors;  // v_d of each backbone on the test split
  std::vector<QRow> q_table;
  std::vector<ExplainedFace> faces;
  std::map<std::string, InstabilityCurve> instability;  // "v_d (resnet18)" -> curve
  // H2
  EvalReport h2_paired, h2_unpaired;  // detection on the test split, per method and "all"
  EvalReport h2_all;                  // the baseline: a detector trained on all of the train split
  MeanCi h2_q_difference;             // per face: Q (Eq. 1) of the paired detector minus the unpaired one's
  std::vector<QRow> h2_q;                        // "paired" and "unpaired" (in QRow::arch)
  int h2_identities = 0;
  // H3
  struct DeltaRow {
    std::string arch, model, method;  // model: v_d, v_s, v_t
    int faces = 0;
    double cos_c23 = 0, cos_c40 = 0, delta = 0, delta_sd = 0;
    MeanCi delta_ci;
  };
  std::vector<DeltaRow> deltas;
  // per backbone, over the same faces: delta_s - delta_d and delta_t - delta_d (H3 holds when both > 0)
  std::map<std::string, std::pair<MeanCi, MeanCi>> delta_gaps;

  nlohmann::json to_json() const;
};

// Runs the hypothesis and writes OUT/results.json, the CSV tables, maps/ and OUT/report.html.
// Throws fstm::Error on bad input (missing index, a checkpoint of the wrong kind, a grid larger than
// the faces, a hypothesis number other than 1-3) and Interrupted when options.stop fires.
HypothesisResult run_hypothesis(const HypothesisOptions& options);

}  // namespace fstm
