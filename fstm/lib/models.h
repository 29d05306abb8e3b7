// The models of the method and what training, evaluation, prediction and explanation need to know
// about them, in one place:
//
//   det     v_d: a backbone + 2-way head (real 0 / fake 1)          output: det logits [N, 2]
//   source  v_s: a backbone + identity head (source labels)          output: identity logits [N, K]
//   target  v_t: a backbone + identity head (target labels)          output: identity logits [N, K]
//   fst     the FST-Matching model (fstm/lib/fst_model.h)            output: det logits [N, 2]
//
// Every model is an ImageClassifier whose forward(x) is its main output, so its eval-mode forward
// compiles into an InferencePlan and loads through fstm/lib/model_loader.h. det/source/target are
// plain torchvision-named classifiers ("conv1.weight", ..., "fc.weight"); the FST model's names are
// "source_encoder.*", "target_encoder.*", "source_se.fc.0.weight", ..., "det_head.0.weight".
//
// A checkpoint's safetensors __metadata__ says which model it holds (see model_metadata()).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fstm/lib/fst_model.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "layers/classifier.h"

namespace fstm {

enum class ModelType { det, source, target, fst };
ModelType parse_model_type(const std::string& name);  // "det", "source", "target", "fst"
const char* model_type_name(ModelType type);

struct ModelConfig {
  ModelType type = ModelType::det;
  std::string arch = "resnet18";
  int64_t identities = 0;  // identity classes (source, target, fst)
  FstHead fst_head = FstHead::mlp;
  int64_t fst_hidden = 256;
  int input_size = 224;
  io::Normalization normalization;
  std::vector<std::string> identity_names;  // class -> identity id, when known

  // Classes of the main output: 2 for det/fst, the identity count for source/target.
  int64_t num_classes() const;
  // True for the models whose main output is real/fake (det, fst).
  bool detects() const { return type == ModelType::det || type == ModelType::fst; }
  std::string describe() const;  // "fst (resnet18, 720 identities, mlp head 256)"
};

// __metadata__ for a checkpoint: arch, num_classes, input_size, mean, std (io::ModelMetadata) plus
// "model", "identities", "fst_head", "fst_hidden" and "identity_names" (a JSON list), and `extra`.
io::Metadata model_metadata(const ModelConfig& config, const io::Metadata& extra = {});
// The inverse. A checkpoint without "model" is a plain classifier: det when it has 2 classes, else
// an identity classifier (source). Throws naming `what` when a value is malformed or inconsistent.
ModelConfig model_config_from_metadata(const io::Metadata& metadata, const std::string& what);

// A freshly initialised network for `config` (the same seed gives the same weights).
std::unique_ptr<ImageClassifier> build_network(const ModelConfig& config, uint64_t seed = 0);

// The backbones of a network with their state-dict prefixes: {"", net} for det/source/target,
// {"source_encoder.", ...} and {"target_encoder.", ...} for fst.
std::vector<std::pair<std::string, ImageClassifier*>> backbones(ImageClassifier& net, ModelType type);

// Loads a torchvision state dict (ImageNet weights, e.g. resnet18-f37072fd converted to
// safetensors) into every backbone, leaving each classifier head ("fc." / "classifier.") as it is.
// A fstm checkpoint of a det, source or target model is such a state dict plus its training state
// (training_state_prefixes()), which is skipped: an identity classifier trained on other people
// can initialise every backbone. Throws naming the file when it does not fit the architecture.
// Returns the tensors loaded.
int64_t load_backbone_weights(ImageClassifier& net, ModelType type, const std::string& path);

// Checkpoints written by the trainer also hold the optimizer and the trainer's state under these
// prefixes ("optimizer.", "trainer."); loading a model for inference skips them.
const std::vector<std::string>& training_state_prefixes();

// ---- training losses -------------------------------------------------------------------------

struct LossWeights {
  float source = 0.5f;         // l_s
  float target = 1.0f;         // l_t
  float interaction = 100.0f;  // l_int
  InteractionLossOptions interaction_loss;
};

struct Losses {
  Tensor total;   // what backward() runs on
  Tensor logits;  // the main output [N, classes], for accuracy
  std::vector<std::pair<std::string, Tensor>> terms;  // unweighted: "det", "source", "target", "interaction"
};

// det/source/target: cross-entropy of the main output against det/source/target labels.
// fst: CE(det) + l_s CE(source) + l_t CE(target) + l_int L_int (a term with weight 0 is skipped).
Losses compute_losses(ImageClassifier& net, ModelType type, const Tensor& images, const Tensor& det,
                      const Tensor& source, const Tensor& target, const LossWeights& weights = {});

// The labels the main output is trained on: det for det/fst, source or target for the encoders.
const Tensor& main_labels(ModelType type, const Tensor& det, const Tensor& source, const Tensor& target);

}  // namespace fstm
