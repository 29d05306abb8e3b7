// The synthetic FF++ generator (io/synth.h): determinism, masks against pixel differences,
// landmarks against the rendered pixels, identity separability with a linear probe, and the
// written dataset (layout, ldm.json labels, splits, lossless round trip, same bytes per seed).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "io/synth.h"
#include "io/synth_model.h"
#include "io/video.h"
#include "tensor/error.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using namespace fstm;
using namespace fstm::io;

namespace {

SynthOptions small_options(uint64_t seed = 7, int identities = 6, int frames = 4, int size = 128) {
  SynthOptions o;
  o.seed = seed;
  o.identities = identities;
  o.frames = frames;
  o.size = size;
  return o;
}

size_t count_differing_pixels(const Image& a, const Image& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.rgb.size(); i += 3)
    n += a.rgb[i] != b.rgb[i] || a.rgb[i + 1] != b.rgb[i + 1] || a.rgb[i + 2] != b.rgb[i + 2];
  return n;
}

std::array<float, 2> mean_point(const Landmarks68& l, int from, int to) {  // points [from, to]
  std::array<float, 2> m{0, 0};
  for (int i = from; i <= to; ++i) m[0] += l[i][0], m[1] += l[i][1];
  return {m[0] / float(to - from + 1), m[1] / float(to - from + 1)};
}

// Aligned face crop (c x c) from the 5-point similarity to the FST template (docs/design.md), bilinear.
std::vector<float> aligned_face(const Image& im, const Landmarks68& l, int c) {
  const double T[5][2] = {{-0.17607, -0.172844}, {0.1736, -0.17356}, {-0.00182, 0.0357164}, {-0.14617, 0.20185},
                          {0.14496, 0.19943}};
  const double r = 80.0 / (0.34967 * 224), ry = (r * T[0][1] + 0.5) * 2.42;
  double q[5][2], p[5][2];
  const auto le = mean_point(l, 36, 41), re = mean_point(l, 42, 47);
  const double src[5][2] = {{le[0], le[1]}, {re[0], re[1]}, {l[30][0], l[30][1]}, {l[48][0], l[48][1]}, {l[54][0], l[54][1]}};
  double qm[2] = {0, 0}, pm[2] = {0, 0};
  for (int i = 0; i < 5; ++i) {
    q[i][0] = ((r * T[i][0] + 0.5) * c - c / 2.0) * 0.9 + c / 2.0;
    q[i][1] = ((r * T[i][1] + 0.5) * c / ry - c / 2.0) * 0.9 + c / 2.0;
    p[i][0] = src[i][0];
    p[i][1] = src[i][1];
    for (int k = 0; k < 2; ++k) qm[k] += q[i][k] / 5, pm[k] += p[i][k] / 5;
  }
  // Least-squares similarity template -> image: p = [a -b; b a] (q - qm) + pm.
  double num_a = 0, num_b = 0, den = 0;
  for (int i = 0; i < 5; ++i) {
    const double qx = q[i][0] - qm[0], qy = q[i][1] - qm[1], px = p[i][0] - pm[0], py = p[i][1] - pm[1];
    num_a += qx * px + qy * py;
    num_b += qx * py - qy * px;
    den += qx * qx + qy * qy;
  }
  const double a = num_a / den, b = num_b / den;
  std::vector<float> out(size_t(c) * c * 3);
  for (int y = 0; y < c; ++y)
    for (int x = 0; x < c; ++x) {
      const double qx = x + 0.5 - qm[0], qy = y + 0.5 - qm[1];
      const double sx = std::clamp(a * qx - b * qy + pm[0] - 0.5, 0.0, im.width - 1.001);
      const double sy = std::clamp(b * qx + a * qy + pm[1] - 0.5, 0.0, im.height - 1.001);
      const int x0 = int(sx), y0 = int(sy);
      const double fx = sx - x0, fy = sy - y0;
      for (int ch = 0; ch < 3; ++ch) {
        auto v = [&](int xx, int yy) { return double(im.at(xx, yy)[ch]); };
        out[(size_t(y) * c + x) * 3 + ch] =
            float((v(x0, y0) * (1 - fx) + v(x0 + 1, y0) * fx) * (1 - fy) + (v(x0, y0 + 1) * (1 - fx) + v(x0 + 1, y0 + 1) * fx) * fy);
      }
    }
  return out;
}

// Pixels of a c x c crop that a probe looks at.
using PixelSet = std::vector<bool>;
PixelSet box_pixels(int c, int x0, int y0, int x1, int y1) {
  PixelSet s(size_t(c) * c, false);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) s[size_t(y) * c + x] = true;
  return s;
}

