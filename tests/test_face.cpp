// Faces: the authors' alignment template and similarity fit, warping, the FF++ crop, landmark
// files, and dlib detection + landmarks on a real photograph (scikit-image's astronaut.png, from
// Debian's python3-skimage).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "fstm_build_config.h"
#include "io/face.h"
#include "io/face_engine.h"
#include "tensor/random.h"
#include "tests/test_support.h"

namespace fstm::io {
namespace {

const char* kAstronaut = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";

float dist(Point2 a, Point2 b) { return std::hypot(a.x - b.x, a.y - b.y); }

// A similarity (rotation deg, scale, shift) as a Mat3, for making test point sets and images.
Mat3 similarity(double deg, double s, double tx, double ty) {
  const double r = deg * M_PI / 180;
  Mat3 m;
  m.m[0][0] = s * std::cos(r), m.m[0][1] = -s * std::sin(r), m.m[0][2] = tx;
  m.m[1][0] = s * std::sin(r), m.m[1][1] = s * std::cos(r), m.m[1][2] = ty;
  return m;
}

TEST(FaceAlign, TemplateMatchesTheAuthorsNumbers) {
  // Oracle: the authors' get_mean_face(MEAN_FACE * scale, face_width, canvas) run in numpy.
  const double at09[5][2] = {{75.745703, 92.561983},
                             {147.745703, 92.383388},
                             {111.625247, 144.584174},
                             {81.902365, 186.02365},
                             {141.848486, 185.420018}};
  const double at10_w64_c160[5][2] = {{50.996562, 66.115702},
                                      {108.596562, 65.964368},
                                      {79.700197, 110.197321},
                                      {55.921892, 145.311552},
                                      {103.878789, 144.800058}};
  AlignOptions opt;  // 224, 80, 0.9
  FivePoints t = alignment_template(opt);
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(t[i].x, at09[i][0], 1e-3) << i;
    EXPECT_NEAR(t[i].y, at09[i][1], 1e-3) << i;
  }
  opt.canvas = 160, opt.face_width = 64, opt.scale = 0.9f;
  t = alignment_template(opt);
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(t[i].x, at10_w64_c160[i][0], 1e-3) << i;
    EXPECT_NEAR(t[i].y, at10_w64_c160[i][1], 1e-3) << i;
  }
  // context: same face, centred in a larger output
  AlignOptions big;
  big.context = 1.5f;
  EXPECT_EQ(aligned_size(big), 336);
  const FivePoints tb = alignment_template(big);
  EXPECT_NEAR(tb[2].x, at09[2][0] + 56, 1e-3);
  EXPECT_NEAR(tb[2].y, at09[2][1] + 56, 1e-3);
}

TEST(FaceAlign, FivePointsFrom68) {
  std::vector<Point2> ld(68);
  for (int i = 0; i < 68; ++i) ld[i] = {float(i), float(2 * i)};
  const FivePoints p = five_points(ld);
  EXPECT_FLOAT_EQ(p[0].x, 38.5f);  // mean of 36..41
  EXPECT_FLOAT_EQ(p[1].x, 44.5f);  // mean of 42..47
  EXPECT_FLOAT_EQ(p[2].y, 60.0f);  // point 30
  EXPECT_FLOAT_EQ(p[3].x, 48.0f);
  EXPECT_FLOAT_EQ(p[4].x, 54.0f);
  EXPECT_THROW(five_points(std::vector<Point2>(10)), Error);
}

TEST(FaceAlign, SimilarityFitRecoversATransformedPointSet) {
  const FivePoints tpl = alignment_template({});
  Rng rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    // landmarks = the template moved by a random similarity; alignment must undo it exactly
    const Mat3 m = similarity(rng.uniform(-60, 60), rng.uniform(0.3f, 4.0f), rng.uniform(-300, 300),
                              rng.uniform(-300, 300));
    FivePoints pts;
    for (int i = 0; i < 5; ++i) pts[i] = m.apply(tpl[i]);
    const Mat3 a = alignment_transform(pts, {});
    for (int i = 0; i < 5; ++i) EXPECT_LT(dist(a.apply(pts[i]), tpl[i]), 1e-2f) << "trial " << trial << " point " << i;
  }
}

