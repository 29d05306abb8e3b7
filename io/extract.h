// Face extraction from an FF++ tree (fstm extract) and re-compression of raw videos (fstm compress).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "io/dataset.h"

namespace fstm::io {

struct ExtractOptions {
  std::string data;  // the FF++ root
  std::string out;   // output folder: PNGs under it, index.json (and ldm.json) in it
  std::string index_name = "index.json";
  int frames = 32;   // evenly spaced per video (DeepfakeBench); all frames when a video has fewer
  std::string align = "landmarks";  // "landmarks": 5-point alignment; "box": FF++ crop (dlib box x1.3)
  AlignOptions alignment;           // canvas = output size, face width, template scale, context
  float box_enlarge = 1.3f;
  std::string landmarks;  // ldm.json to use instead of dlib ("" = detect)
  int upsample = 1;       // dlib detector upsampling
  int detect_size = 0;    // dlib detection on frames scaled to this longer side (0 = full size)
  int jobs = 2;           // videos in parallel
  ScanOptions scan;
  // For each fake whose tree has the mask video and the pristine source video (io/dataset.h), write
  // them aligned like the face beside its PNG (X.mask.png, X.pristine.png) and name them in the index.
  bool ground_truth = true;
  // More than this share of the videos unusable (unreadable, badly named, no face in any frame)
  // fails the run after the index is written: a mostly broken tree is an error, not a small index.
  double max_bad_fraction = kDefaultMaxBadFraction;
  // Called after each video (from worker threads, serialised): done, total, and the problems met.
  std::function<void(int64_t done, int64_t total, const std::vector<SkipRecord>& problems)> on_video;
};

struct ExtractReport {
  FaceIndex index;      // also saved to out/index_name
  std::string index_path;
  std::string landmarks_path;  // ldm.json of the detected landmarks ("" when --landmarks was given)
  int64_t videos = 0, frames = 0;
  int64_t bad_videos = 0;       // listed with their reasons in index.skipped
  int64_t bad_landmarks = 0;    // ldm.json entries that could not be used (also in index.skipped)
  double seconds = 0;
};

// Decodes, finds and aligns the faces, writes the PNGs and the index. Bad videos, frames with no
// face, malformed and missing landmark entries are recorded in index.skipped and the run goes on;
// when more than max_bad_fraction of the videos are bad, it throws after writing the index.
ExtractReport extract_faces(const ExtractOptions& options);

struct CompressOptions {
  std::string data;
  std::vector<Compression> targets = {Compression::c23, Compression::c40};
  ScanOptions scan;  // which methods/originals (its compressions are ignored: raw is the source)
  int jobs = 2;
  bool overwrite = false;  // re-encode when the target exists
  std::function<void(int64_t done, int64_t total, const std::vector<SkipRecord>& problems)> on_video;
};

struct CompressReport {
  int64_t written = 0, existing = 0;
  std::vector<SkipRecord> failed;
  double seconds = 0;
};

// For every raw video, writes the c23/c40 versions (libx264 CRF 23/40, as FF++) beside it:
// .../raw/videos/X.mp4 -> .../c23/videos/X.mp4. Each file appears only when complete.
CompressReport compress_ffpp(const CompressOptions& options);

}  // namespace fstm::io
