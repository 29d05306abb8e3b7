// The five manipulations. Each makes frame t of fake A_B from source video A's frame and donor B:
// it renders a "patch" (the scene of A with B's inner face, or A's face with B's expression),
// degrades it the way the real method does, and blends it into A's frame through a soft mask. The
// mask is written as ground truth; pixels outside it stay byte-identical to the source frame.
//
// Artifact signatures (all local to the mask and its boundary):
//  - Deepfakes: an autoencoder swap. B's inner face, mis-scaled by 3-7% either way and shifted (the decoder's
//    face does not sit exactly on A's), blurred by a 2x down/up-sampling (the low-resolution
//    decoder), with imperfect colour correction and per-frame colour flicker, blended through an
//    elliptic mask with a narrow (2 px) feather: a visible seam.
//  - FaceSwap: a graphics swap. B's inner face fitted to A's landmarks, sharp, but with B's skin
//    tone barely corrected and B's lighting direction: a colour/illumination mismatch inside the
//    landmark hull, whose edge is almost hard (1 px feather).
//  - Face2Face: reenactment. A's own face re-rendered with B's mouth, smile and brows; the
//    re-rendered face is resampled through a small smooth warp (bilinear blur) and the mouth
//    region, where the expression changes most, through a 2x down/up-sampling.
//  - NeuralTextures: reenactment of the mouth only. B's mouth motion on A, a slightly blurred
//    mouth region carrying a high-frequency, face-attached texture pattern (the neural texture).
//  - FaceShifter: a high-fidelity swap. B's inner face, well colour-corrected and blended through
//    a wide (6 px) feather, but produced at half resolution and upsampled by a transposed-
//    convolution-like decoder: 2x2 blocks with a periodic checkerboard modulation.
// A swap's colour correction is scaled by SynthOptions::swap_colour_match (default 0.5: half of the
// donor's skin tone stays, a mismatch with A's head that compression keeps).
// Every patch lacks A's camera noise (generated content is clean), itself a weak cue that
// compression removes along with the high-frequency artifacts.
#include <algorithm>
#include <cmath>

#include "io/synth_model.h"
#include "tensor/error.h"

