// The synthetic face: identity traits, the painter (head, hair, eyes, brows, nose, mouth, marks),
// lighting, camera noise, and the 68 landmarks taken from the same geometry as the drawing.
#include <algorithm>
#include <cmath>

#include "io/synth_model.h"

namespace fstm::io::synth {
namespace {

constexpr float kPi = 3.14159265358979f;

float sq(float x) { return x * x; }

// Anchors of a continuous palette, interpolated by t in [0, 1].
Rgb palette(const std::vector<Rgb>& anchors, float t) {
  const float x = std::clamp(t, 0.0f, 1.0f) * float(anchors.size() - 1);
  const int i = std::min(int(x), int(anchors.size()) - 2);
  return mix(anchors[i], anchors[i + 1], x - float(i));
}

Rgb jitter(Rng& rng, Rgb c, float amount) {
  return {c.r * rng.uniform(1 - amount, 1 + amount), c.g * rng.uniform(1 - amount, 1 + amount),
          c.b * rng.uniform(1 - amount, 1 + amount)};
}

// Value noise in [0, 1) on an integer lattice (freckle-free skin texture, stubble).
float hash01(int i, int j, uint32_t seed) {
  uint32_t h = uint32_t(i) * 0x8da6b343u ^ uint32_t(j) * 0xd8163841u ^ seed * 0xcb1ab31fu;
  h ^= h >> 13;
  h *= 0x5bd1e995u;
  h ^= h >> 15;
  return float(h & 0xffffff) / 16777216.0f;
}

// Region between two curves top(x) <= v <= bottom(x) for |x| <= half_width: implicit function.
template <class Top, class Bottom>
float between(float u, float v, float half_width, Top&& top, Bottom&& bottom) {
  return std::max({top(u) - v, v - bottom(u), std::abs(u) - half_width});
}

float ellipse(float u, float v, float cx, float cy, float rx, float ry) {
  return std::sqrt(sq((u - cx) / rx) + sq((v - cy) / ry)) - 1;
}

}  // namespace

// ---- identity ------------------------------------------------------------------------------------

IdentityLatent sample_latent(Rng& rng) {
  IdentityLatent z;
  z.pigment = rng.uniform();
  z.build = rng.uniform(-1.0f, 1.0f);
  z.length = rng.uniform(-1.0f, 1.0f);
  z.age = rng.uniform();
  return z;
}

FaceTraits sample_traits(Rng& rng) {
  static const std::vector<Rgb> skin_tones = {
      {0.30f, 0.19f, 0.13f}, {0.52f, 0.35f, 0.24f}, {0.76f, 0.56f, 0.43f}, {0.95f, 0.80f, 0.70f}};
  // Hair and iris colours from dark to light; the pigment latent picks among its neighbours.
  static const std::vector<Rgb> hair_colours = {{0.06f, 0.05f, 0.05f}, {0.20f, 0.13f, 0.08f}, {0.38f, 0.25f, 0.15f},
                                                {0.60f, 0.26f, 0.11f}, {0.80f, 0.66f, 0.42f}};
  const Rgb grey_hair{0.62f, 0.61f, 0.60f};
  static const std::vector<Rgb> lip_colours = {{0.85f, 0.55f, 0.55f}, {0.75f, 0.15f, 0.2f}, {0.45f, 0.15f, 0.2f},
                                               {0.9f, 0.45f, 0.35f}};
  static const std::vector<Rgb> iris_colours = {{0.15f, 0.09f, 0.05f}, {0.36f, 0.21f, 0.10f}, {0.52f, 0.40f, 0.20f},
                                                {0.30f, 0.52f, 0.30f}, {0.52f, 0.56f, 0.62f}, {0.30f, 0.50f, 0.76f}};
  // An index into a dark-to-light list near position p in [0, 1], spread by +-1 entry.
  auto near = [&](const std::vector<Rgb>& list, float p) {
    const int n = int(list.size());
    const int i = std::clamp(int(std::lround(p * float(n - 1))) + int(rng.below(3)) - 1, 0, n - 1);
    return list[size_t(i)];
  };
  FaceTraits t;
  // The latent that drives both parts of the face (synth_model.h: IdentityLatent).
  const IdentityLatent z = sample_latent(rng);
  t.latent = z;
  // Head.
  t.face_width = 1 + 0.07f * z.build + rng.uniform(-0.02f, 0.02f);
  t.face_top = 1.25f + 0.08f * z.length + rng.uniform(-0.03f, 0.03f);
  t.jaw = 0.815f + 0.11f * z.build + rng.uniform(-0.03f, 0.03f);
  t.chin_power = rng.uniform(2.0f, 3.2f);
  t.ear_size = rng.uniform(0.85f, 1.15f);
  t.hair_style = HairStyle(rng.below(uint64_t(HairStyle::count)));
  t.hair = jitter(rng, near(hair_colours, z.pigment), 0.12f);
  if (z.age > 0.8f) t.hair = mix(t.hair, grey_hair, 5 * (z.age - 0.8f));  // greying
  t.hairline = -0.72f - 0.2f * z.age + rng.uniform(-0.04f, 0.04f);       // receding with age
  t.hair_part = rng.uniform(-0.25f, 0.25f);
  t.hair_volume = rng.uniform(0.0f, 1.0f);
  t.hair_freq = rng.uniform(25.0f, 45.0f);
  t.hair_angle = rng.uniform(0.0f, kPi);
  t.hair_phase = rng.uniform(0.0f, 2 * kPi);
  Rgb skin = palette(skin_tones, z.pigment + rng.uniform(-0.08f, 0.08f));
  skin.r *= rng.uniform(0.96f, 1.04f);  // redness
  skin.g *= rng.uniform(0.96f, 1.03f);  // yellowness
  t.skin = skin;

  // Inner face.
  t.eye_spacing = 0.415f + 0.045f * z.build + rng.uniform(-0.015f, 0.015f);
  t.eye_y = -0.21f - 0.05f * z.length + rng.uniform(-0.02f, 0.02f);
  t.eye_width = rng.uniform(0.14f, 0.23f);
  t.eye_upper = 0.11f - 0.04f * z.age + rng.uniform(-0.012f, 0.012f);  // lids droop with age
  t.eye_lower = rng.uniform(0.035f, 0.06f);
  t.eye_tilt = rng.uniform(-0.1f, 0.18f);
  t.iris_radius = rng.uniform(0.055f, 0.09f);
  t.iris = jitter(rng, near(iris_colours, z.pigment), 0.1f);
  t.lash = rng.uniform(0.015f, 0.05f);
  t.brow_gap = rng.uniform(0.16f, 0.26f);
  t.brow_thickness = 0.095f - 0.045f * z.age + rng.uniform(-0.015f, 0.015f);
  t.brow_slope = rng.uniform(-0.08f, 0.08f);
  t.brow_arch = rng.uniform(0.0f, 0.08f);
  t.brow_length = rng.uniform(0.17f, 0.28f);
  t.brow = mix(t.hair, {0.08f, 0.06f, 0.05f}, rng.uniform(0.2f, 0.5f));  // the head's hair colour, darker
  t.nose_length = 0.42f + 0.08f * z.length + rng.uniform(-0.03f, 0.03f);
  t.nose_width = 0.195f + 0.05f * z.build + rng.uniform(-0.015f, 0.015f);
  t.mouth_y = t.eye_y + t.nose_length + rng.uniform(0.2f, 0.28f);
  t.mouth_width = 0.33f + 0.055f * z.build + rng.uniform(-0.02f, 0.02f);
  t.lip_upper = rng.uniform(0.03f, 0.06f);
  t.lip_lower = rng.uniform(0.04f, 0.1f);
  t.lips = mix(skin * 0.78f, lip_colours[rng.below(lip_colours.size())], rng.uniform(0.3f, 0.8f));
  t.face_bottom = std::max(1.1f + 0.08f * z.length + rng.uniform(-0.03f, 0.03f), t.mouth_y + 0.42f);
  t.beard = rng.uniform() < 0.3f ? int(1 + rng.below(3)) : 0;
  t.blush = rng.uniform(0.0f, 0.35f) * (1 - 0.6f * z.age);
  if (rng.uniform() < 0.15f + 0.25f * z.age) {  // glasses: part of the inner face, swapped with it
    t.glasses = 1;
    t.glasses_colour = rng.uniform() < 0.6f ? Rgb{0.08f, 0.07f, 0.07f} : jitter(rng, {0.65f, 0.55f, 0.35f}, 0.15f);
    t.glasses_thickness = rng.uniform(0.022f, 0.04f);
  }

  // Marks: moles, freckles over the nose and cheeks, a scar.
  const int moles = int(rng.below(3)) + int(std::lround(3 * z.age));  // more with age
  for (int i = 0; i < moles; ++i) {
    Mark m;
    m.kind = Mark::mole;
    m.at = {rng.uniform(-0.7f, 0.7f), rng.uniform(-0.1f, 0.85f)};
    m.radius = rng.uniform(0.025f, 0.045f);
    m.alpha = rng.uniform(0.6f, 0.9f);
    t.marks.push_back(m);
  }
  if (rng.uniform() < 0.5f * z.pigment) {  // freckles on light skin
    const int n = 15 + int(rng.below(26));
    for (int i = 0; i < n; ++i) {
      Mark m;
      m.kind = Mark::freckle;
      const float side = rng.uniform() < 0.5f ? -1.0f : 1.0f;
      m.at = {side * rng.uniform(0.0f, 0.65f), rng.uniform(-0.05f, 0.35f)};
      m.radius = rng.uniform(0.015f, 0.028f);
      m.alpha = rng.uniform(0.25f, 0.45f);
      t.marks.push_back(m);
    }
  }
  if (rng.uniform() < 0.15f) {
    Mark m;
    m.kind = Mark::scar;
    const float side = rng.uniform() < 0.5f ? -1.0f : 1.0f;
    m.at = {side * rng.uniform(0.35f, 0.6f), rng.uniform(0.0f, 0.4f)};
    m.to = {m.at.x + side * rng.uniform(0.05f, 0.15f), m.at.y + rng.uniform(0.12f, 0.25f)};
    m.radius = rng.uniform(0.012f, 0.02f);
    m.alpha = 0.6f;
    t.marks.push_back(m);
  }
  return t;
}

// ---- geometry ------------------------------------------------------------------------------------

View head_view(const Pose& pose) {
  return {pose.cx, pose.cy, pose.scale * std::cos(pose.angle), pose.scale * std::sin(pose.angle)};
}

// Inner face coordinates q map to head coordinates c + s (q - c) + d, with the turned-head shift.
View inner_view(const Pose& pose, const InnerWarp& warp) {
  const View h = head_view(pose);
  const float cx = 0, cy = kInnerCentreY;
  const float tx = cx - warp.scale * cx + warp.dx + pose.yaw, ty = cy - warp.scale * cy + warp.dy;
  const Vec2 o = h.to_pixel(tx, ty);
  return {o.x, o.y, h.a * warp.scale, h.b * warp.scale};
}

float face_outline(const FaceTraits& t, float u, float v) {
  if (v < 0) return std::sqrt(sq(u / t.face_width) + sq(v / t.face_top)) - 1;
  const float s = std::min(v / t.face_bottom, 1.0f);
  const float w = t.face_width * (1 - (1 - t.jaw) * s * s);
  return std::sqrt(sq(u / w) + std::pow(v / t.face_bottom, t.chin_power)) - 1;
}

namespace {

// Point of the outline along the ray at angle phi from the face centre (bisection).
Vec2 outline_point(const FaceTraits& t, float phi) {
  const float c = std::cos(phi), s = std::sin(phi);
  float lo = 0, hi = 3;
  for (int i = 0; i < 40; ++i) {
    const float mid = 0.5f * (lo + hi);
    (face_outline(t, mid * c, mid * s) < 0 ? lo : hi) = mid;
  }
  return {lo * c, lo * s};
}

// The eyes, brows and mouth of one face under one expression, in inner-face units.
struct InnerGeometry {
  const FaceTraits& t;
  Expression e;
  InnerGeometry(const FaceTraits& traits, const Expression& expr) : t(traits), e(expr) {}

