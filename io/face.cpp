// The face code that needs no dlib: 5-point alignment, warping, the FF++ crop, landmark files,
// and FaceDetector as a forwarder to the registered engine (io/face_engine.h). Without one,
// FaceDetector throws a clear error (landmark files still work).
#include "io/face.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fstm_build_config.h"
#include "io/dataset.h"
#include "io/face_engine.h"
#include "io/fs.h"
#include "io/json_file.h"
#include "tensor/error.h"
#include "tensor/environment.h"

namespace fstm::io {

std::string default_landmark_model() { return environment().dlib_landmarks; }

// ==== the registered detector engine (io/face_engine.h) ===========================================

namespace {

std::atomic<FaceEngine*> g_engine{nullptr};  // constant-initialised: safe from static initialisers

FaceEngine& engine() {
  if (FaceEngine* e = g_engine.load(std::memory_order_acquire)) return *e;
  if (!FSTM_HAVE_DLIB)
    throw Error("fstm was built without dlib, so it cannot detect faces; rebuild with libdlib-dev, or give "
                "landmarks from a file (fstm extract --landmarks ldm.json)");
  throw Error("this program has no face detector: link the faces component (CMake target fstm::faces, "
              "libfstm_faces.so), or give landmarks from a file (fstm extract --landmarks ldm.json)");
}

}  // namespace

void register_face_engine(FaceEngine* e) { g_engine.store(e, std::memory_order_release); }
FaceEngine* registered_face_engine() { return g_engine.load(std::memory_order_acquire); }
bool face_detection_supported() { return registered_face_engine() != nullptr; }

FaceDetector::FaceDetector(const std::string& landmark_model, int upsample, int detect_size) {
  FSTM_CHECK(upsample >= 0 && upsample <= 3, "face detector: upsample ", upsample, " is not in 0..3");
  FSTM_CHECK(detect_size == 0 || detect_size >= 80, "face detector: detect size ", detect_size,
             " must be 0 (full size) or >= 80");
  impl_ = engine().make_detector(landmark_model, upsample, detect_size);
}

FaceDetector::~FaceDetector() = default;
std::vector<FaceBox> FaceDetector::detect(const Image& image) const { return impl_->detect(image); }
std::vector<Point2> FaceDetector::landmarks(const Image& image, const FaceBox& box) const {
  return impl_->landmarks(image, box);
}
std::optional<FaceDetection> FaceDetector::detect_largest(const Image& image) const {
  return impl_->detect_largest(image);
}

// ==== 5 points and the template ===================================================================

FivePoints five_points(const std::vector<Point2>& ld) {
  if (ld.size() == 5) return {ld[0], ld[1], ld[2], ld[3], ld[4]};
  FSTM_CHECK(ld.size() == 68 || ld.size() == 81, "landmarks: expected 68 or 81 dlib points (or 5), got ", ld.size());
  auto mean = [&](int from) {
    Point2 p;
    for (int i = from; i < from + 6; ++i) p.x += ld[i].x, p.y += ld[i].y;
    return Point2{p.x / 6, p.y / 6};
  };
  return {mean(36), mean(42), ld[30], ld[48], ld[54]};
}

namespace {
// The authors' MEAN_FACE: the 5 points in unit-face coordinates.
constexpr double kMeanFace[5][2] = {
    {-0.17607, -0.172844},  // left pupil
    {0.1736, -0.17356},     // right pupil
    {-0.00182, 0.0357164},  // nose tip
    {-0.14617, 0.20185},    // left mouth corner
    {0.14496, 0.19943},     // right mouth corner
};
}  // namespace

int aligned_size(const AlignOptions& opt) {
  FSTM_CHECK(opt.canvas > 0 && opt.context >= 1.0f, "alignment: canvas ", opt.canvas, " and context ", opt.context,
             " (need canvas > 0, context >= 1)");
  return int(std::lround(double(opt.canvas) * opt.context));
}

FivePoints alignment_template(const AlignOptions& opt) {
  FSTM_CHECK(opt.face_width > 0 && opt.scale > 0, "alignment: face width ", opt.face_width, " and scale ", opt.scale,
             " must be positive");
  const double c = opt.canvas;
  const double r = opt.face_width / (c * 0.34967);
  // The eye-to-top : eye-to-bottom ratio of an aligned face is 1 : 1.42.
  const double ry = (kMeanFace[0][1] * opt.scale * r + 0.5) * (1 + 1.42);
  const double offset = (aligned_size(opt) - c) / 2;
  FivePoints t;
  for (int i = 0; i < 5; ++i) {
    t[i].x = float((kMeanFace[i][0] * opt.scale * r + 0.5) * c + offset);
    t[i].y = float((kMeanFace[i][1] * opt.scale * r + 0.5) * c / ry + offset);
  }
  return t;
}

// ==== matrices ====================================================================================

Point2 Mat3::apply(Point2 p) const {
  const double x = m[0][0] * p.x + m[0][1] * p.y + m[0][2];
  const double y = m[1][0] * p.x + m[1][1] * p.y + m[1][2];
  const double w = m[2][0] * p.x + m[2][1] * p.y + m[2][2];
  return {float(x / w), float(y / w)};
}

Mat3 Mat3::operator*(const Mat3& o) const {
  Mat3 r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      double s = 0;
      for (int k = 0; k < 3; ++k) s += m[i][k] * o.m[k][j];
      r.m[i][j] = s;
    }
  return r;
}