// Standardises each colour channel over the pixel set: removes skin tone (which a swap
// colour-corrects to the source's) and the scene's lighting gain, keeping shapes and contrasts.
std::vector<float> standardised(std::vector<float> x, const PixelSet& set) {
  double m[3] = {0, 0, 0}, v[3] = {0, 0, 0}, n = 0;
  for (size_t p = 0; p < set.size(); ++p)
    if (set[p]) {
      ++n;
      for (int ch = 0; ch < 3; ++ch) m[ch] += x[p * 3 + ch], v[ch] += double(x[p * 3 + ch]) * x[p * 3 + ch];
    }
  for (int ch = 0; ch < 3; ++ch) m[ch] /= n, v[ch] = std::sqrt(std::max(v[ch] / n - m[ch] * m[ch], 1e-6));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((x[i] - m[i % 3]) / v[i % 3]);
  return x;
}

// Nearest class mean (squared distance over the pixel set), among the given classes.
int nearest_mean(const std::vector<float>& x, const std::vector<std::vector<float>>& means, const std::vector<int>& among,
                 const PixelSet& set) {
  int best = -1;
  double best_d = 1e300;
  for (int k : among) {
    double d = 0;
    for (size_t p = 0; p < set.size(); ++p)
      if (set[p])
        for (int ch = 0; ch < 3; ++ch) d += double(x[p * 3 + ch] - means[k][p * 3 + ch]) * (x[p * 3 + ch] - means[k][p * 3 + ch]);
    if (d < best_d) best_d = d, best = k;
  }
  return best;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string id3(int i) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%03d", i);
  return buf;
}

}  // namespace

TEST(Synth, MethodNames) {
  for (SynthMethod m : all_synth_methods()) EXPECT_EQ(parse_synth_method(synth_method_name(m)), m);
  EXPECT_EQ(parse_synth_method("neuraltextures"), SynthMethod::neural_textures);
  EXPECT_EQ(all_synth_methods().size(), 5u);
  EXPECT_THROW(parse_synth_method("FaceMorph"), Error);
}

TEST(Synth, OptionsAreValidated) {
  SynthOptions o;
  EXPECT_NO_THROW(o.validate());
  o.identities = 7;
  EXPECT_THROW(o.validate(), Error);
  o = SynthOptions{};
  o.size = 101;
  EXPECT_THROW(o.validate(), Error);
  o = SynthOptions{};
  o.frames = 0;
  EXPECT_THROW(o.validate(), Error);
  o = SynthOptions{};
  o.methods = {SynthMethod::faceswap, SynthMethod::faceswap};
  EXPECT_THROW(o.validate(), Error);
  EXPECT_THROW(SynthGenerator(small_options()).render_real(6, 0), Error);
}

TEST(Synth, RenderingIsDeterministicPerSeed) {
  const SynthGenerator g1(small_options(11)), g2(small_options(11)), g3(small_options(12));
  for (int t : {0, 3}) {
    const SynthFrame a = g1.render_real(2, t), b = g2.render_real(2, t), c = g3.render_real(2, t);
    EXPECT_EQ(a.image.rgb, b.image.rgb);
    EXPECT_EQ(a.landmarks, b.landmarks);
    EXPECT_GT(count_differing_pixels(a.image, c.image), a.image.rgb.size() / 3 / 2) << "another seed, another video";
    for (SynthMethod m : all_synth_methods()) {
      const SynthFake fa = g1.render_fake(m, 2, 4, t, a.image), fb = g2.render_fake(m, 2, 4, t, b.image);
      EXPECT_EQ(fa.image.rgb, fb.image.rgb) << synth_method_name(m);
      EXPECT_EQ(fa.mask, fb.mask) << synth_method_name(m);
    }
  }
  // Frames of one video differ (motion, blinks, noise), and videos differ from each other.
  EXPECT_GT(count_differing_pixels(g1.render_real(2, 0).image, g1.render_real(2, 1).image), 1000u);
  EXPECT_GT(count_differing_pixels(g1.render_real(2, 0).image, g1.render_real(3, 0).image), 8000u);
}