  // Eye k (0: image left, 1: image right) local coordinates: x along the eye's axis, left to right.
  float eye_cx(int k) const { return k == 0 ? -t.eye_spacing : t.eye_spacing; }
  float eye_angle(int k) const { return k == 0 ? t.eye_tilt : -t.eye_tilt; }  // outer corner up
  Vec2 eye_local(int k, float u, float v) const {
    const float c = std::cos(eye_angle(k)), s = std::sin(eye_angle(k));
    const float du = u - eye_cx(k), dv = v - t.eye_y;
    return {du * c + dv * s, -du * s + dv * c};
  }
  Vec2 eye_to_face(int k, float x, float y) const {
    const float c = std::cos(eye_angle(k)), s = std::sin(eye_angle(k));
    return {eye_cx(k) + x * c - y * s, t.eye_y + x * s + y * c};
  }
  // Lid profile over the eye's width (s in [-1, 1]): rounder than a parabola.
  static float lid(float s) {
    const float t = std::max(0.0f, 1 - s * s);
    return t * (1.35f - 0.35f * t);
  }
  float open() const { return std::clamp(e.eye_open, 0.0f, 1.0f); }
  float lower_lid(float x) const { return t.eye_lower * lid(x / t.eye_width); }
  float upper_lid(float x) const {
    return lower_lid(x) - (t.eye_upper + t.eye_lower) * open() * lid(x / t.eye_width);
  }
  float eye_opening(int k, float u, float v) const {  // implicit: the visible eyeball
    const Vec2 p = eye_local(k, u, v);
    return std::max({std::abs(p.x) - t.eye_width, upper_lid(p.x) - p.y, p.y - lower_lid(p.x)});
  }
  Vec2 iris_centre() const { return {e.gaze_x * t.eye_width * 0.35f, e.gaze_y * 0.02f}; }

