#include "fstm/lib/metrics_shapley.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

namespace fstm {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double norm2(const ShapleyMap& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

void check_same_size(const ShapleyMap& a, const ShapleyMap& b, const char* what) {
  FSTM_CHECK(a.size() == b.size(), what, ": maps of ", a.size(), " and ", b.size(), " grids");
  FSTM_CHECK(!a.empty(), what, ": empty map");
}

// The mask M = {u > sorted(u)[floor(N * percent / 100)]} for one threshold.
std::vector<bool> top_mask(const ShapleyMap& u, const std::vector<double>& sorted, int percent) {
  const size_t N = u.size();
  const size_t k = std::min(N - 1, N * size_t(percent) / 100);
  const double threshold = sorted[k];
  std::vector<bool> m(N);
  for (size_t i = 0; i < N; ++i) m[i] = u[i] > threshold;
  return m;
}

QResult q_tau(const ShapleyMap& phi_d_raw, const ShapleyMap& phi_s_raw, const ShapleyMap& phi_t_raw, bool authors) {
  check_same_size(phi_d_raw, phi_s_raw, "Q");
  check_same_size(phi_d_raw, phi_t_raw, "Q");
  // d, s, t: the unit maps phi_d, phi_s, phi_t; u = max(phi_s, phi_t); M_tau = top_mask(u, tau)
  const ShapleyMap d = unit_normalized(phi_d_raw), s = unit_normalized(phi_s_raw), t = unit_normalized(phi_t_raw);
  const size_t N = d.size();
  ShapleyMap u(N);
  for (size_t i = 0; i < N; ++i) {
    u[i] = std::max(s[i], t[i]);
    if (authors) u[i] = std::max(u[i], 0.0);  // relu before the quantile
  }
  std::vector<double> sorted = u;
  std::sort(sorted.begin(), sorted.end());
  QResult r;
  double total = 0;
  for (int percent : q_threshold_percents()) {
    const std::vector<bool> m = top_mask(u, sorted, percent);
    double inside = 0, outside = 0;
    size_t n_inside = 0;
    for (size_t i = 0; i < N; ++i) {
      if (m[i]) {
        inside += d[i];
        ++n_inside;
      } else {
        outside += d[i];
      }
    }
    double q;
    if (authors) {  // the authors' code: Q_tau = (sum_{not M} phi_d - sum_{M} phi_d) / N
      q = (outside - inside) / double(N);
    } else if (n_inside == 0 || n_inside == N) {
      q = kNaN;  // M or its complement is empty: Eq. 1 is undefined here
    } else {  // Eq. 1: Q_tau = mean_{not M} phi_d - mean_{M} phi_d
      q = outside / double(N - n_inside) - inside / double(n_inside);
    }
    r.per_threshold.push_back(q);
    if (!std::isnan(q)) {
      total += q;
      ++r.thresholds_used;
    }
  }
  r.q = r.thresholds_used ? total / r.thresholds_used : kNaN;
  return r;
}

}  // namespace

ShapleyMap unit_normalized(const ShapleyMap& phi) {
  for (double x : phi) FSTM_CHECK(std::isfinite(x), "Shapley map holds a non-finite value");
  const double n = norm2(phi);
  if (n == 0) return phi;
  ShapleyMap out(phi.size());
  for (size_t i = 0; i < phi.size(); ++i) out[i] = phi[i] / n;
  return out;
}

double cosine_similarity(const ShapleyMap& a, const ShapleyMap& b) {
  check_same_size(a, b, "cosine");
  const ShapleyMap x = unit_normalized(a), y = unit_normalized(b);
  double dot = 0;
  for (size_t i = 0; i < x.size(); ++i) dot += x[i] * y[i];
  return dot;
}

const std::vector<int>& q_threshold_percents() {
  static const std::vector<int> p{60, 65, 70, 75, 80, 85, 90, 95};
  return p;
}

QResult q_tau_eq1(const ShapleyMap& phi_d, const ShapleyMap& phi_s, const ShapleyMap& phi_t) {
  return q_tau(phi_d, phi_s, phi_t, false);
}

QResult q_tau_authors(const ShapleyMap& phi_d, const ShapleyMap& phi_s, const ShapleyMap& phi_t) {
  return q_tau(phi_d, phi_s, phi_t, true);
}

double compression_delta(const ShapleyMap& phi_raw, const std::vector<ShapleyMap>& phi_compressed) {
  // Eq. 2: delta = mean over c in {c23, c40} of cos(phi(c), phi(raw))
  FSTM_CHECK(!phi_compressed.empty(), "delta: no compressed maps");
  double total = 0;
  for (const ShapleyMap& c : phi_compressed) total += cosine_similarity(c, phi_raw);
  return total / double(phi_compressed.size());
}

double map_instability(const ShapleyMap& phi1, const ShapleyMap& phi2) {
  check_same_size(phi1, phi2, "instability");
  // ||phi1 - phi2|| / ||phi1 + phi2|| of the unit maps a, b
  const ShapleyMap a = unit_normalized(phi1), b = unit_normalized(phi2);
  double diff = 0, sum = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    sum += (a[i] + b[i]) * (a[i] + b[i]);
  }
  return sum == 0 ? kNaN : std::sqrt(diff) / std::sqrt(sum);
}

