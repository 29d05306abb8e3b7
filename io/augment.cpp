#include "io/augment.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "tensor/error.h"

namespace fstm::io {

namespace {

uint8_t clamp_u8(float v) { return uint8_t(std::clamp(v + 0.5f, 0.0f, 255.0f)); }

// OpenCV's BORDER_REFLECT_101: -1 -> 1, n -> n - 2.
int reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

// The image with `pad` pixels of reflect-101 border on every side, so filters need no bounds checks.
struct Padded {
  int w = 0, h = 0, pad = 0;
  std::vector<uint8_t> px;  // (h + 2 pad) x (w + 2 pad) x 3
  const uint8_t* at(int x, int y) const { return &px[(size_t(y + pad) * (w + 2 * pad) + size_t(x + pad)) * 3]; }
};

Padded pad_image(const Image& im, int pad) {
  Padded p;
  p.w = im.width, p.h = im.height, p.pad = pad;
  const int pw = im.width + 2 * pad, ph = im.height + 2 * pad;
  p.px.resize(size_t(pw) * ph * 3);
  for (int y = 0; y < ph; ++y) {
    const int sy = reflect101(y - pad, im.height);
    for (int x = 0; x < pw; ++x) std::copy_n(im.at(reflect101(x - pad, im.width), sy), 3, &p.px[(size_t(y) * pw + x) * 3]);
  }
  return p;
}

// Standard normal deviates from a table of 4096 quantiles (tails cut at ~3.5 sigma), four per
// 64-bit draw: ~10x faster than Box-Muller, and plenty for 8-bit pixel noise.
const std::array<float, 4096>& normal_quantiles() {
  static const std::array<float, 4096> table = [] {
    std::array<float, 4096> t{};
    for (size_t i = 0; i < t.size(); ++i) {
      const double p = (double(i) + 0.5) / double(t.size());
      double lo = -10, hi = 10;  // invert the CDF 0.5 erfc(-z / sqrt 2) by bisection
      for (int it = 0; it < 60; ++it) {
        const double mid = 0.5 * (lo + hi);
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
      }
      t[i] = float(0.5 * (lo + hi));
    }
    return t;
  }();
  return table;
}

// ---- separable resampling: per output coordinate, a list of (source index, weight) ------------

struct Taps {
  std::vector<int> start;      // first tap's slot in idx/w for each output coordinate
  std::vector<int> idx;
  std::vector<float> w;
};

Taps make_taps(int n_src, int n_dst, Interp interp) {
  Taps t;
  const double s = double(n_src) / n_dst;
  auto clampi = [&](int i) { return std::clamp(i, 0, n_src - 1); };
  for (int d = 0; d < n_dst; ++d) {
    t.start.push_back(int(t.idx.size()));
    if (interp == Interp::nearest) {
      t.idx.push_back(clampi(int(std::floor(d * s))));
      t.w.push_back(1);
    } else if (interp == Interp::area && s > 1) {  // box filter over the covered source pixels
      const double a = d * s, b = (d + 1) * s;
      for (int i = int(std::floor(a)); i < int(std::ceil(b)); ++i) {
        const double cover = std::min<double>(b, i + 1) - std::max<double>(a, i);
        if (cover > 1e-9) t.idx.push_back(clampi(i)), t.w.push_back(float(cover / s));
      }
    } else if (interp == Interp::bicubic) {  // Keys cubic with a = -0.75 (OpenCV), half-pixel centres
      const double f = (d + 0.5) * s - 0.5;
      const int i = int(std::floor(f));
      const double x = f - i;
      const double A = -0.75;
      const double w0 = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
      const double w1 = ((A + 2) * x - (A + 3)) * x * x + 1;
      const double w2 = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
      const double w3 = 1 - w0 - w1 - w2;
      const double ws[4] = {w0, w1, w2, w3};
      for (int k = 0; k < 4; ++k) t.idx.push_back(clampi(i - 1 + k)), t.w.push_back(float(ws[k]));
    } else {  // bilinear (and area when enlarging), as resize_bilinear
      const double f = std::max(0.0, (d + 0.5) * s - 0.5);
      const int i0 = std::min(int(f), n_src - 1);
      const float w = float(f - i0);
      t.idx.push_back(i0), t.w.push_back(1 - w);
      t.idx.push_back(clampi(i0 + 1)), t.w.push_back(w);
    }
  }
  t.start.push_back(int(t.idx.size()));
  return t;
}

}  // namespace

Image resize_with(const Image& src, int width, int height, Interp interp) {
  FSTM_CHECK(!src.empty() && width > 0 && height > 0, "resize: ", src.width, "x", src.height, " -> ", width, "x", height);
  const Taps tx = make_taps(src.width, width, interp), ty = make_taps(src.height, height, interp);
  std::vector<float> rows(size_t(src.height) * width * 3);  // horizontal pass
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < width; ++x) {
      float acc[3] = {0, 0, 0};
      for (int k = tx.start[x]; k < tx.start[x + 1]; ++k) {
        const uint8_t* p = src.at(tx.idx[k], y);
        for (int c = 0; c < 3; ++c) acc[c] += tx.w[k] * p[c];
      }
      float* o = &rows[(size_t(y) * width + x) * 3];
      o[0] = acc[0], o[1] = acc[1], o[2] = acc[2];
    }
  Image dst = Image::blank(width, height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      float acc[3] = {0, 0, 0};
      for (int k = ty.start[y]; k < ty.start[y + 1]; ++k) {
        const float* p = &rows[(size_t(ty.idx[k]) * width + x) * 3];
        for (int c = 0; c < 3; ++c) acc[c] += ty.w[k] * p[c];
      }
      uint8_t* o = dst.at(x, y);
      for (int c = 0; c < 3; ++c) o[c] = clamp_u8(acc[c]);
    }
  return dst;
}