TEST(FaceAlign, SimilarityFitIsLeastSquaresAndNeverReflects) {
  // Mirror image of a point set: the best similarity cannot flip it, so the fit has det > 0 and
  // is the least-squares optimum: no small perturbation of (a, b, tx, ty) lowers the error.
  const Point2 src[4] = {{0, 0}, {10, 0}, {10, 5}, {0, 5}};
  const Point2 dst[4] = {{0, 0}, {-10, 0}, {-10, 5}, {0, 5}};
  const Mat3 m = fit_similarity(src, dst, 4);
  EXPECT_GE(m.m[0][0] * m.m[1][1] - m.m[0][1] * m.m[1][0], 0.0);
  auto err = [&](const Mat3& t) {
    double e = 0;
    for (int i = 0; i < 4; ++i) {
      const Point2 p = t.apply(src[i]);
      e += (p.x - dst[i].x) * (p.x - dst[i].x) + (p.y - dst[i].y) * (p.y - dst[i].y);
    }
    return e;
  };
  const double best = err(m);
  for (int k = 0; k < 4; ++k)
    for (double d : {-1e-3, 1e-3}) {
      Mat3 t = m;
      if (k == 0) t.m[0][0] += d, t.m[1][1] += d;   // a
      if (k == 1) t.m[0][1] += d, t.m[1][0] -= d;   // b
      if (k == 2) t.m[0][2] += d;
      if (k == 3) t.m[1][2] += d;
      EXPECT_GE(err(t), best - 1e-9) << "parameter " << k;
    }
}

TEST(FaceAlign, MatchesTheAuthorsTransformOnARealFace) {
  // dlib's 5 points of the astronaut's face, and the matrix the authors' get_align_transform
  // (numpy) computes for them. The template is stretched vertically (y / ry, ry ~ 0.78), so no
  // similarity fits a real face exactly: residuals of 10-18 px are the authors' too.
  const FivePoints p = {Point2{203.1667f, 101.6667f}, Point2{246.5f, 104.1667f}, Point2{225.0f, 127.0f},
                        Point2{200.0f, 139.0f}, Point2{245.0f, 141.0f}};
  const double expected[2][3] = {{1.899954, 0.113917, -327.652032}, {-0.113917, 1.899954, -67.166608}};
  const double residual[5][2] = {{-5.808732, 10.289329},
                                 {4.807347, 10.281407},
                                 {2.67989, 3.912063},
                                 {-13.729079, -11.880035},
                                 {12.050575, -12.602763}};
  const Mat3 m = alignment_transform(p, {});
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(m.m[i][j], expected[i][j], j == 2 ? 2e-3 : 1e-5) << i << "," << j;
  const FivePoints tpl = alignment_template({});
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(m.apply(p[i]).x - tpl[i].x, residual[i][0], 2e-3) << i;
    EXPECT_NEAR(m.apply(p[i]).y - tpl[i].y, residual[i][1], 2e-3) << i;
  }
}

TEST(FaceAlign, JitterMovesTheTemplateAsAsked) {
  const FivePoints tpl = alignment_template({});
  AlignOptions opt;
  opt.shift_x = 7, opt.shift_y = -4;
  Mat3 m = alignment_transform(tpl, opt);
  for (int i = 0; i < 5; ++i) EXPECT_LT(dist(m.apply(tpl[i]), {tpl[i].x + 7, tpl[i].y - 4}), 1e-3f);
  opt = {};
  opt.rotation = 90;  // counter-clockwise on screen about (112, 112): (x, y) -> (y, 224 - x)
  m = alignment_transform(tpl, opt);
  for (int i = 0; i < 5; ++i) EXPECT_LT(dist(m.apply(tpl[i]), {tpl[i].y, 224 - tpl[i].x}), 1e-3f);
  opt = {};
  opt.stretch_a = 1.03f;  // eyes 3% further apart, mouth corners 3% closer
  m = alignment_transform(tpl, opt);
  const float eyes = dist(m.apply(tpl[0]), m.apply(tpl[1])), mouth = dist(m.apply(tpl[3]), m.apply(tpl[4]));
  EXPECT_NEAR(eyes / dist(tpl[0], tpl[1]), 1.03f, 1e-3);
  EXPECT_NEAR(mouth / dist(tpl[3], tpl[4]), 1 / 1.03f, 1e-3);
}

