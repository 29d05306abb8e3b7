// Faces: detection and 68 landmarks (dlib), the 5-point alignment of the FST-Matching authors,
// the FaceForensics++ box crop, and landmark files in the authors' ldm.json format.
//
// Coordinates are pixels with integer values at pixel centres (as OpenCV and dlib), x right, y down.
#pragma once
#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/image.h"

namespace fstm::io {

struct Point2 {
  float x = 0, y = 0;
};

// A dlib rectangle: right and bottom are inclusive pixel coordinates.
struct FaceBox {
  float left = 0, top = 0, right = 0, bottom = 0;
  float score = 0;  // the detector's confidence (0 for boxes made otherwise)
  float width() const { return right - left; }
  float height() const { return bottom - top; }
  float area() const { return width() * height(); }
};

// ---- detection: dlib HOG face detector + 68-point shape predictor ------------------------------

bool face_detection_supported();  // false when fstm was built without dlib
// $FSTM_DLIB_LANDMARKS when set, else Debian's libdlib-data file
// /usr/share/dlib/shape_predictor_68_face_landmarks.dat.
std::string default_landmark_model();

struct FaceDetection {
  FaceBox box;
  std::vector<Point2> landmarks;  // 68 points (iBUG 300-W order)
};

// Thread-safe: the landmark model is loaded once per process and shared; each concurrent caller
// gets its own HOG detector from a small pool.
class FaceDetector {
 public:
  // upsample: how many times the image is doubled before detection (the HOG window is 80x80 px,
  // so 1 finds faces down to ~40 px; the FF++ and FST-Matching scripts used 1).
  // detect_size > 0: detection runs on a copy whose longer side is at most detect_size (then
  // upsampled); boxes are scaled back and landmarks found on the full image. 0 = full size.
  // Throws fstm::Error when dlib is missing or the model cannot be loaded.
  explicit FaceDetector(const std::string& landmark_model = default_landmark_model(), int upsample = 1,
                        int detect_size = 0);
  ~FaceDetector();

  std::vector<FaceBox> detect(const Image& image) const;  // strongest first
  std::vector<Point2> landmarks(const Image& image, const FaceBox& box) const;
  // The largest face (by box area) with its landmarks, among the detections at least half as
  // confident as the best one (weak false positives, such as a badge on a suit, can be as large
  // as the face); nullopt when there is none.
  std::optional<FaceDetection> detect_largest(const Image& image) const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// ---- 5-point alignment (FST-Matching's align_5p) ------------------------------------------------

// left pupil, right pupil, nose tip, left mouth corner, right mouth corner
using FivePoints = std::array<Point2, 5>;

// 68 or 81 dlib points -> pupils = mean of 36-41 and 42-47, nose tip 30, mouth corners 48, 54.
// A list of 5 is taken as the 5 points already. Anything else throws. (The authors truncated the
// pupil means to integers; we keep them exact.)
FivePoints five_points(const std::vector<Point2>& landmarks);

// Row-major 3x3 matrix mapping homogeneous points (x, y, 1).
struct Mat3 {
  double m[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  Point2 apply(Point2 p) const;
  Mat3 operator*(const Mat3& o) const;
  Mat3 inverse() const;  // throws when singular
};

struct AlignOptions {
  int canvas = 224;         // c: the template's canvas
  float face_width = 80;    // w: r = w / (0.34967 c)
  float scale = 0.9f;       // template scale: 0.9 at test time (random around it in training)
  float context = 1.0f;     // output is round(c * context) square, the canvas centred in it
  // training jitter (identity by default), as the authors' align_5p:
  float shift_x = 0, shift_y = 0;        // output translation in pixels of the canvas
  float rotation = 0;                    // degrees, counter-clockwise about the output centre
  float stretch_a = 1, stretch_b = 1;    // perspective stretch of eyes/mouth (sa, sb)
};

int aligned_size(const AlignOptions& opt);
// The 5 template points in output pixels: with r and ry as in docs/design.md, applied to the template
// scaled by opt.scale (so ry follows the scaled pupil, as the authors' get_mean_face).
FivePoints alignment_template(const AlignOptions& opt);
// Least-squares similarity (rotation, uniform scale, shift; never a reflection) taking src to dst.
Mat3 fit_similarity(const Point2* src, const Point2* dst, int n);
// Perspective map taking 4 points to 4 points (cv2.getPerspectiveTransform).
Mat3 perspective_from_4(const Point2* src, const Point2* dst);
// Image -> aligned output: similarity to the template, then the jitter (rotation, stretch, shift).
Mat3 alignment_transform(const FivePoints& points, const AlignOptions& opt);
// dst(x, y) = bilinear src(M^-1 (x, y)); taps outside the source are black.
Image warp_image(const Image& src, const Mat3& src_to_dst, int width, int height);
Image align_face(const Image& image, const FivePoints& points, const AlignOptions& opt, Mat3* transform = nullptr);

// ---- the FaceForensics++ crop ---------------------------------------------------------------------

struct CropRect {
  int x = 0, y = 0, size = 0;  // a square, inside the image
};
// FF++'s get_boundingbox: the box's longer side times `enlarge`, centred on the box, clamped to the
// image (which can make it smaller).
CropRect ffpp_crop(const FaceBox& box, int image_width, int image_height, float enlarge = 1.3f);
// Bounding box of landmarks (when only landmarks are known; dlib's box is a little tighter).
FaceBox landmark_box(const std::vector<Point2>& landmarks);
// Crop and bilinear resize to size x size; the crop->output map is returned in `transform`.
Image crop_face(const Image& image, const CropRect& rect, int size, Mat3* transform = nullptr);

// ---- landmark files (the authors' ldm.json) -----------------------------------------------------
//
// { "<key>": {"landmark": [[x, y], ...], "source_label": "035", "target_label": "036",
//             "det_label": 1}, ... }
// Key scheme: the video's path relative to the FF++ root, without ".mp4", with "/videos/" replaced
// by "/frames/", then "/frame_<k>" with k the frame's index in the video, e.g.
//   manipulated_sequences/Deepfakes/c23/frames/035_036/frame_12
// which is the authors' key without their output prefix. Keys read from a file are normalised by
// dropping everything before "original_sequences/" or "manipulated_sequences/" (so the authors'
// "./images/manipulated_sequences/..." keys match). Labels may be strings or integers.
struct LandmarkEntry {
  std::vector<Point2> landmark;  // 68/81 dlib points, or 5
  std::string source_label, target_label;
  int det_label = -1;
};
using LandmarkMap = std::map<std::string, LandmarkEntry>;

std::string landmark_key(const std::string& video_relative_path, int64_t frame);
std::string normalize_landmark_key(const std::string& key);
struct SkipRecord;  // io/dataset.h
// Throws naming the file and the entry. With `bad_entries`, a malformed entry is recorded there
// (path, reason) and skipped instead; a file that is not JSON still throws.
LandmarkMap load_landmarks(const std::string& path, std::vector<SkipRecord>* bad_entries = nullptr);
void save_landmarks(const LandmarkMap& landmarks, const std::string& path);
// The entry for this video and frame; when absent, the same frame of the video at another
// compression (raw, c23, c40: the frames are pixel-aligned, so the landmarks carry over).
const LandmarkEntry* find_landmarks(const LandmarkMap& landmarks, const std::string& video_relative_path,
                                    int64_t frame);

}  // namespace fstm::io
