// Detection metrics on hand-computed cases with ties (scikit-learn parity on random scores is in
// tests/py_test_detection_metrics.py), and the robustness perturbations (DeeperForensics).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "fstm/lib/detection_metrics.h"
#include "fstm/lib/perturbations.h"
#include "tensor/random.h"
#include "tests/test_support.h"

namespace fstm {
namespace {

TEST(DetectionMetrics, HandComputedWithTies) {
  const std::vector<double> s = {0.1, 0.4, 0.35, 0.8, 0.4};
  const std::vector<int> y = {0, 0, 1, 1, 1};
  // positive > negative pairs: 0.35 > 0.1; 0.8 > both; 0.4 > 0.1 and 0.4 == 0.4 (half): 4.5 of 6
  EXPECT_NEAR(roc_auc(s, y), 0.75, 1e-12);
  // thresholds 0.8, 0.4, 0.35, 0.1: (R, P) = (1/3, 1), (2/3, 2/3), (1, 3/4), (1, 3/5)
  EXPECT_NEAR(average_precision(s, y), (1.0 + 2.0 / 3 + 0.75) / 3, 1e-12);
  // ROC (0, 1/3) -> (1/2, 2/3) crosses FPR = 1 - TPR at FPR 0.4
  EXPECT_NEAR(equal_error_rate(s, y), 0.4, 1e-12);
  EXPECT_NEAR(accuracy(s, y), 0.6, 1e-12);
  // at 0.5: negatives 0.1, 0.4 right (2/2), positives only 0.8 (1/3)
  EXPECT_NEAR(balanced_accuracy(s, y), (1.0 + 1.0 / 3) / 2, 1e-12);
  // calling everything fake on an imbalanced split: ACC 5/6, balanced 0.5
  EXPECT_NEAR(accuracy({0.9, 0.9, 0.9, 0.9, 0.9, 0.9}, {0, 1, 1, 1, 1, 1}), 5.0 / 6, 1e-12);
  EXPECT_NEAR(balanced_accuracy({0.9, 0.9, 0.9, 0.9, 0.9, 0.9}, {0, 1, 1, 1, 1, 1}), 0.5, 1e-12);
  EXPECT_TRUE(std::isnan(balanced_accuracy({0.1, 0.2}, {1, 1})));
  const DetectionMetrics m = detection_metrics(s, y);
  EXPECT_NEAR(m.balanced_acc, (1.0 + 1.0 / 3) / 2, 1e-12);
  EXPECT_EQ(m.samples, 5);
  EXPECT_EQ(m.positives, 3);

  // perfect and inverted rankings, all tied, one class missing
  EXPECT_EQ(roc_auc({0.1, 0.2, 0.9}, {0, 0, 1}), 1.0);
  EXPECT_EQ(equal_error_rate({0.1, 0.2, 0.9}, {0, 0, 1}), 0.0);
  EXPECT_EQ(average_precision({0.1, 0.2, 0.9}, {0, 0, 1}), 1.0);
  EXPECT_EQ(roc_auc({0.9, 0.2, 0.1}, {0, 0, 1}), 0.0);
  EXPECT_EQ(equal_error_rate({0.9, 0.2, 0.1}, {0, 0, 1}), 1.0);
  EXPECT_EQ(roc_auc({0.5, 0.5, 0.5, 0.5}, {0, 1, 0, 1}), 0.5);
  EXPECT_EQ(equal_error_rate({0.5, 0.5, 0.5, 0.5}, {0, 1, 0, 1}), 0.5);
  EXPECT_EQ(average_precision({0.5, 0.5, 0.5, 0.5}, {0, 1, 0, 1}), 0.5);
  EXPECT_TRUE(std::isnan(roc_auc({0.1, 0.2}, {1, 1})));
  EXPECT_TRUE(std::isnan(average_precision({0.1, 0.2}, {0, 0})));
  EXPECT_THROW(roc_auc({0.1}, {2}), Error);
  EXPECT_THROW(roc_auc({0.1, 0.2}, {1}), Error);
}

// The validation threshold: by hand (a tie between two cuts goes to the lower), and against every
// candidate cut on random scores with ties.
TEST(DetectionMetrics, BestBalancedThreshold) {
  // reals 0.1 0.2 0.3, fakes 0.25 0.6 0.7: cutting at 0.225 (TNR 2/3, TPR 1) and at 0.45 (TNR 1,
  // TPR 2/3) both give 5/6; 0.5 would give 5/6 too, but 0.225 is the lower.
  const std::vector<double> s = {0.1, 0.2, 0.3, 0.25, 0.6, 0.7};
  const std::vector<int> y = {0, 0, 0, 1, 1, 1};
  EXPECT_NEAR(best_balanced_threshold(s, y), 0.225, 1e-12);
  EXPECT_NEAR(balanced_accuracy(s, y, 0.225), 5.0 / 6, 1e-12);
  // every score shifted far below 0.5: ACC at 0.5 calls everything real, the chosen cut separates
  const std::vector<double> low = {0.01, 0.02, 0.03, 0.11, 0.12, 0.13};
  const double t = best_balanced_threshold(low, y);
  EXPECT_NEAR(t, 0.07, 1e-12);
  EXPECT_DOUBLE_EQ(balanced_accuracy(low, y, t), 1.0);
  EXPECT_DOUBLE_EQ(balanced_accuracy(low, y, 0.5), 0.5);
  EXPECT_TRUE(std::isnan(best_balanced_threshold({0.2, 0.3}, {1, 1})));

  Rng rng(5);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> r;
    std::vector<int> l;
    for (int i = 0; i < 40; ++i) {
      l.push_back(int(rng.below(2)));
      r.push_back(double(rng.below(12)) / 12 + 0.1 * l.back());  // coarse: many ties
    }
    if (std::count(l.begin(), l.end(), 1) % 40 == 0) continue;
    double best = -1;
    for (double c : r) best = std::max(best, balanced_accuracy(r, l, c));
    best = std::max(best, balanced_accuracy(r, l, -1.0));
    EXPECT_NEAR(balanced_accuracy(r, l, best_balanced_threshold(r, l)), best, 1e-12) << "trial " << trial;
  }
}

TEST(DetectionMetrics, VideoScoresAreFrameMeans) {
  std::vector<double> vs;
  std::vector<int> vy;
  video_scores({0.2, 0.4, 0.9, 0.7, 0.1}, {0, 0, 1, 1, 0}, {7, 7, 3, 3, 9}, vs, vy);
  ASSERT_EQ(vs.size(), 3u);
  EXPECT_NEAR(vs[0], 0.8, 1e-12);  // group 3
  EXPECT_EQ(vy[0], 1);
  EXPECT_NEAR(vs[1], 0.3, 1e-12);  // group 7
  EXPECT_NEAR(vs[2], 0.1, 1e-12);
  EXPECT_THROW(video_scores({0.2, 0.4}, {0, 1}, {1, 1}, vs, vy), Error);  // a video with both labels
}

io::Image filled(int size, uint8_t r, uint8_t g, uint8_t b) {
  io::Image im = io::Image::blank(size, size);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x) im.at(x, y)[0] = r, im.at(x, y)[1] = g, im.at(x, y)[2] = b;
  return im;
}

