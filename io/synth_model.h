// Internal to the synthetic generator (io/synth*.cpp): identity traits, per-video scripts, the
// float canvas and the shape painter. Not part of fstm's public interface.
//
// Coordinates. "Face units": origin at the face centre, x to the image's right, y down, the face
// is about 2 units wide. A View maps face units to pixels by a similarity (head pose); the inner
// face (eyes, brows, nose, mouth, marks) has its own View so that a face swap can put a donor's
// inner face, slightly mis-scaled, on the source head.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "io/image.h"
#include "io/synth.h"
#include "tensor/random.h"

namespace fstm::io::synth {

struct Rgb {
  float r = 0, g = 0, b = 0;
};
inline Rgb operator*(Rgb a, float s) { return {a.r * s, a.g * s, a.b * s}; }
inline Rgb operator*(Rgb a, Rgb b) { return {a.r * b.r, a.g * b.g, a.b * b.b}; }
inline Rgb operator+(Rgb a, Rgb b) { return {a.r + b.r, a.g + b.g, a.b + b.b}; }
inline Rgb mix(Rgb a, Rgb b, float t) { return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t}; }

struct Vec2 {
  float x = 0, y = 0;
};
inline float len(float x, float y) { return std::sqrt(x * x + y * y); }  // hypotf is slow

// Independent random streams: one per (purpose, index...) so that nothing depends on the order in
// which videos are rendered or on the number of threads.
enum class Stream : uint64_t { identity = 1, scene, noise, pairs, method, frame_jitter };
uint64_t stream_seed(uint64_t seed, Stream what, uint64_t i = 0, uint64_t j = 0, uint64_t k = 0);

inline float smoothstep(float e0, float e1, float x) {
  const float t = std::clamp((x - e0) / (e1 - e0), 0.0f, 1.0f);
  return t * t * (3 - 2 * t);
}

// ---- identity --------------------------------------------------------------------------------

enum class HairStyle { short_cap, long_hair, bob, bald, bangs, side_part, count };

struct Mark {
  enum Kind { mole, freckle, scar } kind = mole;
  Vec2 at, to;  // inner-face units; `to` is the scar's other end
  float radius = 0.03f, alpha = 0.8f;
};

// What an identity's head and inner face have in common, as in real people: skin, hair and eye
// colour follow one pigment; the face's width, the jaw, the eye spacing, the nose and the mouth
// follow one build; the head's and the features' vertical proportions one length; receding and
// greying hair, drooping lids, thinner brows and more moles one age. A face swap puts B's inner
// face on A's head, so a swapped face is inconsistent in these low-frequency ways, which survive
// compression: the mismatch FST-Matching is built to find.
struct IdentityLatent {
  float pigment = 0.5f;  // 0 dark .. 1 light
  float build = 0;       // -1 narrow .. 1 broad
  float length = 0;      // -1 short .. 1 long
  float age = 0.3f;      // 0 .. 1
};
IdentityLatent sample_latent(Rng& rng);

struct FaceTraits {
  IdentityLatent latent;  // the traits below are drawn around it (sample_traits)
  // Head: stays with the source video in a face swap.
  float face_width = 1;     // half-width at the cheeks
  float face_top = 1.25f;   // half-height above the centre (hidden under hair)
  float face_bottom = 1.1f; // centre to chin
  float jaw = 0.85f;        // jaw width relative to the cheeks
  float chin_power = 2.4f;  // 2: round chin; 3.2: square
  float ear_size = 1;
  HairStyle hair_style = HairStyle::short_cap;
  Rgb hair;
  float hairline = -0.8f;   // y of the hairline at the centre
  float hair_part = 0;      // asymmetry of the hairline (side part)
  float hair_volume = 0.5f; // 0..1
  float hair_freq = 30, hair_angle = 1.2f, hair_phase = 0;  // strand texture
  Rgb skin;                 // also the inner face's skin (a swap colour-corrects between the two)

  // Inner face: moves with the donor in a face swap.
  float eye_spacing = 0.42f;  // half the distance between the eye centres
  float eye_y = -0.2f;
  float eye_width = 0.19f;    // half-width
  float eye_upper = 0.09f, eye_lower = 0.05f;  // lid heights of the open eye
  float eye_tilt = 0.05f;     // radians, outer corner up
  float iris_radius = 0.075f;
  Rgb iris;
  float lash = 0.03f;         // upper lash-line thickness
  float brow_gap = 0.2f;      // brow height above the eye centre
  float brow_thickness = 0.06f, brow_slope = 0, brow_arch = 0.04f, brow_length = 0.22f;
  Rgb brow;
  float nose_length = 0.42f;  // eye line to nose tip
  float nose_width = 0.2f;    // half-width at the nostrils
  float mouth_y = 0.58f, mouth_width = 0.33f, lip_upper = 0.05f, lip_lower = 0.07f;
  Rgb lips;
  int beard = 0;              // 0 none, 1 moustache, 2 stubble, 3 moustache and stubble
  float blush = 0.1f;
  int glasses = 0;  // 0 none, 1 a frame around both eyes
  Rgb glasses_colour;
  float glasses_thickness = 0.03f;
  std::vector<Mark> marks;
};

