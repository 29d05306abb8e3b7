// FF++ datasets: splits and labels, the face index, extraction (with a landmark file and with
// dlib), bad inputs, re-compression and the hypothesis-2 subsets, on a small generated FF++ tree.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "fstm/lib/progress.h"
#include "io/dataset.h"
#include "io/extract.h"
#include "tensor/random.h"
#include "tests/test_support.h"

namespace fstm::io {
namespace {

namespace fs = std::filesystem;

// The face of every test video: 5 points, with a white 3x3 marker on the nose.
const FivePoints kFace = {Point2{22, 24}, Point2{42, 25}, Point2{32, 34}, Point2{24, 45}, Point2{41, 45}};
constexpr int kFrames = 6, kSide = 64;

// Frame k: blue level 40 + 20 k (so a PNG tells which frame it came from), a nose marker.
std::vector<Image> face_clip() {
  std::vector<Image> clip;
  for (int k = 0; k < kFrames; ++k) {
    Image im = Image::blank(kSide, kSide, 0);
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) im.at(x, y)[2] = uint8_t(40 + 20 * k), im.at(x, y)[1] = uint8_t(x + y);
    for (int y = 33; y <= 35; ++y)
      for (int x = 31; x <= 33; ++x) im.at(x, y)[0] = im.at(x, y)[1] = im.at(x, y)[2] = 255;
    clip.push_back(std::move(im));
  }
  return clip;
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

// A small FF++ tree:
//   ids 000..005; train pairs (000, 001), (002, 003); val pair (004, 005)
//   originals 000..005 (raw, c23), Deepfakes all six fakes (raw, c23), Face2Face 000_001 (raw)
//   bad: original 006.mp4 is garbage, Deepfakes/c23 007_008.mp4 is audio only (when the ffmpeg
//   program exists), Deepfakes/raw x_y_z.mp4 has a bad name, notes.txt is not a video
//   ldm.json: 5 points for every raw frame except frame 3 of 005 (c23 falls back to raw)
struct Tree {
  std::string root, ldm;
  bool have_audio_only = false;
};

Tree make_tree(const std::string& dir) {
  Tree t;
  t.root = dir + "/ffpp";
  const fs::path r(t.root);
  const auto clip = face_clip();
  const std::vector<std::string> reals = {"000", "001", "002", "003", "004", "005"};
  const std::vector<std::string> fakes = {"000_001", "001_000", "002_003", "003_002", "004_005", "005_004"};
  std::string ldm = "{";
  bool first = true;
  auto add_ldm = [&](const std::string& rel, int skip_frame) {
    for (int k = 0; k < kFrames; ++k) {
      if (k == skip_frame) continue;
      std::ostringstream e;
      e << (first ? "" : ",") << "\"" << landmark_key(rel, k) << "\": {\"landmark\": [";
      for (int i = 0; i < 5; ++i) e << (i ? "," : "") << "[" << kFace[size_t(i)].x << "," << kFace[size_t(i)].y << "]";
      e << "], \"source_label\": \"x\", \"target_label\": \"x\", \"det_label\": 0}";
      ldm += e.str();
      first = false;
    }
  };
  for (const char* comp : {"raw", "c23"}) {
    const Compression c = parse_compression(comp);
    for (const auto& id : reals) {
      const std::string rel = "original_sequences/youtube/" + std::string(comp) + "/videos/" + id + ".mp4";
      encode_video(clip, 25, c, (r / rel).string());
      if (c == Compression::raw) add_ldm(rel, id == "005" ? 3 : -1);
    }
    for (const auto& id : fakes) {
      const std::string rel = "manipulated_sequences/Deepfakes/" + std::string(comp) + "/videos/" + id + ".mp4";
      encode_video(clip, 25, c, (r / rel).string());
      if (c == Compression::raw) add_ldm(rel, -1);
    }
  }
  encode_video(clip, 25, Compression::raw, (r / "manipulated_sequences/Face2Face/raw/videos/000_001.mp4").string());
  add_ldm("manipulated_sequences/Face2Face/raw/videos/000_001.mp4", -1);
  ldm += "}";
  t.ldm = dir + "/ldm.json";
  write_text(t.ldm, ldm);

  write_text(r / "original_sequences/youtube/raw/videos/006.mp4", "this is not a video at all, just text");
  encode_video(clip, 25, Compression::raw, (r / "manipulated_sequences/Deepfakes/raw/videos/x_y_z.mp4").string());
  write_text(r / "manipulated_sequences/Deepfakes/raw/videos/notes.txt", "ignored");
  t.have_audio_only =
      std::system(("ffmpeg -v error -y -f lavfi -i sine=duration=0.3 -c:a aac " + t.root +
                   "/manipulated_sequences/Deepfakes/c23/videos/007_008.mp4 > /dev/null 2>&1")
                      .c_str()) == 0;

  write_text(r / "splits/train.json", "[[\"000\", \"001\"], [\"002\", \"003\"]]");
  write_text(r / "splits/val.json", "[[\"004\", \"005\"]]");
  write_text(r / "splits/test.json", "[]");
  return t;
}

// Extraction of the test tree with its landmark file into 32 px faces.
ExtractOptions tree_options(const Tree& t, const std::string& dir) {
  ExtractOptions o;
  o.data = t.root;
  o.out = dir + "/faces";
  o.alignment.canvas = 32;
  o.landmarks = t.ldm;
  o.scan.compressions = {Compression::raw, Compression::c23};
  return o;
}

class Dataset : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!video_supported()) GTEST_SKIP() << "fstm was built without FFmpeg";
  }
};

