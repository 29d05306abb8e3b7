// The face index (index.json) that fstm extract writes and train, eval and explain read.
#include "fuzz_support.h"
#include "io/dataset.h"

void fstm::fuzz::face_index(const uint8_t* data, size_t size) {
  const std::string path = fstm::fuzz::write_input(data, size, "index.json");
  fstm::fuzz::expect_clean([&] {
    const fstm::io::FaceIndex index = fstm::io::FaceIndex::load(path);
    for (const fstm::io::IndexFrame& f : index.frames) (void)index.videos.at(size_t(f.video)).video;
  });
}

FSTM_FUZZ_ENTRY(face_index)
