// The faces component: FaceDetector on dlib, the HOG frontal face detector and the 68-point shape
// predictor, built into libfstm_faces.so and registered with libfstm when it is loaded
// (io/face_engine.h). dlib's headers are heavy: they stay in this file.
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

#include <filesystem>
#include <mutex>

#include "io/face.h"
#include "io/face_engine.h"
#include "tensor/error.h"

namespace fstm::io {

namespace {

// One shape predictor per model file for the whole process (the 68-point model is 100 MB and
// takes about a second to load); shape_predictor is safe to use from several threads at once.
std::shared_ptr<const dlib::shape_predictor> load_predictor(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<const dlib::shape_predictor>> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto p = cache[path].lock()) return p;
  std::error_code ec;
  FSTM_CHECK(std::filesystem::is_regular_file(path, ec), path,
             ": landmark model not found (Debian: apt-get install libdlib-data; or set FSTM_DLIB_LANDMARKS)");
  auto sp = std::make_shared<dlib::shape_predictor>();
  try {
    dlib::deserialize(path) >> *sp;
  } catch (const std::exception& e) {
    throw Error(detail::concat(path, ": not a dlib shape predictor model (", e.what(), ")"));
  }
  FSTM_CHECK(sp->num_parts() == 68 || sp->num_parts() == 81, path, ": the model predicts ", sp->num_parts(),
             " points; a 68- or 81-point face model is needed");
  cache[path] = sp;
  return sp;
}

using Pixels = dlib::array2d<dlib::rgb_pixel>;

void to_dlib(const Image& im, Pixels& out) {
  FSTM_CHECK(!im.empty(), "face detection: empty image");
  out.set_size(im.height, im.width);
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) {
      const uint8_t* p = im.at(x, y);
      out[y][x] = dlib::rgb_pixel(p[0], p[1], p[2]);
    }
}

class DlibDetector final : public FaceDetector::Impl {
 public:
  std::shared_ptr<const dlib::shape_predictor> predictor;
  int upsample = 1;
  int detect_size = 0;
  // object_detector::operator() is not const (it keeps scan buffers): a pool, one per caller.
  std::mutex mu;
  std::vector<std::unique_ptr<dlib::frontal_face_detector>> pool;

  std::unique_ptr<dlib::frontal_face_detector> acquire() {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!pool.empty()) {
        auto d = std::move(pool.back());
        pool.pop_back();
        return d;
      }
    }
    return std::make_unique<dlib::frontal_face_detector>(dlib::get_frontal_face_detector());
  }
  void release(std::unique_ptr<dlib::frontal_face_detector> d) {
    std::lock_guard<std::mutex> lock(mu);
    pool.push_back(std::move(d));
  }

  std::vector<FaceBox> detect(const Pixels& img) {
    Pixels work;
    const Pixels* scan = &img;
    const long side = std::max(img.nc(), img.nr());
    if (detect_size > 0 && side > detect_size) {
      dlib::assign_image(work, img);
      dlib::resize_image(double(detect_size) / double(side), work);
      scan = &work;
    }
    if (upsample > 0) {  // as dlib's Python detector(img, n): double the image n times
      if (scan == &img) dlib::assign_image(work, img);
      for (int i = 0; i < upsample; ++i) dlib::pyramid_up(work);
      scan = &work;
    }
    const double factor = double(scan->nc()) / double(img.nc());
    auto det = acquire();
    std::vector<dlib::rect_detection> rects;
    try {
      (*det)(*scan, rects);
    } catch (...) {
      release(std::move(det));
      throw;
    }
    release(std::move(det));
    std::vector<FaceBox> boxes;
    for (const auto& d : rects) {
      const dlib::rectangle& r = d.rect;
      boxes.push_back({float(std::lround(r.left() / factor)), float(std::lround(r.top() / factor)),
                       float(std::lround(r.right() / factor)), float(std::lround(r.bottom() / factor)),
                       float(d.detection_confidence)});
    }
    return boxes;
  }

  std::vector<Point2> landmarks(const Pixels& img, const FaceBox& b) const {
    const dlib::rectangle rect(long(b.left), long(b.top), long(b.right), long(b.bottom));
    const dlib::full_object_detection shape = (*predictor)(img, rect);
    std::vector<Point2> pts(shape.num_parts());
    for (unsigned long i = 0; i < shape.num_parts(); ++i)
      pts[i] = {float(shape.part(i).x()), float(shape.part(i).y())};
    return pts;
  }

  std::vector<FaceBox> detect(const Image& image) override {
    Pixels img;
    to_dlib(image, img);
    return detect(img);
  }

  std::vector<Point2> landmarks(const Image& image, const FaceBox& box) override {
    Pixels img;
    to_dlib(image, img);
    return landmarks(img, box);
  }

  std::optional<FaceDetection> detect_largest(const Image& image) override {
    Pixels img;
    to_dlib(image, img);
    const std::vector<FaceBox> boxes = detect(img);
    if (boxes.empty()) return std::nullopt;
    float top_score = boxes[0].score;
    for (const auto& b : boxes) top_score = std::max(top_score, b.score);
    const FaceBox* best = nullptr;
    for (const auto& b : boxes)
      if (b.score >= 0.5f * top_score && (!best || b.area() > best->area())) best = &b;
    return FaceDetection{*best, landmarks(img, *best)};
  }
};

class DlibEngine final : public FaceEngine {
 public:
  std::shared_ptr<FaceDetector::Impl> make_detector(const std::string& landmark_model, int upsample,
                                                    int detect_size) override {
    auto d = std::make_shared<DlibDetector>();
    d->upsample = upsample;
    d->detect_size = detect_size;
    d->predictor = load_predictor(landmark_model);
    return d;
  }
};

struct Registrar {
  Registrar() { register_face_engine(new DlibEngine()); }  // never destroyed, like the video codec
} registrar;

}  // namespace

}  // namespace fstm::io