TEST(DatasetLabels, FileNamesGiveFstLabels) {
  std::string s, t;
  parse_video_labels("035", true, s, t);
  EXPECT_EQ(s, "035");
  EXPECT_EQ(t, "035");
  parse_video_labels("035_036", false, s, t);
  EXPECT_EQ(s, "035");  // the video whose frames were manipulated
  EXPECT_EQ(t, "036");  // the donor
  EXPECT_THROW(parse_video_labels("035_036", true, s, t), Error);
  EXPECT_THROW(parse_video_labels("035", false, s, t), Error);
  EXPECT_THROW(parse_video_labels("a_b_c", false, s, t), Error);
  EXPECT_THROW(parse_video_labels("_036", false, s, t), Error);
}

TEST(DatasetSplits, PairsPutBothIdsAndBothFakesInTheSplit) {
  const std::string dir = test::temp_dir("splits");
  write_text(fs::path(dir) / "train.json", "[[\"071\", \"054\"], [3, 12]]");
  write_text(fs::path(dir) / "val.json", "[[\"100\", \"101\"]]");
  write_text(fs::path(dir) / "test.json", "[]");
  const auto m = load_ffpp_splits(dir);
  for (const char* id : {"071", "054", "071_054", "054_071", "003", "012", "003_012", "012_003"}) EXPECT_EQ(m.at(id), "train") << id;
  EXPECT_EQ(m.at("101_100"), "val");
  EXPECT_EQ(m.count("071_100"), 0u);
  write_text(fs::path(dir) / "test.json", "[[\"054\", \"200\"]]");  // 054 again
  try {
    load_ffpp_splits(dir);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("054"), std::string::npos) << e.what();
  }
  write_text(fs::path(dir) / "test.json", "[[\"054\"]]");
  EXPECT_THROW(load_ffpp_splits(dir), Error);
}