Mat3 Mat3::inverse() const {
  const auto& a = m;
  const double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
                     a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                     a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  FSTM_CHECK(std::abs(det) > 1e-12, "alignment: singular transform (degenerate landmarks?)");
  Mat3 r;
  r.m[0][0] = (a[1][1] * a[2][2] - a[1][2] * a[2][1]) / det;
  r.m[0][1] = (a[0][2] * a[2][1] - a[0][1] * a[2][2]) / det;
  r.m[0][2] = (a[0][1] * a[1][2] - a[0][2] * a[1][1]) / det;
  r.m[1][0] = (a[1][2] * a[2][0] - a[1][0] * a[2][2]) / det;
  r.m[1][1] = (a[0][0] * a[2][2] - a[0][2] * a[2][0]) / det;
  r.m[1][2] = (a[0][2] * a[1][0] - a[0][0] * a[1][2]) / det;
  r.m[2][0] = (a[1][0] * a[2][1] - a[1][1] * a[2][0]) / det;
  r.m[2][1] = (a[0][1] * a[2][0] - a[0][0] * a[2][1]) / det;
  r.m[2][2] = (a[0][0] * a[1][1] - a[0][1] * a[1][0]) / det;
  return r;
}

Mat3 fit_similarity(const Point2* src, const Point2* dst, int n) {
  // x' = a x + b y + tx, y' = -b x + a y + ty: minimise the squared error over (a, b, tx, ty).
  // With both point sets centred the normal equations decouple:
  //   a = sum(p.q) / sum|p|^2,  b = sum(py qx - px qy) / sum|p|^2.
  FSTM_CHECK(n >= 2, "alignment: need at least 2 points, got ", n);
  double spx = 0, spy = 0, sqx = 0, sqy = 0;
  for (int i = 0; i < n; ++i) spx += src[i].x, spy += src[i].y, sqx += dst[i].x, sqy += dst[i].y;
  const double mpx = spx / n, mpy = spy / n, mqx = sqx / n, mqy = sqy / n;
  double dot = 0, cross = 0, norm = 0;
  for (int i = 0; i < n; ++i) {
    const double px = src[i].x - mpx, py = src[i].y - mpy, qx = dst[i].x - mqx, qy = dst[i].y - mqy;
    dot += px * qx + py * qy;
    cross += py * qx - px * qy;
    norm += px * px + py * py;
  }
  FSTM_CHECK(norm > 1e-9, "alignment: the landmarks are all at one point");
  const double a = dot / norm, b = cross / norm;
  Mat3 t;
  t.m[0][0] = a;
  t.m[0][1] = b;
  t.m[0][2] = mqx - a * mpx - b * mpy;
  t.m[1][0] = -b;
  t.m[1][1] = a;
  t.m[1][2] = mqy + b * mpx - a * mpy;
  return t;
}

Mat3 perspective_from_4(const Point2* src, const Point2* dst) {
  // Unknowns h00 h01 h02 h10 h11 h12 h20 h21 (h22 = 1); two equations per correspondence:
  //   h00 x + h01 y + h02 - h20 x X - h21 y X = X,  h10 x + h11 y + h12 - h20 x Y - h21 y Y = Y.
  double A[8][9] = {};
  for (int i = 0; i < 4; ++i) {
    const double x = src[i].x, y = src[i].y, X = dst[i].x, Y = dst[i].y;
    double* r0 = A[2 * i];
    double* r1 = A[2 * i + 1];
    r0[0] = x, r0[1] = y, r0[2] = 1, r0[6] = -x * X, r0[7] = -y * X, r0[8] = X;
    r1[3] = x, r1[4] = y, r1[5] = 1, r1[6] = -x * Y, r1[7] = -y * Y, r1[8] = Y;
  }
  for (int col = 0; col < 8; ++col) {  // Gauss-Jordan with partial pivoting
    int piv = col;
    for (int r = col + 1; r < 8; ++r)
      if (std::abs(A[r][col]) > std::abs(A[piv][col])) piv = r;
    FSTM_CHECK(std::abs(A[piv][col]) > 1e-12, "alignment: degenerate points for a perspective transform");
    if (piv != col) std::swap(A[piv], A[col]);
    for (int r = 0; r < 8; ++r) {
      if (r == col) continue;
      const double f = A[r][col] / A[col][col];
      for (int k = col; k < 9; ++k) A[r][k] -= f * A[col][k];
    }
  }
  Mat3 h;
  for (int i = 0; i < 8; ++i) h.m[i / 3][i % 3] = A[i][8] / A[i][i];
  h.m[2][2] = 1;
  return h;
}

