// Sampled Shapley values over an L x L grid of image cells (Castro et al. 2009), the explainer of
// the paper "Explaining Deepfake Detection by Analysing Image Matching".
//
// Players are the grid cells (fstm/lib/masking.h, GridGeometry); the value of a coalition is the
// target class's logit (before softmax) on the image whose absent cells hold the baseline (by
// default black, the authors'), or with ShapleyValue::Margin that logit minus the other class's.
//
// Samplers (one "sample" = one unit of T):
//   Permutation (default): a random permutation of the L*L players, swept: adding the players one
//     at a time gives one marginal for every player, v(first k) - v(first k-1). The empty and the
//     full coalition are the same for every permutation, so they are evaluated once per map and a
//     sample costs L*L - 1 forwards (25,502 for L = 16, T = 100, against 51,200 + 2 per-grid).
//     Every sample's marginals telescope to v(full) - v(empty), so the map satisfies efficiency,
//     sum(phi) = v(full) - v(empty), up to float rounding for every T.
//   PerGrid (the authors' code, kept as the baseline): for every grid g and every sample, a random
//     coalition S of the other grids (the players before g in a random permutation, so S has the
//     Shapley weighting) and two forwards, v(S + g) - v(S): 2 * L*L forwards per sample.
//   Exact: every one of the 2^(L*L) coalitions, weighted |S|! (n - |S| - 1)! / n! (L <= 4); T is
//     ignored. For tests against other implementations and for tiny grids.
// Antithetic: samples come in pairs, the second the reverse of the first (PerGrid: every
// coalition of the first replaced by its complement among the other grids).
//
// Two halves: sample i goes to half i % 2 (antithetic pairs to half (i / 2) % 2), each with its
// own running map, so every run measures its own instability ||phi1 - phi2|| / ||phi1 + phi2||
// (fstm/lib/metrics_shapley.h) between two independent maps of T/2 samples, at every check point
// (the curve of paper Fig. 3, left) and at the end. With until_instability > 0 the run stops at the
// first check where it is below that value (T is then the cap). The map is the mean of all samples.
//
// Seeded: the same seed gives the same permutations whatever the batch size or device.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "fstm/lib/masking.h"
#include "fstm/lib/metrics_shapley.h"
#include "layers/inference.h"

namespace fstm {

enum class ShapleySampler { Permutation, PerGrid, Exact };
// What a coalition is worth: the explained class's logit (the paper's), or for a two-class model
// the margin logit[class] - logit[other class] (for a detector's fake class: fake minus real).
enum class ShapleyValue { Logit, Margin };
ShapleyValue parse_shapley_value(std::string_view name);  // "logit", "margin"
const char* shapley_value_name(ShapleyValue v);
ShapleySampler parse_shapley_sampler(std::string_view name);  // "permutation", "per-grid", "exact"
const char* shapley_sampler_name(ShapleySampler s);

struct ShapleyOptions {
  int grid = 16;         // L: players are the L x L cells
  int64_t samples = 100;  // T: permutations (Permutation) or samples per grid (PerGrid)
  ShapleySampler sampler = ShapleySampler::Permutation;
  bool antithetic = false;
  uint64_t seed = 0;
  double until_instability = 0;  // > 0: stop once the halves' instability is below it
  int64_t check_every = 0;       // samples between instability checks; 0: 4 (8 when antithetic)
  int64_t min_samples = 0;       // no early stop before this many samples; 0: 2 checks
  Baseline baseline = Baseline::Black;  // the authors' (fstm/lib/masking.h)
  float blur_sigma = 0;  // Blur baseline: Gaussian sigma in pixels; 0 = one grid cell side
  io::Normalization normalization;  // the model's input normalisation: where the Black baseline lies
  ShapleyValue value = ShapleyValue::Logit;
};

struct ShapleyResult {
  int grid = 0;
  ShapleyMap phi;          // [L * L] row-major over the grid: phi[i * L + j], raw (not normalised)
  ShapleyMap phi_half[2];  // each half's own mean map
  double v_full = 0, v_empty = 0;  // v(input) and v(baseline): the full and the empty coalition
  int64_t samples = 0;             // samples that went into phi (<= T with until_instability)
  int64_t samples_half[2] = {0, 0};
  int64_t evaluations = 0;   // coalition values computed, i.e. model forwards of one masked image
  int64_t forward_rows = 0;  // rows the model ran, counting the unused rows of partial batches
  double instability = 0;    // between the halves at the end; NaN with fewer than 2 samples
  InstabilityCurve curve;    // (samples per half, instability) at every check point
  bool stopped_early = false;  // until_instability was reached before T
  double seconds = 0;
  EvalTiming timing;

  // sum(phi) - (v_full - v_empty): float rounding for the Permutation sampler.
  double efficiency_gap() const;
};

// Called after every forward batch with the coalitions evaluated so far and the most there will be.
using ShapleyProgress = std::function<void(int64_t evaluations, int64_t planned)>;

// Forwards a run of T samples needs (the most, with until_instability).
int64_t planned_evaluations(int players, const ShapleyOptions& options);

// Checks the options against a grid of `players` (T >= 1, grid >= 2, ...); throws fstm::Error.
void check_shapley_options(const ShapleyOptions& options, int players);

// The estimator over any coalition-value function; values.players() must be grid * grid.
ShapleyResult estimate_shapley(CoalitionValues& values, const ShapleyOptions& options,
                               const ShapleyProgress& progress = {});

// Exact Shapley values by enumerating all 2^n coalitions (n = grid * grid <= 16), with the weights
// |S|! (n - |S| - 1)! / n!. The oracle of the tests and usable for tiny grids.
ShapleyResult exact_shapley(CoalitionValues& values, int grid);

// The whole explainer for one image and one class: baseline, fused masking into `plan`'s input
// buffer, estimator. image: [H, W, 3] or [1, H, W, 3] f32 on the CPU, normalised as the model
// expects, H and W those of the plan. target: the class whose logit (or margin) is explained.
// pristine: the real counterpart, normalised like the image (needed by Baseline::Pristine only).
ShapleyResult explain_image(InferencePlan& plan, const Tensor& image, int64_t target, const ShapleyOptions& options,
                            const ShapleyProgress& progress = {}, const Tensor& pristine = {});

// The coalition value options.value asks for, checked against a model with `classes` outputs:
// Margin needs exactly two classes.
ValueTarget value_target(int64_t target, int64_t classes, const ShapleyOptions& options);

}  // namespace fstm
