#include "fstm/lib/fst_model.h"

#include <cmath>
#include <sstream>

#include "autograd/ops.h"

namespace fstm {

namespace {

class SigmoidLayer : public Layer {
 public:
  Tensor forward(const Tensor& x) override { return ops::sigmoid(x); }
};

}  // namespace

FstHead parse_fst_head(const std::string& name) {
  if (name == "linear") return FstHead::linear;
  if (name == "mlp") return FstHead::mlp;
  throw Error("unknown FST head '" + name + "' (linear: the released code's Linear(2C, 2); mlp: Linear, ReLU, Linear)");
}

const char* fst_head_name(FstHead head) { return head == FstHead::linear ? "linear" : "mlp"; }

ChannelAttention::ChannelAttention(int64_t channels, int64_t reduction, Rng& rng) {
  FSTM_CHECK(channels > 0 && reduction > 0 && channels / reduction > 0, "ChannelAttention: ", channels,
             " channels cannot be reduced by ", reduction);
  auto seq = std::make_unique<Sequential>();
  seq->add(std::make_unique<Linear>(channels, channels / reduction, false, rng));
  seq->add(std::make_unique<ReLU>());
  seq->add(std::make_unique<Linear>(channels / reduction, channels, false, rng));
  seq->add(std::make_unique<SigmoidLayer>());
  fc = register_module("fc", std::move(seq));
}

// Eq. 3 (first half): a = sigmoid(W2 relu(W1 f))  [N, C] -> [N, C]
Tensor ChannelAttention::forward(const Tensor& f) {
  FSTM_CHECK(f.dim() == 2, "ChannelAttention: expected pooled features [N, C], got ", f.describe());
  return fc->forward(f);
}

FstModel::FstModel(const FstModelOptions& o) : options_(o) {
  FSTM_CHECK(o.identities >= 1, "FST-Matching model: the identity heads need at least one class, got ", o.identities);
  FSTM_CHECK(o.hidden >= 1, "FST-Matching model: the mlp head needs a hidden width >= 1, got ", o.hidden);
  Rng seeds(o.seed);
  const uint64_t source_seed = seeds.next_u64(), target_seed = seeds.next_u64();
  Rng rng = seeds.fork();
  source_encoder = register_module("source_encoder", make_classifier(o.arch, o.identities, source_seed));
  target_encoder = register_module("target_encoder", make_classifier(o.arch, o.identities, target_seed));
  channels_ = source_encoder->feature_dim();
  source_se = register_module("source_se", std::make_unique<ChannelAttention>(channels_, o.se_reduction, rng));
  target_se = register_module("target_se", std::make_unique<ChannelAttention>(channels_, o.se_reduction, rng));
  auto h = std::make_unique<Sequential>();
  if (o.head == FstHead::linear) {
    h->add(std::make_unique<Linear>(2 * channels_, 2, true, rng));
  } else {
    h->add(std::make_unique<Linear>(2 * channels_, o.hidden, true, rng));
    h->add(std::make_unique<ReLU>());
    h->add(std::make_unique<Linear>(o.hidden, 2, true, rng));
  }
  det_head = register_module("det_head", std::move(h));
}

// [f_t^ir, f_s^ir] with f^ir = (1 - a) * f
Tensor FstModel::features(const Tensor& x) {
  const Tensor f_s = source_encoder->features(x), f_t = target_encoder->features(x);
  const Tensor s_ir = ops::mul(ops::one_minus(source_se->forward(f_s)), f_s);
  const Tensor t_ir = ops::mul(ops::one_minus(target_se->forward(f_t)), f_t);
  return ops::concat_last({t_ir, s_ir});
}

Tensor FstModel::head(const Tensor& f) {
  FSTM_CHECK(f.dim() == 2 && f.size(1) == 2 * channels_, "FST-Matching head: expected [N, ", 2 * channels_,
             "] features, got ", f.describe());
  return det_head->forward(f);
}

FstOutputs FstModel::forward_all(const Tensor& x, bool with_interaction) {
  return forward_pooled(source_encoder->features(x), target_encoder->features(x), with_interaction);
}

FstOutputs FstModel::forward_pooled(const Tensor& f_s, const Tensor& f_t, bool with_interaction) {
  FstOutputs out;
  out.source_attention = source_se->forward(f_s);
  out.target_attention = target_se->forward(f_t);
  // Eq. 3: f^r = a * f feeds the identity heads, f^ir = (1 - a) * f the det head h
  out.source = source_encoder->head(ops::mul(out.source_attention, f_s));
  out.target = target_encoder->head(ops::mul(out.target_attention, f_t));
  out.source_ir = ops::mul(ops::one_minus(out.source_attention), f_s);
  out.target_ir = ops::mul(ops::one_minus(out.target_attention), f_t);
  out.det = head(ops::concat_last({out.target_ir, out.source_ir}));
  if (with_interaction) out.interaction = interaction(out.source_ir, out.target_ir);
  return out;
}

// Eq. 5: I(s, t) = h(s, t) - h(0, t) - h(s, 0) + h(0, 0), s = f_s^ir, t = f_t^ir
Tensor FstModel::interaction(const Tensor& s, const Tensor& t) {
  check_same_shape(s, t, "FST-Matching interaction");
  const Tensor zero = Tensor::zeros(s.shape(), DType::f32, s.device());
  const Tensor h_st = head(ops::concat_last({t, s}));
  const Tensor h_0t = head(ops::concat_last({t, zero}));
  const Tensor h_s0 = head(ops::concat_last({zero, s}));
  const Tensor h_00 = head(ops::concat_last({zero, zero}));
  return ops::add(ops::sub(ops::sub(h_st, h_0t), h_s0), h_00);
}

InteractionLossOptions parse_interaction_bound(const std::string& text) {
  InteractionLossOptions o;
  if (text == "none") {
    o.bound = InteractionBound::none;
  } else if (text == "logistic") {
    o.bound = InteractionBound::logistic;
  } else if (text.rfind("clamp:", 0) == 0) {
    o.bound = InteractionBound::clamp;
    const std::string value = text.substr(6);
    try {
      size_t used = 0;
      o.clamp = std::stof(value, &used);
      FSTM_CHECK(used == value.size(), "");
    } catch (const std::exception&) {
      throw Error("interaction bound '" + text + "': '" + value + "' is not a number");
    }
    FSTM_CHECK(o.clamp > 0 && std::isfinite(o.clamp), "interaction bound '", text, "': the clamp must be > 0");
  } else {
    throw Error("unknown interaction bound '" + text + "' (none, logistic, or clamp:C with C > 0)");
  }
  return o;
}

std::string interaction_bound_name(const InteractionLossOptions& o) {
  switch (o.bound) {
    case InteractionBound::none: return "none";
    case InteractionBound::logistic: return "logistic";
    case InteractionBound::clamp: {
      std::ostringstream s;
      s << "clamp:" << o.clamp;
      return s.str();
    }
  }
  return "?";
}

// L_int of Eq. 5 (none), or its bounded forms (clamp:C, logistic); see fst_model.h
Tensor interaction_loss(const Tensor& interaction, const Tensor& det_labels, const InteractionLossOptions& options) {
  FSTM_CHECK(interaction.dim() == 2 && interaction.size(1) == 2, "interaction loss: expected [N, 2] logits, got ",
             interaction.describe());
  std::vector<int64_t> other = det_labels.to_vector_i64();
  for (int64_t& y : other) {
    FSTM_CHECK(y == 0 || y == 1, "interaction loss: det label ", y, " is not 0 or 1");
    y = 1 - y;
  }
  // softplus(-m) = -log_softmax(I)(y) for two classes
  if (options.bound == InteractionBound::logistic) return ops::cross_entropy(interaction, det_labels);
  const Tensor other_labels = Tensor::from_vector_i64(other, det_labels.shape(), det_labels.device());
  // m_n = I_n(y_n) - I_n(1 - y_n)  [N]
  Tensor margin = ops::sub(ops::gather_rows(interaction, det_labels), ops::gather_rows(interaction, other_labels));
  if (options.bound == InteractionBound::clamp) {
    FSTM_CHECK(options.clamp > 0.0f, "interaction loss: the clamp must be > 0, got ", options.clamp);
    // min(m, c) = c - relu(c - m)
    margin = ops::affine(ops::relu(ops::affine(margin, -1.0f, options.clamp)), -1.0f, options.clamp);
  }
  return ops::scale(ops::mean(margin), -1.0f);
}

}  // namespace fstm
