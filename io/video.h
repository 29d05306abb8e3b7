// Video decode and encode through FFmpeg (libavformat/libavcodec/libswscale).
//
// Compression levels follow FaceForensics++: raw is lossless H.264 (libx264rgb, CRF 0), c23 and
// c40 are libx264 at CRF 23 and 40 (yuv420p). Frames are 8-bit RGB io::Image.
#pragma once
#include <string>
#include <vector>

#include "io/image.h"

namespace fstm::io {

enum class Compression { raw, c23, c40 };
const char* compression_name(Compression c);          // "raw", "c23", "c40"
Compression parse_compression(const std::string& s);  // throws on anything else

struct VideoInfo {
  int width = 0, height = 0;
  int64_t frame_count = 0;  // frames actually decodable (counted by decoding when the header lies)
  double fps = 0;
};

bool video_supported();  // false when fstm was built without FFmpeg

// Throws fstm::Error naming the file when it is missing, corrupt, truncated, or has no video stream.
VideoInfo probe_video(const std::string& path);
std::vector<Image> decode_video(const std::string& path, VideoInfo* info = nullptr);
// n frames evenly spaced over the video (all frames when it has fewer): index i*count/n.
std::vector<Image> decode_video_frames(const std::string& path, int n, VideoInfo* info = nullptr,
                                       std::vector<int64_t>* frame_indices = nullptr);

// Writes frames (all the same size; even width and height for c23/c40) as H.264 in an .mp4.
void encode_video(const std::vector<Image>& frames, double fps, Compression compression, const std::string& path);

}  // namespace fstm::io