// Fakes differ from their source frame exactly where the mask is non-zero, and the mask marks a
// face-sized region around the face, not the background.
TEST(Synth, MaskCoversExactlyTheChangedPixels) {
  const SynthOptions o = small_options(5);
  const SynthGenerator g(o);
  const int S = o.size;
  for (SynthMethod m : all_synth_methods())
    for (auto [a, b, t] : {std::array<int, 3>{0, 1, 0}, {1, 0, 2}, {3, 5, 3}}) {
      SCOPED_TRACE(std::string(synth_method_name(m)) + " " + std::to_string(a) + "_" + std::to_string(b) + " frame " +
                   std::to_string(t));
      const SynthFrame src = g.render_real(a, t);
      const SynthFake f = g.render_fake(m, a, b, t, src.image);
      size_t changed_outside = 0, strong = 0, strong_changed = 0, area = 0;
      double cx = 0, cy = 0;
      for (int y = 0; y < S; ++y)
        for (int x = 0; x < S; ++x) {
          const size_t i = size_t(y) * S + x;
          const bool changed = f.image.rgb[3 * i] != src.image.rgb[3 * i] ||
                               f.image.rgb[3 * i + 1] != src.image.rgb[3 * i + 1] ||
                               f.image.rgb[3 * i + 2] != src.image.rgb[3 * i + 2];
          if (f.mask[i] == 0) changed_outside += changed;
          if (f.mask[i] > 0) ++area, cx += x, cy += y;
          if (f.mask[i] >= 128) ++strong, strong_changed += changed;
        }
      EXPECT_EQ(changed_outside, 0u) << "pixels changed where the mask is 0";
      ASSERT_GT(strong, 0u);
      EXPECT_GT(double(strong_changed) / double(strong), 0.8) << "mask marks pixels that were not manipulated";
      EXPECT_GT(double(area), 0.015 * S * S);
      EXPECT_LT(double(area), 0.3 * S * S);
      // The mask's centroid lies on the face: between the eyes' level and the chin.
      const auto eyes = mean_point(src.landmarks, 36, 47), nose = mean_point(src.landmarks, 27, 35);
      cx /= double(area);
      cy /= double(area);
      EXPECT_NEAR(cx, nose[0], 0.12 * S);
      EXPECT_GT(cy, eyes[1] - 0.05 * S);
      EXPECT_LT(cy, src.landmarks[8][1]);
    }
}

// The manipulated content is where the landmarks say: the swaps replace eyes and mouth (mask full
// at the pupils and mouth), the reenactments change the mouth.
TEST(Synth, MasksContainTheManipulatedFeatures) {
  const SynthOptions o = small_options(9);
  const SynthGenerator g(o);
  const int S = o.size;
  for (int t = 0; t < o.frames; ++t) {
    const SynthFrame src = g.render_real(4, t);
    for (SynthMethod m : all_synth_methods()) {
      const SynthFake f = g.render_fake(m, 4, 2, t, src.image);
      auto mask_at = [&](std::array<float, 2> p) { return int(f.mask[size_t(p[1]) * S + size_t(p[0])]); };
      EXPECT_GE(mask_at(mean_point(src.landmarks, 48, 67)), 200) << synth_method_name(m) << ": mouth";
      if (m == SynthMethod::neural_textures) {
        EXPECT_EQ(mask_at(mean_point(src.landmarks, 36, 41)), 0) << "NeuralTextures leaves the eyes alone";
      } else {
        EXPECT_GE(mask_at(mean_point(src.landmarks, 36, 41)), 200) << synth_method_name(m) << ": left eye";
        EXPECT_GE(mask_at(mean_point(src.landmarks, 42, 47)), 200) << synth_method_name(m) << ": right eye";
      }
    }
  }
}

// SynthOptions::swap_colour_match: at 0 a face swap keeps the donor's skin tone, so the swapped
// region's mean colour moves from the source's towards the donor's; at 1 (the default) nothing
// changes; reenactments are not swaps and do not change at all.
TEST(Synth, SwapColourMatchKeepsTheDonorsSkinTone) {
  SynthOptions matched = small_options(9), kept = small_options(9);
  kept.swap_colour_match = 0;
  const SynthGenerator gm(matched), gk(kept);
  const int S = matched.size;
  // Mean RGB of `image` over the pixels where `mask` is at least 200.
  auto mean_in = [&](const Image& image, const std::vector<uint8_t>& mask) {
    std::array<double, 3> sum{0, 0, 0};
    int n = 0;
    for (int i = 0; i < S * S; ++i)
      if (mask[size_t(i)] >= 200) {
        for (int c = 0; c < 3; ++c) sum[size_t(c)] += image.rgb[size_t(i) * 3 + size_t(c)];
        ++n;
      }
    for (double& v : sum) v /= std::max(n, 1);
    return sum;
  };
  auto distance = [](const std::array<double, 3>& a, const std::array<double, 3>& b) {
    return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
  };
  // The donor's tone as it would look here: identity 2 filmed in video 4's scene (same lighting and
  // pose). Identities 4 and 2 differ in it by more than a few levels (checked, so the test can fail).
  const SynthFrame src = gm.render_real(4, 0), donor = gm.render(2, 4, 0);
  for (SynthMethod m : {SynthMethod::deepfakes, SynthMethod::faceswap, SynthMethod::faceshifter}) {
    const SynthFake fm = gm.render_fake(m, 4, 2, 0, src.image), fk = gk.render_fake(m, 4, 2, 0, src.image);
    ASSERT_EQ(fm.mask, fk.mask) << synth_method_name(m) << ": the region does not depend on the colour";
    const auto donor_tone = mean_in(donor.image, fm.mask);
    ASSERT_GT(distance(mean_in(src.image, fm.mask), donor_tone), 10.0);
    EXPECT_LT(distance(mean_in(fk.image, fk.mask), donor_tone), distance(mean_in(fm.image, fm.mask), donor_tone) - 3)
        << synth_method_name(m);
  }
  for (SynthMethod m : {SynthMethod::face2face, SynthMethod::neural_textures})
    EXPECT_EQ(gm.render_fake(m, 4, 2, 0, src.image).image.rgb, gk.render_fake(m, 4, 2, 0, src.image).image.rgb)
        << synth_method_name(m);
  SynthOptions bad = small_options();
  bad.swap_colour_match = 1.5f;
  EXPECT_THROW(bad.validate(), Error);
}