TEST(Perturbations, ParseNamesAndParameters) {
  EXPECT_EQ(parse_perturbation("blur:3").parameter(), 13);
  EXPECT_EQ(parse_perturbation("GB:3").name(), "blur:3");
  EXPECT_EQ(parse_perturbation("PXL:2").name(), "pixelation:2");
  EXPECT_EQ(parse_perturbation("JPEG:5").parameter(), 6);
  EXPECT_EQ(parse_perturbation("saturation:5").parameter(), 0.0);
  EXPECT_EQ(parse_perturbation("contrast:1").parameter(), 0.85);
  EXPECT_EQ(parse_perturbation("noise:5").parameter(), 0.05);
  EXPECT_EQ(parse_perturbation("block:2").parameter(), 32);
  EXPECT_EQ(parse_perturbation("none").kind, PerturbationKind::none);
  for (const char* bad : {"blur", "blur:0", "blur:6", "fog:1", "blur:1x"}) EXPECT_THROW(parse_perturbation(bad), Error) << bad;
  EXPECT_EQ(perturbation_kinds().size(), 6u);
}

TEST(Perturbations, ColourAndContrastFollowDeeperForensics) {
  Rng rng(1);
  io::Image im = filled(8, 100, 150, 200);
  apply_perturbation(im, parse_perturbation("saturation:5"), rng);  // p = 0: grey at the luma
  // Y = 0.299 * 100 + 0.587 * 150 + 0.114 * 200 = 140.75 -> 140 (truncated)
  for (int c = 0; c < 3; ++c) EXPECT_EQ(im.at(3, 3)[c], 140);
  im = filled(8, 100, 150, 200);
  apply_perturbation(im, parse_perturbation("saturation:1"), rng);  // p = 0.4
  EXPECT_EQ(im.at(0, 0)[0], uint8_t(140.75 + 0.4 * (100 - 140.75)));
  EXPECT_EQ(im.at(0, 0)[2], uint8_t(140.75 + 0.4 * (200 - 140.75)));
  im = filled(8, 200, 255, 3);
  apply_perturbation(im, parse_perturbation("contrast:1"), rng);  // x 0.85
  EXPECT_EQ(im.at(1, 2)[0], 170);
  EXPECT_EQ(im.at(1, 2)[1], 216);
  EXPECT_EQ(im.at(1, 2)[2], 2);
}