InstabilityCurve average_instability_curves(const std::vector<InstabilityCurve>& curves) {
  std::map<int64_t, std::vector<double>> by_t;
  for (const InstabilityCurve& c : curves)
    for (const InstabilityPoint& p : c)
      if (!std::isnan(p.instability)) by_t[p.samples].push_back(p.instability);
  InstabilityCurve out;
  for (const auto& [t, values] : by_t) {
    double mean = 0, var = 0;
    for (double v : values) mean += v;
    mean /= double(values.size());
    for (double v : values) var += (v - mean) * (v - mean);
    InstabilityPoint p;
    p.samples = t;
    p.instability = mean;
    p.stddev = values.size() > 1 ? std::sqrt(var / double(values.size() - 1)) : 0.0;
    p.runs = int(values.size());
    out.push_back(p);
  }
  return out;
}

Faithfulness manipulation_faithfulness(const ShapleyMap& phi, const GridGeometry& g, const std::vector<float>& mask) {
  FSTM_CHECK(int64_t(phi.size()) == g.players(), "faithfulness: a map of ", phi.size(), " grids for a ", g.grid, "x",
             g.grid, " grid");
  FSTM_CHECK(int64_t(mask.size()) == int64_t(g.height) * g.width, "faithfulness: a mask of ", mask.size(),
             " pixels for a ", g.width, "x", g.height, " image");
  const ShapleyMap p = unit_normalized(phi);
  std::vector<double> inside(phi.size(), 0.0);
  double mask_total = 0;
  for (int y = 0; y < g.height; ++y)
    for (int x = 0; x < g.width; ++x) {
      const float m = mask[size_t(y) * g.width + x];
      FSTM_CHECK(m >= 0 && m <= 1, "faithfulness: mask values must lie in [0, 1], got ", m);
      inside[size_t(g.row_cell[size_t(y)] * g.grid + g.col_cell[size_t(x)])] += m;
      mask_total += m;
    }
  double positive = 0, positive_inside = 0, best_share = 0;
  for (size_t c = 0; c < p.size(); ++c) {
    best_share = std::max(best_share, inside[c] / double(g.cell_pixels(int(c))));
    if (p[c] <= 0) continue;
    positive += p[c];
    positive_inside += p[c] * inside[c] / double(g.cell_pixels(int(c)));
  }
  Faithfulness f;
  f.area_share = mask_total / (double(g.height) * g.width);
  f.best_share = best_share;
  f.lift_ceiling = f.area_share > 0 ? best_share / f.area_share : kNaN;
  f.positive_share_inside = positive > 0 ? positive_inside / positive : kNaN;
  f.lift = (f.area_share > 0 && positive > 0) ? f.positive_share_inside / f.area_share : kNaN;
  return f;
}