TEST(FaceWarp, ExactForShiftsAndQuarterTurns) {
  Rng rng(1);
  Image im = Image::blank(20, 12);
  for (auto& v : im.rgb) v = uint8_t(rng.below(256));
  Mat3 shift;
  shift.m[0][2] = 3, shift.m[1][2] = -2;  // dst(x, y) = src(x - 3, y + 2)
  Image out = warp_image(im, shift, 20, 12);
  EXPECT_EQ(out.at(10, 5)[1], im.at(7, 7)[1]);
  EXPECT_EQ(out.at(0, 0)[0], 0);  // from outside: black
  Mat3 quarter;                   // (x, y) -> (11 - y, x): a 90 degree turn into a 12x20 image
  quarter.m[0][0] = 0, quarter.m[0][1] = -1, quarter.m[0][2] = 11;
  quarter.m[1][0] = 1, quarter.m[1][1] = 0, quarter.m[1][2] = 0;
  out = warp_image(im, quarter, 12, 20);
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 20; ++x) ASSERT_EQ(out.at(11 - y, x)[2], im.at(x, y)[2]);
  // half-pixel shift: the mean of two neighbours
  Mat3 half;
  half.m[0][2] = -0.5;
  out = warp_image(im, half, 20, 12);
  EXPECT_NEAR(out.at(4, 4)[0], (im.at(4, 4)[0] + im.at(5, 4)[0]) / 2.0, 0.51);
}

TEST(FaceCrop, FaceForensicsBoundingBox) {
  // box 100..200 x 50..130 in 640x480: size int(100 * 1.3) = 130, centre (150, 90)
  CropRect r = ffpp_crop({100, 50, 200, 130}, 640, 480);
  EXPECT_EQ(r.x, 85);
  EXPECT_EQ(r.y, 25);
  EXPECT_EQ(r.size, 130);
  // near the corner: clamped to the image, which shrinks the square
  r = ffpp_crop({-10, 400, 90, 470}, 640, 480);
  EXPECT_EQ(r.x, 0);
  EXPECT_EQ(r.y, 370);  // centre y 435 - 65
  EXPECT_EQ(r.size, 110);  // 480 - 370
  // the returned map sends a marker's centre to where the marker shows up in the crop
  Mat3 t;
  Image im = Image::blank(640, 480, 0);
  for (int y = 80; y < 90; ++y)
    for (int x = 140; x < 150; ++x) im.at(x, y)[0] = 255;  // centre (144.5, 84.5)
  const Image crop = crop_face(im, ffpp_crop({100, 50, 200, 130}, 640, 480), 224, &t);
  EXPECT_EQ(crop.width, 224);
  double sx = 0, sy = 0, sw = 0;
  for (int y = 0; y < 224; ++y)
    for (int x = 0; x < 224; ++x) sx += x * crop.at(x, y)[0], sy += y * crop.at(x, y)[0], sw += crop.at(x, y)[0];
  const Point2 c = t.apply({144.5f, 84.5f});
  EXPECT_NEAR(c.x, sx / sw, 0.05);
  EXPECT_NEAR(c.y, sy / sw, 0.05);
  EXPECT_THROW(crop_face(im, {600, 0, 100}, 224), Error);
}

TEST(FaceLandmarkFile, AuthorsKeysAndLabelsReadBack) {
  const std::string dir = test::temp_dir("ldm");
  std::ostringstream list;
  list << "[";
  for (int i = 0; i < 68; ++i) list << (i ? "," : "") << "[" << i << "," << i + 1 << "]";
  list << "]";
  const std::string pts = list.str();
  // as the authors' script wrote it: prefixed keys, int labels for reals, strings for fakes
  std::ofstream(dir + "/ldm.json") << "{\"./images/manipulated_sequences/Deepfakes/raw/frames/035_036/frame_0\": "
                                   << "{\"landmark\": " << pts
                                   << ", \"source_label\": \"035\", \"target_label\": \"036\", \"det_label\": 1},"
                                   << "\"./images/original_sequences/youtube/c23/frames/035/frame_12\": {\"landmark\": "
                                   << pts << ", \"source_label\": 35, \"target_label\": 35, \"det_label\": 0}}";
  const LandmarkMap m = load_landmarks(dir + "/ldm.json");
  ASSERT_EQ(m.size(), 2u);
  const LandmarkEntry* e = find_landmarks(m, "manipulated_sequences/Deepfakes/raw/videos/035_036.mp4", 0);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->source_label, "035");
  EXPECT_EQ(e->target_label, "036");
  EXPECT_EQ(e->det_label, 1);
  EXPECT_FLOAT_EQ(e->landmark[30].y, 31);
  // the c40 video has no entry: the raw frame's landmarks carry over
  EXPECT_EQ(find_landmarks(m, "manipulated_sequences/Deepfakes/c40/videos/035_036.mp4", 0), e);
  EXPECT_EQ(find_landmarks(m, "manipulated_sequences/Deepfakes/raw/videos/035_036.mp4", 1), nullptr);
  const LandmarkEntry* r = find_landmarks(m, "original_sequences/youtube/c23/videos/035.mp4", 12);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->source_label, "35");
  EXPECT_EQ(landmark_key("original_sequences/youtube/c23/videos/035.mp4", 12),
            "original_sequences/youtube/c23/frames/035/frame_12");

  save_landmarks(m, dir + "/out.json");  // and back
  const LandmarkMap again = load_landmarks(dir + "/out.json");
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again.begin()->first, m.begin()->first);
  EXPECT_EQ(again.begin()->second.landmark.size(), 68u);
  EXPECT_FLOAT_EQ(again.begin()->second.landmark[67].x, 67);

  std::ofstream(dir + "/bad.json") << "{\"k\": {\"landmark\": [[1, 2], [3]]}}";
  try {
    load_landmarks(dir + "/bad.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("bad.json"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("'k'"), std::string::npos) << err.what();
  }
  EXPECT_THROW(load_landmarks(dir + "/missing.json"), Error);
}

