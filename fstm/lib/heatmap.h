// Pictures of Shapley maps: a diverging colormap (blue < 0 < red, white at 0), the L x L map
// upsampled to the image's pixels (flat cells, exactly the players, or smooth), and an overlay on
// the image. Used by `fstm explain --out` and the report.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fstm/lib/masking.h"
#include "io/image.h"

namespace fstm {

struct HeatmapOptions {
  double scale = 0;     // |phi| that gets the full colour; 0 = the map's max |phi| (symmetric)
  float alpha = 0.7f;   // overlay: opacity of the colour at full strength (it fades to 0 at phi = 0)
  bool smooth = false;  // bilinear between cell centres instead of flat cells
  int legend = 16;      // width in pixels of a colour bar added on the right (0: none)
};

// RdBu reversed (ColorBrewer's 11-class RdBu, interpolated): t in [-1, 1], clamped.
std::array<uint8_t, 3> diverging_color(double t);

// [H * W] row-major values of the map at every pixel of the grid's image.
std::vector<float> upsample_map(const std::vector<double>& phi, const GridGeometry& geometry, bool smooth = false);

// The map alone, in colour, at the grid's image size (plus the legend).
io::Image heatmap_image(const std::vector<double>& phi, const GridGeometry& geometry, const HeatmapOptions& o = {});
// The image with the map's colours blended over it; image must be the grid's size.
io::Image heatmap_overlay(const io::Image& image, const std::vector<double>& phi, const GridGeometry& geometry,
                          const HeatmapOptions& o = {});

}  // namespace fstm
