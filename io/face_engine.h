// The face detector behind FaceDetector (io/face.h), as a component registers it.
//
// libfstm itself detects no faces, so a product that scores aligned face images links no dlib.
// The faces component, libfstm_faces.so (io/face_dlib.cpp, the CMake target fstm::faces),
// registers its dlib engine from a static initialiser when it is loaded; the fstm program and the
// tests link it. Without it, making a FaceDetector throws an error that says which library to
// link (landmark files, alignment and cropping need no detector).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/face.h"

namespace fstm::io {

// One loaded detector: what FaceDetector forwards to (safe to call from several threads).
struct FaceDetector::Impl {
  virtual ~Impl() = default;
  virtual std::vector<FaceBox> detect(const Image& image) = 0;
  virtual std::vector<Point2> landmarks(const Image& image, const FaceBox& box) = 0;
  virtual std::optional<FaceDetection> detect_largest(const Image& image) = 0;
};

class FaceEngine {
 public:
  virtual ~FaceEngine() = default;
  // Throws fstm::Error naming the landmark model when it cannot be loaded.
  virtual std::shared_ptr<FaceDetector::Impl> make_detector(const std::string& landmark_model, int upsample,
                                                            int detect_size) = 0;
};

// Called by the faces component when it is loaded; the engine lives until the process exits.
void register_face_engine(FaceEngine* engine);
FaceEngine* registered_face_engine();  // nullptr when no component registered one

}  // namespace fstm::io
