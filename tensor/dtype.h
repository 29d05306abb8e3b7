// Element types. f32 is the training type; bf16 and f16 are storage types for inference;
// i64/i32 hold labels and BatchNorm's num_batches_tracked; u8 holds images.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace fstm {

enum class DType : uint8_t { f32, bf16, f16, i64, i32, u8 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "f32", "bf16", ...
DType parse_dtype(std::string_view name);  // throws fstm::Error on an unknown name

// bf16 is the top half of an f32. Conversion rounds to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE half precision, round to nearest even, with subnormals.
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

}  // namespace fstm