TEST(Synth, LandmarksAreInFrameAndInDlibOrder) {
  const SynthOptions o = small_options(3, 8, 8);
  const SynthGenerator g(o);
  for (int id = 0; id < o.identities; ++id)
    for (int t = 0; t < o.frames; ++t) {
      const SynthFrame f = g.render_real(id, t);
      std::vector<Landmarks68> all = {f.landmarks};
      for (SynthMethod m : all_synth_methods()) all.push_back(g.render_fake(m, id, (id + 1) % o.identities, t, f.image).landmarks);
      for (const Landmarks68& L : all) {
        for (const auto& p : L) {
          ASSERT_GE(p[0], 0);
          ASSERT_LT(p[0], o.size);
          ASSERT_GE(p[1], 0);
          ASSERT_LT(p[1], o.size);
        }
        const auto brows = mean_point(L, 17, 26), eyes = mean_point(L, 36, 47), mouth = mean_point(L, 48, 67);
        EXPECT_LT(brows[1], eyes[1]);
        EXPECT_LT(eyes[1], L[30][1]);   // nose tip below the eyes
        EXPECT_LT(L[30][1], mouth[1]);  // mouth below the nose tip
        EXPECT_LT(mouth[1], L[8][1]);   // chin below the mouth
        EXPECT_LT(L[0][0], L[8][0]);    // jaw runs left to right
        EXPECT_LT(L[8][0], L[16][0]);
        EXPECT_LT(L[36][0], L[39][0]);  // left eye: outer corner, inner corner
        EXPECT_LT(L[39][0], L[42][0]);
        EXPECT_LT(L[42][0], L[45][0]);  // right eye: inner corner, outer corner
        EXPECT_LT(L[17][0], L[21][0]);
        EXPECT_LT(L[22][0], L[26][0]);
        for (int i = 27; i < 30; ++i) EXPECT_LT(L[i][1], L[i + 1][1]);  // nose bridge, top down
        EXPECT_LT(L[31][0], L[35][0]);
        EXPECT_LT(L[48][0], L[54][0]);
        EXPECT_LE(L[51][1], L[62][1] + 1e-3f);  // upper lip above the opening above the lower lip
        EXPECT_LE(L[66][1], L[57][1] + 1e-3f);
        EXPECT_LE(L[62][1], L[66][1] + 1e-3f);
        for (int e : {36, 42}) {
          EXPECT_LE(L[e + 1][1], L[e + 5][1] + 1e-3f);  // upper lid above lower lid
          EXPECT_LE(L[e + 2][1], L[e + 4][1] + 1e-3f);
        }
      }
    }
}

// Landmarks sit on the drawn features: opening the mouth (or closing the eyes) changes pixels only
// around the mouth (eye) landmarks.
TEST(Synth, LandmarksMatchTheRenderedFeatures) {
  using namespace fstm::io::synth;
  const SynthOptions o = small_options(21);
  const World w(o);
  auto changed_box_within = [&](const FaceRender& a, const FaceRender& b, const Landmarks68& L, int from, int to,
                                float margin) {
    Canvas ca(o.size), cb(o.size);
    render_frame(a, ca);
    render_frame(b, cb);
    float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
    for (int i = from; i <= to; ++i) {
      x0 = std::min(x0, L[i][0]), x1 = std::max(x1, L[i][0]);
      y0 = std::min(y0, L[i][1]), y1 = std::max(y1, L[i][1]);
    }
    int changed = 0, outside = 0;
    for (int y = 0; y < o.size; ++y)
      for (int x = 0; x < o.size; ++x) {
        const float* p = ca.px(x, y);
        const float* q = cb.px(x, y);
        if (std::abs(p[0] - q[0]) + std::abs(p[1] - q[1]) + std::abs(p[2] - q[2]) < 0.02f) continue;
        ++changed;
        outside += x + 0.5f < x0 - margin || x + 0.5f > x1 + margin || y + 0.5f < y0 - margin || y + 0.5f > y1 + margin;
      }
    EXPECT_GT(changed, 10);
    EXPECT_EQ(outside, 0) << "of " << changed << " changed pixels";
  };
  for (int id = 0; id < o.identities; ++id) {
    FaceRender closed = w.real_render(id, id, 0);
    closed.expr.mouth_open = 0;
    closed.expr.eye_open = 1;
    FaceRender open = closed;
    open.expr.mouth_open = 1;
    const Landmarks68 Lo = face_landmarks(open);
    // The open mouth's landmarks bound everything that opening it changed (lips move, teeth show).
    changed_box_within(closed, open, Lo, 48, 67, 2.5f);
    FaceRender blink = closed;
    blink.expr.eye_open = 0;
    const Landmarks68 Lc = face_landmarks(closed);
    // The open eyes' landmarks (both eyes) bound what a blink changes; lashes/crease add a margin.
    changed_box_within(closed, blink, Lc, 36, 47, 3.0f);
  }
}

