// The demo's explanation protocol (fstm/lib/explain_study.h) against the synthetic generator's own
// frames: the faces it picks, the aligned masks and pristine counterparts, and the statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "fstm/lib/evaluator.h"
#include "fstm/lib/explain_study.h"
#include "fstm/lib/pipeline.h"
#include "io/loader.h"
#include "tests/test_support.h"

namespace fstm {
namespace {

// One small synthetic data set with c23/c40, shared by the tests of this file.
const SyntheticFaces& study_data() {
  static const SyntheticFaces faces = [] {
    SyntheticFacesOptions o;
    o.identities = 8;
    o.frames = 3;
    o.video_size = 64;
    o.face_size = 48;
    o.faces_per_video = 2;
    o.progress = false;
    return prepare_synthetic_faces(o, test::temp_dir("explain_study"));
  }();
  return faces;
}

TEST(ExplainStudy, PicksTestFakesOfEveryMethodFromSeveralVideos) {
  const io::FaceIndex index = io::FaceIndex::load(study_data().index);
  const std::vector<StudyFace> faces = pick_test_fakes(index, 10);
  ASSERT_EQ(faces.size(), 10u);  // 1 test pair: 2 videos per method
  std::set<std::string> methods, videos;
  for (const StudyFace& f : faces) {
    methods.insert(f.method);
    videos.insert(f.method + "/" + f.video_id);
    ASSERT_EQ(f.frame_at.size(), 3u);
    for (const auto& [c, i] : f.frame_at) {
      const io::IndexVideo& v = index.videos[size_t(index.frames[size_t(i)].video)];
      EXPECT_EQ(v.split, "test");
      EXPECT_EQ(v.det, 1);
      EXPECT_EQ(io::compression_name(v.compression), c);
      EXPECT_EQ(index.frames[size_t(i)].frame, f.frame);
    }
  }
  EXPECT_EQ(methods.size(), 5u);
  EXPECT_EQ(videos.size(), 10u);  // no face twice
  EXPECT_EQ(faces[0].method, io::ffpp_methods()[0]);  // round robin: every method before a second face
  EXPECT_NE(faces[0].video_id, faces[5].video_id);
  std::set<std::string> first_round;  // one round already shows both test videos (the pair's two directions)
  for (int i = 0; i < 5; ++i) first_round.insert(faces[size_t(i)].video_id);
  EXPECT_EQ(first_round.size(), 2u);
}

// The pristine face is the fake's source frame aligned like the fake: equal to the fake (up to the
// rounding of one level) wherever the generator's mask is 0, different inside the mask.
TEST(ExplainStudy, AlignedPristineEqualsTheFakeOutsideTheGeneratorsMask) {
  const SyntheticFaces& data = study_data();
  const io::FaceIndex index = io::FaceIndex::load(data.index);
  const int size = index.settings.size;
  for (const StudyFace& f : pick_test_fakes(index, 5)) {
    const int64_t raw = f.frame_at.at("raw");
    const AlignedTruth t = aligned_truth(index, raw, size);
    ASSERT_TRUE(t.why_not.empty()) << t.why_not;
    const io::Image fake = io::load_face(index, index.frames[size_t(raw)], size);
    ASSERT_EQ(t.pristine.width, size);
    int outside = 0, inside = 0, max_outside = 0;
    double diff_inside = 0;
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        int d = 0;
        for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(int(fake.at(x, y)[c]) - int(t.pristine.at(x, y)[c])));
        const int m = std::max({t.mask.at(x, y)[0], t.mask.at(x, y)[1], t.mask.at(x, y)[2]});
        if (m == 0) {
          ++outside;
          max_outside = std::max(max_outside, d);
        } else if (m >= 128) {
          ++inside;
          diff_inside += d;
        }
      }
    EXPECT_GT(outside, size * size / 10) << f.method;
    EXPECT_GT(inside, 0) << f.method;
    EXPECT_LE(max_outside, 1) << f.method << " " << f.video_id;
    EXPECT_GT(diff_inside / std::max(inside, 1), 1.0) << f.method << ": the fake equals its source in the mask";
    // Replacing the manipulated pixels gives the pristine face there and keeps the fake elsewhere.
    const io::Image r = replace_manipulated(fake, t.pristine, t.mask);
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        const bool in = std::max({t.mask.at(x, y)[0], t.mask.at(x, y)[1], t.mask.at(x, y)[2]}) >= 128;
        EXPECT_TRUE(std::equal(r.at(x, y), r.at(x, y) + 3, (in ? t.pristine : fake).at(x, y)));
      }
  }
}

