#include "io/limits.h"

#include "tensor/error.h"

namespace fstm::io {
namespace {

InputLimits g_limits;

void check_pixels(int64_t width, int64_t height, int64_t limit, const char* noun, const char* flag,
                  const std::string& what) {
  FSTM_CHECK(width > 0 && height > 0, what, ": ", noun, " of ", width, " x ", height, " pixels");
  // Compared by division, so a forged 2^31 x 2^31 cannot overflow the product.
  FSTM_CHECK(width <= limit / height, what, ": ", noun, " of ", width, " x ", height, " pixels exceeds the limit of ",
             limit, " pixels (refused before decoding; raise it with fstm ", flag, ")");
}

}  // namespace

void InputLimits::validate() const {
  FSTM_CHECK(max_image_pixels > 0, "input limits: max_image_pixels must be positive, not ", max_image_pixels);
  FSTM_CHECK(max_video_pixels > 0, "input limits: max_video_pixels must be positive, not ", max_video_pixels);
  FSTM_CHECK(max_video_frames > 0, "input limits: max_video_frames must be positive, not ", max_video_frames);
  FSTM_CHECK(max_json_bytes > 0, "input limits: max_json_bytes must be positive, not ", max_json_bytes);
}

const InputLimits& input_limits() { return g_limits; }

void set_input_limits(const InputLimits& l) {
  l.validate();
  g_limits = l;
}

void check_image_size(int64_t width, int64_t height, const std::string& what) {
  check_pixels(width, height, g_limits.max_image_pixels, "an image", "--max-image-pixels", what);
}

void check_video_frame_size(int64_t width, int64_t height, const std::string& what) {
  check_pixels(width, height, g_limits.max_video_pixels, "video frames", "--max-video-pixels", what);
}

void check_video_frame_count(int64_t frames, const std::string& what) {
  FSTM_CHECK(frames <= g_limits.max_video_frames, what, ": the video lists ", frames,
             " frames, over the limit of ", g_limits.max_video_frames,
             " (refused before decoding; raise it with fstm --max-video-frames)");
}

void check_json_size(int64_t bytes, const std::string& what) {
  FSTM_CHECK(bytes <= g_limits.max_json_bytes, what, ": ", bytes, " bytes of JSON exceed the limit of ",
             g_limits.max_json_bytes, " bytes (raise it with fstm --max-json-bytes)");
}

}  // namespace fstm::io
