// FaceForensics++ datasets: the video tree, the official splits, FST labels, and the index of
// extracted faces that training and evaluation read (io/loader.h).
//
// Tree (as downloaded from FF++):
//   original_sequences/youtube/{raw,c23,c40}/videos/NNN.mp4
//   manipulated_sequences/{Deepfakes,Face2Face,FaceSwap,NeuralTextures,FaceShifter}/{raw,c23,c40}/videos/A_B.mp4
//   splits/{train,val,test}.json   lists of id pairs [a, b]; a pair puts a, b, a_b and b_a in the split
// Labels (FST convention): a real video NNN is det 0, source NNN, target NNN; a fake A_B is det 1,
// source A (the video whose frames were manipulated), target B (the donor).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/face.h"
#include "io/video.h"

namespace fstm::io {

extern const char* const kOriginal;  // "original": the method name of real videos
const std::vector<std::string>& ffpp_methods();  // Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter
const std::vector<std::string>& split_names();   // train, val, test
// Whether a method's fake A_B shows B's identity. False for the reenactments (Face2Face,
// NeuralTextures): B only drives A's expression and mouth, the face keeps A's identity, so B's label
// cannot be learnt from the face. An encoder trained on them learns "A's context -> A's partner"
// instead (every identity has one partner in FF++; in the synthetic default it has one per method).
bool method_shows_target_identity(const std::string& method);

// The share of a dataset's files (videos to extract, face images to load) that may be unreadable
// before a job stops with an error instead of going on without them (--max-bad-fraction).
inline constexpr double kDefaultMaxBadFraction = 0.25;

// One video of the tree.
struct VideoEntry {
  std::string path;      // on disk
  std::string relative;  // relative to the FF++ root, '/'-separated (keys and output paths use it)
  std::string method;    // kOriginal or a manipulation method
  Compression compression = Compression::c23;
  std::string video_id;  // "035" or "035_036"
  std::string source_id, target_id;
  int det = 0;
  std::string split;     // "train", "val", "test", or "" when the splits do not list it
};

// Something that was left out, and why (a bad video, a frame without a face...).
struct SkipRecord {
  std::string path;
  int64_t frame = -1;  // -1: the whole video/file
  std::string reason;
  // What was lost: "video" (a whole video: the default when frame is -1), "frame" (the default
  // otherwise), "landmarks" (a malformed ldm.json entry), "ground truth" (a fake extracted without
  // its aligned mask and pristine face, because one of those videos could not be read).
  std::string kind;
  std::string category() const { return !kind.empty() ? kind : frame < 0 ? "video" : "frame"; }
};

// FST labels from a file name stem: "035" (real) or "035_036" (fake). Throws when the stem does
// not have the form the method needs.
void parse_video_labels(const std::string& stem, bool original, std::string& source_id, std::string& target_id);

// video id -> split, from DIR/{train,val,test}.json. Throws naming the file when one is malformed
// or an id is listed in two splits.
std::map<std::string, std::string> load_ffpp_splits(const std::string& dir);

struct ScanOptions {
  std::vector<std::string> methods = ffpp_methods();  // manipulation methods to include
  std::vector<Compression> compressions = {Compression::raw, Compression::c23, Compression::c40};
  bool originals = true;
  std::string splits_dir;  // default: <root>/splits (missing: every split is "")
};

struct ScanResult {
  std::vector<VideoEntry> videos;   // sorted by relative path
  std::vector<SkipRecord> skipped;  // files whose names do not fit the layout
  std::vector<std::string> notes;   // e.g. "no splits found"
};

// Lists the videos (*.mp4) of an FF++ tree. Missing method/compression folders are noted, not
// errors; a root without any of the expected folders throws.
ScanResult scan_ffpp(const std::string& root, const ScanOptions& options = {});

// ---- the face index --------------------------------------------------------------------------
//
// JSON written by `fstm extract` (format "fstm-face-index", version 1):
// {
//   "format": "fstm-face-index", "version": 1,
//   "settings": {"data": "/ffpp", "frames": 32, "size": 224, "align": "landmarks", "scale": 0.9,
//                "face_width": 80, "context": 1.0, "box_enlarge": 1.3, "upsample": 1, "detect_size": 0,
//                "landmarks": "", "methods": [...], "compressions": ["c23"], "fstm": "0.1.0"},
//   "identities": ["000", "001", ...],          class index -> identity (train ids first)
//   "identity_splits": {"train": [0, 720], "val": [720, 860], "test": [860, 1000]},
//   "videos": [{"video": "manipulated_sequences/Deepfakes/c23/videos/035_036.mp4",
//               "video_id": "035_036", "method": "Deepfakes", "compression": "c23",
//               "split": "test", "det": 1, "source": 862, "target": 863,
//               "source_id": "035", "target_id": "036", "frame_count": 398, "fps": 29.97,
//               "frames": [{"frame": 12, "png": "manipulated_sequences/Deepfakes/c23/frames/035_036/frame_12.png",
//                           "points": [[x, y] x 5]}, ...]}, ...],
//   "skipped": [{"path": "...", "frame": 12, "reason": "no face found"}, ...],
//   "counts": {"videos": 6000, "frames": 191000, "skipped_videos": 3, "skipped_frames": 120,
//              "skipped_landmarks": 0, "without_ground_truth": 2}
// }
// "png" paths are relative to the index file's folder. "points" are the 5 alignment points in the
// PNG's pixels (absent when unknown); the loader re-aligns with them for jitter.

struct IndexSettings {
  std::string data;
  int frames = 32;
  int size = 224;
  std::string align = "landmarks";  // "landmarks" or "box"
  float scale = 0.9f, face_width = 80, context = 1.0f, box_enlarge = 1.3f;
  int upsample = 1, detect_size = 0;
  std::string landmarks;  // the ldm.json used, or "" (dlib)
  std::vector<std::string> methods, compressions;
};

struct IndexVideo {
  std::string video;  // relative path in the FF++ tree
  std::string video_id, method, split;
  Compression compression = Compression::c23;
  int det = 0;
  int source = -1, target = -1;  // class indices into FaceIndex::identities
  std::string source_id, target_id;
  bool target_visible = true;    // method_shows_target_identity(method); reals show their own
  int64_t frame_count = 0;
  double fps = 0;
};

struct IndexFrame {
  int32_t video = 0;  // into FaceIndex::videos
  int64_t frame = 0;  // index of the frame in the video
  std::string png;    // relative to FaceIndex::root
  bool has_points = false;
  FivePoints points{};
  // A fake's ground truth, aligned exactly like `png` by fstm extract when the tree has it (the
  // synthetic data does; FF++ ships the masks): the method's mask frame and the pristine frame (the
  // source video's frame at the same compression). Relative to FaceIndex::root; "" when absent.
  std::string mask_png, pristine_png;
};

// Where an FF++ tree keeps a fake's ground truth: the method's mask video
// (manipulated_sequences/<method>/masks/videos/<video_id>.mp4) and its pristine counterpart, the
// source's real video at the same compression (original_sequences/youtube/<c>/videos/<source_id>.mp4).
std::string mask_video_path(const std::string& root, const std::string& method, const std::string& video_id);
std::string pristine_video_path(const std::string& root, Compression compression, const std::string& source_id);

struct FaceIndex {
  std::string root;  // folder the png paths are relative to (set by load/save)
  IndexSettings settings;
  std::vector<std::string> identities;
  std::map<std::string, std::pair<int, int>> identity_splits;
  std::vector<IndexVideo> videos;
  std::vector<IndexFrame> frames;  // grouped by video, in video order
  std::vector<SkipRecord> skipped;

