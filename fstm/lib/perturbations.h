// The robustness perturbations of the paper's Table 7, as DeeperForensics-1.0 defines them
// (perturbation.py of its repository: get_distortion_parameter / get_distortion_function), applied
// to each aligned face before normalisation. Severities 1-5:
//
//   kind        DF code  parameter per severity 1..5          what it does
//   saturation  CS       0.4, 0.3, 0.2, 0.1, 0.0              chroma (Cb, Cr of BT.601 YCbCr) times the
//                                                             parameter: c' = Y + p (c - Y)
//   contrast    CC       0.85, 0.725, 0.6, 0.475, 0.35        c' = c * p
//   block       BW       16, 32, 48, 64, 80 blocks            8x8 grey (128) squares at uniform positions
//   noise       GNC      variance 0.001 .. 0.05 (0.001, 0.002, 0.005, 0.01, 0.05)
//                                                             white Gaussian noise in DF's [0, 1]-scaled
//                                                             YCbCr: std sqrt(p) 255^2/219 on Y and
//                                                             sqrt(p) 255^2/224 on Cb, Cr, in 0-255 units
//   blur        GB       kernel 7, 9, 13, 17, 21 (sigma k/6)  Gaussian blur, reflected borders (OpenCV's)
//   pixelation  JPEG*    factor 2, 3, 4, 5, 6                 bilinear down by the factor and back up
//                        (*DF names it "JPEG"; it is a resize)
// Results are truncated to 8 bits as DF's astype(uint8) does.
//
// DF applies them to whole video frames; fstm applies them to the aligned face crop. Two
// parameters are sizes in pixels and are scaled with the crop, taking a 224-pixel crop as DF's
// scale: the block side (8 px at 224) and the blur kernel (k at 224, rounded to odd). DF's block
// count, param * (min(H, W) // 256), would put no block on a crop under 256 pixels, so fstm uses
// param * max(1, min(H, W) // 256) blocks.
#pragma once
#include <string>
#include <vector>

#include "io/image.h"
#include "tensor/random.h"

namespace fstm {

enum class PerturbationKind { none, saturation, contrast, block, noise, blur, pixelation };

struct Perturbation {
  PerturbationKind kind = PerturbationKind::none;
  int severity = 0;  // 1..5 (0 for none)

  std::string name() const;     // "none", "saturation:3"
  double parameter() const;     // the DF parameter of this severity (0 for none)
};

// "none", "saturation:3", "blur:5", ... (DF codes CS, CC, BW, GNC, GB, JPEG/PXL work too).
// Throws naming the text and the choices.
Perturbation parse_perturbation(const std::string& text);
const std::vector<std::string>& perturbation_kinds();  // saturation, contrast, block, noise, blur, pixelation

// In place, on an 8-bit RGB image. `rng` drives the random ones (block positions, noise).
void apply_perturbation(io::Image& image, const Perturbation& p, Rng& rng);

}  // namespace fstm
