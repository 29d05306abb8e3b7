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
  ModelConfig& config = m.config;
  if (!spec.model.empty()) {
    config = model_config_from_metadata(file.metadata, spec.model);
    FSTM_CHECK(spec.num_classes == 0 || spec.num_classes == config.num_classes(), spec.model, " has ",
               config.num_classes(), " classes, --num-classes says ", spec.num_classes);
    m.input_size = config.input_size;
    m.normalization = config.normalization;
  } else {
    FSTM_CHECK(spec.num_classes > 0, "--num-classes is required with --weights");
    config.arch = spec.arch;
    config.type = spec.num_classes == 2 ? ModelType::det : ModelType::source;
    config.identities = config.type == ModelType::det ? 0 : spec.num_classes;
  }
  if (spec.size > 0) m.input_size = spec.size;
  if (!spec.mean.empty()) m.normalization.mean = parse_triple(spec.mean, "--mean");
  if (!spec.std.empty()) m.normalization.std = parse_triple(spec.std, "--std");
  for (float s : m.normalization.std) FSTM_CHECK(s > 0, "--std values must be positive");
  config.input_size = m.input_size;
  config.normalization = m.normalization;

  m.net = build_network(config, 0);
  io::StateDict targets;
  for (const auto& [name, t] : m.net->state_dict()) targets.add(name, t);
  io::LoadOptions lo;
  lo.ignore_prefixes = training_state_prefixes();
  try {
    io::load_state_dict(file, targets, lo);
  } catch (const Error& e) {
    const std::string as = spec.model.empty()
                               ? detail::concat(config.arch, " with ", config.num_classes(), " classes")
                               : config.describe();
    throw Error(detail::concat(e.what(), "\n(loading as ", as, ")"));
  }
  m.net->eval();
  m.net->to(Device::parse(spec.device));
  return m;
}

}  // namespace fstm
