// Resource bounds (io/limits.h): a file that claims an absurd size is refused from its header,
// with a message naming the file, the claim and the limit, before anything is allocated for it.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "io/dataset.h"
#include "io/face.h"
#include "io/image.h"
#include "io/limits.h"
#include "io/safetensors.h"
#include "io/video.h"
#include "tensor/error.h"
#include "test_support.h"

namespace fstm::io {
namespace {
using test::error_of;
using test::temp_dir;

// The limits of this process for the scope of one test.
struct ScopedLimits {
  InputLimits saved = input_limits();
  explicit ScopedLimits(const InputLimits& l) { set_input_limits(l); }
  ~ScopedLimits() { set_input_limits(saved); }
};

Image gradient(int w, int h) {
  Image im = Image::blank(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) im.at(x, y)[0] = uint8_t(x * 7 + y), im.at(x, y)[1] = uint8_t(y * 5);
  return im;
}

void put_be32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + size_t(i)] = uint8_t(v >> (24 - 8 * i));
}

TEST(InputLimits, ForgedPngDimensionsAreRefusedFromTheHeader) {
  // A real 8x8 PNG whose IHDR now claims 15000 x 15000 (675 MB of RGB once decoded): within what
  // stb itself accepts (2^30 bytes), refused by fstm's limit from the header alone.
  std::vector<uint8_t> png = encode_png(gradient(8, 8));
  ASSERT_EQ(std::string(png.begin() + 12, png.begin() + 16), "IHDR");
  put_be32(png, 16, 15000);
  put_be32(png, 20, 15000);
  std::string e = error_of([&] { decode_image(png.data(), png.size(), "forged.png"); });
  EXPECT_NE(e.find("forged.png: an image of 15000 x 15000 pixels exceeds the limit of 100000000 pixels"),
            std::string::npos)
      << e;
  // 100000 x 100000 (30 GB): stb's own header check refuses it first.
  put_be32(png, 16, 100000);
  put_be32(png, 20, 100000);
  e = error_of([&] { decode_image(png.data(), png.size(), "forged.png"); });
  EXPECT_NE(e.find("forged.png: cannot decode image"), std::string::npos) << e;
}

TEST(InputLimits, EmptyPngDataChunksDecodeAsWithout) {
  // An empty IDAT chunk before the image data: legal, and stb would memcpy into a null buffer.
  const std::vector<uint8_t> png = encode_png(gradient(12, 9));
  std::vector<uint8_t> odd = png;
  size_t idat = 8;
  while (std::string(odd.begin() + long(idat) + 4, odd.begin() + long(idat) + 8) != "IDAT")
    idat += 12 + (size_t(odd[idat]) << 24 | size_t(odd[idat + 1]) << 16 | size_t(odd[idat + 2]) << 8 | odd[idat + 3]);
  const uint8_t empty[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xAF, 0x06, 0x1E};
  odd.insert(odd.begin() + long(idat), empty, empty + 12);
  EXPECT_EQ(decode_image(odd.data(), odd.size(), "odd.png").rgb, gradient(12, 9).rgb);
}

TEST(InputLimits, ImageLimitIsAdjustableAndExact) {
  const std::vector<uint8_t> png = encode_png(gradient(20, 10));
  InputLimits l;
  l.max_image_pixels = 200;  // exactly 20 x 10: accepted
  {
    ScopedLimits scoped(l);
    const Image im = decode_image(png.data(), png.size(), "ok.png");
    EXPECT_EQ(im.width, 20);
    EXPECT_EQ(im.rgb, gradient(20, 10).rgb);
  }
  l.max_image_pixels = 199;
  ScopedLimits scoped(l);
  for (const std::vector<uint8_t>& bytes : {png, encode_jpeg(gradient(20, 10), 90)}) {
    const std::string e = error_of([&] { decode_image(bytes.data(), bytes.size(), "big.img"); });
    EXPECT_NE(e.find("big.img: an image of 20 x 10 pixels exceeds the limit of 199"), std::string::npos) << e;
  }
}