TEST_F(Dataset, ExtractWithLandmarkFileLabelsSplitsAndSkips) {
  const std::string dir = test::temp_dir("extract");
  const Tree tree = make_tree(dir);
  ExtractOptions o = tree_options(tree, dir);
  o.frames = 3;
  o.alignment.face_width = 80.0f * 32 / 224;
  o.scan.methods = {"Deepfakes", "Face2Face"};
  int64_t calls = 0, problems = 0;
  o.on_video = [&](int64_t done, int64_t total, const std::vector<SkipRecord>& p) {
    ++calls;
    problems += int64_t(p.size());
    EXPECT_LE(done, total);
  };
  const ExtractReport rep = extract_faces(o);
  const FaceIndex& ix = rep.index;

  // 6 + 6 reals, 6 + 6 Deepfakes, 1 Face2Face; 006 (garbage) and 007_008 (audio only) fail
  EXPECT_EQ(rep.videos, 25);
  EXPECT_EQ(calls, 25 + 1 + (tree.have_audio_only ? 1 : 0));
  EXPECT_EQ(ix.identities, (std::vector<std::string>{"000", "001", "002", "003", "004", "005"}));
  EXPECT_EQ(ix.identity_splits.at("train"), (std::pair<int, int>{0, 4}));
  EXPECT_EQ(ix.identity_splits.at("val"), (std::pair<int, int>{4, 6}));

  std::map<std::string, const IndexVideo*> by_path;
  for (const auto& v : ix.videos) by_path[v.video] = &v;
  const IndexVideo* real = by_path.at("original_sequences/youtube/c23/videos/002.mp4");
  EXPECT_EQ(real->det, 0);
  EXPECT_EQ(ix.identities[size_t(real->source)], "002");
  EXPECT_EQ(ix.identities[size_t(real->target)], "002");
  EXPECT_EQ(real->split, "train");
  EXPECT_EQ(real->method, "original");
  EXPECT_EQ(real->compression, Compression::c23);
  const IndexVideo* ab = by_path.at("manipulated_sequences/Deepfakes/raw/videos/004_005.mp4");
  const IndexVideo* ba = by_path.at("manipulated_sequences/Deepfakes/raw/videos/005_004.mp4");
  EXPECT_EQ(ab->det, 1);
  EXPECT_EQ(ix.identities[size_t(ab->source)], "004");
  EXPECT_EQ(ix.identities[size_t(ab->target)], "005");
  EXPECT_EQ(ix.identities[size_t(ba->source)], "005");
  EXPECT_EQ(ix.identities[size_t(ba->target)], "004");
  EXPECT_EQ(ab->split, "val");
  EXPECT_EQ(ba->split, "val");
  EXPECT_EQ(by_path.at("manipulated_sequences/Face2Face/raw/videos/000_001.mp4")->split, "train");
  EXPECT_EQ(ab->frame_count, kFrames);
  EXPECT_NEAR(ab->fps, 25.0, 1e-6);

  // frames 0, 2, 4 of each video (3 of 6); 005 lacks frame 3 only, which is not sampled... but
  // its c23 copy falls back to the raw landmarks too, so every sampled frame has landmarks
  EXPECT_EQ(rep.frames, 25 * 3);
  // skipped: the bad name (scan), the garbage video, the audio-only video
  EXPECT_EQ(ix.skipped_videos(), 2 + (tree.have_audio_only ? 1 : 0));
  EXPECT_EQ(rep.bad_videos, ix.skipped_videos());
  EXPECT_EQ(problems, 1 + (tree.have_audio_only ? 1 : 0));
  std::set<std::string> reasons;
  for (const auto& s : ix.skipped) reasons.insert(fs::path(s.path).filename().string() + ": " + s.reason);
  bool garbage = false, audio = false, name = false;
  for (const auto& r : reasons) {
    garbage |= r.rfind("006.mp4: ", 0) == 0 && r.find("cannot open as a video") != std::string::npos;
    audio |= r.rfind("007_008.mp4: ", 0) == 0 && r.find("no video stream") != std::string::npos;
    name |= r.rfind("x_y_z.mp4: ", 0) == 0 && r.find("not a fake video name") != std::string::npos;
  }
  EXPECT_TRUE(garbage);
  EXPECT_TRUE(name);
  EXPECT_EQ(audio, tree.have_audio_only);

  // every PNG: 32x32, from the right frame, with the nose marker where the index says
  for (const IndexFrame& f : ix.frames) {
    const Image png = load_image(ix.png_path(f));
    ASSERT_EQ(png.width, 32);
    ASSERT_TRUE(f.has_points);
    double sx = 0, sy = 0, sw = 0;
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const double w = std::max(0, int(png.at(x, y)[0]) - 64);  // only the marker is red
        sx += w * x, sy += w * y, sw += w;
      }
    ASSERT_GT(sw, 0) << f.png;
    EXPECT_NEAR(sx / sw, f.points[2].x, 0.6) << f.png;
    EXPECT_NEAR(sy / sw, f.points[2].y, 0.6) << f.png;
    const IndexVideo& v = ix.videos[size_t(f.video)];
    if (v.compression == Compression::raw) {  // lossless: the frame's blue level, exactly
      EXPECT_EQ(png.at(4, 16)[2], 40 + 20 * f.frame) << f.png;
    }
  }

  // the saved index reads back the same
  const FaceIndex again = FaceIndex::load(rep.index_path);
  EXPECT_EQ(again.frames.size(), ix.frames.size());
  EXPECT_EQ(again.identities, ix.identities);
  EXPECT_EQ(again.skipped.size(), ix.skipped.size());
  EXPECT_EQ(again.videos[3].video, ix.videos[3].video);
  EXPECT_EQ(again.frames[7].png, ix.frames[7].png);
  EXPECT_NEAR(again.frames[7].points[4].y, ix.frames[7].points[4].y, 1e-4);
  EXPECT_EQ(again.settings.size, 32);
  EXPECT_EQ(again.settings.landmarks, fs::absolute(tree.ldm).string());
}