namespace fstm::io::synth {
namespace {

// Ellipse (boxy = false) or squarish superellipse of power 4 (negative inside), head coordinates.
float superellipse(float u, float v, float cx, float cy, float rx, float ry, bool boxy) {
  const float x = (u - cx) / rx, y = (v - cy) / ry;
  if (!boxy) return std::sqrt(x * x + y * y) - 1;
  return std::sqrt(std::sqrt(x * x * x * x + y * y * y * y)) - 1;
}

// The inner-face region in head coordinates: from above the brows to below the lower lip, as wide
// as the outer eye corners plus a margin. A swap's region holds both the source's inner face and
// the donor's as the warp places it, so that the donor's features are not cut.
struct FaceRegion {
  float cx, cy, rx, ry;
};
FaceRegion inner_region(const FaceTraits& source, const FaceTraits* donor, const InnerWarp& warp, float yaw) {
  auto extent = [](const FaceTraits& t, float& top, float& bottom, float& half) {
    top = t.eye_y - t.brow_gap - 0.07f - t.brow_arch - t.brow_thickness;
    bottom = t.mouth_y + t.lip_lower + 0.16f;
    half = t.eye_spacing + t.eye_width + 0.1f;
  };
  float top, bottom, half;
  extent(source, top, bottom, half);
  if (donor) {
    float t2, b2, h2;
    extent(*donor, t2, b2, h2);
    auto place = [&](float y) { return kInnerCentreY + warp.scale * (y - kInnerCentreY) + warp.dy; };
    top = std::min(top, place(t2));
    bottom = std::max(bottom, place(b2));
    half = std::max(half, warp.scale * h2 + std::abs(warp.dx));
  }
  bottom = std::min(bottom, source.face_bottom - 0.06f);
  return {yaw, 0.5f * (top + bottom), half, 0.5f * (bottom - top)};
}

// Per-pixel mask weight in [0, 1].
using Alpha = std::vector<float>;

// Soft mask of an implicit region (seen through view `rv`, inside pixel box `box`), clipped to the
// source's face outline (head view `hv`, eroded by `inset` face units): only the face is replaced.
template <class F>
Alpha face_mask(int S, const View& hv, const FaceTraits& outer, const View& rv, F&& region, PixelRect box,
                float feather, float inset) {
  Alpha a(size_t(S) * S, 0.0f);
  auto face = [&](float u, float v) { return face_outline(outer, u, v) + inset; };
  for (int y = box.y0; y < box.y1; ++y)
    for (int x = box.x0; x < box.x1; ++x) {
      const float r = coverage(rv, x + 0.5f, y + 0.5f, region, feather);
      if (r <= 0) continue;
      a[size_t(y) * S + x] = std::min(r, coverage(hv, x + 0.5f, y + 0.5f, face, 1.5f));
    }
  return a;
}

// Bounding box of the pixels whose 8-bit weight is not 0, padded.
PixelRect mask_bounds(const Alpha& a, int S, int pad) {
  PixelRect r{S, S, 0, 0};
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x)
      if (a[size_t(y) * S + x] * 255 >= 0.5f) {
        r.x0 = std::min(r.x0, x);
        r.y0 = std::min(r.y0, y);
        r.x1 = std::max(r.x1, x + 1);
        r.y1 = std::max(r.y1, y + 1);
      }
  if (r.empty()) return r;
  return {std::max(0, r.x0 - pad), std::max(0, r.y0 - pad), std::min(S, r.x1 + pad), std::min(S, r.y1 + pad)};
}

// ---- patch degradations (all confined to canvas.clip) --------------------------------------------

float sample(const std::vector<float>& src, const Canvas& c, float x, float y, int ch) {  // bilinear, clamped
  const PixelRect& r = c.clip;
  x = std::clamp(x - 0.5f, float(r.x0), float(r.x1 - 1));
  y = std::clamp(y - 0.5f, float(r.y0), float(r.y1 - 1));
  const int x0 = int(x), y0 = int(y), x1 = std::min(x0 + 1, r.x1 - 1), y1 = std::min(y0 + 1, r.y1 - 1);
  const float fx = x - float(x0), fy = y - float(y0);
  auto at = [&](int xx, int yy) { return src[(size_t(yy) * c.size + xx) * 3 + ch]; };
  return (at(x0, y0) * (1 - fx) + at(x1, y0) * fx) * (1 - fy) + (at(x0, y1) * (1 - fx) + at(x1, y1) * fx) * fy;
}

// 2x box downsampling then upsampling (bilinear, or a mix with nearest when `blocky` > 0), mixed
// into the canvas with per-pixel weight w(x, y).
template <class W>
void down_up(Canvas& c, float blocky, W&& weight) {
  const PixelRect& r = c.clip;
  const int hw = (r.x1 - r.x0 + 1) / 2, hh = (r.y1 - r.y0 + 1) / 2;
  std::vector<float> low(size_t(hw) * hh * 3, 0.0f);
  for (int j = 0; j < hh; ++j)
    for (int i = 0; i < hw; ++i)
      for (int ch = 0; ch < 3; ++ch) {
        float s = 0;
        int n = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            const int x = r.x0 + 2 * i + dx, y = r.y0 + 2 * j + dy;
            if (x < r.x1 && y < r.y1) {
              s += c.px(x, y)[ch];
              ++n;
            }
          }
        low[(size_t(j) * hw + i) * 3 + ch] = s / float(n);
      }
  auto low_at = [&](int i, int j, int ch) {
    return low[(size_t(std::clamp(j, 0, hh - 1)) * hw + std::clamp(i, 0, hw - 1)) * 3 + ch];
  };
  for (int y = r.y0; y < r.y1; ++y)
    for (int x = r.x0; x < r.x1; ++x) {
      const float w = weight(x, y);
      if (w <= 0) continue;
      const float lx = (x - r.x0 + 0.5f) / 2 - 0.5f, ly = (y - r.y0 + 0.5f) / 2 - 0.5f;
      const int i = int(std::floor(lx)), j = int(std::floor(ly));
      const float fx = lx - float(i), fy = ly - float(j);
      float* q = c.px(x, y);
      for (int ch = 0; ch < 3; ++ch) {
        const float bil = (low_at(i, j, ch) * (1 - fx) + low_at(i + 1, j, ch) * fx) * (1 - fy) +
                          (low_at(i, j + 1, ch) * (1 - fx) + low_at(i + 1, j + 1, ch) * fx) * fy;
        const float nearest = low_at((x - r.x0) / 2, (y - r.y0) / 2, ch);
        const float up = bil + (nearest - bil) * blocky;
        q[ch] += (up - q[ch]) * w;
      }
    }
}