void flip_horizontal(Image& im) {
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width / 2; ++x) std::swap_ranges(im.at(x, y), im.at(x, y) + 3, im.at(im.width - 1 - x, y));
}

void jpeg_reencode(Image& im, int quality) {
  const std::vector<uint8_t> bytes = encode_jpeg(im, quality);
  im = decode_image(bytes.data(), bytes.size(), "jpeg augmentation");
}

void autocontrast(Image& im) {
  if (im.rgb.empty()) return;
  const auto [lo, hi] = std::minmax_element(im.rgb.begin(), im.rgb.end());
  const float a = *lo, scale = 255.0f / (float(*hi) - a + 1);
  for (auto& v : im.rgb) v = clamp_u8((v - a) * scale);
}

void gaussian_blur(Image& im, float sigma, int ksize) {
  FSTM_CHECK(ksize >= 1 && ksize % 2 == 1 && sigma > 0, "gaussian_blur: ksize ", ksize, " (odd) and sigma ", sigma,
             " (> 0)");
  const int r = ksize / 2;
  std::vector<float> k(static_cast<size_t>(ksize));
  float sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[size_t(i + r)] = std::exp(-0.5f * i * i / (sigma * sigma));
  for (auto& v : k) v /= sum;
  const Padded src = pad_image(im, r);
  const int pw = im.width + 2 * r;
  std::vector<float> tmp(size_t(pw) * im.height * 3);  // vertical pass over the padded columns
  for (int y = 0; y < im.height; ++y)
    for (int x = -r; x < im.width + r; ++x)
      for (int c = 0; c < 3; ++c) {
        float acc = 0;
        for (int i = -r; i <= r; ++i) acc += k[size_t(i + r)] * src.at(x, y + i)[c];
        tmp[(size_t(y) * pw + size_t(x + r)) * 3 + size_t(c)] = acc;
      }
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x)
      for (int c = 0; c < 3; ++c) {
        float acc = 0;
        const float* row = &tmp[(size_t(y) * pw + size_t(x)) * 3 + size_t(c)];
        for (int i = 0; i < ksize; ++i) acc += k[size_t(i)] * row[i * 3];
        im.at(x, y)[c] = clamp_u8(acc);
      }
}

