// The parts of io/video.h that need no FFmpeg: compression names, VideoReader and VideoWriter as
// forwarders to the registered codec (io/video_codec.h), and the whole-video helpers built on
// them. Without a codec the reader and writer throw a clear error.
#include "io/video.h"

#include <algorithm>
#include <atomic>
#include <filesystem>

#include "fstm_build_config.h"
#include "io/video_codec.h"
#include "tensor/error.h"

namespace fstm::io {

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::raw: return "raw";
    case Compression::c23: return "c23";
    case Compression::c40: return "c40";
  }
  return "?";
}

Compression parse_compression(const std::string& s) {
  if (s == "raw") return Compression::raw;
  if (s == "c23") return Compression::c23;
  if (s == "c40") return Compression::c40;
  throw Error(detail::concat("unknown compression '", s, "' (use raw, c23 or c40)"));
}

int compression_crf(Compression c) {
  switch (c) {
    case Compression::raw: return 0;
    case Compression::c23: return 23;
    case Compression::c40: return 40;
  }
  return 23;
}

VideoInfo probe_video(const std::string& path) {
  VideoReader reader(path);
  return reader.info();
}

std::vector<Image> decode_video(const std::string& path, VideoInfo* info) {
  VideoReader reader(path);
  std::vector<Image> frames;
  Image frame;
  while (reader.read(&frame)) frames.push_back(std::move(frame));
  FSTM_CHECK(!frames.empty(), path, ": the video stream has no decodable frames");
  if (info) {
    *info = reader.info();
    info->frame_count = int64_t(frames.size());
  }
  return frames;
}

namespace {
// i * count / n for i < n, or every frame when the video has no more than n.
std::vector<int64_t> evenly_spaced(int64_t count, int n) {
  std::vector<int64_t> idx;
  if (n <= 0 || count <= n) {
    for (int64_t i = 0; i < count; ++i) idx.push_back(i);
  } else {
    for (int64_t i = 0; i < n; ++i) idx.push_back(i * count / n);
  }
  return idx;
}

// Reads the whole video, keeping the frames at `wanted` (ascending); the others are skipped
// without conversion. Returns the frames kept, fewer when the video ends first.
std::vector<Image> read_frames(VideoReader& reader, const std::vector<int64_t>& wanted) {
  std::vector<Image> frames;
  frames.reserve(wanted.size());
  size_t next = 0;
  Image frame;
  for (;;) {
    const bool keep = next < wanted.size() && wanted[next] == reader.frames_read();
    if (!reader.read(keep ? &frame : nullptr)) break;
    if (keep) {
      frames.push_back(std::move(frame));
      ++next;
    }
  }
  return frames;
}
}  // namespace

std::vector<Image> decode_video_frames_at(const std::string& path, const std::vector<int64_t>& indices) {
  FSTM_CHECK(std::is_sorted(indices.begin(), indices.end()) &&
                 std::adjacent_find(indices.begin(), indices.end()) == indices.end(),
             path, ": frame indices must be ascending and distinct");
  FSTM_CHECK(indices.empty() || indices.front() >= 0, path, ": negative frame index ", indices.front());
  VideoReader reader(path);
  std::vector<Image> frames = read_frames(reader, indices);
  FSTM_CHECK(frames.size() == indices.size(), path, " has ", reader.frames_read(), " frames; frame ",
             indices[frames.size()], " was asked for");
  return frames;
}

std::vector<Image> decode_video_frames(const std::string& path, int n, VideoInfo* info,
                                       std::vector<int64_t>* frame_indices) {
  // The header's count picks the indices; when decoding finds a different number of frames
  // (a container that guesses), the indices are recomputed from the true count and the video is
  // decoded once more, so the spacing is always over the frames that really exist.
  int64_t count = -1;
  for (int attempt = 0; attempt < 2; ++attempt) {
    VideoReader reader(path);
    if (count < 0) count = reader.info().frame_count;
    const std::vector<int64_t> wanted = evenly_spaced(count, n);
    std::vector<Image> frames = read_frames(reader, wanted);
    const int64_t decoded = reader.frames_read();
    FSTM_CHECK(decoded > 0, path, ": the video stream has no decodable frames");
    if (decoded == count || attempt == 1) {
      FSTM_CHECK(frames.size() == wanted.size(), path, ": only ", decoded, " frames decodable on a second pass");
      if (info) {
        *info = reader.info();
        info->frame_count = decoded;
      }
      if (frame_indices) *frame_indices = wanted;
      return frames;
    }
    count = decoded;
  }
  return {};  // not reached
}

void encode_video(const std::vector<Image>& frames, double fps, Compression compression, const std::string& path) {
  FSTM_CHECK(!frames.empty(), path, ": no frames to encode");
  VideoWriter writer(path, frames[0].width, frames[0].height, fps, compression);
  for (const Image& f : frames) writer.write(f);
  writer.finish();
}

// ---- the registered codec --------------------------------------------------------------------
namespace {

std::atomic<VideoCodec*> g_codec{nullptr};  // constant-initialised: safe from static initialisers

VideoCodec& codec_for(const std::string& path) {
  if (VideoCodec* c = g_codec.load(std::memory_order_acquire)) return *c;
  if (!FSTM_HAVE_FFMPEG)
    throw Error(detail::concat(path, ": fstm was built without FFmpeg (libavformat/libavcodec/libswscale), so it ",
                               "cannot read or write video; rebuild with the FFmpeg development packages"));
  throw Error(detail::concat(path, ": this program has no video support: link the video component (CMake target ",
                             "fstm::video, libfstm_video.so) to read or write video"));
}

}  // namespace

void register_video_codec(VideoCodec* codec) { g_codec.store(codec, std::memory_order_release); }
VideoCodec* registered_video_codec() { return g_codec.load(std::memory_order_acquire); }
bool video_supported() { return registered_video_codec() != nullptr; }

VideoReader::VideoReader(const std::string& path) : impl_(codec_for(path).open_reader(path)) {}
VideoReader::~VideoReader() = default;
const VideoInfo& VideoReader::info() const { return impl_->info; }
const std::string& VideoReader::path() const { return impl_->path; }
bool VideoReader::read(Image* out) { return impl_->read(out); }
int64_t VideoReader::frames_read() const { return impl_->returned; }

VideoWriter::VideoWriter(const std::string& path, int width, int height, double fps, Compression compression)
    : impl_(codec_for(path).open_writer(path, width, height, fps, compression)) {}
VideoWriter::~VideoWriter() = default;
void VideoWriter::write(const Image& frame) { impl_->write(frame); }
void VideoWriter::finish() { impl_->finish(); }
int64_t VideoWriter::frames_written() const { return impl_->written; }

}  // namespace fstm::io
