// Metrics on Shapley maps against values worked out by hand (in the comments), and the heatmap
// pictures.
#include <cmath>

#include "fstm/lib/heatmap.h"
#include "fstm/lib/metrics_shapley.h"
#include "tests/test_support.h"

using namespace fstm;

TEST(ShapleyMetrics, UnitNormAndCosine) {
  const ShapleyMap n = unit_normalized({3, 4});
  EXPECT_DOUBLE_EQ(n[0], 0.6);
  EXPECT_DOUBLE_EQ(n[1], 0.8);
  EXPECT_EQ(unit_normalized({0, 0}), (ShapleyMap{0, 0}));
  EXPECT_THROW(unit_normalized({1, NAN}), Error);
  EXPECT_NEAR(cosine_similarity({1, 0}, {1, 1}), 1 / std::sqrt(2.0), 1e-15);
  EXPECT_EQ(cosine_similarity({0, 0}, {1, 1}), 0.0);
  EXPECT_THROW(cosine_similarity({1, 0}, {1, 0, 0}), Error);
}

TEST(ShapleyMetrics, QTauBothVariantsOnAFlatDetectorMap) {
  // N = 4, phi_s = phi_t ranked 4 > 3 > 2 > 1, phi_d flat: every grid 0.5 after normalising.
  // Thresholds: floor(4 * p / 100) = 2 for p = 60, 65, 70 and 3 for p = 75 ... 95.
  //   k = 2: M = {the top grid}.  k = 3: threshold = the maximum, M = {}.
  // Eq. 1: k = 2 gives 0.5 - 0.5 = 0; k = 3 is undefined (empty M) and skipped -> Q = 0 over 3.
  // Authors: k = 2 gives (1.5 - 0.5) / 4 = 0.25; k = 3 gives (2 - 0) / 4 = 0.5
  //          -> Q = (3 * 0.25 + 5 * 0.5) / 8 = 0.40625.
  const ShapleyMap d{1, 1, 1, 1}, s{4, 3, 2, 1};
  const QResult eq1 = q_tau_eq1(d, s, s);
  EXPECT_NEAR(eq1.q, 0.0, 1e-15);
  EXPECT_EQ(eq1.thresholds_used, 3);
  ASSERT_EQ(eq1.per_threshold.size(), 8u);
  EXPECT_TRUE(std::isnan(eq1.per_threshold[3]));
  const QResult authors = q_tau_authors(d, s, s);
  EXPECT_NEAR(authors.q, 0.40625, 1e-12);
  EXPECT_EQ(authors.thresholds_used, 8);
  EXPECT_NEAR(authors.per_threshold[0], 0.25, 1e-12);
  EXPECT_NEAR(authors.per_threshold[7], 0.5, 1e-12);
}

TEST(ShapleyMetrics, QTauReluOnlyInTheAuthorsVariant) {
  // u = max(phi_s, phi_t) = (-4, -3, -2, -1) / sqrt(30), all negative; phi_d = (1, 2, 3, 4) / sqrt(30).
  // Eq. 1, k = 2: threshold -2, M = {grid 3}: mean(1, 2, 3) - 4 = -2 -> -2 / sqrt(30); k = 3 skipped.
  // Authors: relu(u) = 0 everywhere, M = {} for every threshold: Q = sum(phi_d) / 4 = 10 / (4 sqrt(30)).
  const ShapleyMap d{1, 2, 3, 4};
  const ShapleyMap s{-4, -3, -2, -1}, t{-8, -6, -4, -2};  // same direction: max of the unit maps is s's
  EXPECT_NEAR(q_tau_eq1(d, s, t).q, -2 / std::sqrt(30.0), 1e-12);
  EXPECT_NEAR(q_tau_authors(d, s, t).q, 10 / (4 * std::sqrt(30.0)), 1e-12);
}