TEST(ExplainStudy, MissingGroundTruthIsReportedNotThrown) {
  io::FaceIndex index = io::FaceIndex::load(study_data().index);
  const int64_t raw = pick_test_fakes(index, 1).at(0).frame_at.at("raw");
  index.frames[size_t(raw)].mask_png.clear();  // an index extracted with --no-ground-truth
  const AlignedTruth t = aligned_truth(index, raw, 48);
  EXPECT_TRUE(t.mask.empty());
  EXPECT_NE(t.why_not.find("no aligned mask"), std::string::npos) << t.why_not;
  EXPECT_NE(t.why_not.find(index.frames[size_t(raw)].png), std::string::npos) << t.why_not;
}

TEST(ExplainStudy, MeanCiIsStudentsInterval) {
  const MeanCi c = mean_ci95({1, 2, 3, 4, std::nan("")});
  EXPECT_EQ(c.n, 4);
  EXPECT_DOUBLE_EQ(c.mean, 2.5);
  const double half = 3.182 * std::sqrt(5.0 / 3.0 / 4.0);  // t(0.975, 3) * sd / sqrt(n)
  EXPECT_NEAR(c.lo, 2.5 - half, 1e-9);
  EXPECT_NEAR(c.hi, 2.5 + half, 1e-9);
  EXPECT_TRUE(std::isnan(mean_ci95({7}).lo));
  EXPECT_EQ(mean_ci95({7}).mean, 7);
  EXPECT_TRUE(c.overlaps(mean_ci95({4, 5, 6})));
  EXPECT_FALSE(c.overlaps(mean_ci95({40, 50, 60})));
}

// A mask that covers one cell exactly: the best map puts everything there, lift = 1 / area share.
TEST(ExplainStudy, FaithfulnessCeilingAndControls) {
  const GridGeometry g = GridGeometry::make(8, 8, 4);  // cells of 2x2
  std::vector<float> mask(64, 0.0f);
  for (int y = 2; y < 4; ++y)
    for (int x = 4; x < 6; ++x) mask[size_t(y * 8 + x)] = 1;  // cell (1, 2) = player 6
  ShapleyMap best(16, 0.0);
  best[6] = 1;
  const Faithfulness f = manipulation_faithfulness(best, g, mask);
  EXPECT_DOUBLE_EQ(f.best_share, 1.0);
  EXPECT_DOUBLE_EQ(f.lift_ceiling, 16.0);
  EXPECT_DOUBLE_EQ(f.lift, f.lift_ceiling);
  // |x - baseline| is large exactly where the image differs from the baseline.
  Tensor x = Tensor::zeros(Shape{8, 8, 3}), b = Tensor::zeros(Shape{8, 8, 3});
  x.data<float>()[(2 * 8 + 4) * 3] = 5;  // one pixel of cell 6
  const ShapleyMap d = difference_map(x, b, g);
  EXPECT_DOUBLE_EQ(d[6], 5.0);
  EXPECT_DOUBLE_EQ(std::accumulate(d.begin(), d.end(), 0.0), 5.0);
  // The Gaussian peaks at the four central cells, symmetrically.
  const ShapleyMap c = centred_gaussian_map(g);
  EXPECT_DOUBLE_EQ(c[5], c[10]);
  EXPECT_GT(c[5], c[0]);
}

