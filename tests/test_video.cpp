// Video decode/encode through FFmpeg: round trips, FF++ compression levels, bad files. The ffmpeg
// and ffprobe programs (Debian's ffmpeg package) serve as the independent oracle where present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "fstm_build_config.h"
#include "io/video.h"
#include "io/video_codec.h"
#include "tensor/random.h"
#include "tests/test_support.h"

namespace fstm::io {
namespace {

namespace fs = std::filesystem;

// A textured clip that moves: a fixed random texture scrolled by (2, 1) px per frame plus a
// bright square that crosses the frame, so both intra and inter coding have work to do.
std::vector<Image> textured_clip(int width, int height, int frames, uint64_t seed = 1) {
  Rng rng(seed);
  const int tw = width + 2 * frames, th = height + frames;
  // low-frequency colour blobs (noise at 1/6 size, upsampled) plus fine grain
  Image coarse = Image::blank(tw / 6 + 2, th / 6 + 2);
  for (auto& v : coarse.rgb) v = uint8_t(rng.below(256));
  Image smooth = resize_bilinear(coarse, tw, th);
  for (auto& v : smooth.rgb) v = uint8_t(std::clamp(int(v) + int(rng.below(25)) - 12, 0, 255));
  std::vector<Image> clip;
  for (int f = 0; f < frames; ++f) {
    Image im = Image::blank(width, height);
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c) im.at(x, y)[c] = smooth.at(x + 2 * f, y + f)[c];
    const int sx = (f * 3) % std::max(1, width - 12), sy = height / 3;
    for (int y = sy; y < std::min(height, sy + 12); ++y)
      for (int x = sx; x < std::min(width, sx + 12); ++x) im.at(x, y)[0] = 250, im.at(x, y)[1] = 240, im.at(x, y)[2] = 30;
    clip.push_back(std::move(im));
  }
  return clip;
}

double psnr(const std::vector<Image>& a, const std::vector<Image>& b) {
  double se = 0;
  size_t n = 0;
  for (size_t f = 0; f < a.size(); ++f)
    for (size_t i = 0; i < a[f].rgb.size(); ++i) {
      const double d = double(a[f].rgb[i]) - double(b[f].rgb[i]);
      se += d * d;
      ++n;
    }
  const double mse = se / double(n);
  return mse == 0 ? INFINITY : 10 * std::log10(255.0 * 255.0 / mse);
}

bool have_cli(const char* tool) {
  return std::system((std::string(tool) + " -version > /dev/null 2>&1").c_str()) == 0;
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const uint8_t* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), std::streamsize(n));
}

// Expects fstm::Error whose message contains every part.
template <typename F>
void expect_error(F&& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

class Video : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!video_supported()) GTEST_SKIP() << "fstm was built without FFmpeg";
  }
};

TEST(VideoNames, CompressionNamesRoundTrip) {
  for (Compression c : {Compression::raw, Compression::c23, Compression::c40})
    EXPECT_EQ(parse_compression(compression_name(c)), c);
  EXPECT_EQ(compression_crf(Compression::c40), 40);
  EXPECT_THROW(parse_compression("c30"), Error);
}

// A program without the video component (a product linking fstm::core alone), or a build without
// FFmpeg: every call names the file and says what to link or install. The component is
// unregistered for the test and registered again after it.
TEST(VideoNames, WithoutTheVideoComponentEveryCallSaysWhy) {
  VideoCodec* linked = registered_video_codec();
  EXPECT_EQ(linked != nullptr, bool(FSTM_HAVE_FFMPEG)) << "the video component did not register its codec";
  register_video_codec(nullptr);
  EXPECT_FALSE(video_supported());
  const std::string why = FSTM_HAVE_FFMPEG ? "fstm::video" : "without FFmpeg";
  expect_error([] { probe_video("/x/v.mp4"); }, {"/x/v.mp4", why});
  expect_error([] { encode_video({Image::blank(8, 8)}, 25, Compression::raw, "/x/o.mp4"); }, {"/x/o.mp4", why});
  register_video_codec(linked);
  EXPECT_EQ(video_supported(), bool(FSTM_HAVE_FFMPEG));
}

