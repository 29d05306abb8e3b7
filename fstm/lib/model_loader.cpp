#include "fstm/lib/model_loader.h"

#include <sstream>

#include "io/safetensors.h"

namespace fstm {

std::array<float, 3> parse_triple(const std::string& text, const char* flag) {
  std::array<float, 3> v{};
  std::stringstream s(text);
  std::string part;
  int n = 0;
  while (std::getline(s, part, ',')) {
    FSTM_CHECK(n < 3, flag, " needs 3 comma-separated numbers, got '", text, "'");
    try {
      size_t used = 0;
      v[size_t(n)] = std::stof(part, &used);
      FSTM_CHECK(used == part.size(), flag, ": '", part, "' is not a number");
    } catch (const std::logic_error&) {
      throw Error(detail::concat(flag, ": '", part, "' is not a number"));
    }
    ++n;
  }
  FSTM_CHECK(n == 3, flag, " needs 3 comma-separated numbers, got '", text, "'");
  return v;
}

LoadedModel load_model(const ModelSpec& spec) {
  FSTM_CHECK(!spec.model.empty() || !spec.weights.empty(), "give a model: --model CHECKPOINT, or --arch, --num-classes and --weights");
  FSTM_CHECK(spec.model.empty() || spec.weights.empty(), "give either --model or --weights, not both");
  LoadedModel m;
  m.source = spec.model.empty() ? spec.weights : spec.model;
  const io::SafetensorsFile file = io::read_safetensors(m.source);
  std::string arch = spec.arch;
  int64_t classes = spec.num_classes;
  if (!spec.model.empty()) {
    const io::ModelMetadata meta = io::parse_model_metadata(file.metadata, spec.model);
    FSTM_CHECK(!meta.arch.empty() && meta.num_classes > 0, spec.model,
               ": not an fstm checkpoint (its metadata has no arch/num_classes); use --arch/--num-classes/--weights");
    arch = meta.arch;
    FSTM_CHECK(classes == 0 || classes == meta.num_classes, spec.model, " has ", meta.num_classes,
               " classes, --num-classes says ", classes);
    classes = meta.num_classes;
    if (meta.input_size > 0) m.input_size = int(meta.input_size);
    if (meta.normalization) m.normalization = *meta.normalization;
  }
  FSTM_CHECK(classes > 0, "--num-classes is required with --weights");
  if (spec.size > 0) m.input_size = spec.size;
  if (!spec.mean.empty()) m.normalization.mean = parse_triple(spec.mean, "--mean");
  if (!spec.std.empty()) m.normalization.std = parse_triple(spec.std, "--std");
  for (float s : m.normalization.std) FSTM_CHECK(s > 0, "--std values must be positive");

  m.net = make_classifier(arch, classes, 0);
  io::StateDict targets;
  for (const auto& [name, t] : m.net->state_dict()) targets.add(name, t);
  try {
    io::load_state_dict(file, targets);
  } catch (const Error& e) {
    throw Error(detail::concat(e.what(), "\n(loading as ", arch, " with ", classes, " classes)"));
  }
  m.net->eval();
  m.net->to(Device::parse(spec.device));
  return m;
}

}  // namespace fstm