Mat3 alignment_transform(const FivePoints& points, const AlignOptions& opt) {
  const FivePoints tpl = alignment_template(opt);
  const Mat3 align = fit_similarity(points.data(), tpl.data(), 5);

  // rotation about the output centre (cv2.getRotationMatrix2D with scale 1)
  const double centre = aligned_size(opt) / 2.0;
  const double rad = opt.rotation * M_PI / 180.0, ca = std::cos(rad), sa = std::sin(rad);
  Mat3 rot;
  rot.m[0][0] = ca, rot.m[0][1] = sa, rot.m[0][2] = (1 - ca) * centre - sa * centre;
  rot.m[1][0] = -sa, rot.m[1][1] = ca, rot.m[1][2] = sa * centre + (1 - ca) * centre;

  // stretch the eye and mouth corners of the template, then shift
  Mat3 warp;
  if (opt.stretch_a != 1 || opt.stretch_b != 1) {
    const Point2 from[4] = {tpl[0], tpl[1], tpl[3], tpl[4]};
    Point2 to[4] = {tpl[0], tpl[1], tpl[3], tpl[4]};
    auto stretch = [](Point2& a, Point2& b, double s) {
      const double mx = (a.x + b.x) / 2, my = (a.y + b.y) / 2, dx = (a.x - b.x) / 2, dy = (a.y - b.y) / 2;
      a = {float(mx + dx * s), float(my + dy * s)};
      b = {float(mx - dx * s), float(my - dy * s)};
    };
    stretch(to[0], to[1], opt.stretch_a);
    stretch(to[2], to[3], 1.0 / opt.stretch_a);
    stretch(to[0], to[2], opt.stretch_b);
    stretch(to[1], to[3], 1.0 / opt.stretch_b);
    for (auto& p : to) p.x += opt.shift_x, p.y += opt.shift_y;
    warp = perspective_from_4(from, to);
  } else {
    warp.m[0][2] = opt.shift_x;
    warp.m[1][2] = opt.shift_y;
  }
  return warp * rot * align;
}

// ==== warping =====================================================================================

Image warp_image(const Image& src, const Mat3& src_to_dst, int width, int height) {
  FSTM_CHECK(!src.empty() && width > 0 && height > 0, "warp: empty image or output size ", width, "x", height);
  const Mat3 inv = src_to_dst.inverse();
  const bool affine = inv.m[2][0] == 0 && inv.m[2][1] == 0;
  Image dst = Image::blank(width, height, 0);
  const int sw = src.width, sh = src.height;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      double sx = inv.m[0][0] * x + inv.m[0][1] * y + inv.m[0][2];
      double sy = inv.m[1][0] * x + inv.m[1][1] * y + inv.m[1][2];
      if (!affine) {
        const double w = inv.m[2][0] * x + inv.m[2][1] * y + inv.m[2][2];
        sx /= w;
        sy /= w;
      }
      if (!(sx > -1 && sy > -1 && sx < sw && sy < sh)) continue;  // all four taps outside (or NaN)
      const int x0 = int(std::floor(sx)), y0 = int(std::floor(sy));
      const float fx = float(sx - x0), fy = float(sy - y0);
      const float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
      uint8_t* out = dst.at(x, y);
      if (x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh) {
        const uint8_t* p00 = src.at(x0, y0);
        const uint8_t* p10 = src.at(x0, y0 + 1);
        for (int c = 0; c < 3; ++c) {
          const float v = w00 * p00[c] + w01 * p00[c + 3] + w10 * p10[c] + w11 * p10[c + 3];
          out[c] = uint8_t(std::min(255.0f, v + 0.5f));
        }
      } else {  // on the border: taps outside count as black
        const int xs[2] = {x0, x0 + 1}, ys[2] = {y0, y0 + 1};
        const float ws[2][2] = {{w00, w01}, {w10, w11}};
        float acc[3] = {0, 0, 0};
        for (int j = 0; j < 2; ++j)
          for (int i = 0; i < 2; ++i) {
            if (xs[i] < 0 || ys[j] < 0 || xs[i] >= sw || ys[j] >= sh) continue;
            const uint8_t* p = src.at(xs[i], ys[j]);
            for (int c = 0; c < 3; ++c) acc[c] += ws[j][i] * p[c];
          }
        for (int c = 0; c < 3; ++c) out[c] = uint8_t(std::min(255.0f, acc[c] + 0.5f));
      }
    }
  }
  return dst;
}

