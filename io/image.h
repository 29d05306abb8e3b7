// 8-bit RGB images: load/save through stb (PNG, JPEG, BMP), resize, and conversion to the engine's
// normalised float tensors.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace fstm::io {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3, row-major, interleaved R, G, B

  bool empty() const { return rgb.empty(); }
  uint8_t* at(int x, int y) { return &rgb[(size_t(y) * width + x) * 3]; }
  const uint8_t* at(int x, int y) const { return &rgb[(size_t(y) * width + x) * 3]; }
  static Image blank(int width, int height, uint8_t value = 0);
};

// Throws fstm::Error naming the file when it is missing, not a PNG, JPEG or BMP, truncated, or
// claims more pixels than io::input_limits() allows (checked from the header, before decoding).
Image load_image(const std::string& path);
Image decode_image(const uint8_t* bytes, size_t size, const std::string& what);
// Format from the extension: .png, .jpg/.jpeg (quality 1-100), .bmp.
void save_image(const Image& image, const std::string& path, int jpeg_quality = 95);
std::vector<uint8_t> encode_jpeg(const Image& image, int quality);
std::vector<uint8_t> encode_png(const Image& image);

// Bilinear resize with half-pixel centres (as torch's interpolate, align_corners=False, no
// antialias).
Image resize_bilinear(const Image& image, int width, int height);

struct Normalization {
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  // ImageNet, as torchvision
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
};

// One image -> [1, H, W, 3] f32: value / 255, then (v - mean) / std.
Tensor image_to_tensor(const Image& image, const Normalization& norm = {});
// Writes image i of a batch [N, H, W, 3] in place, so loaders fill a preallocated batch.
void image_into_batch(const Image& image, const Normalization& norm, Tensor& batch, int64_t i);

}  // namespace fstm::io
