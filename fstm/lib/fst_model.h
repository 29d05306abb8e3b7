// The FST-Matching model (Dong et al., ECCV 2022, Sec. 4; the authors' MegEngine code):
//
//   x ──source_encoder──> f_s ──source_se──> a_s    f_s^r = a_s * f_s  ──source_encoder.head──> source identity logits
//                                                    f_s^ir = (1 - a_s) * f_s
//   x ──target_encoder──> f_t ──target_se──> a_t    f_t^r = a_t * f_t  ──target_encoder.head──> target identity logits
//                                                    f_t^ir = (1 - a_t) * f_t
//   det logits = h([f_t^ir, f_s^ir])   (target half first, as the released code)
//
// The encoders are classifiers from make_classifier(arch, identities): their own head ("fc." for
// ResNet) is the identity classifier, as in the released code, so "source_encoder.*" alone is a
// complete torchvision state dict. The SE layers are Linear(C -> C/16, no bias), ReLU,
// Linear(C/16 -> C, no bias), Sigmoid, named "source_se.fc.0.weight" and "source_se.fc.2.weight".
//
// The real/fake head h is "det_head": one Linear(2C -> 2) ("linear", the released code) or
// Linear(2C -> H), ReLU, Linear(H -> 2) ("mlp", the default).
//
// The interaction (Eq. 5) is I(s, t) = h(s, t) - h(0, t) - h(s, 0) + h(0, 0), with a half zeroed
// where an argument is 0. With a linear h it is identically zero (the weights of each half cancel),
// so the released code's interaction loss does nothing; the mlp head makes it meaningful.
//
// As an ImageClassifier, features(x) = [f_t^ir, f_s^ir] and head() = h, so forward(x) gives the
// det logits and the eval-mode forward compiles into an InferencePlan like any classifier.
#pragma once
#include <memory>
#include <string>

#include "layers/basic.h"
#include "layers/classifier.h"

namespace fstm {

enum class FstHead { linear, mlp };
FstHead parse_fst_head(const std::string& name);  // "linear" or "mlp"; throws naming the choices
const char* fst_head_name(FstHead head);

struct FstModelOptions {
  std::string arch = "resnet18";
  int64_t identities = 0;  // classes of each identity head (>= 1)
  FstHead head = FstHead::mlp;
  int64_t hidden = 256;    // H of the mlp head
  int64_t se_reduction = 16;
  uint64_t seed = 0;
};

// SE-style channel attention on a pooled feature: a = sigmoid(W2 relu(W1 f)), [N, C] -> [N, C].
class ChannelAttention : public Layer {
 public:
  ChannelAttention(int64_t channels, int64_t reduction, Rng& rng);
  Tensor forward(const Tensor& f) override;

  Sequential* fc;  // 0: Linear(C, C/r), 1: ReLU, 2: Linear(C/r, C), 3: Sigmoid
};

struct FstOutputs {
  Tensor det;                    // [N, 2]
  Tensor source, target;         // identity logits [N, K]
  Tensor interaction;            // [N, 2]; undefined when not asked for
  Tensor source_ir, target_ir;   // f^ir [N, C]
  Tensor source_attention, target_attention;  // a [N, C]
};

class FstModel : public ImageClassifier {
 public:
  explicit FstModel(const FstModelOptions& options);

  // [f_t^ir, f_s^ir]  [N, 2C]
  Tensor features(const Tensor& x) override;
  // h  [N, 2C] -> [N, 2]
  Tensor head(const Tensor& f) override;
  int64_t feature_dim() const override { return 2 * channels_; }
  int64_t num_classes() const override { return 2; }
  std::string arch() const override { return options_.arch; }
  std::string head_prefix() const override { return "det_head."; }

  // Everything the training loss needs, from images [N, H, W, 3].
  FstOutputs forward_all(const Tensor& x, bool with_interaction = true);
  // The same from the encoders' pooled features f_s, f_t [N, C] (the part after the backbones).
  FstOutputs forward_pooled(const Tensor& f_s, const Tensor& f_t, bool with_interaction = true);
  // I(s, t) from the irrelevant features s = f_s^ir, t = f_t^ir [N, C] -> [N, 2].
  Tensor interaction(const Tensor& s, const Tensor& t);

  const FstModelOptions& options() const { return options_; }
  int64_t channels() const { return channels_; }

  ImageClassifier* source_encoder;
  ImageClassifier* target_encoder;
  ChannelAttention* source_se;
  ChannelAttention* target_se;
  Sequential* det_head;

 private:
  FstModelOptions options_;
  int64_t channels_ = 0;
};

// How the interaction loss of Eq. 5 is taken from the interaction logits I [N, 2] and the det
// labels y [N], with the per-sample ground-truth margin m_n = I_n(y_n) - I_n(1 - y_n):
//   none      L_int = -mean_n m_n                   Eq. 5 as written. Unbounded below with an mlp
//                                                   head: h can grow m without limit, and with
//                                                   l_int = 100 the term swamps the others.
//   clamp:C   L_int = -mean_n min(m_n, C)           a hinge: Eq. 5 up to a margin of C logits, no
//                                                   gradient beyond
//   logistic  L_int = mean_n softplus(-m_n)         = CE(I, y): the interaction read as logits of
//             = -mean_n log_softmax(I_n)(y_n)       the ground-truth class (the default). Bounded
//                                                   below by 0, no extra hyperparameter, its
//                                                   gradient fades as the margin grows.
// With the released code's linear head I = 0, so every form has zero gradient: none gives
// L_int = 0, logistic the constant log 2.
enum class InteractionBound { none, clamp, logistic };

struct InteractionLossOptions {
  InteractionBound bound = InteractionBound::logistic;
  float clamp = 1.0f;  // C of the clamp form
};
// "none", "logistic", "clamp:C" (C > 0); throws naming the choices.
InteractionLossOptions parse_interaction_bound(const std::string& text);
std::string interaction_bound_name(const InteractionLossOptions& options);

Tensor interaction_loss(const Tensor& interaction, const Tensor& det_labels, const InteractionLossOptions& options = {});

}  // namespace fstm