TEST_F(Dataset, MissingLandmarkEntriesAreSkippedAndCounted) {
  const std::string dir = test::temp_dir("extract");
  const Tree tree = make_tree(dir);
  ExtractOptions o = tree_options(tree, dir);
  o.frames = 0;  // every frame: frame 3 of 005 has no landmarks in raw (nor, by fallback, in c23)
  o.scan.methods = {};
  const ExtractReport rep = extract_faces(o);
  int64_t missing = 0;
  for (const auto& s : rep.index.skipped)
    if (s.frame == 3 && s.reason.find("no entry") != std::string::npos &&
        s.reason.find("original_sequences/youtube/") != std::string::npos)
      ++missing;
  EXPECT_EQ(missing, 2);  // raw and c23
  EXPECT_EQ(rep.index.skipped_frames(), 2);
  EXPECT_EQ(rep.frames, 12 * kFrames - 2);
}

// Mask frame k: red level 30 + 30 k (which frame a PNG came from), green x + y (where it was warped from).
std::vector<Image> mask_clip(int frames) {
  std::vector<Image> clip;
  for (int k = 0; k < frames; ++k) {
    Image im = Image::blank(kSide, kSide, 0);
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x) im.at(x, y)[0] = uint8_t(30 + 30 * k), im.at(x, y)[1] = uint8_t(2 * (x + y));
    clip.push_back(std::move(im));
  }
  return clip;
}