// Identity lives in the face: nearest class mean on raw pixels of aligned faces, trained on each
// identity's own video and tested on the same identity filmed in other videos (other background,
// motion, lighting, expression), beats chance (10%) by far, on the whole crop and on the inner face.
TEST(Synth, IdentityIsLinearlySeparable) {
  const int n = 10, frames = 6, c = 32;
  const SynthOptions o = small_options(17, n, frames);
  const SynthGenerator g(o);
  // In the 32x32 template crop the pupils sit near (11, 13) and (21, 13), the mouth corners near
  // row 27: the inner box holds brows, eyes, nose and mouth, and little hair or background.
  const PixelSet whole = box_pixels(c, 0, 0, c, c), inner = box_pixels(c, 8, 9, 24, 30);
  std::vector<std::vector<float>> means(n, std::vector<float>(size_t(c) * c * 3, 0.0f));
  for (int id = 0; id < n; ++id)
    for (int t = 0; t < frames; ++t) {
      const SynthFrame f = g.render_real(id, t);
      const std::vector<float> x = aligned_face(f.image, f.landmarks, c);
      for (size_t i = 0; i < x.size(); ++i) means[id][i] += x[i] / frames;
    }
  std::vector<int> everyone(n);
  for (int i = 0; i < n; ++i) everyone[i] = i;
  int right = 0, right_inner = 0, total = 0;
  for (int id = 0; id < n; ++id)
    for (int scene : {(id + 3) % n, (id + 7) % n})
      for (int t = 0; t < frames; t += 2) {
        const SynthFrame f = g.render(id, scene, t);
        const std::vector<float> x = aligned_face(f.image, f.landmarks, c);
        right += nearest_mean(x, means, everyone, whole) == id;
        right_inner += nearest_mean(x, means, everyone, inner) == id;
        ++total;
      }
  EXPECT_GT(double(right) / total, 0.5) << right << " of " << total << " (chance 0.1)";
  EXPECT_GT(double(right_inner) / total, 0.5) << right_inner << " of " << total << " (chance 0.1)";

}

// The donor's inner face survives each swap's degradations, and a reenactment keeps the source's:
// inside the fully manipulated region (mask 255; colours standardised against the swaps' colour
// correction), a swap's frame is nearer a clean render of b's inner face on a's head than a clean
// render of a, and a reenactment's the reverse (both references then wear b's expression, which
// the reenactment copies: with the shared identity latent a's and b's mouths differ less than an
// expression does).
TEST(Synth, SwapsCarryTheDonorsInnerFace) {
  const int n = 10, frames = 4;
  const SynthOptions o = small_options(17, n, frames);
  const SynthGenerator g(o);
  const synth::World w(o);
  auto clean = [&](const synth::FaceRender& r) {
    synth::Canvas canvas(o.size);
    synth::render_frame(r, canvas);
    const Image im = synth::quantize(canvas, 0, 0);
    return std::vector<float>(im.rgb.begin(), im.rgb.end());
  };
  for (SynthMethod m : all_synth_methods()) {
    const bool swap = m == SynthMethod::deepfakes || m == SynthMethod::faceswap || m == SynthMethod::faceshifter;
    int donor = 0, count = 0;
    for (int a = 0; a < n; ++a) {
      const int b = (a + 1) % n;
      for (int t = 0; t < frames; ++t) {
        const SynthFake f = g.render_fake(m, a, b, t, g.render_real(a, t).image);
        PixelSet region(f.mask.size());
        for (size_t p = 0; p < region.size(); ++p) region[p] = f.mask[p] == 255;
        synth::FaceRender source = w.real_render(a, a, t);
        if (!swap) {  // a reenactment carries b's expression: both references do too
          const synth::Expression e = synth::scene_expression(w.scenes[size_t(b)], t);
          source.expr.mouth_open = e.mouth_open;
          source.expr.smile = e.smile;
          source.expr.brow_raise = e.brow_raise;
        }
        synth::FaceRender swapped = source;
        swapped.inner = &w.traits[b];
        const std::vector<std::vector<float>> refs = {standardised(clean(source), region),
                                                      standardised(clean(swapped), region)};
        const std::vector<float> x(f.image.rgb.begin(), f.image.rgb.end());
        donor += nearest_mean(standardised(x, region), refs, {0, 1}, region) == 1;
        ++count;
      }
    }
    if (swap)
      EXPECT_GT(double(donor) / count, 0.8) << synth_method_name(m) << ": " << donor << " of " << count << " nearer b";
    else
      EXPECT_LT(double(donor) / count, 0.2) << synth_method_name(m) << ": " << donor << " of " << count << " nearer b";
  }
}

