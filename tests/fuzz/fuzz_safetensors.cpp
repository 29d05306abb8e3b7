// safetensors: the 8-byte header length, the JSON header (dtypes, shapes, offsets, metadata), the
// data buffer, then fstm's own metadata keys (io::parse_model_metadata).
#include "fuzz_support.h"
#include "io/safetensors.h"

void fstm::fuzz::safetensors(const uint8_t* data, size_t size) {
  const std::string path = fstm::fuzz::write_input(data, size, "model.safetensors");
  fstm::fuzz::expect_clean([&] {
    const fstm::io::SafetensorsFile file = fstm::io::read_safetensors(path);
    // Touch every byte of every tensor, so a view past the buffer is an ASan report.
    uint64_t sum = 0;
    for (const auto& [name, t] : file.tensors) {
      const auto* p = static_cast<const uint8_t*>(t.raw_data());
      for (size_t i = 0; i < t.nbytes(); ++i) sum += p[i];
    }
    (void)fstm::io::parse_model_metadata(file.metadata, path);
    if (sum == 1) return;  // keeps the loop
  });
}

FSTM_FUZZ_ENTRY(safetensors)
