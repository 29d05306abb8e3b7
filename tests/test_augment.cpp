// Augmentations: each step against its definition, determinism by seed, and the jitter statistics
// of the authors' training alignment.
#include <gtest/gtest.h>

#include <cmath>

#include "io/augment.h"
#include "tests/test_support.h"

namespace fstm::io {
namespace {

Image noise_image(int w, int h, uint64_t seed) {
  Rng rng(seed);
  Image im = Image::blank(w, h);
  for (auto& v : im.rgb) v = uint8_t(rng.below(256));
  return im;
}

double mean(const Image& im) {
  double s = 0;
  for (uint8_t v : im.rgb) s += v;
  return s / double(im.rgb.size());
}

double variance(const Image& im) {
  const double m = mean(im);
  double s = 0;
  for (uint8_t v : im.rgb) s += (v - m) * (v - m);
  return s / double(im.rgb.size());
}

double mean_abs_diff(const Image& a, const Image& b) {
  double s = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) s += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return s / double(a.rgb.size());
}

TEST(Augment, SameSeedSameImageOtherSeedOther) {
  const Image src = noise_image(48, 40, 1);
  AugmentOptions all = AugmentOptions::authors();
  all.jpeg_p = all.hsv_p = all.motion_blur_p = all.blur_p = all.noise_p = all.tone_p = all.resize_p = 1;
  all.brightness_contrast_p = 1;
  int differ = 0;
  for (uint64_t seed = 0; seed < 6; ++seed) {
    Image a = src, b = src, c = src;
    Rng ra(seed), rb(seed), rc(seed + 100);
    augment_photometric(a, all, ra);
    augment_photometric(b, all, rb);
    augment_photometric(c, all, rc);
    EXPECT_EQ(a.rgb, b.rgb) << "seed " << seed;
    differ += a.rgb != c.rgb;
    EXPECT_EQ(a.width, 48);
  }
  EXPECT_EQ(differ, 6);
}

TEST(Augment, NoneLeavesTheImageAlone) {
  const Image src = noise_image(20, 20, 2);
  Image im = src;
  Rng rng(3);
  augment_photometric(im, AugmentOptions::none(), rng);
  EXPECT_FALSE(maybe_flip(im, AugmentOptions::none(), rng));
  EXPECT_EQ(im.rgb, src.rgb);
  AlignOptions base;
  const AlignOptions a = sample_alignment(AugmentOptions::none(), base, rng);
  EXPECT_EQ(a.scale, base.scale);
  EXPECT_EQ(a.rotation, 0);
  EXPECT_EQ(a.shift_x, 0);
}

TEST(Augment, TurningStepsOnOrOffDoesNotShiftTheRandomStream) {
  // every step draws its randomness whether or not it fires, so switching one step off leaves
  // what the others draw (and the flip and jitter after them) unchanged for a given seed
  const Image src = noise_image(32, 32, 4);
  Rng picks(1);
  uint64_t reference = 0;
  for (int trial = 0; trial < 8; ++trial) {
    AugmentOptions o = AugmentOptions::authors();
    float* ps[] = {&o.jpeg_p, &o.autocontrast_p, &o.quant_noise_p, &o.hsv_p, &o.gamma_p, &o.motion_blur_p,
                   &o.blur_p, &o.noise_p, &o.tone_p, &o.brightness_contrast_p, &o.resize_p};
    for (float* p : ps) *p = trial == 0 ? 0.0f : trial == 1 ? 1.0f : float(picks.below(2));
    Image im = src;
    Rng rng(77);
    augment_photometric(im, o, rng);
    const uint64_t after = rng.next_u64();
    if (trial == 0) reference = after;
    EXPECT_EQ(after, reference) << "trial " << trial;
  }
}

TEST(Augment, FlipMirrorsExactly) {
  const Image src = noise_image(7, 3, 5);
  Image im = src;
  flip_horizontal(im);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 7; ++x)
      for (int c = 0; c < 3; ++c) ASSERT_EQ(im.at(x, y)[c], src.at(6 - x, y)[c]);
  flip_horizontal(im);
  EXPECT_EQ(im.rgb, src.rgb);
}