  // Brow k: s runs from -1 at the inner end to +1 at the outer end.
  float brow_cx(int k) const { return k == 0 ? -(t.eye_spacing + 0.03f) : t.eye_spacing + 0.03f; }
  float brow_s(int k, float u) const { return (k == 0 ? -1.0f : 1.0f) * (u - brow_cx(k)) / t.brow_length; }
  float brow_u(int k, float s) const { return brow_cx(k) + (k == 0 ? -1.0f : 1.0f) * s * t.brow_length; }
  float brow_y(float s) const {
    const float sc = std::clamp(s, -1.0f, 1.0f);
    return t.eye_y - t.brow_gap - e.brow_raise * 0.07f - t.brow_arch * (1 - sc * sc) - t.brow_slope * sc;
  }
  float brow_thick(float s) const { return t.brow_thickness * (1 - 0.45f * (std::clamp(s, -1.0f, 1.0f) + 1) / 2); }

  // Mouth: half-width grows and corners rise with the smile; the lips part with mouth_open.
  float mouth_w() const { return t.mouth_width * (1 + 0.12f * e.smile); }
  float mouth_line(float u) const { return t.mouth_y - e.smile * 0.07f * sq(u / mouth_w()) + 0.02f * e.smile; }
  float opening(float u) const {
    return std::clamp(e.mouth_open, 0.0f, 1.0f) * 0.13f * lid(u / mouth_w());
  }
  float upper_lip_top(float u) const {
    const float s = u / mouth_w();
    const float bow = 1 - 0.35f * std::exp(-sq(s / 0.15f));  // Cupid's bow
    return mouth_line(u) - opening(u) - t.lip_upper * bow * std::sqrt(std::max(0.0f, 1 - s * s));
  }
  float lower_lip_bottom(float u) const {
    return mouth_line(u) + opening(u) + t.lip_lower * std::sqrt(std::max(0.0f, 1 - sq(u / mouth_w())));
  }
  float nose_tip_y() const { return t.eye_y + t.nose_length; }
};

struct Painter {
  const FaceRender& r;
  Canvas& c;
  View hv, iv;
  const FaceTraits& o;   // outer
  const FaceTraits& in;  // inner
  InnerGeometry g;