TEST(Perturbations, BlocksNoiseBlurAndPixelation) {
  Rng rng(2);
  io::Image im = filled(224, 0, 0, 0);
  apply_perturbation(im, parse_perturbation("block:1"), rng);  // 16 grey 8x8 blocks
  int grey = 0;
  for (uint8_t v : im.rgb) {
    EXPECT_TRUE(v == 0 || v == 128);
    grey += v == 128;
  }
  EXPECT_GT(grey, 3 * 64 * 8);      // overlaps allowed
  EXPECT_LE(grey, 3 * 64 * 16);

  im = filled(224, 128, 128, 128);
  apply_perturbation(im, parse_perturbation("noise:1"), rng);  // variance 0.001 in DF's YCbCr
  double sum = 0, sq = 0;
  const size_t n = size_t(224) * 224;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(im.rgb[i * 3]) - 128;
    sum += d;
    sq += d * d;
  }
  const double mean = sum / double(n), sd = std::sqrt(sq / double(n) - mean * mean);
  // R = Y + 1.403 Cr: std sqrt(9.39^2 + (1.403 * 9.18)^2) = 15.9 (0-255 units); truncation: mean -0.5
  EXPECT_NEAR(sd, 15.9, 0.4);
  EXPECT_NEAR(mean, -0.5, 0.3);

  im = filled(224, 90, 90, 90);
  im.at(100, 100)[0] = 255;
  apply_perturbation(im, parse_perturbation("blur:1"), rng);  // 7x7, sigma 7/6
  EXPECT_LT(im.at(100, 100)[0], 200);
  EXPECT_GT(im.at(102, 100)[0], 90);
  EXPECT_EQ(im.at(104, 100)[0], 90);  // outside the 7x7 kernel
  EXPECT_EQ(im.at(0, 0)[1], 90);

  im = filled(64, 0, 0, 0);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) im.at(x, y)[1] = uint8_t((x + y) % 2 ? 200 : 0);  // a 1-pixel checkerboard
  apply_perturbation(im, parse_perturbation("pixelation:1"), rng);  // factor 2
  for (int y = 8; y < 56; ++y)
    for (int x = 8; x < 56; ++x) EXPECT_NEAR(im.at(x, y)[1], 100, 1) << x << "," << y;  // averaged away
  EXPECT_EQ(im.width, 64);
}

}  // namespace
}  // namespace fstm
