#include "io/image.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/fs.h"
#include "io/limits.h"
#include "tensor/error.h"

// stb_image has had memory-safety bugs in its rarer decoders, and fstm reads files adversaries
// made: only the three formats fstm documents are compiled in (PNG, JPEG, BMP; a PSD, GIF, HDR or
// TGA file is "unknown image type"), and the dimensions are read and checked before any decoding
// (decode_image, io/limits.h).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_MAX_DIMENSIONS (1 << 20)
// stb allocates its JPEG decoder state with malloc and reads the Huffman tables a scan names even
// when no DHT segment defined them: garbage tables sent a symbol index to -987 (tests/fuzz,
// regressions/image/jpeg_scan_names_an_undefined_table). Zeroed memory makes such a table empty,
// and stb then reports a bad code instead of reading outside its arrays.
#define STBI_MALLOC(size) std::calloc(1, (size))
#define STBI_REALLOC(p, size) std::realloc((p), (size))
#define STBI_FREE(p) std::free(p)
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

namespace fstm::io {
namespace {

// stb_image 2.27 (Debian's) trusts a JPEG's Huffman table sizes: a DHT segment whose 16 code counts
// add up to more than 256 writes past the tables (found by tests/fuzz/fuzz_image; stb 2.28 checks
// it). Refuse such a file before stb sees it. Every FF C4 in the file is read as stb would read a
// DHT segment (length, then tables of class/id, 16 counts and the counted symbols, zeros past the
// end), wherever it sits, so that no way stb could reach one is missed. ITU T.81, B.2.4.2.
void check_jpeg_huffman_tables(const uint8_t* bytes, size_t size, const std::string& what) {
  // stb takes a file as JPEG when it starts with FF, any number of fill FFs, then D8 (the SOI).
  size_t soi = 0;
  while (soi < size && bytes[soi] == 0xFF) ++soi;
  if (soi == 0 || soi >= size || bytes[soi] != 0xD8) return;  // not a JPEG to stb
  auto at = [&](size_t i) -> int { return i < size ? bytes[i] : 0; };
  for (size_t m = 2; m + 1 < size; ++m) {
    if (bytes[m] != 0xFF || bytes[m + 1] != 0xC4) continue;
    size_t pos = m + 4;
    for (int left = (at(m + 2) << 8 | at(m + 3)) - 2; left > 0 && pos < size;) {
      int codes = 0;
      for (int i = 0; i < 16; ++i) codes += at(pos + 1 + size_t(i));
      FSTM_CHECK(codes <= 256, what, ": corrupt JPEG: a Huffman table (DHT segment at byte ", m, ") lists ", codes,
                 " codes, more than 256");
      pos += 17 + size_t(codes);
      left -= 17 + codes;
    }
  }
}

// stb grows its buffer for a PNG's image data (IDAT) to the length a chunk claims before reading
// it: a 60-byte file claiming a 2 GB chunk allocated 2 GB (tests/fuzz/fuzz_image). Every chunk
// must fit in the file. And stb copies an empty IDAT chunk that comes before any image data into
// its still unallocated buffer (memcpy to NULL, undefined even for 0 bytes): such chunks carry no
// data, so a copy of the file without them is decoded instead (returned in `cleaned`; empty when
// the file needs no change). PNG specification, section 5.3 (length, type, data, CRC).
void check_png_chunks(const uint8_t* bytes, size_t size, const std::string& what, std::vector<uint8_t>& cleaned) {
  static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size < 8 || !std::equal(signature, signature + 8, bytes)) return;  // not a PNG
  std::vector<std::pair<size_t, size_t>> empty_idat;  // [begin, end) of each empty IDAT chunk
  for (size_t pos = 8; pos + 8 <= size;) {
    const uint64_t length =
        uint64_t(bytes[pos]) << 24 | uint64_t(bytes[pos + 1]) << 16 | uint64_t(bytes[pos + 2]) << 8 | bytes[pos + 3];
    const std::string type(reinterpret_cast<const char*>(bytes + pos + 4), 4);
    FSTM_CHECK(length + 12 <= size - pos, what, ": truncated or corrupt PNG: chunk '", type, "' at byte ", pos,
               " claims ", length, " bytes, past the end of the ", size, "-byte file");
    if (type == "IDAT" && length == 0) empty_idat.push_back({pos, pos + 12});
    if (type == "IEND") break;
    pos += size_t(length) + 12;
  }
  if (empty_idat.empty()) return;
  size_t from = 0;
  for (const auto& [begin, end] : empty_idat) {
    cleaned.insert(cleaned.end(), bytes + from, bytes + begin);
    from = end;
  }
  cleaned.insert(cleaned.end(), bytes + from, bytes + size);
}

}  // namespace

Image Image::blank(int width, int height, uint8_t value) {
  Image im;
  im.width = width;
  im.height = height;
  im.rgb.assign(size_t(width) * height * 3, value);
  return im;
}

Image decode_image(const uint8_t* bytes, size_t size, const std::string& what) {
  FSTM_CHECK(size > 0, what, ": empty file, not an image");
  FSTM_CHECK(size < size_t(INT32_MAX), what, ": file too large");
  check_jpeg_huffman_tables(bytes, size, what);
  std::vector<uint8_t> cleaned;
  check_png_chunks(bytes, size, what, cleaned);
  if (!cleaned.empty()) {
    bytes = cleaned.data();
    size = cleaned.size();
  }
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(bytes, int(size), &w, &h, &channels))
    throw Error(detail::concat(what, ": cannot decode image (", stbi_failure_reason(), ")"));
  check_image_size(w, h, what);
  unsigned char* pixels = stbi_load_from_memory(bytes, int(size), &w, &h, &channels, 3);
  if (!pixels) throw Error(detail::concat(what, ": cannot decode image (", stbi_failure_reason(), ")"));
  Image im;
  im.width = w;
  im.height = h;
  im.rgb.assign(pixels, pixels + size_t(w) * h * 3);
  stbi_image_free(pixels);
  return im;
}

