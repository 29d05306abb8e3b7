// Test tool for tests/py_test_safetensors*.py: reads a safetensors file with fstm and writes it
// back, so the Python side can compare fstm's reading and writing with PyTorch and the reference
// `safetensors` package.
//
//   st_roundtrip copy IN OUT     read IN, write the same tensors and metadata to OUT
//   st_roundtrip to-f32 IN OUT   load IN into a model-like state dict of f32 (float tensors) and
//                                i64 (integer tensors) through load_state_dict, write that to OUT
//   st_roundtrip check IN        read IN only
//
// Prints what fstm read as JSON on stdout: {"metadata": {...}, "tensors": [{"name", "dtype",
// "shape"}, ...]} in file data order. An fstm::Error prints its message on stderr and exits 1.
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"

using namespace fstm;

namespace {

nlohmann::ordered_json listing(const io::SafetensorsFile& f) {
  nlohmann::ordered_json out;
  out["metadata"] = nlohmann::ordered_json::object();
  for (const auto& [key, value] : f.metadata) out["metadata"][key] = value;
  out["tensors"] = nlohmann::ordered_json::array();
  for (const auto& [name, t] : f.tensors)
    out["tensors"].push_back({{"name", name}, {"dtype", io::safetensors_dtype_name(t.dtype())},
                              {"shape", t.shape().to_vector()}});
  return out;
}

// What a model with f32 parameters and i64 buffers would look like for this file.
io::StateDict widened_targets(const io::SafetensorsFile& f) {
  io::StateDict targets;
  for (const auto& [name, t] : f.tensors) {
    const bool is_float = t.dtype() == DType::f32 || t.dtype() == DType::bf16 || t.dtype() == DType::f16;
    targets.add(name, Tensor::empty(t.shape(), is_float ? DType::f32 : DType::i64));
  }
  return targets;
}

int usage() {
  std::cerr << "usage: st_roundtrip copy IN OUT | to-f32 IN OUT | check IN\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string mode = argv[1];
  if ((mode == "check" && argc != 3) || ((mode == "copy" || mode == "to-f32") && argc != 4)) return usage();
  try {
    const io::SafetensorsFile f = io::read_safetensors(argv[2]);
    if (mode == "copy") {
      io::write_safetensors(argv[3], f.tensors, f.metadata);
    } else if (mode == "to-f32") {
      const io::StateDict targets = widened_targets(f);
      const io::LoadReport report = io::load_state_dict(f, targets);
      if (report.loaded.size() != f.tensors.size()) {
        std::cerr << "loaded " << report.loaded.size() << " of " << f.tensors.size() << " tensors\n";
        return 1;
      }
      io::write_safetensors(argv[3], targets, f.metadata);
    } else if (mode != "check") {
      return usage();
    }
    std::cout << listing(f).dump() << "\n";
  } catch (const Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
