// Checkpoints in the safetensors format, compatible with the `safetensors` Python package, so that
// torchvision state dicts exported by users load under their own names and fstm models load
// elsewhere.
//
// Format: 8-byte little-endian header length N, N bytes of JSON header, then the data buffer.
//   {"__metadata__": {"arch": "resnet18", ...},            optional, string -> string
//    "conv1.weight": {"dtype": "F32", "shape": [64, 3, 7, 7], "data_offsets": [0, 37632]}, ...}
// Offsets are relative to the data buffer; the tensors cover it exactly, in order, without gaps
// or overlaps. Tensors are row-major (contiguous), little-endian.
//
// dtypes: F32, F16, BF16, I64 (BatchNorm's num_batches_tracked), I32, U8 <-> fstm::DType.
// Every problem with a file throws fstm::Error with a message that names the file and, where there
// is one, the tensor.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/image.h"
#include "tensor/tensor.h"

namespace fstm::io {

// An ordered name -> tensor map: a model's parameters and buffers under their torchvision names,
// or the tensors of a file. Iterates in insertion order.
class StateDict {
 public:
  using Item = std::pair<std::string, Tensor>;

  StateDict() = default;
  StateDict(std::initializer_list<Item> items);

  void add(std::string name, Tensor tensor);  // throws on an empty or duplicate name, undefined tensor
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const Tensor* find(const std::string& name) const;  // nullptr when absent
  const Tensor& at(const std::string& name) const;    // throws naming the key
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<std::string> names() const;
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
  std::unordered_map<std::string, size_t> index_;
};

// The header's "__metadata__": free-form string -> string.
using Metadata = std::map<std::string, std::string>;

struct SafetensorsFile {
  std::string path;
  StateDict tensors;  // CPU tensors with the stored dtype, in data-buffer order
  Metadata metadata;

  const Tensor& at(const std::string& name) const;  // throws "<path>: no tensor '<name>'"
};

// "F32", "BF16", ... for the dtypes above.
const char* safetensors_dtype_name(DType dtype);

// Reads the whole file with one read of the data buffer into one aligned block; tensors are views
// of that block (a tensor whose offset is not a multiple of its element size gets its own copy).
SafetensorsFile read_safetensors(const std::string& path);

// Writes `tensors` (any device) atomically (io/fs.h). Deterministic: the same tensors and metadata
// give the same bytes. Data order is the given order, stably sorted by element size (8-byte types
// first) so that every tensor is naturally aligned; the header lists "__metadata__" (when not
// empty) and then the tensors in data order, compact JSON padded with spaces to a multiple of 8
// bytes, as the reference implementation does.
void write_safetensors(const std::string& path, const StateDict& tensors, const Metadata& metadata = {});

// ---- loading into a model ---------------------------------------------------------------------

struct LoadOptions {
  // Missing keys (in the model, not in the file) and unexpected keys (in the file, not in the
  // model) are errors. When false they are only listed in the LoadReport. Shape and dtype-kind
  // mismatches are always errors.
  bool strict = true;
  // Keys under these prefixes, in the model or in the file, are skipped: the model keeps its
  // values. For example {"fc."} when fine-tuning ImageNet weights with a different class count.
  std::vector<std::string> ignore_prefixes;
};

struct LoadReport {
  std::vector<std::string> loaded;      // copied into the model
  std::vector<std::string> missing;     // left as they were (only when not strict)
  std::vector<std::string> unexpected;  // in the file, unused (only when not strict)
  std::vector<std::string> ignored;     // under an ignored prefix, in the model or the file
};

// Copies `source` tensors into the existing `targets` (a model's parameters and buffers, on any
// device) by name. Float tensors convert between f32/bf16/f16 (an F16 or BF16 file loads into an
// f32 model) and integer tensors between i64/i32/u8; a float <-> integer pair is a dtype mismatch.
// Every problem (missing keys, unexpected keys, shape and dtype mismatches with both shapes) is
// checked before anything is copied and reported in one fstm::Error naming `source_name`, so a
// failed load leaves the model untouched.
LoadReport load_state_dict(const StateDict& source, const std::string& source_name, const StateDict& targets,
                           const LoadOptions& options = {});
LoadReport load_state_dict(const SafetensorsFile& file, const StateDict& targets, const LoadOptions& options = {});

// ---- what fstm stores in "__metadata__" --------------------------------------------------------

struct ModelMetadata {
  std::string arch;                            // "arch": "resnet18", ...; empty when absent
  int64_t num_classes = 0;                     // "num_classes"; 0 when absent
  int64_t input_size = 0;                      // "input_size": square input side in pixels; 0 when absent
  std::optional<Normalization> normalization;  // "mean" and "std": JSON arrays of 3 numbers
  Metadata extra;                              // every other key, unchanged
};

// Throws when an extra key collides with one of the keys above.
Metadata to_metadata(const ModelMetadata& info);
// Throws naming `what` (the file) and the key when a value is malformed (num_classes "abc", a
// mean with 2 numbers, only one of mean/std).
ModelMetadata parse_model_metadata(const Metadata& metadata, const std::string& what);

}  // namespace fstm::io