// Without the faces component (a product linking fstm::core alone), or in a build without dlib,
// making a detector says what to link or install and how to do without. The component is
// unregistered for the test and registered again after it.
TEST(FaceNoDlib, DetectorSaysHowToDoWithout) {
  FaceEngine* linked = registered_face_engine();
  EXPECT_EQ(linked != nullptr, bool(FSTM_HAVE_DLIB)) << "the faces component did not register its engine";
  register_face_engine(nullptr);
  EXPECT_FALSE(face_detection_supported());
  try {
    FaceDetector d;
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string why = FSTM_HAVE_DLIB ? "fstm::faces" : "without dlib";
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--landmarks"), std::string::npos) << e.what();
  }
  register_face_engine(linked);
  EXPECT_EQ(face_detection_supported(), bool(FSTM_HAVE_DLIB));
}

// ---- dlib on a real photograph ----------------------------------------------------------------

class FaceDlib : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!face_detection_supported()) GTEST_SKIP() << "fstm was built without dlib";
    if (!std::filesystem::exists(kAstronaut)) GTEST_SKIP() << kAstronaut << " missing: apt-get install python3-skimage";
    if (!std::filesystem::exists(default_landmark_model()))
      GTEST_SKIP() << default_landmark_model() << " missing: apt-get install libdlib-data";
  }
  static const FaceDetector& detector() {
    static FaceDetector d;  // the model loads once for all tests
    return d;
  }
};

TEST_F(FaceDlib, AstronautFaceBoxAndLandmarksArePlausible) {
  const Image im = load_image(kAstronaut);
  const auto face = detector().detect_largest(im);
  ASSERT_TRUE(face.has_value()) << "no face found in astronaut.png";
  const FaceBox& b = face->box;
  // scikit-image's own LBP cascade (an independent detector) puts the face at x 175..268,
  // y 70..163; the two boxes must overlap well.
  const float ix = std::max(0.0f, std::min(b.right, 268.0f) - std::max(b.left, 175.0f));
  const float iy = std::max(0.0f, std::min(b.bottom, 163.0f) - std::max(b.top, 70.0f));
  const float inter = ix * iy, uni = b.area() + 93 * 93 - inter;
  EXPECT_GT(inter / uni, 0.5f) << "box " << b.left << "," << b.top << "," << b.right << "," << b.bottom;

  ASSERT_EQ(face->landmarks.size(), 68u);
  const FivePoints p = five_points(face->landmarks);
  // eyes above the nose above the mouth; left eye left of the right eye (image coordinates)
  EXPECT_LT(p[0].y, p[2].y);
  EXPECT_LT(p[1].y, p[2].y);
  EXPECT_LT(p[2].y, p[3].y);
  EXPECT_LT(p[2].y, p[4].y);
  EXPECT_LT(p[0].x, p[1].x);
  EXPECT_LT(p[3].x, p[4].x);
  EXPECT_GT(p[2].x, p[0].x);
  EXPECT_LT(p[2].x, p[1].x);
  const float margin = 0.1f * b.width();
  for (const Point2& q : p) {
    EXPECT_GT(q.x, b.left - margin);
    EXPECT_LT(q.x, b.right + margin);
    EXPECT_GT(q.y, b.top - margin);
    EXPECT_LT(q.y, b.bottom + margin);
  }
  // the jaw line (0..16) runs from the face's left to its right side
  EXPECT_LT(face->landmarks[0].x, p[0].x);
  EXPECT_GT(face->landmarks[16].x, p[1].x);
}