TEST(InputLimits, OnlyPngJpegAndBmpAreDecoded) {
  // A valid 2x1 uncompressed TGA and a GIF header: formats stb could read, compiled out here.
  const std::vector<uint8_t> tga = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 24, 0, 1, 2, 3, 4, 5, 6};
  const std::string gif = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
  EXPECT_NE(error_of([&] { decode_image(tga.data(), tga.size(), "x.tga"); }).find("x.tga: cannot decode image"),
            std::string::npos);
  EXPECT_NE(error_of([&] { decode_image(reinterpret_cast<const uint8_t*>(gif.data()), gif.size(), "x.gif"); })
                .find("x.gif: cannot decode image"),
            std::string::npos);
  std::string bmp_path = temp_dir("limits_bmp") + "/a.bmp";
  save_image(gradient(6, 4), bmp_path);
  EXPECT_EQ(load_image(bmp_path).rgb, gradient(6, 4).rgb);
}

TEST(InputLimits, VideoFrameSizeAndCountAreCheckedBeforeDecoding) {
  if (!video_supported()) GTEST_SKIP() << "no video component (FFmpeg) in this build";
  const std::string path = temp_dir("limits_video") + "/v.mp4";
  encode_video(std::vector<Image>(6, gradient(32, 16)), 25, Compression::raw, path);
  EXPECT_EQ(decode_video(path).size(), 6u);
  {
    InputLimits l;
    l.max_video_pixels = 511;
    ScopedLimits scoped(l);
    const std::string e = error_of([&] { probe_video(path); });
    EXPECT_NE(e.find(path + ": video frames of 32 x 16 pixels exceeds the limit of 511"), std::string::npos) << e;
  }
  InputLimits l;
  l.max_video_frames = 5;
  ScopedLimits scoped(l);
  const std::string e = error_of([&] { decode_video_frames(path, 2); });
  EXPECT_NE(e.find(path + ": the video lists 6 frames, over the limit of 5"), std::string::npos) << e;
}

TEST(InputLimits, JsonFilesAreBoundedBeforeParsing) {
  const std::string dir = temp_dir("limits_json");
  std::ofstream(dir + "/ldm.json") << "{}";
  EXPECT_TRUE(load_landmarks(dir + "/ldm.json").empty());
  InputLimits l;
  l.max_json_bytes = 1;
  ScopedLimits scoped(l);
  const std::string e = error_of([&] { load_landmarks(dir + "/ldm.json"); });
  EXPECT_NE(e.find("ldm.json: 2 bytes of JSON exceed the limit of 1 bytes"), std::string::npos) << e;
}

TEST(InputLimits, LandmarkFilesRejectNonPositionsAndOddLabels) {
  const std::string dir = temp_dir("limits_ldm");
  auto load_with = [&](const std::string& x, const std::string& det) {
    std::string pts;
    for (int i = 0; i < 5; ++i) pts += std::string(i ? ", " : "") + "[" + (i ? "1" : x) + ", 2]";
    std::ofstream(dir + "/ldm.json") << "{\"a/frame_0\": {\"landmark\": [" << pts << "], \"det_label\": " << det
                                     << "}}";
    return error_of([&] { load_landmarks(dir + "/ldm.json"); });
  };
  EXPECT_EQ(load_with("1", "1"), "");
  EXPECT_EQ(load_with("1", "\"0\""), "");
  EXPECT_NE(load_with("1e300", "1").find("entry 'a/frame_0': landmark [1e+300, 2] is not a pixel position"),
            std::string::npos);
  EXPECT_NE(load_with("1", "99999999999999999999").find("det_label must be 0 (real) or 1 (fake)"), std::string::npos);
  EXPECT_NE(load_with("1", "\"x\"").find("det_label must be 0 (real) or 1 (fake), not x"), std::string::npos);
}

TEST(InputLimits, SafetensorsClaimsAreCheckedAgainstTheFileBeforeAllocating) {
  // A 10^12-element tensor whose offsets agree with its shape, in a file of a few hundred bytes.
  const std::string dir = temp_dir("limits_st");
  const std::string header = R"({"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  bytes += header + std::string(16, '\0');
  std::ofstream(dir + "/big.safetensors", std::ios::binary) << bytes;
  const std::string e = error_of([&] { read_safetensors(dir + "/big.safetensors"); });
  EXPECT_NE(e.find("big.safetensors: tensor 'w': data_offsets [0, 4000000000000] go past the end of the data buffer"),
            std::string::npos)
      << e;
}

TEST(InputLimits, NonPositiveLimitsAreRejected) {
  InputLimits l;
  l.max_video_frames = 0;
  EXPECT_NE(error_of([&] { set_input_limits(l); }).find("max_video_frames must be positive"), std::string::npos);
  EXPECT_EQ(input_limits().max_video_frames, InputLimits{}.max_video_frames);
}

}  // namespace
}  // namespace fstm::io