void motion_blur(Image& im, float angle_deg, int length) {
  // the authors' kernel: a one-sided line from the centre of an a x a kernel, a = 2 L max(|cos|, |sin|)
  if (length < 1) return;
  const double rad = angle_deg * M_PI / 180, dx = std::cos(rad), dy = std::sin(rad);
  const int a = std::max(1, int(std::max(std::abs(dx), std::abs(dy)) * length * 2));
  const int cx = a / 2, cy = a / 2;
  std::vector<std::pair<int, int>> taps;  // (ox, oy) relative to the centre
  const int steps = 2 * length + 1;
  for (int s = 0; s <= steps; ++s) {
    const double t = double(s) / steps;
    const int ox = std::clamp(int(std::lround(cx + t * dx * length)), 0, a - 1) - cx;
    const int oy = std::clamp(int(std::lround(cy + t * dy * length)), 0, a - 1) - cy;
    if (std::find(taps.begin(), taps.end(), std::make_pair(ox, oy)) == taps.end()) taps.emplace_back(ox, oy);
  }
  const float w = 1.0f / float(taps.size());
  const Padded src = pad_image(im, a);
  for (int y = 0; y < im.height; ++y)
    for (int x = 0; x < im.width; ++x) {
      int acc[3] = {0, 0, 0};
      for (const auto& [ox, oy] : taps) {
        const uint8_t* p = src.at(x + ox, y + oy);
        acc[0] += p[0], acc[1] += p[1], acc[2] += p[2];
      }
      for (int c = 0; c < 3; ++c) im.at(x, y)[c] = clamp_u8(float(acc[c]) * w);
    }
}

void add_gaussian_noise(Image& im, float sigma, Rng& rng) {
  if (sigma <= 0) return;
  const auto& q = normal_quantiles();
  uint64_t bits = 0;
  for (size_t i = 0; i < im.rgb.size(); ++i) {
    if (i % 4 == 0) bits = rng.next_u64();
    const float z = q[(bits >> (16 * (i % 4))) & 4095];
    im.rgb[i] = clamp_u8(im.rgb[i] + sigma * z);
  }
}

void adjust_hsv(Image& im, float hue_shift_deg, float sat_scale, float val_scale) {
  for (size_t p = 0; p < im.rgb.size(); p += 3) {
    const float r = im.rgb[p] / 255.0f, g = im.rgb[p + 1] / 255.0f, b = im.rgb[p + 2] / 255.0f;
    const float mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
    float h = 0;  // degrees
    if (d > 0) {
      if (mx == r) h = 60 * std::fmod((g - b) / d, 6.0f);
      else if (mx == g) h = 60 * ((b - r) / d + 2);
      else h = 60 * ((r - g) / d + 4);
    }
    float s = mx > 0 ? d / mx : 0, v = mx;
    h = std::fmod(h + hue_shift_deg + 720.0f, 360.0f);
    s = std::clamp(s * sat_scale, 0.0f, 1.0f);
    v = std::clamp(v * val_scale, 0.0f, 1.0f);
    const float c = v * s, x = c * (1 - std::abs(std::fmod(h / 60, 2.0f) - 1)), m = v - c;
    float rr, gg, bb;
    if (h < 60) rr = c, gg = x, bb = 0;
    else if (h < 120) rr = x, gg = c, bb = 0;
    else if (h < 180) rr = 0, gg = c, bb = x;
    else if (h < 240) rr = 0, gg = x, bb = c;
    else if (h < 300) rr = x, gg = 0, bb = c;
    else rr = c, gg = 0, bb = x;
    im.rgb[p] = clamp_u8((rr + m) * 255), im.rgb[p + 1] = clamp_u8((gg + m) * 255), im.rgb[p + 2] = clamp_u8((bb + m) * 255);
  }
}