// Splits are disjoint groups of identities; within a group, every method makes one fake per
// identity (as its source) with a target from the same group, and the three face swaps give an
// identity three different targets: "A's context -> A's partner" cannot be learnt from the swaps.
TEST(Synth, EveryIdentityIsASourceOncePerMethodWithVaryingTargets) {
  const SynthOptions o = small_options(4, 40);
  const SynthGenerator g(o);
  const SynthSplits s = g.splits();
  ASSERT_EQ(s.groups.size(), 3u);
  EXPECT_EQ(s.groups[0].size(), 28u);
  EXPECT_EQ(s.groups[1].size(), 6u);
  EXPECT_EQ(s.groups[2].size(), 6u);
  std::map<int, int> group_of;
  for (int k = 0; k < 3; ++k)
    for (int id : s.groups[size_t(k)]) EXPECT_TRUE(group_of.emplace(id, k).second) << id << " is in two splits";
  EXPECT_EQ(group_of.size(), 40u);

  std::map<int, std::set<int>> swap_targets, all_targets;
  for (SynthMethod m : all_synth_methods()) {
    std::map<int, int> sources;
    for (const auto& [a, b] : g.fakes(m)) {
      EXPECT_NE(a, b);
      EXPECT_EQ(group_of.at(a), group_of.at(b)) << a << "_" << b << " crosses splits";
      ++sources[a];
      all_targets[a].insert(b);
      if (m == SynthMethod::deepfakes || m == SynthMethod::faceswap || m == SynthMethod::faceshifter)
        swap_targets[a].insert(b);
    }
    EXPECT_EQ(sources.size(), 40u) << synth_method_name(m);
    for (const auto& [a, k] : sources) EXPECT_EQ(k, 1) << synth_method_name(m) << ": " << a << " is a source " << k << " times";
  }
  for (const auto& [a, t] : swap_targets) EXPECT_EQ(t.size(), 3u) << a << ": the swaps' targets";
  for (const auto& [a, t] : all_targets) EXPECT_EQ(t.size(), 5u) << a << ": the targets over all methods";

  // The splits' pair lists name every fake, each unordered pair once, within its split.
  std::set<std::array<int, 2>> listed;
  const std::vector<std::array<int, 2>>* parts[] = {&s.train, &s.val, &s.test};
  for (int k = 0; k < 3; ++k)
    for (const auto& [a, b] : *parts[k]) {
      EXPECT_EQ(group_of.at(a), k);
      EXPECT_EQ(group_of.at(b), k);
      EXPECT_TRUE(listed.insert({std::min(a, b), std::max(a, b)}).second) << a << ", " << b << " listed twice";
    }
  for (SynthMethod m : all_synth_methods())
    for (const auto& [a, b] : g.fakes(m)) EXPECT_TRUE(listed.count({std::min(a, b), std::max(a, b)})) << a << "_" << b;

  // Six identities: one pair per split, and each method's fakes are that pair both ways.
  const SynthGenerator tiny(small_options(4, 6));
  const SynthSplits ts = tiny.splits();
  EXPECT_EQ(ts.train.size(), 1u);
  EXPECT_EQ(ts.val.size(), 1u);
  EXPECT_EQ(ts.test.size(), 1u);
  EXPECT_EQ(tiny.fakes(SynthMethod::faceswap).size(), 6u);
}

// Head and inner face share the identity's latent (synth_model.h): over 300 identities the head's
// traits predict the inner face's. Without the latent a swap would look like a plausible new
// person, and nothing would be left for FST-Matching to match.
TEST(Synth, HeadAndInnerFaceShareTheIdentityLatent) {
  const int n = 300;
  std::vector<double> width, spacing, skin, iris, hairline, brow;
  for (int i = 0; i < n; ++i) {
    Rng rng(synth::stream_seed(9, synth::Stream::identity, uint64_t(i)));
    const synth::FaceTraits t = synth::sample_traits(rng);
    width.push_back(t.face_width);
    spacing.push_back(t.eye_spacing);
    skin.push_back(t.skin.r + t.skin.g + t.skin.b);
    iris.push_back(t.iris.r + t.iris.g + t.iris.b);
    hairline.push_back(t.hairline);
    brow.push_back(t.brow_thickness);
  }
  auto corr = [](const std::vector<double>& x, const std::vector<double>& y) {
    const double n = double(x.size());
    double mx = 0, my = 0;
    for (size_t i = 0; i < x.size(); ++i) mx += x[i] / n, my += y[i] / n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      sxy += (x[i] - mx) * (y[i] - my);
      sxx += (x[i] - mx) * (x[i] - mx);
      syy += (y[i] - my) * (y[i] - my);
    }
    return sxy / std::sqrt(sxx * syy);
  };
  EXPECT_GT(corr(width, spacing), 0.6) << "build: face width and eye spacing";
  EXPECT_GT(corr(skin, iris), 0.5) << "pigment: skin and iris lightness";
  EXPECT_GT(corr(hairline, brow), 0.5) << "age: receding hairline and thinner brows";
}