TEST_F(FaceDlib, AlignmentUndoesAKnownTransformOfARealPhoto) {
  const Image im = load_image(kAstronaut);
  // turn and shrink the photograph by a known similarity first: alignment must undo it
  const Mat3 turn = similarity(25, 0.8, 120, -60);
  const Image turned = warp_image(im, turn, 512, 512);
  const auto f0 = detector().detect_largest(im);
  ASSERT_TRUE(f0.has_value());
  const FivePoints p0 = five_points(f0->landmarks);
  FivePoints p1;
  for (int i = 0; i < 5; ++i) p1[i] = turn.apply(p0[i]);

  const FivePoints tpl = alignment_template({});
  Mat3 m0, m1;
  const Image a0 = align_face(im, p0, {}, &m0);
  const Image a1 = align_face(turned, p1, {}, &m1);
  ASSERT_EQ(a0.width, 224);
  for (int i = 0; i < 5; ++i) {
    // the authors' template is not a similarity image of a real face (see
    // MatchesTheAuthorsTransformOnARealFace): about 20 px at most
    EXPECT_LT(dist(m0.apply(p0[i]), tpl[i]), 20.0f) << "point " << i;
    EXPECT_LT(dist(m1.apply(p1[i]), m0.apply(p0[i])), 0.05f) << "point " << i;
  }
  // the two aligned crops show the same face: close pixels (resampling differs)
  double diff = 0;
  for (size_t i = 0; i < a0.rgb.size(); ++i) diff += std::abs(int(a0.rgb[i]) - int(a1.rgb[i]));
  EXPECT_LT(diff / a0.rgb.size(), 8.0);
  // dlib finds the landmarks again where the warp put them (the warp moves the pixels right)
  const auto again = detector().detect_largest(a0);
  ASSERT_TRUE(again.has_value()) << "no face in the aligned crop";
  const FivePoints pa = five_points(again->landmarks);
  for (int i = 0; i < 5; ++i) EXPECT_LT(dist(pa[i], m0.apply(p0[i])), 5.0f) << "point " << i;
}

TEST_F(FaceDlib, ThreadsShareOneDetector) {
  const Image im = load_image(kAstronaut);
  const auto ref = detector().detect_largest(im);
  ASSERT_TRUE(ref.has_value());
  std::vector<std::optional<FaceDetection>> got(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) threads.emplace_back([&, t] { got[t] = detector().detect_largest(im); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) {
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(g->box.left, ref->box.left);
    EXPECT_EQ(g->landmarks[30].x, ref->landmarks[30].x);
  }
}

TEST_F(FaceDlib, DetectingOnASmallerCopyFindsTheSameFace) {
  const Image im = load_image(kAstronaut);
  const auto full = detector().detect_largest(im);
  const FaceDetector small(default_landmark_model(), 1, 256);  // detection at half size
  const auto half = small.detect_largest(im);
  ASSERT_TRUE(full.has_value());
  ASSERT_TRUE(half.has_value());
  // boxes in full-image pixels, a few pixels apart; landmarks on the full image, close too
  EXPECT_NEAR(half->box.left, full->box.left, 6);
  EXPECT_NEAR(half->box.right, full->box.right, 6);
  EXPECT_NEAR(half->box.top, full->box.top, 6);
  const FivePoints a = five_points(full->landmarks), b = five_points(half->landmarks);
  for (int i = 0; i < 5; ++i) EXPECT_LT(dist(a[i], b[i]), 4.0f) << "point " << i;
  EXPECT_THROW(FaceDetector(default_landmark_model(), 1, 20), Error);
}

TEST_F(FaceDlib, NoFaceAndBadModel) {
  EXPECT_FALSE(detector().detect_largest(Image::blank(200, 150, 128)).has_value());
  EXPECT_THROW(FaceDetector("/nonexistent/model.dat"), Error);
  const std::string dir = test::temp_dir("model");
  std::ofstream(dir + "/junk.dat") << "not a model";
  try {
    FaceDetector d(dir + "/junk.dat");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.dat"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fstm::io