TEST_F(Video, RawRoundTripIsBitExactAndKeepsCountAndFps) {
  const std::string dir = test::temp_dir("video");
  const auto clip = textured_clip(66, 50, 17);
  const std::string path = dir + "/raw.mp4";
  encode_video(clip, 25.0, Compression::raw, path);
  VideoInfo info;
  const auto back = decode_video(path, &info);
  ASSERT_EQ(back.size(), clip.size());
  EXPECT_EQ(info.frame_count, 17);
  EXPECT_EQ(info.width, 66);
  EXPECT_EQ(info.height, 50);
  EXPECT_NEAR(info.fps, 25.0, 1e-6);
  for (size_t f = 0; f < clip.size(); ++f) ASSERT_EQ(back[f].rgb, clip[f].rgb) << "frame " << f << " differs";
  const VideoInfo probed = probe_video(path);
  EXPECT_EQ(probed.frame_count, 17);
}

TEST_F(Video, OddSizeRawWorksButYuvNeedsEvenSize) {
  const std::string dir = test::temp_dir("video");
  const auto clip = textured_clip(33, 21, 3);
  encode_video(clip, 10, Compression::raw, dir + "/odd.mp4");
  EXPECT_EQ(decode_video(dir + "/odd.mp4")[2].rgb, clip[2].rgb);
  expect_error([&] { encode_video(clip, 10, Compression::c23, dir + "/odd23.mp4"); }, {"odd23.mp4", "even"});
  EXPECT_FALSE(fs::exists(dir + "/odd23.mp4"));
}

TEST_F(Video, CompressionOrdersQualityAndSize) {
  const std::string dir = test::temp_dir("video");
  const auto clip = textured_clip(128, 96, 24);
  double q[3];
  uintmax_t size[3];
  const Compression levels[3] = {Compression::raw, Compression::c23, Compression::c40};
  for (int i = 0; i < 3; ++i) {
    const std::string path = dir + "/" + compression_name(levels[i]) + ".mp4";
    encode_video(clip, 30, levels[i], path);
    VideoInfo info;
    const auto back = decode_video(path, &info);
    ASSERT_EQ(back.size(), clip.size());
    EXPECT_NEAR(info.fps, 30.0, 1e-6);
    q[i] = psnr(clip, back);
    size[i] = fs::file_size(path);
  }
  EXPECT_TRUE(std::isinf(q[0])) << "raw PSNR " << q[0];
  EXPECT_GT(q[1], 26.0) << "c23 PSNR";  // measured 28.2 dB (grainy texture), c40 22.1 dB
  EXPECT_GT(q[1], q[2] + 3.0) << "c23 " << q[1] << " dB vs c40 " << q[2] << " dB";
  EXPECT_GT(size[0], size[1]);
  EXPECT_GT(size[1], size[2]);
}

TEST_F(Video, NtscFrameRateSurvives) {
  const std::string dir = test::temp_dir("video");
  const double fps = 30000.0 / 1001.0;
  encode_video(textured_clip(32, 32, 5), fps, Compression::c23, dir + "/ntsc.mp4");
  VideoInfo info;
  decode_video(dir + "/ntsc.mp4", &info);
  EXPECT_NEAR(info.fps, fps, 1e-3);
  EXPECT_EQ(info.frame_count, 5);
}

TEST_F(Video, EncodingIsDeterministic) {
  const std::string dir = test::temp_dir("video");
  const auto clip = textured_clip(64, 48, 10);
  // raw between the others: x264's AVX-512 code once made c40 differ from one encode to the next
  for (Compression c : {Compression::raw, Compression::c40, Compression::raw, Compression::c23}) {
    encode_video(clip, 25, c, dir + "/a.mp4");
    encode_video(clip, 25, c, dir + "/b.mp4");
    EXPECT_EQ(read_bytes(dir + "/a.mp4"), read_bytes(dir + "/b.mp4")) << compression_name(c);
  }
}