FaceTraits sample_traits(Rng& rng);

// ---- one video's script ------------------------------------------------------------------------

// Smooth random motion: two sinusoids, t in frames.
struct Wave {
  float amp[2] = {0, 0}, freq[2] = {0, 0}, phase[2] = {0, 0};
  float at(float t) const;
};

struct BgShape {
  bool ellipse = false;
  float x = 0, y = 0, w = 0, h = 0;  // centre and half-size as fractions of the frame
  float feather = 1;                 // soft edge in pixels (out of focus)
  Rgb color;
};

struct SceneScript {
  Rgb bg_top, bg_bottom;
  std::vector<BgShape> shapes;
  Rgb clothes;
  float cx = 0.5f, cy = 0.46f, scale = 0.2f;  // head centre and face half-width, fractions of the frame
  Wave dx, dy, roll, zoom, yaw;
  std::vector<float> blinks;                  // blink times in frames
  float talk = 0.5f;
  Wave mouth, smile, brow, gaze_x, gaze_y;
  float smile_base = 0.2f, brow_base = 0.2f;
  float gain = 1;
  Wave gain_wave;
  Rgb tint{1, 1, 1};
  float light_angle = 0, light_strength = 0.3f, ambient = 0.95f;
  Wave light_drift;
  float noise = 2;  // camera sensor noise, sigma in 8-bit levels
};

SceneScript sample_scene(Rng& rng, int frames);

struct Pose {
  float cx = 0, cy = 0;  // face centre, pixels
  float angle = 0;       // in-plane rotation, radians
  float scale = 1;       // pixels per face unit
  float yaw = 0;         // horizontal shift of the inner face, face units (a turned head)
};
struct Expression {
  float eye_open = 1, mouth_open = 0, smile = 0, brow_raise = 0, gaze_x = 0, gaze_y = 0;
};
struct Lighting {
  float gain = 1;
  Rgb tint{1, 1, 1};
  float angle = 0, strength = 0, ambient = 1;  // directional shading across the head
};

Pose scene_pose(const SceneScript& s, int size, int t);
Expression scene_expression(const SceneScript& s, int t);
Lighting scene_lighting(const SceneScript& s, int t);

// ---- geometry ------------------------------------------------------------------------------------

// A similarity from face units to pixels: p = o + (a + ib) * q (complex product).
struct View {
  float ox = 0, oy = 0, a = 1, b = 0;
  Vec2 to_pixel(float u, float v) const { return {ox + a * u - b * v, oy + b * u + a * v}; }
  Vec2 to_face(float x, float y) const {
    const float dx = x - ox, dy = y - oy, n = a * a + b * b;
    return {(a * dx + b * dy) / n, (a * dy - b * dx) / n};
  }
  float pixels_per_unit() const { return std::sqrt(a * a + b * b); }
};

// Where the inner face sits on the head: a similarity about the inner-face centre (0, 0.2)
// (Deepfakes' mis-scale); identity for real frames.
constexpr float kInnerCentreY = 0.2f;
struct InnerWarp {
  float scale = 1, dx = 0, dy = 0;
};

View head_view(const Pose& pose);
View inner_view(const Pose& pose, const InnerWarp& warp);

// Everything that decides one rendered frame.
struct FaceRender {
  const FaceTraits* outer = nullptr;  // head shape, hair, ears
  const FaceTraits* inner = nullptr;  // eyes, brows, nose, mouth, marks, beard
  const SceneScript* scene = nullptr; // background, clothes
  Rgb skin;                           // skin albedo of the face
  Pose pose;
  Expression expr;
  Lighting light;
  InnerWarp warp;
};

// Implicit function of the head outline (negative inside), head coordinates.
float face_outline(const FaceTraits& t, float u, float v);

// ---- canvas --------------------------------------------------------------------------------------

struct PixelRect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // [x0, x1) x [y0, y1)
  bool empty() const { return x1 <= x0 || y1 <= y0; }
};

