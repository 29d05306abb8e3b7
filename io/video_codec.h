// The codec behind VideoReader and VideoWriter (io/video.h), as a component registers it.
//
// libfstm itself decodes and encodes no video, so a product that scores face images links neither
// FFmpeg nor its ~100 libraries. The video component, libfstm_video.so (io/video_ffmpeg.cpp, the
// CMake target fstm::video), registers its FFmpeg codec from a static initialiser when it is
// loaded; the fstm program and the tests link it. Without it, opening a video throws an error that
// says which library to link.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "io/video.h"

namespace fstm::io {

// One open input: what VideoReader forwards to.
struct VideoReader::Impl {
  virtual ~Impl() = default;
  virtual bool read(Image* out) = 0;  // as VideoReader::read
  std::string path;
  VideoInfo info;
  int64_t returned = 0;  // frames handed out by read()
};

// One open output: what VideoWriter forwards to.
struct VideoWriter::Impl {
  virtual ~Impl() = default;
  virtual void write(const Image& frame) = 0;
  virtual void finish() = 0;
  std::string path;
  int64_t written = 0;
};

class VideoCodec {
 public:
  virtual ~VideoCodec() = default;
  // Both throw fstm::Error naming the file, as VideoReader's and VideoWriter's constructors.
  virtual std::unique_ptr<VideoReader::Impl> open_reader(const std::string& path) = 0;
  virtual std::unique_ptr<VideoWriter::Impl> open_writer(const std::string& path, int width, int height, double fps,
                                                         Compression compression) = 0;
};

// Called by the video component when it is loaded; the codec lives until the process exits.
void register_video_codec(VideoCodec* codec);
VideoCodec* registered_video_codec();  // nullptr when no component registered one

}  // namespace fstm::io