void adjust_gamma(Image& im, float gamma) {
  FSTM_CHECK(gamma > 0, "adjust_gamma: gamma ", gamma, " must be positive");
  std::array<uint8_t, 256> lut;
  for (int i = 0; i < 256; ++i) lut[size_t(i)] = clamp_u8(255.0f * std::pow(i / 255.0f, 1.0f / gamma));
  for (auto& v : im.rgb) v = lut[v];
}

void adjust_tone(Image& im, const float color[3], float amount) {
  for (size_t p = 0; p < im.rgb.size(); ++p) im.rgb[p] = clamp_u8((1 - amount) * im.rgb[p] + amount * color[p % 3]);
}

void brightness_contrast(Image& im, float brightness, float contrast) {
  for (auto& v : im.rgb) v = clamp_u8(v * (1 + contrast) + 255 * brightness);
}

namespace {

void quantisation_noise(Image& im, float sigma, Rng& rng) {
  const int nw = std::max(1, im.width / 4), nh = std::max(1, im.height / 4);
  std::vector<float> small(size_t(nw) * nh);
  for (auto& v : small) v = sigma * rng.normal();
  const float sx = float(nw) / im.width, sy = float(nh) / im.height;
  for (int y = 0; y < im.height; ++y) {
    const float fy = std::max(0.0f, (y + 0.5f) * sy - 0.5f);
    const int y0 = std::min(int(fy), nh - 1), y1 = std::min(y0 + 1, nh - 1);
    const float wy = fy - y0;
    for (int x = 0; x < im.width; ++x) {
      const float fx = std::max(0.0f, (x + 0.5f) * sx - 0.5f);
      const int x0 = std::min(int(fx), nw - 1), x1 = std::min(x0 + 1, nw - 1);
      const float wx = fx - x0;
      const float n = (1 - wy) * ((1 - wx) * small[size_t(y0) * nw + x0] + wx * small[size_t(y0) * nw + x1]) +
                      wy * ((1 - wx) * small[size_t(y1) * nw + x0] + wx * small[size_t(y1) * nw + x1]);
      uint8_t* p = im.at(x, y);
      for (int c = 0; c < 3; ++c) p[c] = clamp_u8(p[c] + n);
    }
  }
}

Interp random_interp(Rng& rng) {
  static const Interp all[4] = {Interp::nearest, Interp::bilinear, Interp::bicubic, Interp::area};
  return all[rng.below(4)];
}

}  // namespace

AugmentOptions AugmentOptions::none() {
  AugmentOptions o;
  o.jpeg_p = o.autocontrast_p = o.quant_noise_p = o.hsv_p = o.gamma_p = o.motion_blur_p = o.blur_p = o.noise_p =
      o.tone_p = o.brightness_contrast_p = o.resize_p = o.flip_p = o.stretch_p = 0;
  o.align_jitter = false;
  return o;
}

