// The landmark file ldm.json (the authors' format: key -> landmark points and labels).
#include "fuzz_support.h"
#include "io/face.h"

void fstm::fuzz::landmarks(const uint8_t* data, size_t size) {
  const std::string path = fstm::fuzz::write_input(data, size, "ldm.json");
  fstm::fuzz::expect_clean([&] {
    const fstm::io::LandmarkMap map = fstm::io::load_landmarks(path);
    for (const auto& [key, entry] : map)
      if (entry.landmark.size() >= 5) (void)fstm::io::five_points(entry.landmark);
  });
}

FSTM_FUZZ_ENTRY(landmarks)