// ---- the written dataset (needs video encoding) --------------------------------------------------

namespace {

#define FSTM_REQUIRE_VIDEO()                                                                        \
  do {                                                                                              \
    if (!::fstm::io::video_supported()) GTEST_SKIP() << "fstm was built without FFmpeg: cannot encode videos"; \
  } while (0)

SynthOptions dataset_options(uint64_t seed) {
  SynthOptions o = small_options(seed, 6, 3, 64);
  return o;
}

}  // namespace

TEST(SynthDataset, LayoutLabelsSplitsAndLosslessRaw) {
  FSTM_REQUIRE_VIDEO();
  const std::string dir = test::temp_dir("ds");
  const SynthOptions o = dataset_options(31);
  const SynthSummary sum = write_synth_dataset(o, dir, false);
  EXPECT_EQ(sum.real_videos, 6 * 3);
  EXPECT_EQ(sum.fake_videos, 5 * 6 * 3);
  EXPECT_EQ(sum.files, 6 * 3 + 5 * 6 * 4 + 3 + 2);

  const fs::path root(dir);
  const nlohmann::json meta = nlohmann::json::parse(std::ifstream(root / "synth.json"));
  EXPECT_EQ(meta["seed"], 31);
  EXPECT_EQ(meta["identities"], 6);
  EXPECT_EQ(meta["methods"].size(), 5u);
  // One entry per frame of every raw video (c23/c40 share them), under the authors' key scheme.
  const nlohmann::json ldm = nlohmann::json::parse(std::ifstream(root / "ldm.json"));
  EXPECT_EQ(ldm.size(), size_t((6 + 5 * 6) * o.frames));
  EXPECT_TRUE(ldm.contains("original_sequences/youtube/raw/frames/000/frame_0"));
  EXPECT_FALSE(ldm.contains("original_sequences/youtube/c23/frames/000/frame_0"));

  // Splits: three pairs, disjoint, every identity once; each pair's videos exist.
  std::set<std::string> ids;
  const SynthGenerator g(o);
  int pairs = 0;
  for (const char* part : {"train", "val", "test"}) {
    const nlohmann::json js = nlohmann::json::parse(std::ifstream(root / "splits" / (std::string(part) + ".json")));
    ASSERT_TRUE(js.is_array());
    for (const auto& p : js) {
      ++pairs;
      const std::string a = p[0], b = p[1];
      EXPECT_TRUE(ids.insert(a).second && ids.insert(b).second) << part << " repeats an identity";
      for (const std::string& x : {a, b})
        EXPECT_TRUE(fs::exists(root / ("original_sequences/youtube/c40/videos/" + x + ".mp4")));
      for (SynthMethod m : all_synth_methods())
        for (const std::string& v : {a + "_" + b, b + "_" + a}) {
          const std::string rel = std::string("manipulated_sequences/") + synth_method_name(m);
          for (const char* c : {"raw", "c23", "c40"}) EXPECT_TRUE(fs::exists(root / (rel + "/" + c + "/videos/" + v + ".mp4")));
          EXPECT_TRUE(fs::exists(root / (rel + "/masks/videos/" + v + ".mp4")));
        }
    }
  }
  EXPECT_EQ(pairs, 3);
  EXPECT_EQ(ids.size(), 6u);

  // Labels: real NNN -> det 0, source = target = "NNN"; A_B -> det 1, source A, target B.
  for (int id = 0; id < 6; ++id) {
    const auto& e = ldm.at("original_sequences/youtube/raw/frames/" + id3(id) + "/frame_2");
    EXPECT_EQ(e["det_label"], 0);
    EXPECT_EQ(e["source_label"], id3(id));
    EXPECT_EQ(e["target_label"], id3(id));
    ASSERT_EQ(e["landmark"].size(), 68u);
    ASSERT_EQ(e["landmark"][0].size(), 2u);
  }
  const auto test_pair = g.splits().test.at(0);
  const int a = test_pair[0], b = test_pair[1];
  const auto& ab = ldm.at("manipulated_sequences/Deepfakes/raw/frames/" + id3(a) + "_" + id3(b) + "/frame_1");
  EXPECT_EQ(ab["det_label"], 1);
  EXPECT_EQ(ab["source_label"], id3(a));
  EXPECT_EQ(ab["target_label"], id3(b));
  const auto& ba = ldm.at("manipulated_sequences/FaceShifter/raw/frames/" + id3(b) + "_" + id3(a) + "/frame_0");
  EXPECT_EQ(ba["det_label"], 1);
  EXPECT_EQ(ba["source_label"], id3(b));
  EXPECT_EQ(ba["target_label"], id3(a));

  // Raw is lossless: decoding gives back the rendered frames, masks and their landmarks.
  const std::vector<Image> real = decode_video((root / ("original_sequences/youtube/raw/videos/" + id3(a) + ".mp4")).string());
  ASSERT_EQ(real.size(), size_t(o.frames));
  for (int t = 0; t < o.frames; ++t) {
    const SynthFrame f = g.render_real(a, t);
    EXPECT_EQ(real[t].rgb, f.image.rgb) << "frame " << t;
    const auto& e = ldm.at("original_sequences/youtube/raw/frames/" + id3(a) + "/frame_" + std::to_string(t));
    EXPECT_NEAR(e["landmark"][30][1].get<double>(), f.landmarks[30][1], 0.006);
  }
  const std::string fake_name = id3(a) + "_" + id3(b) + ".mp4";
  const std::vector<Image> fake = decode_video((root / ("manipulated_sequences/FaceSwap/raw/videos/" + fake_name)).string());
  const std::vector<Image> mask = decode_video((root / ("manipulated_sequences/FaceSwap/masks/videos/" + fake_name)).string());
  ASSERT_EQ(fake.size(), size_t(o.frames));
  ASSERT_EQ(mask.size(), size_t(o.frames));
  for (int t = 0; t < o.frames; ++t) {
    const SynthFake f = g.render_fake(SynthMethod::faceswap, a, b, t, real[t]);
    EXPECT_EQ(fake[t].rgb, f.image.rgb);
    for (size_t i = 0; i < f.mask.size(); ++i) ASSERT_EQ(mask[t].rgb[3 * i + 1], f.mask[i]) << "mask pixel " << i;
  }
  // Stronger compression, smaller files.
  const auto size_of = [&](const char* c) {
    return fs::file_size(root / ("manipulated_sequences/FaceSwap/" + std::string(c) + "/videos/" + fake_name));
  };
  EXPECT_GT(size_of("raw"), size_of("c23"));
  EXPECT_GT(size_of("c23"), size_of("c40"));
}

