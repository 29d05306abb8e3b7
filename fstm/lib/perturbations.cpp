#include "fstm/lib/perturbations.h"

#include <algorithm>
#include <cmath>

#include "io/augment.h"

namespace fstm {

namespace {

struct KindInfo {
  PerturbationKind kind;
  const char* name;
  const char* df_code;
  double parameters[5];
};

const KindInfo kKinds[] = {
    {PerturbationKind::saturation, "saturation", "CS", {0.4, 0.3, 0.2, 0.1, 0.0}},
    {PerturbationKind::contrast, "contrast", "CC", {0.85, 0.725, 0.6, 0.475, 0.35}},
    {PerturbationKind::block, "block", "BW", {16, 32, 48, 64, 80}},
    {PerturbationKind::noise, "noise", "GNC", {0.001, 0.002, 0.005, 0.01, 0.05}},
    {PerturbationKind::blur, "blur", "GB", {7, 9, 13, 17, 21}},
    {PerturbationKind::pixelation, "pixelation", "JPEG", {2, 3, 4, 5, 6}},
};

const KindInfo& info(PerturbationKind kind) {
  for (const KindInfo& k : kKinds)
    if (k.kind == kind) return k;
  throw Error("perturbation: no parameters for 'none'");
}

uint8_t to_u8(double v) { return uint8_t(std::clamp(v, 0.0, 255.0)); }  // truncates, as astype(uint8)

double luma(const uint8_t* p) { return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; }

// A pixel size given at DF's 224-pixel scale, for this crop.
double crop_scale(const io::Image& im) { return double(std::min(im.width, im.height)) / 224.0; }

}  // namespace

std::string Perturbation::name() const {
  if (kind == PerturbationKind::none) return "none";
  return std::string(info(kind).name) + ":" + std::to_string(severity);
}

double Perturbation::parameter() const {
  if (kind == PerturbationKind::none) return 0.0;
  return info(kind).parameters[severity - 1];
}

const std::vector<std::string>& perturbation_kinds() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const KindInfo& k : kKinds) v.push_back(k.name);
    return v;
  }();
  return names;
}

Perturbation parse_perturbation(const std::string& text) {
  if (text == "none") return {};
  const std::string choices = "none, or KIND:SEVERITY with KIND saturation, contrast, block, noise, blur or "
                              "pixelation (DF codes CS, CC, BW, GNC, GB, JPEG) and SEVERITY 1-5";
  const size_t colon = text.find(':');
  FSTM_CHECK(colon != std::string::npos, "perturbation '", text, "': expected ", choices);
  const std::string kind = text.substr(0, colon), level = text.substr(colon + 1);
  Perturbation p;
  bool found = false;
  for (const KindInfo& k : kKinds)
    if (kind == k.name || kind == k.df_code || (k.kind == PerturbationKind::pixelation && kind == "PXL")) {
      p.kind = k.kind;
      found = true;
    }
  FSTM_CHECK(found, "perturbation '", text, "': unknown kind '", kind, "'; expected ", choices);
  FSTM_CHECK(level.size() == 1 && level[0] >= '1' && level[0] <= '5', "perturbation '", text, "': severity '", level,
             "' is not 1-5");
  p.severity = level[0] - '0';
  return p;
}

void apply_perturbation(io::Image& im, const Perturbation& p, Rng& rng) {
  if (p.kind == PerturbationKind::none) return;
  FSTM_CHECK(p.severity >= 1 && p.severity <= 5, "perturbation severity ", p.severity, " is not 1-5");
  FSTM_CHECK(!im.empty(), "perturbation of an empty image");
  const double param = p.parameter();
  const size_t pixels = size_t(im.width) * size_t(im.height);
  switch (p.kind) {
    case PerturbationKind::saturation:
      for (size_t i = 0; i < pixels; ++i) {
        uint8_t* px = &im.rgb[i * 3];
        const double y = luma(px);
        for (int c = 0; c < 3; ++c) px[c] = to_u8(y + param * (px[c] - y));
      }
      break;
    case PerturbationKind::contrast:
      for (uint8_t& v : im.rgb) v = to_u8(v * param);
      break;
    case PerturbationKind::block: {
      const int side = std::max(1, int(std::lround(8 * crop_scale(im))));
      const int count = int(param) * std::max(1, std::min(im.width, im.height) / 256);
      const int max_x = std::max(0, im.width - 1 - side), max_y = std::max(0, im.height - 1 - side);
      for (int b = 0; b < count; ++b) {
        const int x0 = int(rng.below(uint64_t(max_x) + 1)), y0 = int(rng.below(uint64_t(max_y) + 1));
        for (int y = y0; y < std::min(im.height, y0 + side); ++y)
          for (int x = x0; x < std::min(im.width, x0 + side); ++x) std::fill(im.at(x, y), im.at(x, y) + 3, uint8_t(128));
      }
      break;
    }
    case PerturbationKind::noise: {
      // DF adds N(0, p) to YCbCr scaled to [16/255, 235/255] (Y) and [16/255, 240/255] (Cb, Cr) and
      // converts back: in 0-255 RGB units that is this noise, mixed by the YCrCb -> RGB matrix.
      const double s = std::sqrt(param) * 255.0 * 255.0;
      const double sy = s / 219.0, sc = s / 224.0;
      for (size_t i = 0; i < pixels; ++i) {
        uint8_t* px = &im.rgb[i * 3];
        const double ny = sy * rng.normal(), ncb = sc * rng.normal(), ncr = sc * rng.normal();
        px[0] = to_u8(px[0] + ny + 1.403 * ncr);
        px[1] = to_u8(px[1] + ny - 0.714 * ncr - 0.344 * ncb);
        px[2] = to_u8(px[2] + ny + 1.773 * ncb);
      }
      break;
    }
    case PerturbationKind::blur: {
      int k = int(std::lround(param * crop_scale(im)));
      if (k % 2 == 0) ++k;
      k = std::max(k, 1);
      if (k > 1) io::gaussian_blur(im, float(k) / 6.0f, k);
      break;
    }
    case PerturbationKind::pixelation: {
      const int f = int(param);
      const int w = std::max(1, im.width / f), h = std::max(1, im.height / f);
      im = io::resize_bilinear(io::resize_bilinear(im, w, h), im.width, im.height);
      break;
    }
    case PerturbationKind::none: break;
  }
}

}  // namespace fstm