TEST_F(Video, EvenlySpacedFramesAreTheRightOnes) {
  const std::string dir = test::temp_dir("video");
  std::vector<Image> clip;
  for (int f = 0; f < 10; ++f) clip.push_back(Image::blank(16, 16, uint8_t(f * 20)));  // frame id in the pixels
  encode_video(clip, 25, Compression::raw, dir + "/ids.mp4");
  std::vector<int64_t> idx;
  VideoInfo info;
  auto frames = decode_video_frames(dir + "/ids.mp4", 4, &info, &idx);
  EXPECT_EQ(idx, (std::vector<int64_t>{0, 2, 5, 7}));  // i * 10 / 4
  ASSERT_EQ(frames.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(frames[i].rgb[0], uint8_t(idx[i] * 20));
  EXPECT_EQ(info.frame_count, 10);
  frames = decode_video_frames(dir + "/ids.mp4", 32, nullptr, &idx);  // fewer frames than asked: all
  EXPECT_EQ(frames.size(), 10u);
  EXPECT_EQ(idx.back(), 9);
}

// The frames at given indices (how extraction matches a mask video's frames to a fake's faces):
// the right frames, and a clear error for a video that is too short or indices out of order.
TEST_F(Video, FramesAtIndicesAreTheRightOnes) {
  const std::string dir = test::temp_dir("video");
  std::vector<Image> clip;
  for (int f = 0; f < 10; ++f) clip.push_back(Image::blank(16, 16, uint8_t(f * 20)));
  encode_video(clip, 25, Compression::raw, dir + "/ids.mp4");
  const std::vector<int64_t> idx = {1, 4, 9};
  const auto frames = decode_video_frames_at(dir + "/ids.mp4", idx);
  ASSERT_EQ(frames.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(frames[i].rgb[0], uint8_t(idx[i] * 20)) << idx[i];
  EXPECT_TRUE(decode_video_frames_at(dir + "/ids.mp4", {}).empty());
  expect_error([&] { decode_video_frames_at(dir + "/ids.mp4", {3, 10}); }, {"ids.mp4", "has 10 frames", "frame 10"});
  expect_error([&] { decode_video_frames_at(dir + "/ids.mp4", {4, 2}); }, {"ids.mp4", "ascending"});
}

TEST_F(Video, FfmpegCliAgreesOnStreamAndPixels) {
  if (!have_cli("ffprobe") || !have_cli("ffmpeg")) GTEST_SKIP() << "ffmpeg/ffprobe programs not installed";
  const std::string dir = test::temp_dir("video");
  const auto clip = textured_clip(64, 48, 8);
  encode_video(clip, 25, Compression::raw, dir + "/raw.mp4");
  encode_video(clip, 25, Compression::c23, dir + "/c23.mp4");
  const std::string probe = "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
                            "stream=codec_name,profile,pix_fmt,nb_read_frames,r_frame_rate -of default=nw=1 ";
  const std::string raw = run_capture(probe + dir + "/raw.mp4");
  EXPECT_NE(raw.find("codec_name=h264"), std::string::npos) << raw;
  EXPECT_NE(raw.find("High 4:4:4 Predictive"), std::string::npos) << raw;
  EXPECT_NE(raw.find("pix_fmt=gbrp"), std::string::npos) << raw;
  EXPECT_NE(raw.find("nb_read_frames=8"), std::string::npos) << raw;
  EXPECT_NE(raw.find("r_frame_rate=25/1"), std::string::npos) << raw;
  const std::string c23 = run_capture(probe + dir + "/c23.mp4");
  EXPECT_NE(c23.find("pix_fmt=yuv420p"), std::string::npos) << c23;
  EXPECT_NE(c23.find("nb_read_frames=8"), std::string::npos) << c23;

  // FFmpeg's own decoder and converter, asked for the conversion fstm uses (bicubic, accurate
  // rounding, full chroma interpolation, BT.601), give exactly our pixels.
  const std::string bytes = run_capture("ffmpeg -v error -i " + dir + "/c23.mp4 -sws_flags bicubic+accurate_rnd+full_chroma_int -f rawvideo -pix_fmt rgb24 -");
  const auto ours = decode_video(dir + "/c23.mp4");
  ASSERT_EQ(bytes.size(), size_t(64 * 48 * 3 * 8));
  double sum = 0;
  int worst = 0;
  for (size_t f = 0; f < 8; ++f)
    for (size_t i = 0; i < ours[f].rgb.size(); ++i) {
      const int d = std::abs(int(uint8_t(bytes[f * 64 * 48 * 3 + i])) - int(ours[f].rgb[i]));
      sum += d;
      worst = std::max(worst, d);
    }
  EXPECT_EQ(worst, 0) << "mean |ffmpeg - fstm| " << sum / double(bytes.size());
  // ffmpeg's raw decode to rgb24 is exact too
  const std::string raw_bytes = run_capture("ffmpeg -v error -i " + dir + "/raw.mp4 -f rawvideo -pix_fmt rgb24 -");
  ASSERT_EQ(raw_bytes.size(), size_t(64 * 48 * 3 * 8));
  EXPECT_EQ(0, std::memcmp(raw_bytes.data(), clip[0].rgb.data(), clip[0].rgb.size()));
}

TEST_F(Video, MissingFileIsAClearError) {
  expect_error([] { probe_video("/nonexistent/dir/v.mp4"); }, {"/nonexistent/dir/v.mp4", "no such file"});
  expect_error([] { decode_video_frames("/nonexistent/x.mp4", 4); }, {"/nonexistent/x.mp4"});
}

TEST_F(Video, GarbageAndEmptyFilesAreClearErrors) {
  const std::string dir = test::temp_dir("video");
  Rng rng(3);
  std::vector<uint8_t> junk(5000);
  for (auto& b : junk) b = uint8_t(rng.below(256));
  write_bytes(dir + "/junk.mp4", junk.data(), junk.size());
  expect_error([&] { decode_video(dir + "/junk.mp4"); }, {"junk.mp4", "cannot open as a video"});
  write_bytes(dir + "/empty.mp4", nullptr, 0);
  expect_error([&] { probe_video(dir + "/empty.mp4"); }, {"empty.mp4", "empty file"});
}

TEST_F(Video, TruncatedFilesAreClearErrors) {
  const std::string dir = test::temp_dir("video");
  encode_video(textured_clip(64, 48, 20), 25, Compression::c23, dir + "/full.mp4");
  const auto bytes = read_bytes(dir + "/full.mp4");
  // our writer puts the index (moov) at the end, as FF++'s files: cut it off
  write_bytes(dir + "/cut.mp4", bytes.data(), bytes.size() / 2);
  expect_error([&] { decode_video_frames(dir + "/cut.mp4", 8); }, {"cut.mp4", "corrupt, truncated"});

  // index first (-movflags +faststart), then the data cut: the header promises more than there is
  if (!have_cli("ffmpeg")) GTEST_SKIP() << "ffmpeg program not installed";
  ASSERT_EQ(0, std::system(("ffmpeg -v error -y -i " + dir + "/full.mp4 -c copy -movflags +faststart " + dir +
                            "/fast.mp4").c_str()));
  const auto fast = read_bytes(dir + "/fast.mp4");
  ASSERT_EQ(decode_video(dir + "/fast.mp4").size(), 20u);
  write_bytes(dir + "/fastcut.mp4", fast.data(), fast.size() * 2 / 3);
  expect_error([&] { decode_video(dir + "/fastcut.mp4"); }, {"fastcut.mp4", "truncated"});
}

TEST_F(Video, AudioOnlyFileHasNoVideoStream) {
  if (!have_cli("ffmpeg")) GTEST_SKIP() << "ffmpeg program not installed";
  const std::string dir = test::temp_dir("video");
  ASSERT_EQ(0, std::system(("ffmpeg -v error -y -f lavfi -i sine=frequency=440:duration=0.5 -c:a aac " + dir +
                            "/audio.mp4").c_str()));
  expect_error([&] { probe_video(dir + "/audio.mp4"); }, {"audio.mp4", "no video stream", "audio"});
}

TEST_F(Video, WriterRejectsWrongFrameSizeAndLeavesNoFile) {
  const std::string dir = test::temp_dir("video");
  {
    VideoWriter w(dir + "/w.mp4", 32, 32, 25, Compression::c23);
    w.write(Image::blank(32, 32, 100));
    expect_error([&] { w.write(Image::blank(16, 16)); }, {"w.mp4", "16x16", "32x32"});
  }  // destroyed without finish(): the partial file is removed
  EXPECT_FALSE(fs::exists(dir + "/w.mp4"));
}

}  // namespace
}  // namespace fstm::io
