// A checkpoint's "__metadata__" as fstm reads it into a model configuration: the architecture, the
// model type and classes, the FST head, the identity names (a JSON list inside a string) and the
// preprocessing (input size, mean, std). The input is the metadata object as JSON text.
#include <nlohmann/json.hpp>

#include "fstm/lib/models.h"
#include "fuzz_support.h"

void fstm::fuzz::checkpoint_metadata(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return;
  fstm::io::Metadata metadata;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (it.value().is_string()) metadata[it.key()] = it.value().get<std::string>();
  fstm::fuzz::expect_clean([&] {
    const fstm::ModelConfig c = fstm::model_config_from_metadata(metadata, "fuzz.safetensors");
    (void)fstm::model_metadata(c);  // what was read must write back
  });
}

FSTM_FUZZ_ENTRY(checkpoint_metadata)
