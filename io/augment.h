// Training augmentations as the FST-Matching authors (dataset/augmentor.py: add_noise, align_5p
// jitter, flip) and DeepfakeBench used them. Every step has a probability (0 turns it off) and its
// parameters; everything is driven by the Rng passed in, so the same seed gives the same images.
//
// augment_photometric applies, in the authors' order:
//   JPEG re-encode      p 0.3, quality uniform in [15, 80]
//   autocontrast        p 0.5, stretch to [0, 255] as (x - min) / (max - min + 1) * 255
//   quantisation noise  p 0.5, N(0, 2) noise drawn at 1/4 size, upsampled, same on all channels
//   HSV                 p 0.25; then p 0.5 saturation x U(0.5, 1) or x U(1, 1.15),
//                       p 0.5 value (brightness) x U(1, 2) or x U(0.5, 1); hue shift +-hue_max deg
//   gamma               p 1.0, gamma U(0.6, 1.4): 255 (x / 255)^(1 / gamma)
//   motion blur         p 0.3, a line kernel of random angle and length 1..10 px
//   Gaussian blur       p 0.3, 3x3 kernel, sigma U(0.8, 2)
//   Gaussian noise      p 0.3, sigma U(15, 22) half the time, else U(0, 5), per channel (drawn from
//                       a table of 4096 normal quantiles: tails cut at 3.5 sigma)
//   tone                p 0.3, blend towards a random colour (each channel U(60, 255)) by U(0, 0.3)
//   brightness/contrast p 0 (DeepfakeBench: 0.5), x (1 + U(-c, c)) + 255 U(-b, b), b = c = 0.1
//   resize noise        p 0.25, down by U(1, 2) and back up, each with a random interpolation
//                       (nearest, bilinear, bicubic, area). (The authors' code computed this and
//                       dropped the result; here it is applied.)
// Geometry: alignment jitter (sample_alignment) when landmarks are known, as the authors' training
// align_5p: template scale N(0.9, 0.1), shift U(-25, 25) px, rotation 30 u^3 deg (u in [-1, 1]),
// eye/mouth stretch U(0.97, 1.03) each with p 0.2; then horizontal flip p 0.5.
#pragma once
#include "io/face.h"
#include "io/image.h"
#include "tensor/random.h"

namespace fstm::io {

struct AugmentOptions {
  float jpeg_p = 0.3f;
  int jpeg_quality_min = 15, jpeg_quality_max = 80;
  float autocontrast_p = 0.5f;
  float quant_noise_p = 0.5f, quant_noise_sigma = 2.0f;
  float hsv_p = 0.25f, hue_max = 0.0f;
  float gamma_p = 1.0f, gamma_min = 0.6f, gamma_max = 1.4f;
  float motion_blur_p = 0.3f;
  int motion_blur_max = 10;
  float blur_p = 0.3f, blur_sigma_min = 0.8f, blur_sigma_max = 2.0f;
  float noise_p = 0.3f;
  float tone_p = 0.3f, tone_max = 0.3f;
  float brightness_contrast_p = 0.0f, brightness_limit = 0.1f, contrast_limit = 0.1f;
  float resize_p = 0.25f, resize_max_ratio = 2.0f;
  // geometry
  float flip_p = 0.5f;
  bool align_jitter = true;
  float scale_mean = 0.9f, scale_std = 0.1f;
  float shift_max = 25.0f;     // pixels on a 224 canvas (scaled with the canvas)
  float rotation_max = 30.0f;  // degrees, times u^3
  float stretch_p = 0.2f, stretch_max = 0.03f;

  static AugmentOptions authors() { return {}; }  // the defaults above
  static AugmentOptions none();                   // every step off
};

// The photometric steps, in place.
void augment_photometric(Image& image, const AugmentOptions& opt, Rng& rng);
// Alignment with jitter: `base` with scale, shift, rotation and stretch drawn as above.
AlignOptions sample_alignment(const AugmentOptions& opt, const AlignOptions& base, Rng& rng);
// Flip with probability opt.flip_p; returns whether it flipped.
bool maybe_flip(Image& image, const AugmentOptions& opt, Rng& rng);

// The single steps, for tests and for other pipelines.
void flip_horizontal(Image& image);
void jpeg_reencode(Image& image, int quality);
void autocontrast(Image& image);
void gaussian_blur(Image& image, float sigma, int ksize = 3);  // borders reflect (OpenCV's default)
void motion_blur(Image& image, float angle_deg, int length);
void add_gaussian_noise(Image& image, float sigma, Rng& rng);
void adjust_hsv(Image& image, float hue_shift_deg, float saturation_scale, float value_scale);
void adjust_gamma(Image& image, float gamma);
void adjust_tone(Image& image, const float color[3], float amount);
void brightness_contrast(Image& image, float brightness, float contrast);
enum class Interp { nearest, bilinear, bicubic, area };
Image resize_with(const Image& image, int width, int height, Interp interp);

}  // namespace fstm::io
