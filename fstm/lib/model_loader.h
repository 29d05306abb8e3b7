// Loading a classifier for inference from the command line: either an fstm checkpoint
// (--model FILE, whose safetensors __metadata__ names the architecture, class count and
// preprocessing) or a bare state dict (--arch, --num-classes, --weights, e.g. torchvision weights
// exported by the user). Shared by predict, eval, explain and bench.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "fstm/lib/models.h"
#include "io/image.h"
#include "layers/classifier.h"

namespace fstm {

struct ModelSpec {
  std::string model;        // fstm checkpoint; overrides the fields below from its metadata
  std::string arch = "resnet18";
  int64_t num_classes = 0;  // 0: from the checkpoint
  std::string weights;      // state dict with torchvision names
  int size = 0;             // input side; 0: the checkpoint's, else 224
  std::string mean, std;    // "a,b,c"; empty: the checkpoint's, else ImageNet's
  std::string device = "cpu";
};

struct LoadedModel {
  std::unique_ptr<ImageClassifier> net;  // in eval mode, on the requested device; forward(x) = main logits
  ModelConfig config;                    // which model (det, source, target, fst) and its settings
  int input_size = 224;
  io::Normalization normalization;
  std::string source;  // the file it came from, for messages
};

// Throws fstm::Error naming the file when it is missing, not a checkpoint, or does not fit the
// architecture (missing/unexpected keys or shapes, all listed). Training checkpoints
// (DIR/last.safetensors) load too: their optimizer and trainer state is skipped.
LoadedModel load_model(const ModelSpec& spec);

// "0.485,0.456,0.406" -> {0.485, 0.456, 0.406}; throws naming the flag.
std::array<float, 3> parse_triple(const std::string& text, const char* flag);

}  // namespace fstm