TEST(Augment, JpegQualityOrdersTheError) {
  Image smooth = Image::blank(64, 64);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) smooth.at(x, y)[0] = uint8_t(x * 4), smooth.at(x, y)[1] = uint8_t(y * 4), smooth.at(x, y)[2] = uint8_t(2 * (x + y));
  Image q15 = smooth, q80 = smooth;
  jpeg_reencode(q15, 15);
  jpeg_reencode(q80, 80);
  const double e15 = mean_abs_diff(q15, smooth), e80 = mean_abs_diff(q80, smooth);
  EXPECT_GT(e80, 0.0);
  EXPECT_GT(e15, 1.5 * e80) << e15 << " vs " << e80;
}

TEST(Augment, BlursKeepConstantsAndReduceVariance) {
  Image flat = Image::blank(16, 12, 77);
  gaussian_blur(flat, 1.5f);
  motion_blur(flat, 30, 6);
  for (uint8_t v : flat.rgb) ASSERT_EQ(v, 77);
  const Image src = noise_image(40, 40, 6);
  Image g = src, m = src;
  gaussian_blur(g, 2.0f);
  motion_blur(m, 45, 8);
  EXPECT_LT(variance(g), 0.5 * variance(src));
  EXPECT_LT(variance(m), 0.5 * variance(src));
  EXPECT_NEAR(mean(g), mean(src), 1.0);
  // the 3x3 kernel with sigma 1: centre weight e^0 / (1 + 2e^-0.5)^2 = 0.2042 (reflected borders)
  Image dot = Image::blank(5, 5, 0);
  dot.at(2, 2)[0] = 255;
  gaussian_blur(dot, 1.0f);
  const double w1 = std::exp(-0.5), c = 1 / ((1 + 2 * w1) * (1 + 2 * w1));
  EXPECT_NEAR(dot.at(2, 2)[0], 255 * c, 0.51);
  EXPECT_NEAR(dot.at(1, 2)[0], 255 * c * w1, 0.51);
  EXPECT_NEAR(dot.at(1, 1)[0], 255 * c * w1 * w1, 0.51);
  EXPECT_THROW(gaussian_blur(dot, 1.0f, 4), Error);
}

TEST(Augment, NoiseHasTheAskedSigma) {
  Image im = Image::blank(100, 100, 128);
  Rng rng(8);
  add_gaussian_noise(im, 10.0f, rng);
  EXPECT_NEAR(mean(im), 128, 0.5);
  EXPECT_NEAR(std::sqrt(variance(im)), 10.0, 0.3);
}

TEST(Augment, GammaToneBrightnessContrast) {
  Image ramp = Image::blank(256, 1);
  for (int x = 0; x < 256; ++x) ramp.at(x, 0)[0] = ramp.at(x, 0)[1] = ramp.at(x, 0)[2] = uint8_t(x);
  Image g = ramp;
  adjust_gamma(g, 0.5f);  // 255 (x/255)^2
  for (int x : {0, 64, 128, 200, 255}) EXPECT_NEAR(g.at(x, 0)[0], 255 * std::pow(x / 255.0, 2.0), 0.51) << x;
  Image one = ramp;
  adjust_gamma(one, 1.0f);
  EXPECT_EQ(one.rgb, ramp.rgb);
  Image t = ramp;
  const float color[3] = {200, 100, 60};
  adjust_tone(t, color, 0.25f);
  EXPECT_NEAR(t.at(100, 0)[0], 0.75 * 100 + 0.25 * 200, 0.51);
  EXPECT_NEAR(t.at(100, 0)[2], 0.75 * 100 + 0.25 * 60, 0.51);
  Image bc = ramp;
  brightness_contrast(bc, 0.1f, -0.2f);  // x 0.8 + 25.5
  EXPECT_NEAR(bc.at(100, 0)[1], 100 * 0.8 + 25.5, 0.51);
  EXPECT_NEAR(bc.at(255, 0)[1], 255 * 0.8 + 25.5, 0.51);
  Image ac = Image::blank(4, 1, 0);
  for (int x = 0; x < 4; ++x) ac.at(x, 0)[0] = ac.at(x, 0)[1] = ac.at(x, 0)[2] = uint8_t(50 + 10 * x);
  autocontrast(ac);  // (x - 50) / 31 * 255
  EXPECT_EQ(ac.at(0, 0)[0], 0);
  EXPECT_NEAR(ac.at(3, 0)[0], 30 / 31.0 * 255, 0.51);
}