// Resamples the clip through a smooth displacement field (pixels) with bilinear interpolation.
void warp_resample(Canvas& c, float amplitude, float phase) {
  const std::vector<float> src = c.rgb;
  const PixelRect& r = c.clip;
  for (int y = r.y0; y < r.y1; ++y)
    for (int x = r.x0; x < r.x1; ++x) {
      const float dx = amplitude * std::sin(0.19f * y + phase), dy = amplitude * std::cos(0.23f * x + 1.7f * phase);
      for (int ch = 0; ch < 3; ++ch) c.px(x, y)[ch] = sample(src, c, x + 0.5f + dx, y + 0.5f + dy, ch);
    }
}

// [1 2 1]/4 separable blur of the clip, mixed in with weight `amount`.
void soft_blur(Canvas& c, float amount) {
  const std::vector<float> src = c.rgb;
  const PixelRect& r = c.clip;
  std::vector<float> tmp = src;
  for (int y = r.y0; y < r.y1; ++y)
    for (int x = r.x0; x < r.x1; ++x)
      for (int ch = 0; ch < 3; ++ch) {
        const int xl = std::max(x - 1, r.x0), xr = std::min(x + 1, r.x1 - 1);
        tmp[(size_t(y) * c.size + x) * 3 + ch] =
            0.25f * src[(size_t(y) * c.size + xl) * 3 + ch] + 0.5f * src[(size_t(y) * c.size + x) * 3 + ch] +
            0.25f * src[(size_t(y) * c.size + xr) * 3 + ch];
      }
  for (int y = r.y0; y < r.y1; ++y)
    for (int x = r.x0; x < r.x1; ++x)
      for (int ch = 0; ch < 3; ++ch) {
        const int yu = std::max(y - 1, r.y0), yd = std::min(y + 1, r.y1 - 1);
        const float b = 0.25f * tmp[(size_t(yu) * c.size + x) * 3 + ch] + 0.5f * tmp[(size_t(y) * c.size + x) * 3 + ch] +
                        0.25f * tmp[(size_t(yd) * c.size + x) * 3 + ch];
        float& q = c.px(x, y)[ch];
        q += (b - q) * amount;
      }
}

// Convex hull (Andrew's monotone chain), counter-clockwise in image coordinates (y down).
std::vector<Vec2> convex_hull(std::vector<Vec2> p) {
  std::sort(p.begin(), p.end(), [](Vec2 a, Vec2 b) { return a.x < b.x || (a.x == b.x && a.y < b.y); });
  auto cross = [](Vec2 o, Vec2 a, Vec2 b) { return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x); };
  std::vector<Vec2> h(2 * p.size());
  size_t k = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    while (k >= 2 && cross(h[k - 2], h[k - 1], p[i]) <= 0) --k;
    h[k++] = p[i];
  }
  for (size_t i = p.size() - 1, t = k + 1; i > 0; --i) {
    while (k >= t && cross(h[k - 2], h[k - 1], p[i - 1]) <= 0) --k;
    h[k++] = p[i - 1];
  }
  h.resize(k - 1);
  return h;
}