  Painter(const FaceRender& render, Canvas& canvas)
      : r(render), c(canvas), hv(head_view(render.pose)), iv(inner_view(render.pose, render.warp)),
        o(*render.outer), in(*render.inner), g(*render.inner, render.expr) {}

  PixelRect head_box(float u0, float v0, float u1, float v1) const { return pixel_bounds(hv, u0, v0, u1, v1, c.clip); }
  PixelRect inner_box(float u0, float v0, float u1, float v1) const {
    return pixel_bounds(iv, u0, v0, u1, v1, c.clip);
  }
  static auto solid(Rgb col) {
    return [col](float, float) { return col; };
  }
  auto hair_colour() const {
    const FaceTraits& t = o;
    return [&t](float u, float v) {
      const float a = std::cos(t.hair_angle) * u + std::sin(t.hair_angle) * v;
      return t.hair * (1 + 0.09f * std::sin(t.hair_freq * a + t.hair_phase) + 0.05f * std::sin(2.3f * t.hair_freq * a));
    };
  }

  float hair_cap(float u, float v) const {
    return ellipse(u, v, 0, -0.25f * o.face_top, o.face_width * (1.06f + 0.1f * o.hair_volume),
                   o.face_top * (0.86f + 0.14f * o.hair_volume));
  }
  float hairline(float u) const {
    switch (o.hair_style) {
      case HairStyle::bangs: return -0.5f * o.face_top + 0.12f * u * u + 0.025f * std::sin(u * 18 + o.hair_phase);
      case HairStyle::side_part: return o.hairline + 0.5f * u * u + o.hair_part * u;
      default: return o.hairline + 0.55f * u * u;
    }
  }
  float front_hair(float u, float v) const {
    if (o.hair_style == HairStyle::bald)  // side tufts only
      return std::max({hair_cap(u, v), v - 0.1f, -0.45f * o.face_top - v, 0.8f * o.face_width - std::abs(u)});
    return std::max(hair_cap(u, v), v - hairline(u));
  }

