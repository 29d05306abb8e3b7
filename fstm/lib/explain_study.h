// The explanation protocol of `fstm demo`: which faces are explained, the generator's ground truth
// aligned like each face, and the per-face measurements whose means and 95% confidence intervals
// the report shows. Compute only; demo.cpp renders.
//
//   faces      test fakes, round robin over the five methods; method k starts at its k-th test
//              video and each next face of a method comes from another one, so that even one round
//              shows several test pairs; the same frame at raw, c23 and c40;
//   maps       v_d (the fake class), v_s (the true source), v_t (the true target) at each
//              compression, under the black baseline (the authors'); Q (Eq. 1 and the authors'
//              variant) on raw, delta (Eq. 2) per model;
//   faithful   v_d's lift over the mask's area share and lift / ceiling (metrics_shapley.h), next to
//              three controls scored the same way: |x - baseline| per cell, a randomly initialised
//              network of v_d's architecture, and a centred Gaussian; and v_d's lift under two other
//              baselines (mean-colour, pristine), to show what the baseline does to the number;
//   sanity     v_d's margin (fake logit - real logit) on the fake, on the fake whose manipulated
//              pixels are replaced by the pristine ones, and on the pristine face: where v_d's
//              evidence is, measured without Shapley values.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fstm/lib/metrics_shapley.h"
#include "io/dataset.h"
#include "io/face.h"
#include "io/image.h"

namespace fstm {

struct StudyFace {
  std::string video_id, method, source_id;
  int64_t frame = 0;
  int source = -1, target = -1;
  std::map<std::string, int64_t> frame_at;  // compression ("raw", "c23", "c40") -> FaceIndex::frames index
};

// Up to `count` test fakes present at raw, c23 and c40 (see above). Deterministic.
std::vector<StudyFace> pick_test_fakes(const io::FaceIndex& index, int count);

// The fake's manipulation mask and pristine counterpart (its source video's frame, same
// compression), as fstm extract aligned them with the face (io::IndexFrame::mask_png/pristine_png),
// fitted to `size` like the face. The raw pristine face equals the fake face wherever the mask is 0.
// Empty images, with why_not set, when the index has no ground truth for the frame.
struct AlignedTruth {
  io::Image mask, pristine;
  std::string why_not;
};
AlignedTruth aligned_truth(const io::FaceIndex& index, int64_t frame_index, int size);

// The fake with every manipulated pixel (mask's brightest channel >= 128) taken from `pristine`.
io::Image replace_manipulated(const io::Image& fake, const io::Image& pristine, const io::Image& mask);

// One face's measurements; NaN where the ground truth is missing.
struct FaceStudy {
  double q_eq1 = 0, q_authors = 0;
  std::map<std::string, double> delta;            // model ("det", "source", "target") -> delta
  Faithfulness det;                               // v_d under the black baseline
  std::map<std::string, double> control_lift;     // "difference", "random_init", "gaussian"
  std::map<std::string, double> baseline_lift;    // "black", "mean-colour", "pristine"
  // the identity encoders' maps against the same mask ("source", "target"): where identity evidence
  // lies relative to the manipulation. Q (Eq. 1) compares v_d's map with these maps' top cells, so
  // when they lie inside the mask too, a v_d faithful to the mask gets Q < 0.
  std::map<std::string, double> identity_lift;
  double margin_fake = 0, margin_replaced = 0, margin_pristine = 0;
  double v_input = 0, v_baseline = 0;             // v_d's fake logit on the face and on the black baseline
};

// Means and 95% CIs over the faces, by the same names.
struct StudySummary {
  int faces = 0;
  MeanCi q_eq1, q_authors;
  std::map<std::string, MeanCi> delta, control_lift, baseline_lift, identity_lift;
  MeanCi lift, lift_over_ceiling, share_inside, area_share, lift_ceiling;
  MeanCi margin_fake, margin_replaced, margin_pristine, v_input, v_baseline;
  // v_d's lift beats every control: its CI lies above each control's CI.
  bool beats_controls() const;
};
StudySummary summarize_study(const std::vector<FaceStudy>& faces);

}  // namespace fstm