  static FaceIndex load(const std::string& path);  // throws naming the file and the entry
  void save(const std::string& path);              // sets root to the file's folder
  std::string png_path(const IndexFrame& f) const;
  std::string path_of(const std::string& relative) const;  // root / relative
  int64_t skipped_count(const std::string& category) const;  // SkipRecord::category()
  int64_t skipped_videos() const { return skipped_count("video"); }
  int64_t skipped_frames() const { return skipped_count("frame"); }

  // Class indices from identity ids: ids of the train split first (sorted), then val, test and
  // unsplit ones, so a head trained on the train split needs identity_splits["train"].second classes.
  void assign_identities();
  // A copy with only the videos (and their frames) for which keep(video) is true; identities are
  // re-assigned over what remains.
  template <typename Keep>
  FaceIndex subset(Keep keep) const;
};

template <typename Keep>
FaceIndex FaceIndex::subset(Keep keep) const {
  FaceIndex out;
  out.root = root;
  out.settings = settings;
  std::vector<int32_t> remap(videos.size(), -1);
  for (size_t v = 0; v < videos.size(); ++v)
    if (keep(videos[v])) {
      remap[v] = int32_t(out.videos.size());
      out.videos.push_back(videos[v]);
    }
  for (const IndexFrame& f : frames)
    if (remap[size_t(f.video)] >= 0) {
      out.frames.push_back(f);
      out.frames.back().video = remap[size_t(f.video)];
    }
  out.assign_identities();
  return out;
}

// ---- hypothesis 2: paired vs unpaired training sets --------------------------------------------
//
// From the videos of `split` in an index, pick identity pairs {a, b} that have both reals (a, b)
// and at least one fake (a_b or b_a). Paired: n/2 pairs P; its reals are a, b of P and its fakes
// a_b, b_a of P (every method and compression present), so each fake's source and target are among
// the reals. Unpaired: the same reals, and the fakes of n/2 other pairs Q, disjoint from P, so no
// fake shares an identity with a real. Both have n real identities and the same number of fake
// videos per method when the index is complete.
struct H2Subsets {
  FaceIndex paired, unpaired;
  std::vector<std::pair<std::string, std::string>> real_pairs, unpaired_fake_pairs;
};
H2Subsets build_h2_subsets(const FaceIndex& index, int identities = 40, uint64_t seed = 0,
                           const std::string& split = "train");

}  // namespace fstm::io
