// One synthetic video's script: background, clothes, smooth head motion, blinks and talking,
// lighting changes and camera noise level, all drawn from the video's own random stream.
#include <algorithm>
#include <cmath>

#include "io/synth_model.h"

namespace fstm::io::synth {
namespace {

constexpr float kTwoPi = 6.28318530718f;

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

Wave sample_wave(Rng& rng, float amplitude, float fmin, float fmax) {
  Wave w;
  for (int i = 0; i < 2; ++i) {
    w.amp[i] = amplitude * (i == 0 ? rng.uniform(0.6f, 1.0f) : rng.uniform(0.2f, 0.5f));
    w.freq[i] = rng.uniform(fmin, fmax) * (i == 0 ? 1.0f : 2.1f);
    w.phase[i] = rng.uniform(0.0f, kTwoPi);
  }
  return w;
}

Rgb hsv(float h, float s, float v) {
  const float c = v * s, hp = std::fmod(h, 1.0f) * 6, x = c * (1 - std::abs(std::fmod(hp, 2.0f) - 1)), m = v - c;
  Rgb r;
  if (hp < 1) r = {c, x, 0};
  else if (hp < 2) r = {x, c, 0};
  else if (hp < 3) r = {0, c, x};
  else if (hp < 4) r = {0, x, c};
  else if (hp < 5) r = {x, 0, c};
  else r = {c, 0, x};
  return {r.r + m, r.g + m, r.b + m};
}

}  // namespace

uint64_t stream_seed(uint64_t seed, Stream what, uint64_t i, uint64_t j, uint64_t k) {
  uint64_t h = mix64(seed);
  for (uint64_t part : {uint64_t(what), i, j, k}) h = mix64(h ^ part);
  return h;
}

float Wave::at(float t) const {
  return amp[0] * std::sin(kTwoPi * freq[0] * t + phase[0]) + amp[1] * std::sin(kTwoPi * freq[1] * t + phase[1]);
}

SceneScript sample_scene(Rng& rng, int frames) {
  SceneScript s;
  const float hue = rng.uniform();
  s.bg_top = hsv(hue, rng.uniform(0.08f, 0.45f), rng.uniform(0.45f, 0.92f));
  s.bg_bottom = hsv(hue + rng.uniform(-0.08f, 0.08f) + 1, rng.uniform(0.08f, 0.45f), rng.uniform(0.3f, 0.8f));
  const int shapes = 2 + int(rng.below(4));
  for (int i = 0; i < shapes; ++i) {
    BgShape b;
    b.ellipse = rng.uniform() < 0.35f;
    b.x = rng.uniform(0.0f, 1.0f);
    b.y = rng.uniform(0.0f, 0.9f);
    b.w = rng.uniform(0.05f, 0.3f);
    b.h = rng.uniform(0.05f, 0.4f);
    b.feather = rng.uniform(1.0f, 5.0f);
    b.color = hsv(rng.uniform(), rng.uniform(0.05f, 0.5f), rng.uniform(0.25f, 0.95f));
    s.shapes.push_back(b);
  }
  s.clothes = hsv(rng.uniform(), rng.uniform(0.2f, 0.8f), rng.uniform(0.15f, 0.85f));
  s.cx = rng.uniform(0.45f, 0.55f);
  s.cy = rng.uniform(0.43f, 0.49f);
  s.scale = rng.uniform(0.19f, 0.22f);
  s.dx = sample_wave(rng, 0.03f, 0.01f, 0.05f);
  s.dy = sample_wave(rng, 0.02f, 0.01f, 0.05f);
  s.roll = sample_wave(rng, 0.13f, 0.01f, 0.05f);
  s.zoom = sample_wave(rng, 0.04f, 0.01f, 0.04f);
  s.yaw = sample_wave(rng, 0.07f, 0.01f, 0.05f);
  // Blinks: on average one every 12 frames, at least one per video of 8 frames or more.
  const int blinks = std::max(frames >= 8 ? 1 : 0, int(std::lround(frames / 12.0f + rng.uniform(-0.5f, 0.5f))));
  for (int i = 0; i < blinks; ++i) s.blinks.push_back(rng.uniform(0.0f, float(std::max(frames - 1, 1))));
  s.talk = rng.uniform(0.25f, 1.0f);
  s.mouth = sample_wave(rng, 1.0f, 0.07f, 0.2f);
  s.smile_base = rng.uniform(0.0f, 0.6f);
  s.smile = sample_wave(rng, 0.25f, 0.01f, 0.05f);
  s.brow_base = rng.uniform(0.0f, 0.5f);
  s.brow = sample_wave(rng, 0.4f, 0.02f, 0.08f);
  s.gaze_x = sample_wave(rng, 0.6f, 0.02f, 0.08f);
  s.gaze_y = sample_wave(rng, 0.4f, 0.02f, 0.08f);
  s.gain = rng.uniform(0.85f, 1.1f);
  s.gain_wave = sample_wave(rng, 0.04f, 0.02f, 0.08f);
  s.tint = {rng.uniform(0.93f, 1.07f), rng.uniform(0.95f, 1.05f), rng.uniform(0.93f, 1.07f)};
  s.light_angle = rng.uniform(0.0f, kTwoPi);
  s.light_strength = rng.uniform(0.12f, 0.4f);
  s.ambient = rng.uniform(0.92f, 1.0f);
  s.light_drift = sample_wave(rng, 0.3f, 0.01f, 0.04f);
  s.noise = rng.uniform(1.5f, 3.0f);
  return s;
}

Pose scene_pose(const SceneScript& s, int size, int t) {
  const float S = float(size), ft = float(t);
  Pose p;
  p.cx = (s.cx + s.dx.at(ft)) * S;
  p.cy = (s.cy + s.dy.at(ft)) * S;
  p.angle = s.roll.at(ft);
  p.scale = s.scale * S * (1 + s.zoom.at(ft));
  p.yaw = s.yaw.at(ft);
  return p;
}

Expression scene_expression(const SceneScript& s, int t) {
  const float ft = float(t);
  Expression e;
  for (float b : s.blinks) e.eye_open = std::min(e.eye_open, std::min(1.0f, std::abs(ft - b) / 1.4f));
  e.mouth_open = s.talk * std::clamp(0.35f + 0.65f * s.mouth.at(ft), 0.0f, 1.0f);
  e.smile = std::clamp(s.smile_base + s.smile.at(ft), 0.0f, 1.0f);
  e.brow_raise = std::clamp(s.brow_base + s.brow.at(ft), 0.0f, 1.0f);
  e.gaze_x = std::clamp(s.gaze_x.at(ft), -1.0f, 1.0f);
  e.gaze_y = std::clamp(s.gaze_y.at(ft), -1.0f, 1.0f);
  return e;
}

Lighting scene_lighting(const SceneScript& s, int t) {
  const float ft = float(t);
  Lighting l;
  l.gain = s.gain * (1 + s.gain_wave.at(ft));
  l.tint = s.tint;
  l.angle = s.light_angle + s.light_drift.at(ft);
  l.strength = s.light_strength;
  l.ambient = s.ambient;
  return l;
}

// Static camera: a vertical gradient with soft texture and a few out-of-focus shapes.
void paint_background(const SceneScript& s, Canvas& c) {
  const float S = float(c.size);
  for (int y = c.clip.y0; y < c.clip.y1; ++y)
    for (int x = c.clip.x0; x < c.clip.x1; ++x) {
      const float fy = (y + 0.5f) / S, fx = (x + 0.5f) / S;
      const Rgb col = mix(s.bg_top, s.bg_bottom, fy) * (1 + 0.03f * std::sin(9 * fx + 4 * fy + s.bg_top.r * 20));
      float* q = c.px(x, y);
      q[0] = col.r;
      q[1] = col.g;
      q[2] = col.b;
    }
  const View frame{0, 0, S, 0};  // face units = fractions of the frame
  for (const BgShape& b : s.shapes) {
    auto f = [&b](float u, float v) {
      if (b.ellipse) return std::sqrt((u - b.x) * (u - b.x) / (b.w * b.w) + (v - b.y) * (v - b.y) / (b.h * b.h)) - 1;
      return std::max(std::abs(u - b.x) - b.w, std::abs(v - b.y) - b.h);
    };
    auto col = [&b](float, float) { return b.color; };
    paint(c, frame, pixel_bounds(frame, b.x - b.w, b.y - b.h, b.x + b.w, b.y + b.h, c.clip, int(b.feather) + 2), f, col,
          0.85f, b.feather);
  }
}

}  // namespace fstm::io::synth
