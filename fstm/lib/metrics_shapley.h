// Metrics on Shapley maps (paper: "Explaining Deepfake Detection by Analysing Image Matching").
//
// A map is an L x L grid of values, row-major (phi[i * L + j]). Every metric here first scales
// each map to unit L2 norm (an all-zero map stays zero), so maps of different models and images
// compare; instability, cosine and delta are scale-free anyway.
#pragma once
#include <cstdint>
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
struct Faithfulness {
  double positive_share_inside = 0, area_share = 0, lift = 0;
};
// mask: [H * W] values in [0, 1] (the share of each pixel that was manipulated), row-major.
Faithfulness manipulation_faithfulness(const ShapleyMap& phi, const GridGeometry& geometry,
                                       const std::vector<float>& mask);
// A mask image of the grid's size: a pixel is manipulated when its brightest channel is >= 128.
Faithfulness manipulation_faithfulness(const ShapleyMap& phi, const GridGeometry& geometry, const io::Image& mask);

}  // namespace fstm
