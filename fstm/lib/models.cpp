#include "fstm/lib/models.h"

#include <nlohmann/json.hpp>

#include "autograd/ops.h"

namespace fstm {

ModelType parse_model_type(const std::string& name) {
  if (name == "det") return ModelType::det;
  if (name == "source") return ModelType::source;
  if (name == "target") return ModelType::target;
  if (name == "fst") return ModelType::fst;
  throw Error("unknown model '" + name + "' (det, source, target or fst)");
}

const char* model_type_name(ModelType type) {
  switch (type) {
    case ModelType::det: return "det";
    case ModelType::source: return "source";
    case ModelType::target: return "target";
    case ModelType::fst: return "fst";
  }
  return "?";
}

int64_t ModelConfig::num_classes() const { return detects() ? 2 : identities; }

std::string ModelConfig::describe() const {
  std::string s = std::string(model_type_name(type)) + " (" + arch;
  if (type != ModelType::det) s += ", " + std::to_string(identities) + " identities";
  if (type == ModelType::fst) {
    s += std::string(", ") + fst_head_name(fst_head) + " head";
    if (fst_head == FstHead::mlp) s += " " + std::to_string(fst_hidden);
  }
  return s + ")";
}

namespace {

int64_t parse_count(const io::Metadata& m, const char* key, const std::string& what) {
  const std::string& v = m.at(key);
  try {
    size_t used = 0;
    const long long n = std::stoll(v, &used);
    FSTM_CHECK(used == v.size() && n > 0, what, ": metadata '", key, "' = '", v, "' is not a positive integer");
    return n;
  } catch (const std::logic_error&) {
    throw Error(detail::concat(what, ": metadata '", key, "' = '", v, "' is not a positive integer"));
  }
}

}  // namespace

io::Metadata model_metadata(const ModelConfig& c, const io::Metadata& extra) {
  io::ModelMetadata info;
  info.arch = c.arch;
  info.num_classes = c.num_classes();
  info.input_size = c.input_size;
  info.normalization = c.normalization;
  info.extra = extra;
  info.extra["model"] = model_type_name(c.type);
  if (c.type != ModelType::det) info.extra["identities"] = std::to_string(c.identities);
  if (c.type == ModelType::fst) {
    info.extra["fst_head"] = fst_head_name(c.fst_head);
    info.extra["fst_hidden"] = std::to_string(c.fst_hidden);
  }
  if (!c.identity_names.empty()) info.extra["identity_names"] = nlohmann::json(c.identity_names).dump();
  return io::to_metadata(info);
}

ModelConfig model_config_from_metadata(const io::Metadata& metadata, const std::string& what) {
  const io::ModelMetadata info = io::parse_model_metadata(metadata, what);
  FSTM_CHECK(!info.arch.empty() && info.num_classes > 0, what,
             ": not an fstm checkpoint (its metadata has no arch/num_classes)");
  ModelConfig c;
  c.arch = info.arch;
  if (info.input_size > 0) c.input_size = int(info.input_size);
  if (info.normalization) c.normalization = *info.normalization;
  const auto& x = info.extra;
  if (x.count("model")) {
    c.type = parse_model_type(x.at("model"));
  } else {
    c.type = info.num_classes == 2 ? ModelType::det : ModelType::source;
  }
  if (c.type == ModelType::det) {
    FSTM_CHECK(info.num_classes == 2, what, ": a det model has 2 classes, the metadata says ", info.num_classes);
  } else {
    c.identities = x.count("identities") ? parse_count(x, "identities", what) : info.num_classes;
    FSTM_CHECK(c.type == ModelType::fst ? info.num_classes == 2 : info.num_classes == c.identities, what,
               ": metadata num_classes ", info.num_classes, " does not fit a ", model_type_name(c.type),
               " model with ", c.identities, " identities");
  }
  if (c.type == ModelType::fst) {
    if (x.count("fst_head")) c.fst_head = parse_fst_head(x.at("fst_head"));
    if (x.count("fst_hidden")) c.fst_hidden = parse_count(x, "fst_hidden", what);
  }
  if (x.count("identity_names")) {
    try {
      c.identity_names = nlohmann::json::parse(x.at("identity_names")).get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(detail::concat(what, ": metadata 'identity_names' is not a JSON list of strings: ", e.what()));
    }
    FSTM_CHECK(int64_t(c.identity_names.size()) == c.identities, what, ": metadata lists ",
               c.identity_names.size(), " identity names for ", c.identities, " identities");
  }
  return c;
}

const std::vector<std::string>& training_state_prefixes() {
  static const std::vector<std::string> prefixes = {"optimizer.", "trainer."};
  return prefixes;
}

std::unique_ptr<ImageClassifier> build_network(const ModelConfig& c, uint64_t seed) {
  if (c.type == ModelType::fst) {
    FstModelOptions o;
    o.arch = c.arch;
    o.identities = c.identities;
    o.head = c.fst_head;
    o.hidden = c.fst_hidden;
    o.seed = seed;
    return std::make_unique<FstModel>(o);
  }
  FSTM_CHECK(c.num_classes() >= 1, "a ", model_type_name(c.type), " model needs at least one identity class");
  return make_classifier(c.arch, c.num_classes(), seed);
}

std::vector<std::pair<std::string, ImageClassifier*>> backbones(ImageClassifier& net, ModelType type) {
  if (type != ModelType::fst) return {{"", &net}};
  auto* fst = dynamic_cast<FstModel*>(&net);
  FSTM_CHECK(fst != nullptr, "backbones: the network is not an FST-Matching model");
  return {{"source_encoder.", fst->source_encoder}, {"target_encoder.", fst->target_encoder}};
}

int64_t load_backbone_weights(ImageClassifier& net, ModelType type, const std::string& path) {
  const io::SafetensorsFile file = io::read_safetensors(path);
  int64_t loaded = 0;
  for (const auto& [prefix, backbone] : backbones(net, type)) {
    io::StateDict targets;
    for (const auto& [name, t] : backbone->state_dict()) targets.add(name, t);
    io::LoadOptions lo;
    // A fstm checkpoint of a single-backbone model (det, source, target) works too: its training
    // state is skipped like the head (identity pre-training, then --init).
    lo.ignore_prefixes = training_state_prefixes();
    lo.ignore_prefixes.push_back(backbone->head_prefix());
    try {
      loaded += int64_t(io::load_state_dict(file, targets, lo).loaded.size());
    } catch (const Error& e) {
      throw Error(detail::concat(e.what(), "\n(--init expects torchvision ", backbone->arch(),
                                 " weights or a fstm checkpoint of one ", backbone->arch(),
                                 "; the classifier head and the training state are ignored)"));
    }
  }
  return loaded;
}

Losses compute_losses(ImageClassifier& net, ModelType type, const Tensor& images, const Tensor& det,
                      const Tensor& source, const Tensor& target, const LossWeights& w) {
  Losses out;
  if (type != ModelType::fst) {
    out.logits = net.forward(images);
    out.total = ops::cross_entropy(out.logits, main_labels(type, det, source, target));
    out.terms.emplace_back(model_type_name(type), out.total);
    return out;
  }
  auto* fst = dynamic_cast<FstModel*>(&net);
  FSTM_CHECK(fst != nullptr, "compute_losses: the network is not an FST-Matching model");
  const bool with_interaction = w.interaction != 0.0f;
  const FstOutputs o = fst->forward_all(images, with_interaction);
  out.logits = o.det;
  // Eq. 4, the supervised terms: L_det = CE(h([f_t^ir, f_s^ir]), y_det), L_s / L_t = CE of the identity
  // heads on f^r. Eq. 6, the total: L = L_det + l_s L_s + l_t L_t + l_int L_int (L_int: Eq. 5)
  const Tensor l_det = ops::cross_entropy(o.det, det);
  out.terms.emplace_back("det", l_det);
  out.total = l_det;
  auto add_term = [&](const char* name, float weight, const Tensor& value) {
    out.terms.emplace_back(name, value);
    if (weight != 0.0f) out.total = ops::add(out.total, ops::scale(value, weight));
  };
  add_term("source", w.source, ops::cross_entropy(o.source, source));
  add_term("target", w.target, ops::cross_entropy(o.target, target));
  if (with_interaction) add_term("interaction", w.interaction, interaction_loss(o.interaction, det, w.interaction_loss));
  return out;
}

const Tensor& main_labels(ModelType type, const Tensor& det, const Tensor& source, const Tensor& target) {
  switch (type) {
    case ModelType::source: return source;
    case ModelType::target: return target;
    default: return det;
  }
}

}  // namespace fstm