Image align_face(const Image& image, const FivePoints& points, const AlignOptions& opt, Mat3* transform) {
  const Mat3 m = alignment_transform(points, opt);
  if (transform) *transform = m;
  const int size = aligned_size(opt);
  return warp_image(image, m, size, size);
}

// ==== FF++ crop ===================================================================================

CropRect ffpp_crop(const FaceBox& box, int image_width, int image_height, float enlarge) {
  FSTM_CHECK(image_width > 0 && image_height > 0, "crop: empty image");
  // the FaceForensics++ get_boundingbox, with Python's integer arithmetic (floor division: dlib
  // boxes can start left of or above the image)
  auto floordiv2 = [](int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
  const int x1 = int(std::floor(box.left)), y1 = int(std::floor(box.top));
  const int x2 = int(std::floor(box.right)), y2 = int(std::floor(box.bottom));
  int size = int(std::max(x2 - x1, y2 - y1) * enlarge);
  const int cx = floordiv2(x1 + x2), cy = floordiv2(y1 + y2);
  CropRect r;
  r.x = std::max(cx - size / 2, 0);
  r.y = std::max(cy - size / 2, 0);
  size = std::min(image_width - r.x, size);
  size = std::min(image_height - r.y, size);
  r.size = size;
  FSTM_CHECK(r.size > 0, "crop: the face box (", box.left, ", ", box.top, ", ", box.right, ", ", box.bottom,
             ") is outside the ", image_width, "x", image_height, " image");
  return r;
}

FaceBox landmark_box(const std::vector<Point2>& ld) {
  FSTM_CHECK(!ld.empty(), "landmark_box: no landmarks");
  FaceBox b{ld[0].x, ld[0].y, ld[0].x, ld[0].y};
  for (const auto& p : ld) {
    b.left = std::min(b.left, p.x);
    b.top = std::min(b.top, p.y);
    b.right = std::max(b.right, p.x);
    b.bottom = std::max(b.bottom, p.y);
  }
  return b;
}

Image crop_face(const Image& image, const CropRect& r, int size, Mat3* transform) {
  FSTM_CHECK(r.size > 0 && r.x >= 0 && r.y >= 0 && r.x + r.size <= image.width && r.y + r.size <= image.height,
             "crop: square (", r.x, ", ", r.y, ", ", r.size, ") is not inside the ", image.width, "x", image.height,
             " image");
  Image crop = Image::blank(r.size, r.size);
  for (int y = 0; y < r.size; ++y)
    std::copy_n(image.at(r.x, r.y + y), size_t(r.size) * 3, crop.at(0, y));
  if (transform) {  // resize_bilinear's half-pixel centres: x' = (x - rx + 0.5) * s - 0.5
    const double s = double(size) / r.size;
    *transform = Mat3{};
    transform->m[0][0] = s, transform->m[0][2] = (0.5 - r.x) * s - 0.5;
    transform->m[1][1] = s, transform->m[1][2] = (0.5 - r.y) * s - 0.5;
  }
  return resize_bilinear(crop, size, size);
}

// ==== landmark files ==============================================================================

namespace {
std::string generic(std::string s) {
  std::replace(s.begin(), s.end(), '\\', '/');
  while (s.rfind("./", 0) == 0) s = s.substr(2);
  return s;
}
}  // namespace

std::string normalize_landmark_key(const std::string& key) {
  std::string k = generic(key);
  size_t best = std::string::npos;
  for (const char* root : {"original_sequences/", "manipulated_sequences/"}) {
    const size_t p = k.find(root);
    if (p != std::string::npos && (p == 0 || k[p - 1] == '/')) best = std::min(best, p);
  }
  if (best != std::string::npos) k = k.substr(best);
  for (const char* ext : {".png", ".jpg"})  // a key given as the frame's file name
    if (k.size() > 4 && k.compare(k.size() - 4, 4, ext) == 0) k.resize(k.size() - 4);
  return k;
}

std::string landmark_key(const std::string& video_relative_path, int64_t frame) {
  std::string k = generic(video_relative_path);
  const size_t slash = k.rfind('/');
  const size_t dot = k.rfind('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) k.resize(dot);
  const size_t videos = k.rfind("/videos/");
  if (videos != std::string::npos) k.replace(videos, 8, "/frames/");
  else if (k.rfind("videos/", 0) == 0) k.replace(0, 7, "frames/");
  return normalize_landmark_key(k + "/frame_" + std::to_string(frame));
}

namespace {

// One entry of ldm.json; throws naming the file and the key.
LandmarkEntry parse_landmark_entry(const std::string& path, const std::string& key, const nlohmann::json& e) {
  auto label = [&](const nlohmann::json& v, const char* field) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
    if (v.is_null()) return "";
    throw Error(detail::concat(path, ": entry '", key, "': ", field, " must be a string or an integer"));
  };
  FSTM_CHECK(e.is_object() && e.contains("landmark"), path, ": entry '", key, "' has no \"landmark\"");
  LandmarkEntry entry;
  const auto& pts = e["landmark"];
  FSTM_CHECK(pts.is_array(), path, ": entry '", key, "': \"landmark\" must be a list of [x, y]");
  for (const auto& p : pts) {
    FSTM_CHECK(p.is_array() && p.size() >= 2 && p[0].is_number() && p[1].is_number(), path, ": entry '", key,
               "': every landmark must be [x, y]");
    const double x = p[0].get<double>(), y = p[1].get<double>();
    FSTM_CHECK(std::abs(x) < 1e9 && std::abs(y) < 1e9, path, ": entry '", key, "': landmark [", x, ", ", y,
               "] is not a pixel position");
    entry.landmark.push_back({float(x), float(y)});
  }
  FSTM_CHECK(entry.landmark.size() == 5 || entry.landmark.size() == 68 || entry.landmark.size() == 81, path,
             ": entry '", key, "' has ", entry.landmark.size(), " landmarks (expected 68, 81 or 5)");
  if (e.contains("source_label")) entry.source_label = label(e["source_label"], "source_label");
  if (e.contains("target_label")) entry.target_label = label(e["target_label"], "target_label");
  if (e.contains("det_label")) {
    const auto& d = e["det_label"];
    const std::string v = d.is_string() ? d.get<std::string>() : d.dump();
    FSTM_CHECK(v == "0" || v == "1", path, ": entry '", key, "': det_label must be 0 (real) or 1 (fake), not ", v);
    entry.det_label = v == "1";
  }
  return entry;
}

}  // namespace

LandmarkMap load_landmarks(const std::string& path, std::vector<SkipRecord>* bad_entries) {
  const nlohmann::json j = read_json_file(path, "landmark file");
  FSTM_CHECK(j.is_object(), path, ": expected an object of key -> {landmark, source_label, ...}");
  LandmarkMap out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    try {
      out[normalize_landmark_key(it.key())] = parse_landmark_entry(path, it.key(), it.value());
    } catch (const Error& e) {
      if (!bad_entries) throw;
      bad_entries->push_back({path, -1, e.what(), "landmarks"});
    }
  }
  return out;
}

