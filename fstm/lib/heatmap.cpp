#include "fstm/lib/heatmap.h"

#include <algorithm>
#include <cmath>

namespace fstm {

namespace {

// ColorBrewer RdBu (11 classes), reversed: index 0 = -1 (dark blue), 5 = 0 (near white), 10 = +1.
constexpr uint8_t kRdBuR[11][3] = {
    {5, 48, 97},     {33, 102, 172},  {67, 147, 195}, {146, 197, 222}, {209, 229, 240}, {247, 247, 247},
    {253, 219, 199}, {244, 165, 130}, {214, 96, 77},  {178, 24, 43},   {103, 0, 31}};

double map_scale(const std::vector<double>& phi, const HeatmapOptions& o) {
  if (o.scale > 0) return o.scale;
  double m = 0;
  for (double p : phi) m = std::max(m, std::abs(p));
  return m > 0 ? m : 1.0;
}

void check_map(const std::vector<double>& phi, const GridGeometry& g) {
  FSTM_CHECK(int64_t(phi.size()) == g.players(), "heatmap: a map of ", phi.size(), " values for a ", g.grid, "x",
             g.grid, " grid");
}

// A vertical colour bar from +1 (top) to -1 (bottom), with a 2-pixel gap, appended on the right.
io::Image with_legend(const io::Image& img, int width) {
  if (width <= 0) return img;
  const int gap = 2;
  io::Image out = io::Image::blank(img.width + gap + width, img.height, 255);
  for (int y = 0; y < img.height; ++y) {
    std::copy(img.at(0, y), img.at(0, y) + 3 * img.width, out.at(0, y));
    const double t = img.height > 1 ? 1.0 - 2.0 * y / (img.height - 1) : 0.0;
    const auto c = diverging_color(t);
    for (int x = 0; x < width; ++x) std::copy(c.begin(), c.end(), out.at(img.width + gap + x, y));
  }
  return out;
}

}  // namespace

std::array<uint8_t, 3> diverging_color(double t) {
  if (!std::isfinite(t)) t = 0;
  const double u = (std::clamp(t, -1.0, 1.0) + 1.0) * 5.0;  // [0, 10]
  const int i = std::min(9, int(u));
  const double f = u - i;
  std::array<uint8_t, 3> c{};
  for (int k = 0; k < 3; ++k) c[size_t(k)] = uint8_t(std::lround(kRdBuR[i][k] * (1 - f) + kRdBuR[i + 1][k] * f));
  return c;
}

std::vector<float> upsample_map(const std::vector<double>& phi, const GridGeometry& g, bool smooth) {
  check_map(phi, g);
  std::vector<float> out(size_t(g.height) * g.width);
  if (!smooth) {
    for (int y = 0; y < g.height; ++y)
      for (int x = 0; x < g.width; ++x)
        out[size_t(y) * g.width + x] = float(phi[size_t(g.row_cell[size_t(y)] * g.grid + g.col_cell[size_t(x)])]);
    return out;
  }
  // Bilinear between cell centres; beyond the outer centres the edge values hold.
  auto centre = [](const std::vector<int32_t>& e, int i) { return 0.5 * (e[size_t(i)] + e[size_t(i) + 1]) - 0.5; };
  // i0 = the last cell whose centre is at or before pixel p, f = the way from it to the next centre
  auto locate = [&](const std::vector<int32_t>& edges, double p, int& i0, double& f) {
    i0 = 0;
    while (i0 + 1 < g.grid && centre(edges, i0 + 1) <= p) ++i0;
    const bool outside = p <= centre(edges, 0) || i0 + 1 == g.grid;
    f = outside ? 0.0 : (p - centre(edges, i0)) / (centre(edges, i0 + 1) - centre(edges, i0));
  };
  for (int y = 0; y < g.height; ++y) {
    int i0;
    double fy;
    locate(g.row_edges, y, i0, fy);
    const int i1 = std::min(i0 + 1, g.grid - 1);
    for (int x = 0; x < g.width; ++x) {
      int j0;
      double fx;
      locate(g.col_edges, x, j0, fx);
      const int j1 = std::min(j0 + 1, g.grid - 1);
      auto at = [&](int i, int j) { return phi[size_t(i * g.grid + j)]; };
      const double top = at(i0, j0) * (1 - fx) + at(i0, j1) * fx;
      const double bottom = at(i1, j0) * (1 - fx) + at(i1, j1) * fx;
      out[size_t(y) * g.width + x] = float(top * (1 - fy) + bottom * fy);
    }
  }
  return out;
}

io::Image heatmap_image(const std::vector<double>& phi, const GridGeometry& g, const HeatmapOptions& o) {
  const std::vector<float> values = upsample_map(phi, g, o.smooth);
  const double scale = map_scale(phi, o);
  io::Image img = io::Image::blank(g.width, g.height);
  for (int y = 0; y < g.height; ++y)
    for (int x = 0; x < g.width; ++x) {
      const auto c = diverging_color(values[size_t(y) * g.width + x] / scale);
      std::copy(c.begin(), c.end(), img.at(x, y));
    }
  return with_legend(img, o.legend);
}

io::Image heatmap_overlay(const io::Image& image, const std::vector<double>& phi, const GridGeometry& g,
                          const HeatmapOptions& o) {
  FSTM_CHECK(image.width == g.width && image.height == g.height, "heatmap overlay: the image is ", image.width, "x",
             image.height, ", the map's grid covers ", g.width, "x", g.height);
  const std::vector<float> values = upsample_map(phi, g, o.smooth);
  const double scale = map_scale(phi, o);
  io::Image out = image;
  for (int y = 0; y < g.height; ++y)
    for (int x = 0; x < g.width; ++x) {
      const double t = std::clamp(values[size_t(y) * g.width + x] / scale, -1.0, 1.0);
      const auto c = diverging_color(t);
      const double w = double(o.alpha) * std::abs(t);  // neutral cells show the image
      uint8_t* p = out.at(x, y);
      for (int k = 0; k < 3; ++k) p[k] = uint8_t(std::lround(p[k] * (1 - w) + c[size_t(k)] * w));
    }
  return with_legend(out, o.legend);
}

}  // namespace fstm
