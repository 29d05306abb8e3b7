// Video open and decode of the first frames (libavformat/libavcodec through io::VideoReader), as
// fstm extract reads every video of a dataset.
#include "fuzz_support.h"
#include "io/video.h"

void fstm::fuzz::video(const uint8_t* data, size_t size) {
  fstm::fuzz::fuzzing_limits();
  const std::string path = fstm::fuzz::write_input(data, size, "video.mp4");
  fstm::fuzz::expect_clean([&] {
    fstm::io::VideoReader reader(path);
    fstm::io::Image frame;
    for (int i = 0; i < 3 && reader.read(&frame); ++i) {
    }
  });
}

FSTM_FUZZ_ENTRY(video)