TEST(ShapleyMetrics, QTauTakesTheElementwiseMaxOfTheUnitMaps) {
  // N = 20. phi_s = 1 on grids 0-4 -> 1/sqrt(5) = 0.447 after normalising; phi_t = 1 on 15-18 and
  // 2 on 19 -> 0.354 and 0.707. u = max: 0.447 on 0-4, 0.354 on 15-18, 0.707 on 19, 0 elsewhere.
  // Sorted: 10 zeros, 4 x 0.354 (ranks 10-13), 5 x 0.447 (14-18), 0.707 (19).
  // k = floor(20 p / 100) = 12, 13 (p = 60, 65): threshold 0.354, M = {0-4, 19};
  //     k = 14 ... 18 (p = 70 ... 90): threshold 0.447, M = {19};  k = 19 (p = 95): M = {}.
  // phi_d = 3 at grid 19 and 1 at grid 7, over sqrt(10).
  // Eq. 1: p = 60, 65: 1/14 - 3/6; p = 70 ... 90: 1/19 - 3; p = 95 skipped.
  // Authors: (1 - 3) / 20 for p < 95 (grid 7 is outside every M), (4 - 0) / 20 for p = 95.
  ShapleyMap d(20, 0.0), s(20, 0.0), t(20, 0.0);
  for (int i = 0; i < 5; ++i) s[size_t(i)] = 1;
  for (int i = 15; i < 20; ++i) t[size_t(i)] = 1;
  t[19] = 2;
  d[19] = 3;
  d[7] = 1;
  const double norm = std::sqrt(10.0);
  const QResult eq1 = q_tau_eq1(d, s, t);
  EXPECT_NEAR(eq1.q, (2 * (1.0 / 14 - 0.5) + 5 * (1.0 / 19 - 3.0)) / 7 / norm, 1e-12);
  EXPECT_EQ(eq1.thresholds_used, 7);
  EXPECT_NEAR(q_tau_authors(d, s, t).q, (7 * (1.0 - 3.0) + 4.0) / 20 / 8 / norm, 1e-12);
  // Q > 0 when the detector looks away from the identity grids (H1's direction)
  ShapleyMap away(20, 0.0);
  away[8] = 1;
  EXPECT_GT(q_tau_eq1(away, s, t).q, 0);
  EXPECT_GT(q_tau_authors(away, s, t).q, 0);
}

TEST(ShapleyMetrics, DeltaIsTheMeanCosineWithTheRawMap) {
  // cos((1,0,0,0), (1,1,0,0)) = 1/sqrt(2); cos((1,0,0,0), (0,1,0,0)) = 0 -> delta = 1 / (2 sqrt(2)).
  const ShapleyMap raw{1, 0, 0, 0};
  EXPECT_NEAR(compression_delta(raw, {{7, 7, 0, 0}, {0, 1, 0, 0}}), 1 / (2 * std::sqrt(2.0)), 1e-15);
  EXPECT_NEAR(compression_delta(raw, {raw, raw}), 1.0, 1e-15);
  EXPECT_THROW(compression_delta(raw, {}), Error);
}

TEST(ShapleyMetrics, Instability) {
  EXPECT_NEAR(map_instability({1, 0}, {0, 1}), 1.0, 1e-15);  // orthogonal maps
  EXPECT_EQ(map_instability({2, 5}, {2, 5}), 0.0);
  // (0.6, 0.8) and (0.8, 0.6): |(-0.2, 0.2)| / |(1.4, 1.4)| = 1/7; scale does not matter
  EXPECT_NEAR(map_instability({3, 4}, {40, 30}), 1.0 / 7, 1e-15);
  EXPECT_TRUE(std::isnan(map_instability({1, 1}, {-1, -1})));
}

TEST(ShapleyMetrics, InstabilityCurvesAverageByT) {
  const InstabilityCurve a{{10, 0.4, 0, 1}, {20, 0.2, 0, 1}}, b{{10, 0.6, 0, 1}, {30, 0.1, 0, 1}};
  const InstabilityCurve c{{20, NAN, 0, 1}};
  const InstabilityCurve m = average_instability_curves({a, b, c});
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].samples, 10);
  EXPECT_NEAR(m[0].instability, 0.5, 1e-15);
  EXPECT_NEAR(m[0].stddev, std::sqrt(0.02), 1e-15);  // sample std of 0.4, 0.6
  EXPECT_EQ(m[0].runs, 2);
  EXPECT_EQ(m[1].samples, 20);
  EXPECT_EQ(m[1].runs, 1);  // the NaN is left out
  EXPECT_EQ(m[2].samples, 30);
}