TEST(Augment, HsvScalesSaturationAndValue) {
  const Image src = noise_image(30, 30, 7);
  Image same = src;
  adjust_hsv(same, 0, 1, 1);
  EXPECT_LT(mean_abs_diff(same, src), 0.01);
  Image gray = src;
  adjust_hsv(gray, 0, 0, 1);  // no saturation: r = g = b = max of the three
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 30; ++x) {
      const uint8_t* p = gray.at(x, y);
      const uint8_t* s = src.at(x, y);
      ASSERT_EQ(p[0], p[1]);
      ASSERT_EQ(p[1], p[2]);
      ASSERT_EQ(p[0], std::max({s[0], s[1], s[2]}));
    }
  Image dark = src;
  adjust_hsv(dark, 0, 1, 0.5f);  // value halves: every channel halves
  for (size_t i = 0; i < src.rgb.size(); ++i) ASSERT_NEAR(dark.rgb[i], src.rgb[i] * 0.5, 1.0) << i;
  Image turned = Image::blank(1, 1);
  turned.at(0, 0)[0] = 255;  // red, hue +120 -> green
  adjust_hsv(turned, 120, 1, 1);
  EXPECT_EQ(turned.at(0, 0)[0], 0);
  EXPECT_EQ(turned.at(0, 0)[1], 255);
}

TEST(Augment, ResizeInterpolations) {
  const Image src = noise_image(8, 6, 9);
  // area, 2x down: the mean of each 2x2 block
  const Image area = resize_with(src, 4, 3, Interp::area);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) {
      const double m = (src.at(2 * x, 2 * y)[1] + src.at(2 * x + 1, 2 * y)[1] + src.at(2 * x, 2 * y + 1)[1] +
                        src.at(2 * x + 1, 2 * y + 1)[1]) / 4.0;
      ASSERT_NEAR(area.at(x, y)[1], m, 0.51);
    }
  // nearest, 2x up: pixel copies
  const Image up = resize_with(src, 16, 12, Interp::nearest);
  EXPECT_EQ(up.at(5, 7)[2], src.at(2, 3)[2]);
  // bilinear = io::resize_bilinear (up to float rounding: separable here, not there)
  const Image bl = resize_with(src, 13, 5, Interp::bilinear), ref = resize_bilinear(src, 13, 5);
  for (size_t i = 0; i < bl.rgb.size(); ++i) ASSERT_LE(std::abs(int(bl.rgb[i]) - int(ref.rgb[i])), 1) << i;
  // bicubic keeps a constant and interpolates a linear ramp exactly inside
  const Image flat = resize_with(Image::blank(5, 5, 90), 9, 7, Interp::bicubic);
  for (uint8_t v : flat.rgb) ASSERT_EQ(v, 90);
  Image ramp = Image::blank(16, 1);
  for (int x = 0; x < 16; ++x) ramp.at(x, 0)[0] = uint8_t(10 * x);
  const Image r2 = resize_with(ramp, 32, 1, Interp::bicubic);
  EXPECT_NEAR(r2.at(15, 0)[0], 10 * ((15 + 0.5) / 2 - 0.5), 0.51);
}

TEST(Augment, AlignmentJitterFollowsTheAuthors) {
  const AugmentOptions o = AugmentOptions::authors();
  AlignOptions base;
  base.canvas = 224;
  Rng rng(10);
  double s = 0, s2 = 0, max_shift = 0, max_rot = 0;
  int stretched = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const AlignOptions a = sample_alignment(o, base, rng);
    s += a.scale, s2 += a.scale * a.scale;
    max_shift = std::max({max_shift, double(std::abs(a.shift_x)), double(std::abs(a.shift_y))});
    max_rot = std::max(max_rot, double(std::abs(a.rotation)));
    stretched += a.stretch_a != 1;
    ASSERT_GE(a.stretch_a, 0.97f);
    ASSERT_LE(a.stretch_a, 1.03f);
  }
  const double mean_scale = s / n, sd = std::sqrt(s2 / n - mean_scale * mean_scale);
  EXPECT_NEAR(mean_scale, 0.9, 0.01);
  EXPECT_NEAR(sd, 0.1, 0.01);
  EXPECT_LE(max_shift, 25.0);
  EXPECT_GT(max_shift, 24.0);
  EXPECT_LE(max_rot, 30.0);
  EXPECT_NEAR(stretched / double(n), 0.2, 0.03);
  base.canvas = 112;  // shifts scale with the canvas
  for (int i = 0; i < 200; ++i) ASSERT_LE(std::abs(sample_alignment(o, base, rng).shift_x), 12.5f);
}

}  // namespace
}  // namespace fstm::io