Faithfulness manipulation_faithfulness(const ShapleyMap& phi, const GridGeometry& g, const io::Image& mask) {
  FSTM_CHECK(mask.width == g.width && mask.height == g.height, "faithfulness: the mask is ", mask.width, "x",
             mask.height, ", the image ", g.width, "x", g.height);
  std::vector<float> m(size_t(g.width) * g.height);
  for (int y = 0; y < g.height; ++y)
    for (int x = 0; x < g.width; ++x) {
      const uint8_t* px = mask.at(x, y);
      m[size_t(y) * g.width + x] = std::max({px[0], px[1], px[2]}) >= 128 ? 1.0f : 0.0f;
    }
  return manipulation_faithfulness(phi, g, m);
}

ShapleyMap difference_map(const Tensor& image, const Tensor& baseline, const GridGeometry& g) {
  FSTM_CHECK(image.numel() == baseline.numel() && image.numel() % (int64_t(g.height) * g.width) == 0,
             "difference map: image ", image.describe(), " and baseline ", baseline.describe(), " do not fit a ",
             g.width, "x", g.height, " grid");
  const std::vector<float> x = image.to_vector(), b = baseline.to_vector();
  const int64_t C = image.numel() / (int64_t(g.height) * g.width);
  ShapleyMap m(size_t(g.players()), 0.0);
  for (int y = 0; y < g.height; ++y)
    for (int xx = 0; xx < g.width; ++xx) {
      const size_t cell = size_t(g.row_cell[size_t(y)] * g.grid + g.col_cell[size_t(xx)]);
      for (int64_t c = 0; c < C; ++c) {
        const size_t i = (size_t(y) * size_t(g.width) + size_t(xx)) * size_t(C) + size_t(c);
        m[cell] += std::abs(double(x[i]) - double(b[i]));
      }
    }
  return m;
}

ShapleyMap centred_gaussian_map(const GridGeometry& g, double sigma_fraction) {
  FSTM_CHECK(sigma_fraction > 0, "centred Gaussian map: sigma fraction must be positive, got ", sigma_fraction);
  const double cy = g.height / 2.0, cx = g.width / 2.0, sigma = sigma_fraction * std::max(g.height, g.width);
  ShapleyMap m(size_t(g.players()));
  for (int i = 0; i < g.grid; ++i)
    for (int j = 0; j < g.grid; ++j) {
      const double y = (g.row_edges[size_t(i)] + g.row_edges[size_t(i) + 1]) / 2.0 - cy;
      const double x = (g.col_edges[size_t(j)] + g.col_edges[size_t(j) + 1]) / 2.0 - cx;
      m[size_t(i * g.grid + j)] = std::exp(-(x * x + y * y) / (2 * sigma * sigma));
    }
  return m;
}

namespace {
// Two-sided 97.5% quantile of Student's t with `dof` degrees of freedom.
double t_quantile_975(int dof) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                 2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (dof <= 30) return table[dof - 1];
  return 1.95996 + 2.37 / dof;  // within 1e-3 of the exact quantile beyond 30
}
}  // namespace

std::pair<double, double> mean_sd(const std::vector<double>& values) {
  double sum = 0;
  int n = 0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++n;
  if (n == 0) return {kNaN, kNaN};
  const double mean = sum / n;
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - mean) * (v - mean);
  return {mean, n > 1 ? std::sqrt(ss / (n - 1)) : kNaN};
}

MeanCi mean_ci95(const std::vector<double>& values) {
  MeanCi r;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) {
      sum += v;
      ++r.n;
    }
  if (r.n == 0) return {kNaN, kNaN, kNaN, 0};
  r.mean = sum / r.n;
  if (r.n < 2) {
    r.lo = r.hi = kNaN;
    return r;
  }
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - r.mean) * (v - r.mean);
  const double half = t_quantile_975(r.n - 1) * std::sqrt(ss / (r.n - 1) / r.n);
  r.lo = r.mean - half;
  r.hi = r.mean + half;
  return r;
}

}  // namespace fstm
