// The reusable steps of fstm/lib/pipeline.h on a tiny synthetic set (6 identities, 64-pixel
// videos, 32-pixel faces): complete steps are reused, changed settings redo them, folders that are
// not ours are never deleted, and training runs are reused, resumed or redone by configuration
// (the training test is "Slow": about 10-20 s on 2 cores).
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "fstm/cli/stop_signal.h"
#include "fstm/lib/pipeline.h"
#include "io/dataset.h"
#include "io/fs.h"
#include "tests/test_support.h"

namespace fstm {
namespace {

namespace fs = std::filesystem;

SyntheticFacesOptions tiny_faces() {
  SyntheticFacesOptions o;
  o.identities = 6;
  o.frames = 2;
  o.video_size = 64;
  o.face_size = 32;
  o.faces_per_video = 2;
  o.compress = false;
  o.progress = false;
  return o;
}

TrainOptions tiny_run(const std::string& index, const std::string& out) {
  TrainOptions o;
  o.model = ModelType::det;
  o.data = index;
  o.out = out;
  o.batch = 8;
  o.epochs = 1;
  o.lr = 1e-3f;
  o.val_batch = 16;
  o.progress = false;
  return o;
}

fs::file_time_type mtime(const std::string& p) { return fs::last_write_time(p); }

TEST(Pipeline, SyntheticFacesAreReusedAndRedoneWhenSettingsChange) {
  const std::string dir = test::temp_dir("run");
  const SyntheticFaces a = prepare_synthetic_faces(tiny_faces(), dir);
  EXPECT_FALSE(a.data_reused);
  EXPECT_FALSE(a.faces_reused);
  const io::FaceIndex ix = io::FaceIndex::load(a.index);
  EXPECT_EQ(ix.settings.size, 32);
  EXPECT_EQ(ix.identities.size(), 6u);
  EXPECT_EQ(ix.frames.size(), ix.videos.size() * 2);  // 2 faces per video, none skipped (ground-truth landmarks)
  EXPECT_EQ(ix.videos.size(), 6u * 6u);               // 6 reals + 6 fakes for each of 5 methods, raw only

  const auto index_time = mtime(a.index);
  const SyntheticFaces b = prepare_synthetic_faces(tiny_faces(), dir);
  EXPECT_TRUE(b.data_reused);
  EXPECT_TRUE(b.faces_reused);
  EXPECT_EQ(mtime(b.index), index_time);

  SyntheticFacesOptions bigger = tiny_faces();
  bigger.face_size = 48;  // only the faces depend on it
  const SyntheticFaces c = prepare_synthetic_faces(bigger, dir);
  EXPECT_TRUE(c.data_reused);
  EXPECT_FALSE(c.faces_reused);
  EXPECT_EQ(io::FaceIndex::load(c.index).settings.size, 48);

  SyntheticFacesOptions other_seed = bigger;
  other_seed.seed = 3;  // new videos, so new faces too
  const SyntheticFaces d = prepare_synthetic_faces(other_seed, dir);
  EXPECT_FALSE(d.data_reused);
  EXPECT_FALSE(d.faces_reused);
}

TEST(Pipeline, IncompleteStepsAreRedoneAndForeignFoldersKept) {
  const std::string dir = test::temp_dir("run");
  prepare_synthetic_faces(tiny_faces(), dir);
  // a killed extraction leaves its record incomplete: the faces are redone, the videos reused
  std::string record = dir + "/faces.pipeline.json";
  nlohmann::json j = nlohmann::json::parse(std::ifstream(record));
  j["complete"] = false;
  io::write_file_atomic(record, j.dump());
  SyntheticFaces again = prepare_synthetic_faces(tiny_faces(), dir);
  EXPECT_TRUE(again.data_reused);
  EXPECT_FALSE(again.faces_reused);

  // a faces folder someone else wrote is not deleted
  const std::string other = test::temp_dir("other");
  io::ensure_dir(other + "/faces");
  io::write_file_atomic(other + "/faces/mine.txt", std::string("keep"));
  try {
    prepare_synthetic_faces(tiny_faces(), other);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("was not written by fstm"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(other + "/faces/mine.txt"));

  // an output path that is a file
  const std::string file = test::temp_dir("file") + "/plain";
  io::write_file_atomic(file, std::string("x"));
  EXPECT_THROW(prepare_synthetic_faces(tiny_faces(), file), Error);
}

TEST(Pipeline, InterruptedGenerationThrowsAndIsRedone) {
  const std::string dir = test::temp_dir("run");
  std::atomic<int> stop{2};
  SyntheticFacesOptions o = tiny_faces();
  o.stop = &stop;
  try {
    prepare_synthetic_faces(o, dir);
    ADD_FAILURE() << "expected Interrupted";
  } catch (const Interrupted& e) {
    EXPECT_EQ(e.signal, 2);
  }
  o.stop = nullptr;
  const SyntheticFaces s = prepare_synthetic_faces(o, dir);
  EXPECT_FALSE(s.data_reused);
  EXPECT_TRUE(fs::exists(s.index));
}

TEST(Pipeline, TrainOrReuseReusesResumesAndRedoesSlow) {
  const std::string dir = test::temp_dir("run");
  const SyntheticFaces faces = prepare_synthetic_faces(tiny_faces(), dir);
  const std::string out = dir + "/det";

  // an interrupted run (max_steps) is resumed to the end
  TrainOptions part = tiny_run(faces.index, out);
  part.max_steps = 2;
  const TrainResult p = train_or_reuse(part);
  EXPECT_TRUE(p.stopped_at_max_steps);
  EXPECT_EQ(p.steps, 2);
  const TrainResult p2 = train_or_reuse(part);  // already at max_steps: reused, no further step
  EXPECT_EQ(p2.steps, 2);

  ::testing::internal::CaptureStderr();
  const TrainResult full = train_or_reuse(tiny_run(faces.index, out));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "") << "resumed, not trained again";
  EXPECT_EQ(full.epochs_completed, 1);
  EXPECT_GT(full.steps, 2);
  ASSERT_EQ(full.epochs.size(), 1u);

  // finished with the same settings: nothing is trained (the checkpoint is untouched)
  const auto t = mtime(full.last);
  TrainOptions same = tiny_run(faces.index, out);
  same.threads = 1;  // does not change the result
  const TrainResult again = train_or_reuse(same);
  EXPECT_EQ(mtime(again.last), t);
  EXPECT_EQ(again.steps, full.steps);
  EXPECT_EQ(again.config.type, ModelType::det);
  ASSERT_EQ(again.epochs.size(), 1u);
  EXPECT_EQ(again.epochs[0].loss, full.epochs[0].loss);

  // other settings: trained again from scratch
  TrainOptions other = tiny_run(faces.index, out);
  other.lr = 5e-4f;
  ::testing::internal::CaptureStderr();
  const TrainResult redone = train_or_reuse(other);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("trained again"), std::string::npos);
  EXPECT_EQ(redone.steps, full.steps);
  ASSERT_EQ(redone.epochs.size(), 1u);
  EXPECT_NE(redone.epochs[0].loss, full.epochs[0].loss);

  // the same settings on a new face index: trained again
  SyntheticFacesOptions moved = tiny_faces();
  moved.seed = 9;
  prepare_synthetic_faces(moved, dir);
  const auto before = mtime(redone.last);
  const TrainResult on_new_data = train_or_reuse(other);
  EXPECT_NE(mtime(on_new_data.last), before);
}

TEST(StopSignal, FirstSignalSetsTheFlag) {
  cli::install_stop_handlers();
  EXPECT_EQ(cli::stop_signal().load(), 0);
  ::raise(SIGTERM);
  EXPECT_EQ(cli::stop_signal().load(), SIGTERM);
  cli::install_stop_handlers();  // re-arms (the handler is one-shot) and clears
  EXPECT_EQ(cli::stop_signal().load(), 0);
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace
}  // namespace fstm