TEST(SynthDataset, SameSeedSameBytes) {
  FSTM_REQUIRE_VIDEO();
  const std::string d1 = test::temp_dir("a"), d2 = test::temp_dir("b"), d3 = test::temp_dir("c");
  SynthOptions o = dataset_options(8);
  o.threads = 2;
  write_synth_dataset(o, d1, false);
  o.threads = 1;  // the thread count must not matter
  write_synth_dataset(o, d2, false);
  o.seed = 9;
  write_synth_dataset(o, d3, false);
  int files = 0, same_as_other_seed = 0;
  for (const auto& e : fs::recursive_directory_iterator(d1)) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), d1);
    ++files;
    EXPECT_EQ(read_bytes(e.path()), read_bytes(fs::path(d2) / rel)) << rel << " differs between two runs";
    if (fs::exists(fs::path(d3) / rel)) same_as_other_seed += read_bytes(e.path()) == read_bytes(fs::path(d3) / rel);
  }
  EXPECT_GT(files, 100);
  EXPECT_LE(same_as_other_seed, 0) << "files identical across seeds";
}

TEST(SynthDataset, RefusesToOverwriteOtherData) {
  FSTM_REQUIRE_VIDEO();
  const fs::path dir = test::temp_dir("busy");
  std::ofstream(dir / "precious.txt") << "keep me";
  SynthOptions o = dataset_options(3);
  o.frames = 1;
  o.compress = false;
  EXPECT_THROW(write_synth_dataset(o, dir.string(), false), Error);
  EXPECT_THROW(write_synth_dataset(o, dir.string(), true), Error) << "no synth.json: not ours to delete";
  EXPECT_TRUE(fs::exists(dir / "precious.txt"));
  const fs::path ours = test::temp_dir("ours");
  write_synth_dataset(o, ours.string(), false);
  EXPECT_FALSE(fs::exists(ours / "original_sequences/youtube/c23")) << "--no-compress writes raw only";
  EXPECT_THROW(write_synth_dataset(o, ours.string(), false), Error);
  o.identities = 4;
  EXPECT_NO_THROW(write_synth_dataset(o, ours.string(), true));
  EXPECT_FALSE(fs::exists(ours / "original_sequences/youtube/raw/videos/005.mp4")) << "stale video of the old run";
}