// A fake's ground truth is extracted from the very frames its faces come from and warped exactly
// like them; a fake without a mask video gets none, and a bad mask video is reported while its
// faces are still extracted.
TEST_F(Dataset, ExtractWritesTheFakesMaskAndPristineAlignedLikeTheFace) {
  const std::string dir = test::temp_dir("extract");
  const Tree tree = make_tree(dir);
  const std::string good = mask_video_path(tree.root, "Deepfakes", "000_001");
  const std::string short_one = mask_video_path(tree.root, "Deepfakes", "002_003");
  encode_video(mask_clip(kFrames), 25, Compression::raw, good);
  encode_video(mask_clip(3), 25, Compression::raw, short_one);  // the fake has kFrames
  ExtractOptions o = tree_options(tree, dir);
  o.frames = 3;  // frames 0, 2, 4
  o.alignment.face_width = 80.0f * 32 / 224;
  o.scan.methods = {"Deepfakes"};
  const ExtractReport rep = extract_faces(o);
  const FaceIndex& ix = rep.index;

  int with_truth = 0;
  for (const IndexFrame& f : ix.frames) {
    const IndexVideo& v = ix.videos[size_t(f.video)];
    if (v.video_id != "000_001" || v.method != "Deepfakes") {
      EXPECT_TRUE(f.mask_png.empty() && f.pristine_png.empty()) << f.png;
      continue;
    }
    ++with_truth;
    ASSERT_FALSE(f.mask_png.empty()) << f.png;
    ASSERT_FALSE(f.pristine_png.empty()) << f.png;
    EXPECT_EQ(f.mask_png, f.png.substr(0, f.png.size() - 4) + ".mask.png");
    const Image mask = load_image(ix.path_of(f.mask_png));
    const Image want = align_face(decode_video_frames_at(good, {f.frame}).at(0), kFace, o.alignment);
    ASSERT_EQ(mask.width, 32) << f.mask_png;
    EXPECT_EQ(mask.rgb, want.rgb) << f.mask_png << ": not the mask frame " << f.frame << " warped like the face";
    EXPECT_NEAR(mask.at(16, 16)[0], 30 + 30 * f.frame, 2) << f.mask_png;
    if (v.compression == Compression::raw) {  // the fake is its source's clip: raw pristine = the face
      EXPECT_EQ(load_image(ix.path_of(f.pristine_png)).rgb, load_image(ix.png_path(f)).rgb) << f.pristine_png;
    }
  }
  EXPECT_EQ(with_truth, 2 * 3);  // raw and c23, 3 frames each

  bool reported = false;
  for (const SkipRecord& r : ix.skipped)
    reported |= r.category() == "ground truth" && r.reason.find(short_one) != std::string::npos &&
                r.reason.find("frame 4") != std::string::npos;
  EXPECT_TRUE(reported) << "the short mask video is not reported";
  int short_faces = 0;
  for (const IndexFrame& f : ix.frames) short_faces += ix.videos[size_t(f.video)].video_id == "002_003";
  EXPECT_EQ(short_faces, 2 * 3) << "a bad mask video must not cost the fake its faces";

  // the paths survive a save and load, also into another folder
  FaceIndex again = FaceIndex::load(rep.index_path);
  again.save(dir + "/elsewhere/index.json");
  const FaceIndex moved = FaceIndex::load(dir + "/elsewhere/index.json");
  for (size_t i = 0; i < ix.frames.size(); ++i)
    if (!ix.frames[i].mask_png.empty()) {
      EXPECT_EQ(fs::canonical(moved.path_of(moved.frames[i].mask_png)), fs::canonical(ix.path_of(ix.frames[i].mask_png)));
      EXPECT_EQ(fs::canonical(moved.path_of(moved.frames[i].pristine_png)),
                fs::canonical(ix.path_of(ix.frames[i].pristine_png)));
    }

  o.out = dir + "/faces-no-truth";
  o.ground_truth = false;
  for (const IndexFrame& f : extract_faces(o).index.frames) EXPECT_TRUE(f.mask_png.empty()) << f.png;
}