  void back_hair() {
    float ry = 0, cy = 0, rx = o.face_width * (1.25f + 0.1f * o.hair_volume);
    if (o.hair_style == HairStyle::long_hair) {
      cy = 0.55f;
      ry = 1.9f;
    } else if (o.hair_style == HairStyle::bob) {
      cy = 0.05f;
      ry = 1.3f;
    } else {
      return;
    }
    auto f = [&](float u, float v) { return std::sqrt(std::sqrt(sq(sq(u / rx)) + sq(sq((v - cy) / ry)))) - 1; };
    paint(c, hv, head_box(-rx, cy - ry, rx, cy + ry), f, hair_colour(), 1.0f, 1.0f, Lit::head);
  }
  void body() {
    const float w = o.face_width;
    auto neck = [&](float u, float v) { return std::max(std::abs(u) - 0.45f * w, 0.2f - v); };
    paint(c, hv, head_box(-0.5f * w, 0.1f, 0.5f * w, o.face_bottom + 3), neck, solid(r.skin * 0.8f), 1.0f, 1.0f, Lit::head);
    const float sy = o.face_bottom + 1.75f;
    auto clothes = [&](float u, float v) { return ellipse(u, v, 0, sy, 2.4f, 1.15f); };
    auto cloth_colour = [&](float u, float v) { return r.scene->clothes * (0.85f + 0.15f * std::clamp(1.2f - std::abs(u) * 0.5f, 0.0f, 1.0f)); };
    paint(c, hv, head_box(-2.5f, sy - 1.2f, 2.5f, sy + 1.2f), clothes, cloth_colour, 1.0f, 1.0f, Lit::scene);
  }
  void ears() {
    for (float side : {-1.0f, 1.0f}) {
      const float ex = side * o.face_width * 0.97f, ey = 0.0f, rx = 0.13f * o.ear_size, ry = 0.24f * o.ear_size;
      auto ear = [&](float u, float v) { return ellipse(u, v, ex, ey, rx, ry); };
      paint(c, hv, head_box(ex - rx, ey - ry, ex + rx, ey + ry), ear, solid(r.skin * 0.9f), 1.0f, 1.0f, Lit::head);
      auto inner_ear = [&](float u, float v) { return ellipse(u, v, ex + side * 0.02f, ey, rx * 0.45f, ry * 0.6f); };
      paint(c, hv, head_box(ex - rx, ey - ry, ex + rx, ey + ry), inner_ear, solid(r.skin * 0.72f), 0.6f, 2.0f);
    }
  }
  void face() {
    const float w = o.face_width;
    auto f = [&](float u, float v) { return face_outline(o, u, v); };
    paint(c, hv, head_box(-w, -o.face_top, w, o.face_bottom), f, solid(r.skin), 1.0f, 1.0f, Lit::head);
    // Soft shadow under the chin on the neck side: the jaw's edge reads as a shape.
    auto chin_shadow = [&](float u, float v) {
      return std::max({-face_outline(o, u, v), v - o.face_bottom - 0.15f, std::abs(u) - 0.45f * w});
    };
    paint(c, hv, head_box(-w, 0.2f, w, o.face_bottom + 0.2f), chin_shadow, solid(r.skin * 0.6f), 0.35f, 3.0f);
  }
  void cheeks_and_marks() {
    for (float side : {-1.0f, 1.0f}) {
      const float cx = side * (in.eye_spacing + 0.08f), cy = g.nose_tip_y() - 0.02f;
      auto blush = [&](float u, float v) { return ellipse(u, v, cx, cy, 0.22f, 0.15f); };
      paint(c, iv, inner_box(cx - 0.35f, cy - 0.3f, cx + 0.35f, cy + 0.3f), blush, solid({0.85f, 0.35f, 0.35f}),
            in.blush, 0.25f * iv.pixels_per_unit());
      // Eye socket: a soft shadow that gives the eyes depth.
      const float ex = g.eye_cx(side < 0 ? 0 : 1);
      auto socket = [&](float u, float v) { return ellipse(u, v, ex, in.eye_y - 0.02f, in.eye_width * 1.25f, 0.14f); };
      paint(c, iv, inner_box(ex - 0.4f, in.eye_y - 0.3f, ex + 0.4f, in.eye_y + 0.3f), socket, solid(r.skin * 0.7f), 0.18f,
            0.08f * iv.pixels_per_unit());
    }
    for (const Mark& m : in.marks) {
      if (m.kind == Mark::scar) {
        const Vec2 a = m.at, b = m.to;
        auto seg = [&](float u, float v) {
          const float dx = b.x - a.x, dy = b.y - a.y;
          const float t = std::clamp(((u - a.x) * dx + (v - a.y) * dy) / (dx * dx + dy * dy), 0.0f, 1.0f);
          return len(u - a.x - t * dx, v - a.y - t * dy) - m.radius;
        };
        paint(c, iv, inner_box(std::min(a.x, b.x) - 0.05f, std::min(a.y, b.y) - 0.05f, std::max(a.x, b.x) + 0.05f,
                               std::max(a.y, b.y) + 0.05f),
              seg, solid(mix(r.skin, {0.95f, 0.7f, 0.7f}, 0.5f)), m.alpha);
        continue;
      }
      const Rgb col = m.kind == Mark::mole ? Rgb{0.25f, 0.15f, 0.1f} : mix(r.skin, {0.45f, 0.25f, 0.12f}, 0.7f);
      auto dot = [&](float u, float v) { return len(u - m.at.x, v - m.at.y) - m.radius; };
      paint(c, iv, inner_box(m.at.x - 0.08f, m.at.y - 0.08f, m.at.x + 0.08f, m.at.y + 0.08f), dot, solid(col), m.alpha);
    }
  }
  void beard() {
    if (in.beard == 0) return;
    const float my = g.mouth_line(0);
    if (in.beard >= 2) {  // stubble: a speckled shadow over the chin and jaw
      const uint32_t seed = uint32_t(in.hair_freq * 1000);
      auto region = [&](float u, float v) { return std::max(ellipse(u, v, 0, my + 0.22f, 0.72f, 0.52f), my - 0.1f - v); };
      auto speckle = [&, seed](float u, float v) {
        return mix(r.skin, o.hair, 0.5f + 0.5f * hash01(int(std::floor(u * 40)), int(std::floor(v * 40)), seed));
      };
      paint(c, iv, inner_box(-0.8f, my - 0.2f, 0.8f, my + 0.8f), region, speckle, 0.45f, 0.08f * iv.pixels_per_unit());
    }
    if (in.beard != 2) {  // moustache
      auto f = [&](float u, float v) {
        const float y = g.upper_lip_top(std::clamp(u, -g.mouth_w(), g.mouth_w())) - 0.045f;
        return std::max(std::abs(v - y) - 0.035f, std::abs(u) - g.mouth_w() * 1.02f);
      };
      paint(c, iv, inner_box(-0.5f, my - 0.3f, 0.5f, my), f, solid(in.brow), 0.85f);
    }
  }
  void nose() {
    const float tip = g.nose_tip_y(), nw = in.nose_width, tipx = 0.6f * r.pose.yaw;
    const float lx = std::cos(r.light.angle);
    for (float side : {-1.0f, 1.0f}) {  // side walls of the bridge, darker away from the light
      const float x = side * nw * 0.45f;
      auto wall = [&](float u, float v) {
        const float t = std::clamp((v - (in.eye_y + 0.05f)) / (tip - 0.05f - in.eye_y - 0.05f), 0.0f, 1.0f);
        return std::max(std::abs(u - (x + t * tipx)) - 0.03f, std::abs(v - (in.eye_y + tip) / 2) - (tip - in.eye_y) / 2 + 0.04f);
      };
      const float a = 0.12f + 0.15f * std::max(0.0f, side * lx);
      paint(c, iv, inner_box(x - 0.1f, in.eye_y, x + 0.1f + tipx, tip), wall, solid(r.skin * 0.65f), a,
            0.05f * iv.pixels_per_unit());
      // Ala (nostril wing) and nostril.
      const float ax = tipx + side * nw * 0.62f;
      auto ala = [&](float u, float v) { return std::abs(ellipse(u, v, ax, tip + 0.005f, nw * 0.42f, 0.07f)) * 0.07f - 0.008f; };
      paint(c, iv, inner_box(ax - 0.15f, tip - 0.1f, ax + 0.15f, tip + 0.1f), ala, solid(r.skin * 0.55f), 0.35f);
      const float nx = tipx + side * nw * 0.36f;
      auto nostril = [&](float u, float v) { return ellipse(u, v, nx, tip + 0.04f, nw * 0.26f, 0.028f); };
      paint(c, iv, inner_box(nx - 0.1f, tip, nx + 0.1f, tip + 0.1f), nostril, solid(r.skin * 0.3f), 0.8f);
    }
    auto highlight = [&](float u, float v) { return ellipse(u, v, tipx, tip - 0.04f, nw * 0.4f, 0.06f); };
    paint(c, iv, inner_box(tipx - 0.2f, tip - 0.15f, tipx + 0.2f, tip + 0.05f), highlight, solid({1, 0.95f, 0.9f}), 0.12f,
          0.04f * iv.pixels_per_unit());
    auto under = [&](float u, float v) { return ellipse(u, v, tipx * 0.5f, tip + 0.1f, nw * 0.8f, 0.035f); };
    paint(c, iv, inner_box(-0.3f, tip, 0.3f, tip + 0.2f), under, solid(r.skin * 0.6f), 0.18f, 0.04f * iv.pixels_per_unit());
  }
  void mouth() {
    const float mw = g.mouth_w(), my = in.mouth_y;
    const PixelRect box = inner_box(-mw - 0.05f, my - 0.25f, mw + 0.05f, my + 0.3f);
    auto interior = [&](float u, float v) {
      return between(u, v, mw, [&](float x) { return g.mouth_line(x) - g.opening(x); },
                     [&](float x) { return g.mouth_line(x) + g.opening(x); });
    };
    paint(c, iv, box, interior, solid({0.25f, 0.07f, 0.08f}), 1.0f);
    auto teeth = [&](float u, float v) {
      return std::max(interior(u, v), v - (g.mouth_line(u) - g.opening(u) + 0.04f));
    };
    paint(c, iv, box, teeth, solid({0.9f, 0.88f, 0.82f}), 0.95f);
    auto upper = [&](float u, float v) {
      return between(u, v, mw, [&](float x) { return g.upper_lip_top(x); },
                     [&](float x) { return g.mouth_line(x) - g.opening(x); });
    };
    auto lower = [&](float u, float v) {
      return between(u, v, mw, [&](float x) { return g.mouth_line(x) + g.opening(x); },
                     [&](float x) { return g.lower_lip_bottom(x); });
    };
    paint(c, iv, box, upper, solid(in.lips * 0.9f), 1.0f);
    auto lower_colour = [&](float u, float v) {  // a soft highlight on the lower lip
      const float mid = g.mouth_line(u) + g.opening(u) + in.lip_lower * 0.4f;
      return in.lips * (1.0f + 0.15f * std::exp(-sq((v - mid) / 0.025f) - sq(u / (0.6f * mw))));
    };
    paint(c, iv, box, lower, lower_colour, 1.0f);
    auto line = [&](float u, float v) { return std::max(std::abs(v - g.mouth_line(u)) - 0.008f, std::abs(u) - mw); };
    paint(c, iv, box, line, solid({0.3f, 0.1f, 0.1f}), 0.7f);
  }
  void eyes() {
    for (int k = 0; k < 2; ++k) {
      const float ex = g.eye_cx(k), ey = in.eye_y, ew = in.eye_width;
      const PixelRect box = inner_box(ex - ew - 0.06f, ey - 0.2f, ex + ew + 0.06f, ey + 0.12f);
      auto opening = [&](float u, float v) { return g.eye_opening(k, u, v); };
      paint(c, iv, box, opening, solid({0.92f, 0.9f, 0.86f}), 1.0f);
      const Vec2 ic = g.iris_centre();
      auto iris = [&](float u, float v) {
        const Vec2 p = g.eye_local(k, u, v);
        return std::max(opening(u, v), len(p.x - ic.x, p.y - ic.y) - in.iris_radius);
      };
      auto iris_colour = [&](float u, float v) {  // darker rim
        const Vec2 p = g.eye_local(k, u, v);
        return in.iris * (1.1f - 0.5f * len(p.x - ic.x, p.y - ic.y) / in.iris_radius);
      };
      paint(c, iv, box, iris, iris_colour, 1.0f);
      auto pupil = [&](float u, float v) {
        const Vec2 p = g.eye_local(k, u, v);
        return std::max(opening(u, v), len(p.x - ic.x, p.y - ic.y) - in.iris_radius * 0.42f);
      };
      paint(c, iv, box, pupil, solid({0.03f, 0.03f, 0.03f}), 1.0f);
      auto glint = [&](float u, float v) {
        const Vec2 p = g.eye_local(k, u, v);
        return std::max(opening(u, v), len(p.x - ic.x + 0.02f, p.y - ic.y + 0.02f) - 0.018f);
      };
      paint(c, iv, box, glint, solid({1, 1, 1}), 0.7f);
      // Upper lash line (follows the lid), crease above it, faint lower lash line.
      auto lash = [&](float u, float v) {
        const Vec2 p = g.eye_local(k, u, v);
        return std::max(std::abs(p.y - g.upper_lid(p.x) + in.lash * 0.3f) - in.lash / 2, std::abs(p.x) - ew * 1.06f);
      };
      paint(c, iv, box, lash, solid({0.07f, 0.05f, 0.05f}), 0.95f);
      auto crease = [&](float u, float v) {
        const Vec2 p = g.eye_local(k, u, v);
        const float y = -in.eye_upper * 1.05f * InnerGeometry::lid(p.x / (ew * 0.95f)) - 0.05f;
        return std::max(std::abs(p.y - y) - 0.01f, std::abs(p.x) - ew * 0.85f);
      };
      paint(c, iv, box, crease, solid(r.skin * 0.55f), 0.35f);
      auto lower_lash = [&](float u, float v) {
        const Vec2 p = g.eye_local(k, u, v);
        return std::max(std::abs(p.y - g.lower_lid(p.x) - 0.008f) - 0.008f, std::abs(p.x) - ew * 0.9f);
      };
      paint(c, iv, box, lower_lash, solid(r.skin * 0.5f), 0.35f);
    }
  }
  void brows() {
    for (int k = 0; k < 2; ++k) {
      const float bx = g.brow_cx(k), by = g.brow_y(0), bl = in.brow_length;
      auto brow = [&](float u, float v) {
        const float s = g.brow_s(k, u);
        return std::max(std::abs(v - g.brow_y(s)) - g.brow_thick(s) / 2, (std::abs(s) - 1) * bl);
      };
      auto brow_colour = [&](float u, float v) {  // hair-like texture along the brow
        return in.brow * (1 + 0.12f * std::sin(u * 90 + v * 40));
      };
      paint(c, iv, inner_box(bx - bl - 0.05f, by - 0.25f, bx + bl + 0.05f, by + 0.2f), brow, brow_colour, 0.9f);
    }
  }
  void glasses() {
    if (!in.glasses) return;
    const float th = in.glasses_thickness, hh = 0.13f, hw = in.eye_width + 0.07f, cy = in.eye_y + 0.01f;
    auto round_box = [](float x, float y, float bx, float by, float r) {
      const float qx = std::abs(x) - bx + r, qy = std::abs(y) - by + r;
      return len(std::max(qx, 0.0f), std::max(qy, 0.0f)) + std::min(std::max(qx, qy), 0.0f) - r;
    };
    const Rgb col = in.glasses_colour;
    for (int k = 0; k < 2; ++k) {
      const float cx = g.eye_cx(k);
      auto rim = [&](float u, float v) { return std::abs(round_box(u - cx, v - cy, hw, hh, 0.07f)) - th / 2; };
      paint(c, iv, inner_box(cx - hw - 0.05f, cy - hh - 0.05f, cx + hw + 0.05f, cy + hh + 0.05f), rim, solid(col), 0.95f);
      // Temple arm towards the ear.
      const float side = k == 0 ? -1.0f : 1.0f, x0 = cx + side * hw, x1 = side * 0.97f * o.face_width;
      auto arm = [&](float u, float v) {
        return std::max(std::abs(v - (cy - hh * 0.5f)) - th / 2, std::abs(u - (x0 + x1) / 2) - std::abs(x1 - x0) / 2);
      };
      paint(c, iv, inner_box(std::min(x0, x1), cy - hh, std::max(x0, x1), cy), arm, solid(col), 0.95f);
    }
    auto bridge = [&](float u, float v) {
      const float y = cy - hh * 0.35f - 0.04f * (1 - sq(u / (in.eye_spacing - hw)));
      return std::max(std::abs(v - y) - th / 2, std::abs(u) - (in.eye_spacing - hw) - 0.01f);
    };
    paint(c, iv, inner_box(-0.3f, cy - hh - 0.1f, 0.3f, cy), bridge, solid(col), 0.95f);
  }
  void front_hair_layer() {
    if (o.hair_style == HairStyle::bald) {
      auto f = [&](float u, float v) { return front_hair(u, v); };
      paint(c, hv, head_box(-1.4f, -1.6f, 1.4f, 0.3f), f, hair_colour(), 1.0f, 1.0f, Lit::head);
      return;
    }
    auto f = [&](float u, float v) { return front_hair(u, v); };
    paint(c, hv, head_box(-1.4f, -1.9f, 1.4f, 0.6f), f, hair_colour(), 1.0f, 1.0f, Lit::head);
  }
  void lighting() {
    const Lighting& L = r.light;
    const float la = std::cos(L.angle), lb = std::sin(L.angle), S = float(c.size);
    for (int y = c.clip.y0; y < c.clip.y1; ++y)
      for (int x = c.clip.x0; x < c.clip.x1; ++x) {
        const Vec2 p = hv.to_face(x + 0.5f, y + 0.5f);
        const float nx = std::clamp(p.x / (o.face_width * 1.1f), -1.0f, 1.0f);
        const float ny = std::clamp((p.y - 0.1f) / 1.5f, -1.0f, 1.0f);
        const float nz = std::sqrt(std::max(0.0f, 1 - nx * nx - ny * ny));
        const float face = (L.ambient + L.strength * (nx * la + ny * lb)) * (0.82f + 0.18f * nz);
        const float bg = 1 + 0.3f * L.strength * ((x / S - 0.5f) * la + (y / S - 0.5f) * lb);
        const float h = c.head[size_t(y) * c.size + x];
        const float k = L.gain * (bg + (face - bg) * h);
        float* q = c.px(x, y);
        q[0] *= k * L.tint.r;
        q[1] *= k * L.tint.g;
        q[2] *= k * L.tint.b;
      }
  }
};

}  // namespace

void paint_background(const SceneScript& s, Canvas& c);  // synth_scene.cpp

void render_frame(const FaceRender& r, Canvas& canvas) {
  Painter p(r, canvas);
  paint_background(*r.scene, canvas);
  p.back_hair();
  p.body();
  p.ears();
  p.face();
  p.cheeks_and_marks();
  p.beard();
  p.nose();
  p.mouth();
  p.eyes();
  p.brows();
  p.glasses();
  p.front_hair_layer();
  p.lighting();
}

Landmarks68 face_landmarks(const FaceRender& r) {
  const View hv = head_view(r.pose), iv = inner_view(r.pose, r.warp);
  const FaceTraits& in = *r.inner;
  const InnerGeometry g(in, r.expr);
  Landmarks68 L{};
  auto set = [&](int i, const View& v, float u, float w) {
    const Vec2 p = v.to_pixel(u, w);
    L[i] = {p.x, p.y};
  };
  // Jaw 0-16: along the outline from the image-left side at eye level, under the chin, up the right.
  for (int k = 0; k <= 16; ++k) {
    const float phi = (kPi + 0.2f) - (kPi + 0.4f) * float(k) / 16;
    const Vec2 q = outline_point(*r.outer, phi);
    set(k, hv, q.x, q.y);
  }
  // Brows 17-21 (left brow, outer to inner) and 22-26 (right brow, inner to outer), upper-middle edge.
  const float bs[5] = {1, 0.5f, 0, -0.5f, -1};
  for (int i = 0; i < 5; ++i) {
    set(17 + i, iv, g.brow_u(0, bs[i]), g.brow_y(bs[i]) - g.brow_thick(bs[i]) * 0.25f);
    const float s = bs[4 - i];
    set(22 + i, iv, g.brow_u(1, s), g.brow_y(s) - g.brow_thick(s) * 0.25f);
  }
  // Nose 27-30: bridge down to the tip; 31-35: base of the nose, left to right.
  const float tip = g.nose_tip_y(), tipx = 0.6f * r.pose.yaw;
  for (int i = 0; i < 4; ++i) {
    const float t = float(i) / 3;
    set(27 + i, iv, t * tipx, in.eye_y - 0.02f + t * (tip - in.eye_y + 0.02f));
  }
  const float nx[5] = {-0.62f, -0.32f, 0, 0.32f, 0.62f}, ny[5] = {0.015f, 0.045f, 0.06f, 0.045f, 0.015f};
  for (int i = 0; i < 5; ++i) set(31 + i, iv, tipx + nx[i] * in.nose_width, tip + ny[i]);
  // Eyes 36-41 (left: outer corner, upper lid x2, inner corner, lower lid x2), 42-47 (right).
  for (int k = 0; k < 2; ++k) {
    const float w = in.eye_width, xs[6] = {-w, -w / 3, w / 3, w, w / 3, -w / 3};
    for (int i = 0; i < 6; ++i) {
      const float y = i == 0 || i == 3 ? 0 : (i < 3 ? g.upper_lid(xs[i]) : g.lower_lid(xs[i]));
      const Vec2 q = g.eye_to_face(k, xs[i], y);
      set(36 + 6 * k + i, iv, q.x, q.y);
    }
  }
  // Mouth 48-59: outer contour from the left corner over the upper lip and back under the lower lip;
  // 60-67: inner contour (the lips' opening).
  const float mw = g.mouth_w();
  const float us[5] = {-0.66f, -0.33f, 0, 0.33f, 0.66f};
  set(48, iv, -mw, g.mouth_line(-mw));
  for (int i = 0; i < 5; ++i) set(49 + i, iv, us[i] * mw, g.upper_lip_top(us[i] * mw));
  set(54, iv, mw, g.mouth_line(mw));
  for (int i = 0; i < 5; ++i) set(55 + i, iv, us[4 - i] * mw, g.lower_lip_bottom(us[4 - i] * mw));
  const float ui[3] = {-0.4f, 0, 0.4f};
  set(60, iv, -0.9f * mw, g.mouth_line(-0.9f * mw));
  for (int i = 0; i < 3; ++i) set(61 + i, iv, ui[i] * mw, g.mouth_line(ui[i] * mw) - g.opening(ui[i] * mw));
  set(64, iv, 0.9f * mw, g.mouth_line(0.9f * mw));
  for (int i = 0; i < 3; ++i) set(65 + i, iv, ui[2 - i] * mw, g.mouth_line(ui[2 - i] * mw) + g.opening(ui[2 - i] * mw));
  return L;
}

PixelRect pixel_bounds(const View& view, float u0, float v0, float u1, float v1, const PixelRect& clip, int pad) {
  float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
  for (float u : {u0, u1})
    for (float v : {v0, v1}) {
      const Vec2 p = view.to_pixel(u, v);
      x0 = std::min(x0, p.x);
      y0 = std::min(y0, p.y);
      x1 = std::max(x1, p.x);
      y1 = std::max(y1, p.y);
    }
  PixelRect r{int(std::floor(x0)) - pad, int(std::floor(y0)) - pad, int(std::ceil(x1)) + pad, int(std::ceil(y1)) + pad};
  r.x0 = std::max(r.x0, clip.x0);
  r.y0 = std::max(r.y0, clip.y0);
  r.x1 = std::min(r.x1, clip.x1);
  r.y1 = std::min(r.y1, clip.y1);
  return r;
}

Image quantize(const Canvas& c, float sigma, uint64_t seed) {
  Image im = Image::blank(c.size, c.size);
  Rng rng(seed);
  for (size_t i = 0; i < size_t(c.size) * c.size; ++i) {
    const float luma = sigma > 0 ? sigma * rng.normal() : 0;
    for (int ch = 0; ch < 3; ++ch) {
      const float chroma = sigma > 0 ? 0.5f * sigma * rng.normal() : 0;
      const float v = c.rgb[i * 3 + ch] * 255 + luma + chroma;
      im.rgb[i * 3 + ch] = uint8_t(std::clamp(std::lround(v), 0L, 255L));
    }
  }
  return im;
}

}  // namespace fstm::io::synth
