// The embedding API: a deepfake detector a product can link against (find_package(fstm),
// target fstm::core) without touching the engine's internals.
//
//   fstm::Detector detector = fstm::Detector::load("det/best.safetensors");
//   float p = detector.score_face(fstm::io::load_image("face.png"));   // P(fake) of an aligned face
//   fstm::VideoScore v = detector.score_video("clip.mp4");             // faces found, aligned, scored
//
// Checkpoints are what `fstm train --model det|fst` writes. Videos need fstm built with FFmpeg and
// dlib (the face detector); images of aligned faces need neither.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/image.h"

namespace fstm {

struct DetectorOptions {
  std::string device = "cpu";  // or "cuda", "cuda:N"
  std::string dtype = "f32";   // or "bf16"
  int batch = 16;              // faces per forward pass
  int frames = 32;             // frames sampled evenly from a video (DeepfakeBench's default)
  std::string align = "landmarks";  // "landmarks" (the authors' 5-point alignment) or "box" (FF++ crop)
};

struct FrameScore {
  int64_t frame = 0;             // index in the video
  bool face = false;             // false when no face was found (then not scored)
  float fake_probability = 0;
};

struct VideoScore {
  float fake_probability = 0;    // mean over the frames with a face (the paper's video-level score)
  std::vector<FrameScore> frames;
  int64_t faces = 0;             // frames that had a face
  double fps = 0;
  int64_t frame_count = 0;
};

// Thread safety: one Detector may be called from several threads at once; the forward passes
// take turns on its one compiled plan. Bad input throws fstm::Error: a face whose pixel buffer does
// not match its size, a video that cannot be read or shows no face. (Pixels are 8-bit, so there is
// no NaN or infinite input to check.)
class Detector {
 public:
  // Throws fstm::Error naming the file when it is not a det or fst checkpoint.
  static Detector load(const std::string& checkpoint, const DetectorOptions& options = {});
  Detector(Detector&&) noexcept;
  Detector& operator=(Detector&&) noexcept;
  ~Detector();

  // Aligned face crops (resized to input_size() when they differ) -> P(fake) each.
  std::vector<float> score_faces(const std::vector<io::Image>& faces);
  float score_face(const io::Image& face) { return score_faces({face})[0]; }
  // Detects the largest face in each sampled frame, aligns it as in training, scores it.
  // Throws when the video cannot be read or has no face in any sampled frame.
  VideoScore score_video(const std::string& path);
  // A whole (unaligned) image: the largest face is detected and aligned first.
  float score_image(const io::Image& image);

  int input_size() const;
  std::string describe() const;  // "det (resnet18) from det/best.safetensors, onednn cpu f32"

  struct Impl;

 private:
  explicit Detector(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fstm