Image load_image(const std::string& path) {
  const InputFile file(path);  // names the path when it is missing, unreadable or not a regular file
  FSTM_CHECK(file.size() < uint64_t(INT32_MAX), path, ": ", file.size(),
             " bytes, too large for an image file (at most 2 GB; refused before reading)");
  std::vector<uint8_t> bytes(size_t(file.size()));
  file.read_at(0, bytes.data(), bytes.size());
  return decode_image(bytes.data(), bytes.size(), path);
}

namespace {
void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  auto* p = static_cast<uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}
void check_image(const Image& im, const char* what) {
  FSTM_CHECK(im.width > 0 && im.height > 0 && im.rgb.size() == size_t(im.width) * im.height * 3, what,
             ": invalid image ", im.width, "x", im.height);
}
}  // namespace

std::vector<uint8_t> encode_jpeg(const Image& im, int quality) {
  check_image(im, "encode_jpeg");
  std::vector<uint8_t> out;
  FSTM_CHECK(stbi_write_jpg_to_func(append_bytes, &out, im.width, im.height, 3, im.rgb.data(),
                                    std::clamp(quality, 1, 100)),
             "JPEG encoding failed");
  return out;
}

std::vector<uint8_t> encode_png(const Image& im) {
  check_image(im, "encode_png");
  std::vector<uint8_t> out;
  FSTM_CHECK(stbi_write_png_to_func(append_bytes, &out, im.width, im.height, 3, im.rgb.data(), im.width * 3),
             "PNG encoding failed");
  return out;
}

void save_image(const Image& im, const std::string& path, int jpeg_quality) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  std::vector<uint8_t> bytes;
  if (ext == ".png") {
    bytes = encode_png(im);
  } else if (ext == ".jpg" || ext == ".jpeg") {
    bytes = encode_jpeg(im, jpeg_quality);
  } else if (ext == ".bmp") {
    check_image(im, path.c_str());
    FSTM_CHECK(stbi_write_bmp_to_func(append_bytes, &bytes, im.width, im.height, 3, im.rgb.data()), path,
               ": BMP encoding failed");
  } else {
    throw Error(detail::concat(path, ": unknown image extension '", ext, "' (use .png, .jpg or .bmp)"));
  }
  // Never a half-written image under its name, so a resumed job cannot take one as done.
  write_file_atomic(path, bytes, Durability::process_kill);
}

Image resize_bilinear(const Image& src, int width, int height) {
  check_image(src, "resize");
  FSTM_CHECK(width > 0 && height > 0, "resize to ", width, "x", height);
  if (width == src.width && height == src.height) return src;
  Image dst = Image::blank(width, height);
  const float sx = float(src.width) / width, sy = float(src.height) / height;
  for (int y = 0; y < height; ++y) {
    const float fy = std::max(0.0f, (y + 0.5f) * sy - 0.5f);
    const int y0 = std::min(int(fy), src.height - 1), y1 = std::min(y0 + 1, src.height - 1);
    const float wy = fy - y0;
    for (int x = 0; x < width; ++x) {
      const float fx = std::max(0.0f, (x + 0.5f) * sx - 0.5f);
      const int x0 = std::min(int(fx), src.width - 1), x1 = std::min(x0 + 1, src.width - 1);
      const float wx = fx - x0;
      for (int c = 0; c < 3; ++c) {
        const float top = src.at(x0, y0)[c] * (1 - wx) + src.at(x1, y0)[c] * wx;
        const float bottom = src.at(x0, y1)[c] * (1 - wx) + src.at(x1, y1)[c] * wx;
        dst.at(x, y)[c] = uint8_t(std::clamp(std::lround(top * (1 - wy) + bottom * wy), 0L, 255L));
      }
    }
  }
  return dst;
}

void image_into_batch(const Image& im, const Normalization& norm, Tensor& batch, int64_t i) {
  FSTM_CHECK(batch.dim() == 4 && batch.size(3) == 3 && batch.size(1) == im.height && batch.size(2) == im.width,
             "image ", im.width, "x", im.height, " does not fit batch ", batch.describe());
  float* out = batch.data<float>() + i * int64_t(im.height) * im.width * 3;
  const float scale[3] = {1.0f / (255.0f * norm.std[0]), 1.0f / (255.0f * norm.std[1]), 1.0f / (255.0f * norm.std[2])};
  const float shift[3] = {-norm.mean[0] / norm.std[0], -norm.mean[1] / norm.std[1], -norm.mean[2] / norm.std[2]};
  const size_t n = size_t(im.width) * im.height;
  for (size_t p = 0; p < n; ++p)
    for (int c = 0; c < 3; ++c) out[p * 3 + c] = im.rgb[p * 3 + c] * scale[c] + shift[c];
}

Tensor image_to_tensor(const Image& im, const Normalization& norm) {
  check_image(im, "image_to_tensor");
  Tensor t = Tensor::empty(Shape{1, im.height, im.width, 3});
  image_into_batch(im, norm, t, 0);
  return t;
}

}  // namespace fstm::io