TEST(ShapleyMetrics, FaithfulnessAgainstAManipulationMask) {
  // 4x4 pixels, 2x2 grid of 2x2-pixel cells; the mask is the left half (area 1/2).
  const GridGeometry g = GridGeometry::make(4, 4, 2);
  std::vector<float> left(16, 0.0f);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 2; ++x) left[size_t(y * 4 + x)] = 1.0f;
  Faithfulness f = manipulation_faithfulness({1, 0, 1, 0}, g, left);  // all positive mass on the left
  EXPECT_DOUBLE_EQ(f.area_share, 0.5);
  EXPECT_DOUBLE_EQ(f.positive_share_inside, 1.0);
  EXPECT_DOUBLE_EQ(f.lift, 2.0);
  f = manipulation_faithfulness({1, -5, 0, 1}, g, left);  // half the positive mass inside, negatives ignored
  EXPECT_DOUBLE_EQ(f.positive_share_inside, 0.5);
  EXPECT_DOUBLE_EQ(f.lift, 1.0);
  // One manipulated pixel in cell 0 (a quarter of it): share 1/4 of cell 0's mass, area 1/16.
  io::Image mask = io::Image::blank(4, 4, 0);
  mask.at(0, 0)[1] = 200;
  f = manipulation_faithfulness({2, 0, 0, 0}, g, mask);
  EXPECT_DOUBLE_EQ(f.area_share, 1.0 / 16);
  EXPECT_DOUBLE_EQ(f.positive_share_inside, 0.25);
  EXPECT_DOUBLE_EQ(f.lift, 4.0);
  EXPECT_TRUE(std::isnan(manipulation_faithfulness({-1, 0, 0, 0}, g, mask).positive_share_inside));
  EXPECT_THROW(manipulation_faithfulness({1, 0, 0}, g, left), Error);
  EXPECT_THROW(manipulation_faithfulness({1, 0, 0, 0}, g, io::Image::blank(5, 4)), Error);
}

TEST(ShapleyHeatmap, ColormapUpsamplingAndOverlay) {
  EXPECT_EQ(diverging_color(0), (std::array<uint8_t, 3>{247, 247, 247}));
  EXPECT_EQ(diverging_color(-1), (std::array<uint8_t, 3>{5, 48, 97}));
  EXPECT_EQ(diverging_color(1), (std::array<uint8_t, 3>{103, 0, 31}));
  EXPECT_EQ(diverging_color(7), diverging_color(1));  // clamped
  const auto warm = diverging_color(0.5), cool = diverging_color(-0.5);
  EXPECT_GT(warm[0], warm[2]);  // red above zero
  EXPECT_LT(cool[0], cool[2]);  // blue below

  // 5x7 pixels on a 2x2 grid: rows {0,1 | 2,3,4}, columns {0,1,2 | 3,4,5,6}
  const GridGeometry g = GridGeometry::make(5, 7, 2);
  const std::vector<double> phi{1, -2, 3, 4};
  const std::vector<float> flat = upsample_map(phi, g);
  EXPECT_EQ(flat[0 * 7 + 2], 1.0f);
  EXPECT_EQ(flat[1 * 7 + 3], -2.0f);
  EXPECT_EQ(flat[2 * 7 + 0], 3.0f);
  EXPECT_EQ(flat[4 * 7 + 6], 4.0f);
  // smooth: the corners lie beyond the outer cell centres and keep those cells' values; everything
  // else is a convex blend of the four values
  const std::vector<float> smooth = upsample_map(phi, g, true);
  EXPECT_FLOAT_EQ(smooth[0], 1.0f);
  EXPECT_FLOAT_EQ(smooth[4 * 7 + 6], 4.0f);
  for (float v : smooth) EXPECT_TRUE(v >= -2.0f && v <= 4.0f);

  io::Image img = io::Image::blank(7, 5, 100);
  HeatmapOptions o;
  o.legend = 0;
  const io::Image same = heatmap_overlay(img, {0, 0, 0, 0}, g, o);  // a zero map leaves the image
  EXPECT_EQ(same.rgb, img.rgb);
  const io::Image over = heatmap_overlay(img, phi, g, o);
  EXPECT_GT(over.at(6, 4)[0], over.at(6, 4)[2]);  // the largest value: red tint
  EXPECT_LT(over.at(4, 0)[0], over.at(4, 0)[2]);  // negative: blue tint
  const io::Image map = heatmap_image(phi, g);  // with the default legend
  EXPECT_EQ(map.width, 7 + 2 + 16);
  EXPECT_EQ(map.height, 5);
  const uint8_t* top = map.at(7 + 2 + 3, 0);
  EXPECT_EQ(top[0], 103);  // the legend runs from +1 at the top
  EXPECT_THROW(heatmap_overlay(io::Image::blank(6, 5), phi, g), Error);
}
