#include "fstm/detector.h"

#include <mutex>

#include "autograd/ops.h"
#include "fstm/lib/model_loader.h"
#include "io/face.h"
#include "io/video.h"
#include "layers/inference.h"

namespace fstm {

struct Detector::Impl {
  LoadedModel model;
  DetectorOptions options;
  // One compiled plan and its buffers serve every call: run_mu makes concurrent calls take turns
  // on it (each call's own decoding, alignment and batching run in parallel).
  std::unique_ptr<InferencePlan> plan;           // compiled for `options.batch` faces
  std::mutex run_mu;
  std::once_flag detector_once;
  std::unique_ptr<io::FaceDetector> detector;    // created on first use (loads dlib's model)

  io::AlignOptions alignment() const {
    io::AlignOptions a;
    a.canvas = model.input_size;
    a.face_width = 80.0f * float(model.input_size) / 224.0f;  // the authors' framing at any size
    return a;
  }

  io::FaceDetector& faces() {  // FaceDetector is safe to share between threads (io/face.h)
    std::call_once(detector_once, [this] { detector = std::make_unique<io::FaceDetector>(); });
    return *detector;
  }

  // The aligned face of `image`, or nothing when no face is found.
  std::optional<io::Image> align(const io::Image& image) {
    std::optional<io::FaceDetection> d = faces().detect_largest(image);
    if (!d) return std::nullopt;
    if (options.align == "box")
      return io::crop_face(image, io::ffpp_crop(d->box, image.width, image.height), model.input_size);
    return io::align_face(image, io::five_points(d->landmarks), alignment());
  }
};

Detector::Detector(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;
Detector::~Detector() = default;

Detector Detector::load(const std::string& checkpoint, const DetectorOptions& options) {
  FSTM_CHECK(options.batch >= 1 && options.frames >= 1, "Detector: batch and frames must be >= 1");
  FSTM_CHECK(options.align == "landmarks" || options.align == "box", "Detector: align must be landmarks or box, got '",
             options.align, "'");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  ModelSpec spec;
  spec.model = checkpoint;
  spec.device = options.device;
  impl->model = load_model(spec);
  FSTM_CHECK(impl->model.config.detects(), checkpoint, " is a ", model_type_name(impl->model.config.type),
             " model; a detector needs a det or fst checkpoint (real/fake output)");
  const int S = impl->model.input_size;
  ImageClassifier* net = impl->model.net.get();
  impl->plan = std::make_unique<InferencePlan>([net](const Tensor& x) { return net->forward(x); },
                                               Shape{options.batch, S, S, 3}, parse_dtype(options.dtype),
                                               net->device());
  return Detector(std::move(impl));
}

int Detector::input_size() const { return impl_->model.input_size; }

std::string Detector::describe() const {
  return impl_->model.config.describe() + " from " + impl_->model.source + ", " + impl_->plan->backend();
}

std::vector<float> Detector::score_faces(const std::vector<io::Image>& faces) {
  const int S = impl_->model.input_size, B = impl_->options.batch;
  std::vector<float> out;
  out.reserve(faces.size());
  for (size_t i = 0; i < faces.size(); ++i) {  // an Image a caller filled by hand may not add up
    const io::Image& f = faces[i];
    FSTM_CHECK(f.width > 0 && f.height > 0 && f.rgb.size() == size_t(f.width) * size_t(f.height) * 3,
               "Detector: face ", i, " is ", f.width, "x", f.height, " with ", f.rgb.size(), " bytes of RGB (",
               size_t(std::max(f.width, 0)) * size_t(std::max(f.height, 0)) * 3, " expected)");
  }
  Tensor batch = Tensor::zeros(Shape{B, S, S, 3});
  for (size_t start = 0; start < faces.size(); start += size_t(B)) {
    const size_t n = std::min(faces.size() - start, size_t(B));
    for (size_t i = 0; i < n; ++i) {
      const io::Image& f = faces[start + i];
      const io::Image sized = (f.width == S && f.height == S) ? f : io::resize_bilinear(f, S, S);
      io::image_into_batch(sized, impl_->model.normalization, batch, int64_t(i));
    }
    Tensor probs;
    {
      std::lock_guard<std::mutex> lock(impl_->run_mu);
      probs = ops::softmax(impl_->plan->run(batch.to(impl_->model.net->device())).to(Device::cpu()));
    }
    const float* p = probs.data<float>();
    for (size_t i = 0; i < n; ++i) out.push_back(p[i * 2 + 1]);  // class 1 = fake
  }
  return out;
}

float Detector::score_image(const io::Image& image) {
  std::optional<io::Image> face = impl_->align(image);
  FSTM_CHECK(face.has_value(), "no face found in the ", image.width, "x", image.height, " image");
  return score_face(*face);
}

VideoScore Detector::score_video(const std::string& path) {
  io::VideoInfo info;
  std::vector<int64_t> indices;
  const std::vector<io::Image> frames = io::decode_video_frames(path, impl_->options.frames, &info, &indices);
  VideoScore v;
  v.fps = info.fps;
  v.frame_count = info.frame_count;
  std::vector<io::Image> faces;
  for (size_t i = 0; i < frames.size(); ++i) {
    FrameScore f;
    f.frame = i < indices.size() ? indices[i] : int64_t(i);
    std::optional<io::Image> face = impl_->align(frames[i]);
    f.face = face.has_value();
    if (face) faces.push_back(std::move(*face));
    v.frames.push_back(f);
  }
  FSTM_CHECK(!faces.empty(), path, ": no face found in any of the ", frames.size(), " sampled frames");
  const std::vector<float> scores = score_faces(faces);
  size_t k = 0;
  double sum = 0;
  for (FrameScore& f : v.frames)
    if (f.face) {
      f.fake_probability = scores[k++];
      sum += f.fake_probability;
    }
  v.faces = int64_t(scores.size());
  v.fake_probability = float(sum / double(scores.size()));
  return v;
}

}  // namespace fstm
