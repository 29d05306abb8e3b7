// The synthetic FaceForensics++: a procedural generator of talking-head videos and of five kinds
// of face manipulation, with ground truth (masks, 68-point landmarks, FST labels, splits).
//
// FaceForensics++ cannot be downloaded everywhere; this generator writes the same layout so that
// every part of fstm (demo, tests, hypotheses H1-H3) runs on it:
//
//   original_sequences/youtube/{raw,c23,c40}/videos/NNN.mp4
//   manipulated_sequences/<Method>/{raw,c23,c40}/videos/A_B.mp4
//   manipulated_sequences/<Method>/masks/videos/A_B.mp4      (lossless grey mask video, 0-255)
//   ldm.json, splits/{train,val,test}.json, synth.json
//
// ldm.json follows the authors' format and key scheme (as io::landmark_key reads it): one entry per
// frame of every raw video, keyed by the video's path with "/videos/" -> "/frames/", without
// ".mp4", plus "/frame_<k>", e.g. "manipulated_sequences/Deepfakes/raw/frames/003_010/frame_7":
// {"landmark": [[x, y] x 68], "source_label": "003", "target_label": "010", "det_label": 1}.
// The c23/c40 videos are pixel-aligned with raw and share its entries.
//
// Identity lives in face traits (head shape, skin, eyes, brows, nose, mouth, hair, marks), drawn
// around a latent shared by the head and the inner face (pigment, build, length, age: see
// synth_model.h), so a swap's inner face disagrees with its head in ways compression keeps. A fake
// `A_B` keeps video A's background, head motion, lighting and (for swaps) expression, and carries
// donor B's inner-face traits (face swaps) or B's expression (reenactment). Each method leaves its
// own artifact near the manipulated region and its blending boundary (see synth_fake.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "io/image.h"

namespace fstm::io {

// Named after FF++'s folders (manipulated_sequences/<name>).
enum class SynthMethod { deepfakes, face2face, faceswap, neural_textures, faceshifter };
const char* synth_method_name(SynthMethod m);          // "Deepfakes", "Face2Face", ...
SynthMethod parse_synth_method(const std::string& s);  // case-insensitive; throws fstm::Error otherwise
std::vector<std::string> synth_method_names(const std::vector<SynthMethod>& methods);  // in order
const std::vector<SynthMethod>& all_synth_methods();

// 68 points (x, y) in pixels, dlib's order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
// mouth 48-67. "Left" is the image's left.
using Landmarks68 = std::array<std::array<float, 2>, 68>;

struct SynthOptions {
  int identities = 40;  // even; identity i is original video NNN = i (3 digits)
  int frames = 16;      // per video
  // Frame width = height, even. At 128 the face spans about 50 px, the size of the experiments'
  // 64-px aligned faces; at 256 (`fstm synth --size 256`) CRF 40 keeps more of the inner face, but
  // aligning to 64 px shrinks the face 2x and blurs the artifacts away (the demo's v_d reached a
  // validation AUC of 0.875 at raw instead of 0.95): larger frames want larger aligned faces.
  int size = 128;
  uint64_t seed = 1;
  double fps = 25;
  std::vector<SynthMethod> methods = all_synth_methods();
  bool compress = true;  // also write c23 and c40 (raw is always written)
  int threads = 2;       // videos rendered and encoded in parallel
  double val_fraction = 0.15, test_fraction = 0.15;  // of the pairs; the rest is train
  // How far each face swap colour-corrects the donor's inner-face skin towards the source head's,
  // as a fraction of the method's own correction (synth_fake.cpp: Deepfakes 0.75, FaceSwap 0.35,
  // FaceShifter 0.9). 1: the methods' full correction; 0: the donor's skin tone kept, a low-frequency
  // inconsistency (and donor identity) that compression does not remove. The default 0.5 keeps half
  // of the donor's tone: at 1 a swap's inner face lay nearer its context's pixels than its donor's
  // (a pixel donor rate of 0.31 at c40, 256-px frames), hiding the mismatch the paper's Table 4
  // rests on; at 0.5 it is 0.71 (README, Table 4 section).
  float swap_colour_match = 0.5f;

  void validate() const;  // throws fstm::Error naming the bad option
};

struct SynthFrame {
  Image image;
  Landmarks68 landmarks{};
};

struct SynthFake {
  Image image;
  std::vector<uint8_t> mask;  // size * size, 0-255: weight of the manipulated content (0 = source pixel kept)
  Landmarks68 landmarks{};
};

// The identities of each split, and the fakes made from them. Every identity is the source of one
// fake per method; its target (the donor) is another identity of the same split, chosen by the
// method: in a split of n identities, method k (its place in all_synth_methods()) pairs the
// identity at place i of the split's (shuffled) ring with the one at place i + 1 + (k mod (n - 1)).
// So an identity has up to five partners, one per method, the face swaps (Deepfakes, FaceSwap,
// FaceShifter) three different ones once a split has four identities, and the target of a fake is
// not a function of its source. (FF++ pairs every identity with one partner, and an identity
// encoder can learn "A's context -> A's partner" there: fstm/lib/evaluator.h, partner rate.)
// train/val/test list the pairs {a, b} of those fakes, each once, in the official splits format
// (io/dataset.h: a pair puts a, b, a_b and b_a in the split; a_b exists when some method made it).
struct SynthSplits {
  std::vector<std::vector<int>> groups;  // the identities of train, val, test, in ring order
  std::vector<std::array<int, 2>> train, val, test;
};

class SynthGenerator {
 public:
  explicit SynthGenerator(SynthOptions options);
  ~SynthGenerator();
  SynthGenerator(SynthGenerator&&) noexcept;
  SynthGenerator& operator=(SynthGenerator&&) noexcept;

  const SynthOptions& options() const;

  // Frame t of identity `identity` filmed in the scene of video `scene` (background, clothes,
  // head motion, lighting, expression). The real video NNN is render(NNN, NNN, t).
  SynthFrame render(int identity, int scene, int t) const;
  SynthFrame render_real(int identity, int t) const { return render(identity, identity, t); }

  // Frame t of fake a_b made by `method` from source video a and donor b. `source_frame` must be
  // render_real(a, t).image (passed in so that callers render each source frame once). Pixels
  // where the returned mask is 0 are byte-identical to the source frame.
  SynthFake render_fake(SynthMethod method, int a, int b, int t, const Image& source_frame) const;

  SynthSplits splits() const;
  // The fakes {source, target} that `method` makes, split by split (train, val, test), each
  // identity once as the source.
  std::vector<std::array<int, 2>> fakes(SynthMethod method) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SynthSummary {
  int real_videos = 0, fake_videos = 0, files = 0;
  int64_t bytes = 0;
  double seconds = 0;
};

// Writes the whole dataset under out_dir (created if needed). Refuses a non-empty out_dir unless
// `replace` is set, in which case it first removes only the entries the generator writes.
// After each video, progress(done, total, video) is called (from one thread at a time; may be
// empty). Needs video encoding (io::video_supported()).
using SynthProgress = std::function<void(int done, int total, const std::string& video)>;
SynthSummary write_synth_dataset(const SynthOptions& options, const std::string& out_dir, bool replace,
                                 const SynthProgress& progress = {});

// One image for the documentation: the first test pair's source frame t, each method's fake and,
// below, each fake's mask and its amplified difference from the source.
Image synth_contact_sheet(const SynthOptions& options, int t = 0);


}  // namespace fstm::io
