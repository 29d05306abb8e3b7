// Metrics on Shapley maps (paper: "Explaining Deepfake Detection by Analysing Image Matching").
//
// A map is an L x L grid of values, row-major (phi[i * L + j]). Every metric here first scales
// each map to unit L2 norm (an all-zero map stays zero), so maps of different models and images
// compare; instability, cosine and delta are scale-free anyway.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "fstm/lib/masking.h"
#include "io/image.h"

namespace fstm {

using ShapleyMap = std::vector<double>;

// phi / ||phi||_2 (unchanged when zero). Throws on NaN or infinite values.
ShapleyMap unit_normalized(const ShapleyMap& phi);
double cosine_similarity(const ShapleyMap& a, const ShapleyMap& b);  // 0 when either map is zero

// ---- Q: does the detector look where the identity encoders do not? ----------------------------
// Both variants use the 8 thresholds t = 0.60, 0.65, ..., 0.95; for N = L*L players the threshold
// is sorted_ascending(u)[floor(N * t)] (computed in integers: floor(N * percent / 100)) and the
// mask is M = {u > threshold}, the grids above the t-quantile of u = max(phi_s, phi_t).
struct QResult {
  double q = 0;                      // mean of per_threshold over the thresholds used
  std::vector<double> per_threshold;  // Q_t for t = 0.60 ... 0.95 (NaN where skipped)
  int thresholds_used = 0;
};
const std::vector<int>& q_threshold_percents();  // {60, 65, ..., 95}

// Eq. 1 of the paper: Q_t = mean(phi_d over the grids outside M) - mean(phi_d inside M), with
// u = max(phi_s, phi_t) as it is. A threshold whose M is empty (ties at the top) is skipped; Q is
// NaN when every threshold is.
QResult q_tau_eq1(const ShapleyMap& phi_d, const ShapleyMap& phi_s, const ShapleyMap& phi_t);
// The authors' code: u = relu(max(phi_s, phi_t)) before the quantile, and both sums divided by
// N = L*L instead of by their own mask counts: Q_t = (sum_{not M} phi_d - sum_{M} phi_d) / N.
QResult q_tau_authors(const ShapleyMap& phi_d, const ShapleyMap& phi_s, const ShapleyMap& phi_t);

// ---- delta (Eq. 2): stability of a map under compression --------------------------------------
// The mean cosine of each compressed version's map (c23, c40) with the raw image's map.
double compression_delta(const ShapleyMap& phi_raw, const std::vector<ShapleyMap>& phi_compressed);

// ---- instability --------------------------------------------------------------------------------
// ||phi1 - phi2|| / ||phi1 + phi2|| of the unit-normalised maps of two independent runs (0 when
// they agree, 1 when orthogonal; NaN when the sum is zero).
double map_instability(const ShapleyMap& phi1, const ShapleyMap& phi2);

// One run's instability at increasing T (the estimator records it from its two halves), and the
// mean over many images per T: paper Fig. 3 (left).
struct InstabilityPoint {
  int64_t samples = 0;     // T of each of the two maps compared
  double instability = 0;  // a single run: the value; an average: the mean over the runs
  double stddev = 0;       // over the runs (0 for a single run)
  int runs = 1;
};
using InstabilityCurve = std::vector<InstabilityPoint>;
// Points with the same T are averaged (NaN values are left out); the result is sorted by T.
InstabilityCurve average_instability_curves(const std::vector<InstabilityCurve>& curves);

// ---- faithfulness on synthetic data ---------------------------------------------------------------
// How much of the map's positive mass lies inside a known manipulated region. A cell's positive
// value is spread evenly over its pixels, so
//   positive_share_inside = sum_c max(phi_c, 0) * (mask pixels in c / pixels of c) / sum_c max(phi_c, 0)
//   area_share            = mask pixels / all pixels (what a map blind to the mask gets on average)
//   lift                  = positive_share_inside / area_share
// NaN where undefined (no positive mass, an empty mask).
// The ceiling is what the best possible map gets: all its positive mass on the cell the mask covers
// most, best_share = max_c (mask pixels in c / pixels of c), lift_ceiling = best_share / area_share
// (about 1.7 for FaceSwap's large masks on an 8x8 grid, 8-10 for NeuralTextures' small ones), so
// lift / lift_ceiling compares faces whose masks differ in size.
struct Faithfulness {
  double positive_share_inside = 0, area_share = 0, lift = 0;
  double best_share = 0, lift_ceiling = 0;
};
// mask: [H * W] values in [0, 1] (the share of each pixel that was manipulated), row-major.
Faithfulness manipulation_faithfulness(const ShapleyMap& phi, const GridGeometry& geometry,
                                       const std::vector<float>& mask);
// A mask image of the grid's size: a pixel is manipulated when its brightest channel is >= 128.
Faithfulness manipulation_faithfulness(const ShapleyMap& phi, const GridGeometry& geometry, const io::Image& mask);

// ---- control maps for faithfulness -------------------------------------------------------------------
// Maps that know nothing a model learned, scored the same way as a model's map: a model's map is
// faithful to the manipulation only where it beats them.
//   difference_map: per cell, sum over its pixels and channels of |image - baseline| (what masking
//     the cell changes in the input; image, baseline [H, W, C] or [1, H, W, C] f32 on the CPU).
//   centred_gaussian_map: exp(-d^2 / 2 sigma^2) of each cell centre's distance d from the image
//     centre, sigma = sigma_fraction x the image side (faces are centred by alignment).
ShapleyMap difference_map(const Tensor& image, const Tensor& baseline, const GridGeometry& geometry);
ShapleyMap centred_gaussian_map(const GridGeometry& geometry, double sigma_fraction = 0.25);

// ---- summaries over faces -------------------------------------------------------------------------------
// Mean and two-sided 95% confidence interval of the mean (Student's t with n - 1 degrees of
// freedom); NaN values are left out; lo = hi = NaN with fewer than 2 values.
struct MeanCi {
  double mean = 0, lo = 0, hi = 0;
  int n = 0;
  bool overlaps(const MeanCi& o) const { return !(hi < o.lo || o.hi < lo); }
};
MeanCi mean_ci95(const std::vector<double>& values);
// Mean and sample standard deviation of the finite values, as mean_ci95 counts them (NaN when there
// are none; the SD is NaN with fewer than 2).
std::pair<double, double> mean_sd(const std::vector<double>& values);

}  // namespace fstm