// Float RGB in [0, 1] before sensor noise; `head` is the coverage of the head (skin, hair), used
// by the lighting. Only pixels inside `clip` are rendered (fakes render just the swapped region).
struct Canvas {
  int size = 0;
  std::vector<float> rgb, head;
  PixelRect clip;
  explicit Canvas(int s) : size(s), rgb(size_t(s) * s * 3, 0.0f), head(size_t(s) * s, 0.0f), clip{0, 0, s, s} {}
  float* px(int x, int y) { return &rgb[(size_t(y) * size + x) * 3]; }
  const float* px(int x, int y) const { return &rgb[(size_t(y) * size + x) * 3]; }
};

void render_frame(const FaceRender& r, Canvas& canvas);  // albedo, then lighting, within canvas.clip
Landmarks68 face_landmarks(const FaceRender& r);

// Adds camera noise (sigma in 8-bit levels, luminance plus weaker chroma) and rounds to 8 bits.
Image quantize(const Canvas& canvas, float noise_sigma, uint64_t noise_seed);

// Box of face units [u0, u1] x [v0, v1] seen through a view, as pixels (padded by `pad`, clipped).
PixelRect pixel_bounds(const View& view, float u0, float v0, float u1, float v1, const PixelRect& clip, int pad = 2);

// Paints a shape given by an implicit function f(u, v) (negative inside, face units of `view`)
// with anti-aliased coverage: the signed distance in pixels is f / |grad f|, the gradient taken by
// central differences in pixel space; coverage ramps over `feather` pixels (1 = one-pixel box
// filter). color(u, v) gives the colour; alpha scales the coverage.
// How a painted shape is lit: as part of the head (face shading), as part of the scene (covers the
// head, e.g. clothes), or as whatever it is painted on (features on the face).
enum class Lit { keep, head, scene };

template <class F, class C>
void paint(Canvas& c, const View& view, PixelRect box, F&& f, C&& color, float alpha, float feather = 1,
           Lit lit = Lit::keep) {
  const float h = 0.5f;
  const Vec2 o = view.to_face(0, 0), ex = view.to_face(h, 0), ey = view.to_face(0, h);
  const Vec2 hx{ex.x - o.x, ex.y - o.y}, hy{ey.x - o.x, ey.y - o.y};  // half a pixel, in face units
  for (int y = box.y0; y < box.y1; ++y)
    for (int x = box.x0; x < box.x1; ++x) {
      const Vec2 p = view.to_face(x + 0.5f, y + 0.5f);
      const float f0 = f(p.x, p.y);
      const float gx = f(p.x + hx.x, p.y + hx.y) - f(p.x - hx.x, p.y - hx.y);
      const float gy = f(p.x + hy.x, p.y + hy.y) - f(p.x - hy.x, p.y - hy.y);
      const float grad = std::sqrt(gx * gx + gy * gy) / (2 * h);
      const float d = grad > 1e-8f ? f0 / grad : (f0 < 0 ? -1e3f : 1e3f);
      const float cov = std::clamp(0.5f - d / feather, 0.0f, 1.0f) * alpha;
      if (cov <= 0) continue;
      const Rgb col = color(p.x, p.y);
      float* q = c.px(x, y);
      q[0] += (col.r - q[0]) * cov;
      q[1] += (col.g - q[1]) * cov;
      q[2] += (col.b - q[2]) * cov;
      if (lit != Lit::keep) {
        float& hc = c.head[size_t(y) * c.size + x];
        hc += ((lit == Lit::head ? 1.0f : 0.0f) - hc) * cov;
      }
    }
}

// Coverage in [0, 1] of a shape at one pixel centre, as paint() computes it.
template <class F>
float coverage(const View& view, float x, float y, F&& f, float feather = 1) {
  const float h = 0.5f;
  const Vec2 p = view.to_face(x, y);
  const Vec2 px = view.to_face(x + h, y), mx = view.to_face(x - h, y);
  const Vec2 py = view.to_face(x, y + h), my = view.to_face(x, y - h);
  const float f0 = f(p.x, p.y);
  const float gx = f(px.x, px.y) - f(mx.x, mx.y), gy = f(py.x, py.y) - f(my.x, my.y);
  const float grad = std::sqrt(gx * gx + gy * gy) / (2 * h);
  const float d = grad > 1e-8f ? f0 / grad : (f0 < 0 ? -1e3f : 1e3f);
  return std::clamp(0.5f - d / feather, 0.0f, 1.0f);
}

// ---- manipulations -------------------------------------------------------------------------------

// Every identity's traits and every video's script, drawn from the seed (synth.cpp).
struct World {
  SynthOptions options;
  std::vector<FaceTraits> traits;
  std::vector<SceneScript> scenes;

  explicit World(SynthOptions o);
  // Identity `identity` filmed in the scene of video `scene` at frame t, as in a real video.
  FaceRender real_render(int identity, int scene, int t) const;
};

SynthFake make_fake(const World& w, SynthMethod method, int a, int b, int t, const Image& source);

}  // namespace fstm::io::synth
