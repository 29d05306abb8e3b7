// The embedding API (fstm/detector.h) under bad input and concurrent use: errors that name the
// problem, or the same results as one caller alone, never a crash or a data race. tests/run.sh
// runs the Detector* tests again in a ThreadSanitizer build (tests/tsan.sh).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "fstm/detector.h"
#include "tensor/error.h"
#include "tensor/random.h"
#include "test_support.h"

namespace fstm {
namespace {
using ::fstm::test::error_of;

// A randomly initialised det ResNet-18 for 32-pixel faces, saved as fstm train would.
std::string checkpoint() {
  static const std::string path = [] {
    const std::string path = test::temp_dir("detector") + "/det.safetensors";
    test::write_det_checkpoint(path, 32, 3);
    return path;
  }();
  return path;
}

std::vector<io::Image> faces(int n) {
  Rng rng(11);
  std::vector<io::Image> out;
  for (int i = 0; i < n; ++i) {
    const int w = i % 3 == 0 ? 32 : 24 + i, h = i % 3 == 0 ? 32 : 40 - i;  // some need resizing
    io::Image im = io::Image::blank(w, h);
    for (uint8_t& v : im.rgb) v = uint8_t(rng.below(256));
    out.push_back(std::move(im));
  }
  return out;
}

TEST(Detector, ConcurrentCallsGiveTheSameScoresAsOneCaller) {
  DetectorOptions o;
  o.batch = 4;
  Detector d = Detector::load(checkpoint(), o);
  const std::vector<io::Image> in = faces(10);  // 3 batches, the last one partial
  const std::vector<float> alone = d.score_faces(in);
  ASSERT_EQ(alone.size(), in.size());
  std::vector<std::vector<float>> got(4);
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      try {
        for (int round = 0; round < 3; ++round) {
          // each thread also scores single faces, so that calls interleave at every size
          got[t] = d.score_faces(in);
          EXPECT_EQ(d.score_face(in[t]), alone[t]);
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < got.size(); ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    EXPECT_EQ(got[t], alone) << "thread " << t;
  }
}

TEST(Detector, BadFacesAreErrorsNamingTheFace) {
  Detector d = Detector::load(checkpoint());
  std::vector<io::Image> in = faces(3);
  in[1].rgb.resize(in[1].rgb.size() - 1);  // a buffer that does not match its size
  EXPECT_NE(error_of([&] { d.score_faces(in); }).find("Detector: face 1 is "), std::string::npos);
  io::Image empty;
  EXPECT_NE(error_of([&] { d.score_face(empty); }).find("Detector: face 0 is 0x0 with 0 bytes"), std::string::npos);
  EXPECT_TRUE(d.score_faces({}).empty());
  const float p = d.score_face(faces(1)[0]);
  EXPECT_TRUE(p >= 0 && p <= 1) << p;
}

TEST(Detector, BadVideosAndCheckpointsAreErrorsNamingTheFile) {
  Detector d = Detector::load(checkpoint());
  const std::string dir = test::temp_dir("detector_videos");
  EXPECT_NE(error_of([&] { d.score_video(dir + "/missing.mp4"); }).find(dir + "/missing.mp4"), std::string::npos);
  std::ofstream(dir + "/empty.mp4").close();
  EXPECT_NE(error_of([&] { d.score_video(dir + "/empty.mp4"); }).find("empty.mp4"), std::string::npos);
  std::ofstream(dir + "/junk.safetensors") << "not a checkpoint";
  EXPECT_NE(error_of([&] { Detector::load(dir + "/junk.safetensors"); }).find("junk.safetensors"), std::string::npos);
  DetectorOptions o;
  o.batch = 0;
  EXPECT_NE(error_of([&] { Detector::load(checkpoint(), o); }).find("batch and frames must be >= 1"), std::string::npos);
}

}  // namespace
}  // namespace fstm