// Signed distance-like implicit of a convex polygon (max over edges of the distance to the edge).
float polygon(const std::vector<Vec2>& hull, float x, float y) {
  float d = -1e9f;
  for (size_t i = 0; i < hull.size(); ++i) {
    const Vec2 a = hull[i], b = hull[(i + 1) % hull.size()];
    const float ex = b.x - a.x, ey = b.y - a.y, l = len(ex, ey);
    // Counter-clockwise with y down: the outward normal of edge a->b is (ey, -ex).
    d = std::max(d, ((x - a.x) * ey - (y - a.y) * ex) / l);
  }
  return d;
}

}  // namespace

SynthFake make_fake(const World& w, SynthMethod method, int a, int b, int t, const Image& source) {
  const int S = w.options.size;
  FSTM_CHECK(source.width == S && source.height == S, "synth: source frame of video ", a, " is ", source.width, "x",
             source.height, ", expected ", S, "x", S);
  const FaceTraits& A = w.traits[a];
  const FaceTraits& B = w.traits[b];
  const SceneScript& sb = w.scenes[b];
  const FaceRender real = w.real_render(a, a, t);
  const View hv = head_view(real.pose);
  // Per-video settings of the method, and per-frame jitter.
  Rng video_rng(stream_seed(w.options.seed, Stream::method, uint64_t(method), uint64_t(a), uint64_t(b)));
  Rng frame_rng(stream_seed(w.options.seed, Stream::frame_jitter, uint64_t(method), uint64_t(a) * 100003u + b, t));

  FaceRender spec = real;
  Alpha alpha;
  const PixelRect frame{0, 0, S, S};
  // Mask of the inner-face region (spec is final): an ellipse, or a squarish superellipse.
  auto region_mask = [&](bool boxy, float feather) {
    const FaceRegion reg = inner_region(A, spec.inner == &B ? &B : nullptr, spec.warp, real.pose.yaw);
    auto f = [&](float u, float v) { return superellipse(u, v, reg.cx, reg.cy, reg.rx, reg.ry, boxy); };
    const PixelRect box = pixel_bounds(hv, reg.cx - reg.rx, reg.cy - reg.ry, reg.cx + reg.rx, reg.cy + reg.ry, frame,
                                       int(feather) + 2);
    return face_mask(S, hv, A, hv, f, box, feather, 0.04f);
  };
  const Expression donor = scene_expression(sb, t);
  // A swap: the donor's inner face, its skin colour-corrected towards the source's by `correction`
  // times SynthOptions::swap_colour_match, placed by a per-video warp (scale in [lo, hi], shift up to
  // `shift` face units).
  auto swap_in = [&](float correction, float lo, float hi, float shift) {
    spec.inner = &B;
    spec.skin = mix(B.skin, A.skin, correction * w.options.swap_colour_match);
    spec.warp = {video_rng.uniform(lo, hi), video_rng.uniform(-shift, shift), video_rng.uniform(-shift, shift)};
  };

  switch (method) {
    case SynthMethod::deepfakes: {
      // Mis-scaled by 3-7%, larger or smaller per video: no systematic scale a detector could
      // read off the face's size instead of the swap.
      swap_in(0.75f, 1.03f, 1.07f, 0.03f);
      if (video_rng.uniform() < 0.5f) spec.warp.scale = 2 - spec.warp.scale;
      alpha = region_mask(false, 2.0f);
      break;
    }
    case SynthMethod::faceswap: {
      swap_in(0.35f, 1, 1, 0);
      const Lighting lb = scene_lighting(sb, t);
      spec.light.angle = lb.angle;
      spec.light.strength = lb.strength * 1.3f;
      // The hull of A's jaw (points 2-14, pulled in towards the face centre) and of both faces'
      // brows (lifted) and mouths: it holds the donor's features wherever they sit.
      const Landmarks68 L = face_landmarks(real), LB = face_landmarks(spec);
      const Vec2 centre = hv.to_pixel(0, 0.1f);
      std::vector<Vec2> pts;
      const float lift = 0.12f * real.pose.scale;
      const Vec2 up{std::sin(real.pose.angle) * lift, -std::cos(real.pose.angle) * lift};
      for (int i = 2; i <= 14; ++i)
        pts.push_back({centre.x + 0.88f * (L[i][0] - centre.x), centre.y + 0.88f * (L[i][1] - centre.y)});
      for (int i = 17; i <= 26; ++i) {
        pts.push_back({L[i][0] + up.x, L[i][1] + up.y});
        pts.push_back({LB[i][0] + up.x, LB[i][1] + up.y});
      }
      for (int i = 48; i <= 59; ++i) pts.push_back({LB[i][0] - 0.5f * up.x, LB[i][1] - 0.5f * up.y});
      const std::vector<Vec2> hull = convex_hull(pts);
      PixelRect box{S, S, 0, 0};
      for (const Vec2& p : hull) {
        box.x0 = std::min(box.x0, int(std::floor(p.x)) - 2), box.x1 = std::max(box.x1, int(std::ceil(p.x)) + 2);
        box.y0 = std::min(box.y0, int(std::floor(p.y)) - 2), box.y1 = std::max(box.y1, int(std::ceil(p.y)) + 2);
      }
      box = {std::max(box.x0, 0), std::max(box.y0, 0), std::min(box.x1, S), std::min(box.y1, S)};
      const View pixel{0, 0, 1, 0};
      alpha = face_mask(S, hv, A, pixel, [&](float x, float y) { return polygon(hull, x, y); }, box, 1.0f, 0.04f);
      break;
    }
    case SynthMethod::face2face: {
      spec.expr.mouth_open = donor.mouth_open;
      spec.expr.smile = donor.smile;
      spec.expr.brow_raise = donor.brow_raise;
      alpha = region_mask(true, 3.0f);
      break;
    }
    case SynthMethod::neural_textures: {
      spec.expr.mouth_open = donor.mouth_open;
      spec.expr.smile = donor.smile;
      const float rx = A.mouth_width * 1.12f + 0.16f, cx = real.pose.yaw, cy = A.mouth_y + 0.04f;
      auto mouth = [=](float u, float v) { return superellipse(u, v, cx, cy, rx, 0.27f, false); };
      alpha = face_mask(S, hv, A, hv, mouth, pixel_bounds(hv, cx - rx, cy - 0.27f, cx + rx, cy + 0.27f, frame, 5), 3.0f,
                        0.04f);
      break;
    }
    case SynthMethod::faceshifter: {
      swap_in(0.9f, 0.99f, 1.02f, 0.01f);
      alpha = region_mask(false, 6.0f);
      break;
    }
  }

  SynthFake fake;
  fake.landmarks = face_landmarks(spec);
  fake.image = source;
  fake.mask.assign(size_t(S) * S, 0);
  const PixelRect box = mask_bounds(alpha, S, 4);
  if (box.empty()) return fake;  // the face left the frame

  Canvas c(S);
  c.clip = box;
  render_frame(spec, c);
  const View iv = inner_view(spec.pose, spec.warp);

  switch (method) {
    case SynthMethod::deepfakes: {
      down_up(c, 0.0f, [](int, int) { return 0.7f; });
      const Rgb flicker{1 + 0.015f * frame_rng.normal(), 1 + 0.015f * frame_rng.normal(), 1 + 0.015f * frame_rng.normal()};
      for (int y = box.y0; y < box.y1; ++y)
        for (int x = box.x0; x < box.x1; ++x) {
          float* q = c.px(x, y);
          q[0] *= flicker.r;
          q[1] *= flicker.g;
          q[2] *= flicker.b;
        }
      break;
    }
    case SynthMethod::faceswap:
      soft_blur(c, 0.3f);  // texture resampled from the donor's frame
      break;
    case SynthMethod::face2face: {
      warp_resample(c, 0.3f, frame_rng.uniform(0.0f, 6.28f));
      const float my = A.mouth_y;
      auto mouth_weight = [&](int x, int y) {
        const Vec2 p = iv.to_face(x + 0.5f, y + 0.5f);
        return 1 - smoothstep(0.5f, 1.0f, len(p.x / (A.mouth_width + 0.1f), (p.y - my) / 0.22f));
      };
      down_up(c, 0.0f, mouth_weight);
      break;
    }
    case SynthMethod::neural_textures: {
      soft_blur(c, 0.6f);
      // The texture: a product of two sinusoids per channel, 2.4-4 px periods (per-video phases).
      float ph[3][2], kx[2], ky[2];
      for (auto& p : ph)
        for (float& v : p) v = video_rng.uniform(0.0f, 6.28f);
      for (int i = 0; i < 2; ++i) {
        kx[i] = video_rng.uniform(1.6f, 2.6f);
        ky[i] = video_rng.uniform(1.6f, 2.6f);
      }
      const float amp = 0.04f, ppu = iv.pixels_per_unit(), my = A.mouth_y;
      for (int y = box.y0; y < box.y1; ++y)
        for (int x = box.x0; x < box.x1; ++x) {
          // Texture coordinates attached to the face (in pixels of the face at this scale).
          const Vec2 p = iv.to_face(x + 0.5f, y + 0.5f);
          const float tu = p.x * ppu, tv = p.y * ppu;
          const float wgt = 1 - smoothstep(0.5f, 1.2f, len(p.x / (A.mouth_width + 0.1f), (p.y - my) / 0.2f));
          if (wgt <= 0) continue;
          float* q = c.px(x, y);
          for (int ch = 0; ch < 3; ++ch)
            q[ch] += amp * wgt * std::sin(kx[0] * tu + ky[0] * tv + ph[ch][0]) * std::sin(kx[1] * tu - ky[1] * tv + ph[ch][1]);
        }
      break;
    }
    case SynthMethod::faceshifter: {
      down_up(c, 0.35f, [](int, int) { return 0.5f; });  // half the detail survives the decoder
      float k[2][2];
      for (auto& row : k)
        for (float& v : row) v = video_rng.uniform(-1.0f, 1.0f);
      const float mean = (k[0][0] + k[0][1] + k[1][0] + k[1][1]) / 4;
      const float amp = 0.03f;
      for (int y = box.y0; y < box.y1; ++y)
        for (int x = box.x0; x < box.x1; ++x) {
          float* q = c.px(x, y);
          const float m = 1 + amp * (k[y & 1][x & 1] - mean);
          for (int ch = 0; ch < 3; ++ch) q[ch] *= m;
        }
      break;
    }
  }

  // Blend: 8-bit mask weight m; m == 0 keeps the source byte.
  for (int y = box.y0; y < box.y1; ++y)
    for (int x = box.x0; x < box.x1; ++x) {
      const size_t i = size_t(y) * S + x;
      const int m = int(std::lround(std::clamp(alpha[i], 0.0f, 1.0f) * 255));
      if (m == 0) continue;
      fake.mask[i] = uint8_t(m);
      const float wgt = float(m) / 255;
      for (int ch = 0; ch < 3; ++ch) {
        const float src = source.rgb[i * 3 + ch];
        const float v = src + (c.rgb[i * 3 + ch] * 255 - src) * wgt;
        fake.image.rgb[i * 3 + ch] = uint8_t(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  return fake;
}

}  // namespace fstm::io::synth