void save_landmarks(const LandmarkMap& landmarks, const std::string& path) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, e] : landmarks) {
    nlohmann::json pts = nlohmann::json::array();
    for (const auto& p : e.landmark) {
      auto num = [](float v) -> nlohmann::json {
        if (v == std::floor(v) && std::abs(v) < 1e9f) return int64_t(v);
        return v;
      };
      pts.push_back({num(p.x), num(p.y)});
    }
    j[key] = {{"landmark", pts}, {"source_label", e.source_label}, {"target_label", e.target_label},
              {"det_label", e.det_label}};
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  write_file_atomic(path, j.dump());
}

const LandmarkEntry* find_landmarks(const LandmarkMap& landmarks, const std::string& video_relative_path,
                                    int64_t frame) {
  auto it = landmarks.find(landmark_key(video_relative_path, frame));
  if (it != landmarks.end()) return &it->second;
  const std::string rel = generic(video_relative_path);
  for (const char* from : {"/raw/", "/c23/", "/c40/"}) {
    const size_t p = rel.rfind(from);
    if (p == std::string::npos) continue;
    for (const char* to : {"/raw/", "/c23/", "/c40/"}) {
      if (std::string(to) == from) continue;
      std::string other = rel;
      other.replace(p, 5, to);
      it = landmarks.find(landmark_key(other, frame));
      if (it != landmarks.end()) return &it->second;
    }
    break;
  }
  return nullptr;
}

}  // namespace fstm::io
