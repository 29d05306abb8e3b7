// Image decode (PNG, JPEG, BMP through stb, io::decode_image), then the resize every image meets.
#include "fuzz_support.h"
#include "io/image.h"

void fstm::fuzz::image(const uint8_t* data, size_t size) {
  fstm::fuzz::fuzzing_limits();
  fstm::fuzz::expect_clean([&] {
    const fstm::io::Image im = fstm::io::decode_image(data, size, "fuzz.img");
    if (im.width * int64_t(im.height) <= 1 << 16) (void)fstm::io::resize_bilinear(im, 7, 5);
  });
}

FSTM_FUZZ_ENTRY(image)