TEST(ExplainStudy, SummaryBeatsControlsOnlyWithSeparatedIntervals) {
  std::vector<FaceStudy> faces(4);
  for (int i = 0; i < 4; ++i) {
    faces[size_t(i)].det.lift = 3 + 0.1 * i;
    faces[size_t(i)].det.lift_ceiling = 6;
    faces[size_t(i)].control_lift["gaussian"] = 1 + 0.1 * i;
  }
  EXPECT_TRUE(summarize_study(faces).beats_controls());
  faces[0].control_lift["gaussian"] = 5;  // an interval now reaching v_d's
  EXPECT_FALSE(summarize_study(faces).beats_controls());
  EXPECT_NEAR(summarize_study(faces).lift_over_ceiling.mean, (3.15) / 6, 1e-12);
  faces[1].identity_lift["target"] = 2;
  faces[2].identity_lift["target"] = 4;
  const StudySummary s = summarize_study(faces);
  EXPECT_EQ(s.identity_lift.at("target").n, 2);  // faces without the value are left out
  EXPECT_DOUBLE_EQ(s.identity_lift.at("target").mean, 3.0);
}

}  // namespace
}  // namespace fstm

namespace fstm {
namespace {

// Two identities paired as in FF++ (fakes 000_001 and 001_000), one frame per video: reals, a face
// swap and a reenactment of each direction.
io::FaceIndex paired_index() {
  io::FaceIndex ix;
  ix.identities = {"000", "001"};
  auto add = [&](const std::string& method, int source, int target) {
    io::IndexVideo v;
    v.method = method;
    v.det = method == io::kOriginal ? 0 : 1;
    v.source = source;
    v.target = target;
    v.target_visible = v.det == 0 || io::method_shows_target_identity(method);
    v.split = "test";
    ix.videos.push_back(v);
    io::IndexFrame f;
    f.video = int32_t(ix.videos.size() - 1);
    ix.frames.push_back(f);
  };
  add(io::kOriginal, 0, 0);
  add(io::kOriginal, 1, 1);
  add("Deepfakes", 0, 1);
  add("Deepfakes", 1, 0);
  add("Face2Face", 0, 1);
  add("Face2Face", 1, 0);
  return ix;
}

FrameScores answers(const std::vector<int64_t>& predicted) {
  FrameScores s;
  for (size_t i = 0; i < predicted.size(); ++i) s.frames.push_back(int64_t(i));
  s.predicted = predicted;
  return s;
}

// A target encoder that learnt "the face's context -> its partner" answers 1 for the context of
// 000 and 0 for 001's: right on every fake (the labels reward it), wrong on every real, and the
// partner rate on reals shows it.
TEST(IdentityAccuracy, CatchesAnEncoderThatAnswersThePairPartner) {
  const io::FaceIndex ix = paired_index();
  EXPECT_FALSE(ix.videos[4].target_visible);  // Face2Face: the target only drives the expression
  const IdentityAccuracy partner = identity_accuracy(ix, answers({1, 0, 1, 0, 1, 0}), true);
  EXPECT_DOUBLE_EQ(partner.real, 0.0);
  EXPECT_DOUBLE_EQ(partner.partner_rate_real, 1.0);
  EXPECT_DOUBLE_EQ(partner.swap, 1.0);
  EXPECT_DOUBLE_EQ(partner.reenactment, 1.0);
  // An encoder that reads identity from the inner face: reals right, swaps right (the inner face is
  // the target's), reenactments wrong (the face is the source's).
  const IdentityAccuracy faithful = identity_accuracy(ix, answers({0, 1, 1, 0, 0, 1}), true);
  EXPECT_DOUBLE_EQ(faithful.real, 1.0);
  EXPECT_DOUBLE_EQ(faithful.partner_rate_real, 0.0);
  EXPECT_DOUBLE_EQ(faithful.swap, 1.0);
  EXPECT_DOUBLE_EQ(faithful.reenactment, 0.0);
  EXPECT_EQ(faithful.real_frames, 2);
  // The source encoder is scored against the source identity.
  EXPECT_DOUBLE_EQ(identity_accuracy(ix, answers({0, 1, 0, 1, 0, 1}), false).overall, 1.0);
}

TEST(IdentityAccuracy, ReenactmentsDoNotShowTheirTarget) {
  for (const std::string& m : io::ffpp_methods())
    EXPECT_EQ(io::method_shows_target_identity(m), m != "Face2Face" && m != "NeuralTextures") << m;
}

}  // namespace
}  // namespace fstm
