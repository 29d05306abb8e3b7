// Resource bounds on what a user's file may claim, checked before anything is allocated for it.
//
// fstm reads files that adversaries may have made (a forensic tool's whole job), and a header is
// cheap to forge: a 60-byte PNG can claim 100000 x 100000 pixels (30 GB decoded), a video header
// 10^12 frames. Every reader compares the claim with these limits first and throws an fstm::Error
// naming the file, the claim and the limit, so a forged file costs nothing but the error.
//
// The defaults are far above anything the method needs (FF++ frames are at most 1920 x 1080, its
// videos under 2,000 frames) and far below what would exhaust a workstation. A process changes them
// once, before reading (the fstm program: `fstm --max-image-pixels N ...`, `fstm --help`).
// safetensors needs no such limit: its reader never allocates more than the file's own size
// (io/safetensors.h), and its JSON header is capped at 100 MB as the reference implementation does.
#pragma once
#include <cstdint>
#include <string>

namespace fstm::io {

struct InputLimits {
  int64_t max_image_pixels = 100'000'000;  // width * height of one decoded image (10000 x 10000)
  int64_t max_video_pixels = 40'000'000;   // width * height of one video frame (8K is 33 Mpx)
  int64_t max_video_frames = 10'000'000;   // frames a video may list or hold (111 hours at 25 fps)
  int64_t max_json_bytes = 2'000'000'000;  // one JSON file (a face index, ldm.json, a splits file)

  void validate() const;  // throws fstm::Error naming a limit that is not positive
};

const InputLimits& input_limits();            // the process's limits (the defaults above until set)
void set_input_limits(const InputLimits& l);  // validates; not thread-safe: call before reading

// Throw "<what>: <noun> of W x H pixels exceeds the limit of N pixels (...)" when over.
void check_image_size(int64_t width, int64_t height, const std::string& what);
void check_video_frame_size(int64_t width, int64_t height, const std::string& what);
void check_video_frame_count(int64_t frames, const std::string& what);
void check_json_size(int64_t bytes, const std::string& what);

}  // namespace fstm::io