TEST_F(Dataset, BoxCropAndNotATree) {
  const std::string dir = test::temp_dir("extract");
  EXPECT_THROW(scan_ffpp(dir), Error);  // no original_sequences/ nor manipulated_sequences/
  EXPECT_THROW(scan_ffpp(dir + "/missing"), Error);
  const Tree tree = make_tree(dir);
  ExtractOptions o = tree_options(tree, dir);
  o.frames = 1;
  o.align = "box";
  o.alignment.canvas = 40;
  o.scan.methods = {};
  o.scan.compressions = {Compression::raw};
  // 5-point landmark files cannot give the FF++ box: no video yields a face, which fails the run
  // (more than max_bad_fraction unusable) after writing the index...
  EXPECT_THROW(
      {
        try {
          extract_faces(o);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("videos could not be used, more than --max-bad-fraction 0.25"),
                    std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  EXPECT_TRUE(fs::exists(dir + "/faces/index.json"));
  // ...and, when allowed, every frame is skipped with the reason
  o.max_bad_fraction = 1;
  const ExtractReport rep = extract_faces(o);
  EXPECT_EQ(rep.frames, 0);
  ASSERT_FALSE(rep.index.skipped.empty());
  bool said = false;
  for (const auto& s : rep.index.skipped) said |= s.reason.find("--align box needs 68/81 landmarks") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST_F(Dataset, ExtractWithDlibOnARealFace) {
  const char* astronaut = "/usr/lib/python3/dist-packages/skimage/data/astronaut.png";
  if (!face_detection_supported()) GTEST_SKIP() << "fstm was built without dlib";
  if (!fs::exists(astronaut)) GTEST_SKIP() << "apt-get install python3-skimage";
  const std::string dir = test::temp_dir("dlib");
  // a 2-frame "video" of the astronaut's head, moving 6 px, and a frame without a face
  const Image im = load_image(astronaut);
  std::vector<Image> clip;
  for (int k = 0; k < 2; ++k) {
    Image crop = Image::blank(200, 200);
    for (int y = 0; y < 200; ++y)
      for (int x = 0; x < 200; ++x)
        std::copy_n(im.at(120 + x + 6 * k, 20 + y), 3, crop.at(x, y));
    clip.push_back(std::move(crop));
  }
  clip.push_back(Image::blank(200, 200, 90));
  encode_video(clip, 25, Compression::raw, dir + "/ffpp/original_sequences/youtube/raw/videos/010.mp4");
  ExtractOptions o;
  o.data = dir + "/ffpp";
  o.out = dir + "/faces";
  o.frames = 3;
  o.scan.methods = {};
  o.scan.compressions = {Compression::raw};
  o.jobs = 1;
  const ExtractReport rep = extract_faces(o);
  ASSERT_EQ(rep.frames, 2);
  ASSERT_EQ(rep.index.skipped.size(), 1u);
  EXPECT_EQ(rep.index.skipped[0].frame, 2);
  EXPECT_EQ(rep.index.skipped[0].reason, "no face found");
  // the aligned faces of the two frames are nearly the same picture (the head only moved)
  const Image a = load_image(rep.index.png_path(rep.index.frames[0]));
  const Image b = load_image(rep.index.png_path(rep.index.frames[1]));
  double diff = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) diff += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  EXPECT_LT(diff / a.rgb.size(), 12.0);
  // the detected landmarks were saved in the authors' format, in frame coordinates
  const LandmarkMap ldm = load_landmarks(rep.landmarks_path);
  ASSERT_EQ(ldm.size(), 2u);
  const LandmarkEntry* e = find_landmarks(ldm, "original_sequences/youtube/raw/videos/010.mp4", 1);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->landmark.size(), 68u);
  EXPECT_EQ(e->det_label, 0);
  EXPECT_EQ(e->source_label, "010");
  const LandmarkEntry* e0 = find_landmarks(ldm, "original_sequences/youtube/raw/videos/010.mp4", 0);
  EXPECT_NEAR(e0->landmark[30].x - e->landmark[30].x, 6, 2.0);  // the nose moved with the head
}

TEST_F(Dataset, CompressWritesC23AndC40FromRaw) {
  const std::string dir = test::temp_dir("compress");
  const auto clip = face_clip();
  const fs::path r = fs::path(dir) / "ffpp";
  encode_video(clip, 30, Compression::raw, (r / "original_sequences/youtube/raw/videos/000.mp4").string());
  encode_video(clip, 30, Compression::raw, (r / "manipulated_sequences/FaceSwap/raw/videos/000_001.mp4").string());
  write_text(r / "manipulated_sequences/FaceSwap/raw/videos/001_000.mp4", "truncated garbage");
  CompressOptions o;
  o.data = r.string();
  CompressReport rep = compress_ffpp(o);
  EXPECT_EQ(rep.written, 4);
  ASSERT_EQ(rep.failed.size(), 1u);
  EXPECT_NE(rep.failed[0].path.find("001_000.mp4"), std::string::npos);
  EXPECT_FALSE(fs::exists(r / "manipulated_sequences/FaceSwap/c23/videos/001_000.mp4"));
  for (const char* c : {"c23", "c40"}) {
    VideoInfo info;
    const auto frames = decode_video((r / "manipulated_sequences/FaceSwap" / c / "videos/000_001.mp4").string(), &info);
    EXPECT_EQ(frames.size(), clip.size()) << c;
    EXPECT_NEAR(info.fps, 30, 1e-6);
  }
  // c40 is smaller than c23
  EXPECT_LT(fs::file_size(r / "original_sequences/youtube/c40/videos/000.mp4"),
            fs::file_size(r / "original_sequences/youtube/c23/videos/000.mp4"));
  rep = compress_ffpp(o);  // again: everything is there
  EXPECT_EQ(rep.written, 0);
  EXPECT_EQ(rep.existing, 4);
  // no partial files anywhere
  for (const auto& e : fs::recursive_directory_iterator(r))
    EXPECT_EQ(e.path().string().find(".partial"), std::string::npos) << e.path();
}

TEST(DatasetH2, PairedAndUnpairedSubsets) {
  // an index of 8 train pairs + reals, built directly (no PNGs needed)
  FaceIndex ix;
  ix.root = test::temp_dir("h2");
  for (int p = 0; p < 8; ++p) {
    const std::string a = "1" + std::to_string(p) + "0", b = "1" + std::to_string(p) + "1";
    for (const std::string& id : {a, b}) ix.videos.push_back({"r/" + id, id, "original", "train", Compression::c23, 0, -1, -1, id, id});
    for (const char* m : {"Deepfakes", "FaceSwap"}) {
      ix.videos.push_back({std::string(m) + a, a + "_" + b, m, "train", Compression::c23, 1, -1, -1, a, b});
      ix.videos.push_back({std::string(m) + b, b + "_" + a, m, "train", Compression::c23, 1, -1, -1, b, a});
    }
  }
  ix.videos.push_back({"r/900", "900", "original", "test", Compression::c23, 0, -1, -1, "900", "900"});
  for (size_t v = 0; v < ix.videos.size(); ++v) ix.frames.push_back({int32_t(v), 0, "f" + std::to_string(v) + ".png", false, {}, {}, {}});
  ix.assign_identities();

  const H2Subsets h = build_h2_subsets(ix, 6, 42);
  ASSERT_EQ(h.real_pairs.size(), 3u);
  ASSERT_EQ(h.unpaired_fake_pairs.size(), 3u);
  auto reals_of = [](const FaceIndex& s) {
    std::set<std::string> ids;
    for (const auto& v : s.videos)
      if (v.det == 0) ids.insert(v.source_id);
    return ids;
  };
  const std::set<std::string> rp = reals_of(h.paired), ru = reals_of(h.unpaired);
  EXPECT_EQ(rp.size(), 6u);
  EXPECT_EQ(rp, ru);  // the same reals in both
  int fakes_p = 0, fakes_u = 0;
  for (const auto& v : h.paired.videos)
    if (v.det) {
      ++fakes_p;
      EXPECT_TRUE(rp.count(v.source_id) && rp.count(v.target_id)) << v.video_id;  // paired: both among the reals
    }
  for (const auto& v : h.unpaired.videos)
    if (v.det) {
      ++fakes_u;
      EXPECT_FALSE(ru.count(v.source_id) || ru.count(v.target_id)) << v.video_id;  // unpaired: disjoint
    }
  EXPECT_EQ(fakes_p, 12);  // 3 pairs x 2 directions x 2 methods
  EXPECT_EQ(fakes_u, 12);
  EXPECT_EQ(h.paired.frames.size(), h.unpaired.frames.size());
  EXPECT_EQ(h.paired.identities.size(), 6u);   // re-mapped to the subset
  EXPECT_EQ(h.unpaired.identities.size(), 12u);
  for (const auto& v : h.unpaired.videos) EXPECT_LT(v.source, 12);
  // the seed picks different pairs; the same seed the same ones
  EXPECT_EQ(build_h2_subsets(ix, 6, 42).real_pairs, h.real_pairs);
  bool differs = false;
  for (uint64_t s = 0; s < 5; ++s) differs |= build_h2_subsets(ix, 6, s).real_pairs != h.real_pairs;
  EXPECT_TRUE(differs);
  EXPECT_THROW(build_h2_subsets(ix, 10, 0), Error);  // needs 5 + 5 of the 8 pairs
  EXPECT_THROW(build_h2_subsets(ix, 5, 0), Error);   // odd

  // saved elsewhere, the subset's PNG paths still point at the same files
  FaceIndex p = h.paired;
  const std::string before = p.png_path(p.frames[0]);
  p.save(ix.root + "/sub/paired.json");
  EXPECT_EQ(fs::path(FaceIndex::load(ix.root + "/sub/paired.json").png_path(p.frames[0])).lexically_normal(),
            fs::path(before).lexically_normal());
}

TEST(DatasetIndex, BadIndexFilesAreClearErrors) {
  const std::string dir = test::temp_dir("index");
  write_text(fs::path(dir) / "a.json", "{\"format\": \"something-else\"}");
  EXPECT_THROW(FaceIndex::load(dir + "/a.json"), Error);
  write_text(fs::path(dir) / "b.json",
             "{\"format\": \"fstm-face-index\", \"version\": 1, \"settings\": {}, \"identities\": [\"1\"], "
             "\"videos\": [{\"video\": \"v\", \"video_id\": \"1\", \"method\": \"original\", \"compression\": \"c23\", "
             "\"det\": 0, \"source\": 5, \"target\": 0, \"frames\": []}]}");
  try {
    FaceIndex::load(dir + "/b.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("identity classes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(FaceIndex::load(dir + "/none.json"), Error);
}

TEST(Progress, RendersCountsRateAndEta) {
  EXPECT_EQ(ProgressBar::format_duration(42), "42s");
  EXPECT_EQ(ProgressBar::format_duration(187), "3:07");
  EXPECT_EQ(ProgressBar::format_duration(3723), "1:02:03");
  std::ostringstream log;
  {
    ProgressBar bar("extract", 200, "videos", &log);  // not a terminal: plain lines
    for (int i = 0; i < 50; ++i) bar.add();
    const std::string line = bar.render(80);
    EXPECT_NE(line.find("50/200 videos 25%"), std::string::npos) << line;
    EXPECT_NE(line.find("ETA"), std::string::npos) << line;
    EXPECT_NE(line.find("[#"), std::string::npos) << line;
    bar.note("skipped x.mp4: corrupt");
  }
  const std::string out = log.str();
  EXPECT_NE(out.find("skipped x.mp4: corrupt\n"), std::string::npos) << out;
  EXPECT_NE(out.find("50/200 videos 25%"), std::string::npos) << out;  // a line per 10%
  EXPECT_NE(out.find(" in "), std::string::npos) << out;                // the final line
}

}  // namespace
}  // namespace fstm::io
