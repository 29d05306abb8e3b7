// Video decode and encode through FFmpeg (libavformat/libavcodec/libswscale).
//
// Compression levels follow FaceForensics++: raw is lossless H.264 (libx264rgb, CRF 0), c23 and
// c40 are libx264 at CRF 23 and 40 (yuv420p). Frames are 8-bit RGB io::Image.
//
// Encoding is deterministic: one encoder thread, x264's default preset (medium, as the ffmpeg CLI
// that made FF++) and bit-exact muxing, so the same frames give the same bytes on every machine
// with the same FFmpeg/x264 versions. Parallelise over videos, not inside one.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/image.h"

namespace fstm::io {

enum class Compression { raw, c23, c40 };
const char* compression_name(Compression c);          // "raw", "c23", "c40"
Compression parse_compression(const std::string& s);  // throws on anything else
int compression_crf(Compression c);                   // 0, 23, 40

struct VideoInfo {
  int width = 0, height = 0;
  int64_t frame_count = 0;  // frames actually decodable (counted by decoding when the header lies)
  double fps = 0;
};

bool video_supported();  // false without FFmpeg, or when the video component is not linked (io/video_codec.h)

// Throws fstm::Error naming the file when it is missing, corrupt, truncated, or has no video stream.
// probe_video reads the header only: frame_count is the container's sample count (or the number
// of video packets when the container does not say); decode_video* report the decoded count.
VideoInfo probe_video(const std::string& path);
std::vector<Image> decode_video(const std::string& path, VideoInfo* info = nullptr);
// n frames evenly spaced over the video (all frames when it has fewer): index i*count/n.
std::vector<Image> decode_video_frames(const std::string& path, int n, VideoInfo* info = nullptr,
                                       std::vector<int64_t>* frame_indices = nullptr);
// The frames at `indices` (ascending, distinct), e.g. a mask video's frames matching the faces
// taken from its fake. Throws naming the file when the video is shorter.
std::vector<Image> decode_video_frames_at(const std::string& path, const std::vector<int64_t>& indices);

// Writes frames (all the same size; even width and height for c23/c40) as H.264 in an .mp4.
// Creates the parent directory; on error nothing is left at `path`.
void encode_video(const std::vector<Image>& frames, double fps, Compression compression, const std::string& path);

// ---- streaming access (constant memory for long, large videos) --------------------------------

// Decodes one video frame by frame. Not thread-safe; use one reader per thread.
class VideoReader {
 public:
  explicit VideoReader(const std::string& path);  // throws as probe_video
  ~VideoReader();
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  // Size and fps from the stream; frame_count is the header's (see probe_video).
  const VideoInfo& info() const;
  const std::string& path() const;
  // Decodes the next frame into `out` (RGB). With out == nullptr the frame is decoded but not
  // converted (a cheap skip). Returns false after the last frame. Throws fstm::Error, naming the
  // file and the frame, on corrupt or truncated data.
  bool read(Image* out);
  int64_t frames_read() const;  // frames returned by read() so far

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Encodes frames one at a time. finish() flushes and closes; a writer destroyed without finish()
// (an exception on the way) removes the partial file.
class VideoWriter {
 public:
  VideoWriter(const std::string& path, int width, int height, double fps, Compression compression);
  ~VideoWriter();
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  void write(const Image& frame);  // must match the size given to the constructor
  void finish();
  int64_t frames_written() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace fstm::io