void augment_photometric(Image& im, const AugmentOptions& o, Rng& rng) {
  // Each step draws its coin (and parameters) whether or not it fires, so switching one step off
  // does not change what the others do for a given seed.
  auto coin = [&](float p) { return rng.uniform() < p; };
  {
    const bool on = coin(o.jpeg_p);
    const int q = o.jpeg_quality_min + int(rng.below(uint64_t(std::max(1, o.jpeg_quality_max - o.jpeg_quality_min + 1))));
    if (on) jpeg_reencode(im, q);
  }
  if (coin(o.autocontrast_p)) autocontrast(im);
  {
    Rng noise_rng = rng.fork();
    if (coin(o.quant_noise_p)) quantisation_noise(im, o.quant_noise_sigma, noise_rng);
  }
  {
    const bool on = coin(o.hsv_p);
    float sat = 1, val = 1;
    const bool do_sat = coin(0.5f), sat_down = coin(0.5f);
    const float us = rng.uniform();
    const bool do_val = coin(0.5f), val_up = coin(0.5f);
    const float uv = rng.uniform();
    const float hue = rng.uniform(-o.hue_max, o.hue_max);
    if (do_sat) sat = sat_down ? 1 - 0.5f * us : 1 + 0.15f * us;
    if (do_val) val = val_up ? 1 + uv : 1 - 0.5f * uv;
    if (on && (sat != 1 || val != 1 || hue != 0)) adjust_hsv(im, hue, sat, val);
  }
  {
    const bool on = coin(o.gamma_p);
    const float g = rng.uniform(o.gamma_min, o.gamma_max);
    if (on) adjust_gamma(im, g);
  }
  {
    const bool on = coin(o.motion_blur_p);
    const float angle = rng.uniform(0, 360);
    const int len = 1 + int(rng.below(uint64_t(std::max(1, o.motion_blur_max))));
    if (on) motion_blur(im, angle, len);
  }
  {
    const bool on = coin(o.blur_p);
    const float sigma = rng.uniform(o.blur_sigma_min, o.blur_sigma_max);
    if (on) gaussian_blur(im, sigma, 3);
  }
  {
    const bool on = coin(o.noise_p);
    const float sigma = coin(0.5f) ? rng.uniform(15, 22) : rng.uniform(0, 5);
    Rng noise_rng = rng.fork();
    if (on) add_gaussian_noise(im, sigma, noise_rng);
  }
  {
    const bool on = coin(o.tone_p);
    const float color[3] = {rng.uniform(60, 255), rng.uniform(60, 255), rng.uniform(60, 255)};
    const float amount = rng.uniform(0, o.tone_max);
    if (on) adjust_tone(im, color, amount);
  }
  {
    const bool on = coin(o.brightness_contrast_p);
    const float b = rng.uniform(-o.brightness_limit, o.brightness_limit);
    const float c = rng.uniform(-o.contrast_limit, o.contrast_limit);
    if (on) brightness_contrast(im, b, c);
  }
  {
    const bool on = coin(o.resize_p);
    const float ratio = rng.uniform(1, std::max(1.0f, o.resize_max_ratio));
    const Interp down = random_interp(rng), up = random_interp(rng);
    if (on) {
      const int w = std::max(1, int(im.width / ratio)), h = std::max(1, int(im.height / ratio));
      im = resize_with(resize_with(im, w, h, down), im.width, im.height, up);
    }
  }
}

AlignOptions sample_alignment(const AugmentOptions& o, const AlignOptions& base, Rng& rng) {
  AlignOptions a = base;
  const float scale = rng.normal(o.scale_mean, o.scale_std);
  const float k = float(base.canvas) / 224.0f;
  const float sx = rng.uniform(-o.shift_max, o.shift_max) * k, sy = rng.uniform(-o.shift_max, o.shift_max) * k;
  const float u = rng.uniform(-1, 1);
  const bool stretch_a = rng.uniform() < o.stretch_p;
  const float sa = rng.uniform(1 - o.stretch_max, 1 + o.stretch_max);
  const bool stretch_b = rng.uniform() < o.stretch_p;
  const float sb = rng.uniform(1 - o.stretch_max, 1 + o.stretch_max);
  if (!o.align_jitter) return a;
  a.scale = std::clamp(scale, 0.5f, 1.3f);  // 4 sigma: keeps a rare draw from losing the face
  a.shift_x = sx;
  a.shift_y = sy;
  a.rotation = o.rotation_max * u * u * u;
  a.stretch_a = stretch_a ? sa : 1;
  a.stretch_b = stretch_b ? sb : 1;
  return a;
}

bool maybe_flip(Image& im, const AugmentOptions& o, Rng& rng) {
  if (rng.uniform() >= o.flip_p) return false;
  flip_horizontal(im);
  return true;
}

}  // namespace fstm::io
