// The FST-Matching model and its losses: the interaction of Eq. 5 (zero for the released code's
// linear head, not for the mlp head), finite-difference gradients of the interaction loss and of
// the SE disentanglement, state-dict names, the inference plan, FST labels from file names to
// batches to losses, and the checkpoint metadata round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "fstm/lib/fst_model.h"
#include "fstm/lib/models.h"
#include "io/loader.h"
#include "layers/inference.h"
#include "tests/fst_test_data.h"
#include "tests/test_support.h"

namespace fstm {
namespace {

FstModelOptions small_options(FstHead head, int64_t identities = 5) {
  FstModelOptions o;
  o.identities = identities;
  o.head = head;
  o.hidden = 16;
  o.seed = 3;
  return o;
}

Tensor leaf(const Shape& s, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  Tensor t = test::random_tensor(s, rng, lo, hi);
  t.set_requires_grad(true);
  return t;
}

float max_abs(const Tensor& t) {
  float m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::abs(v));
  return m;
}

TEST(FstModel, StateDictNames) {
  FstModel m(small_options(FstHead::mlp));
  std::set<std::string> names;
  for (const auto& [name, t] : m.state_dict()) names.insert(name);
  for (const char* n : {"source_encoder.conv1.weight", "source_encoder.layer1.0.bn1.running_mean",
                        "source_encoder.fc.weight", "target_encoder.layer4.1.conv2.weight", "target_encoder.fc.bias",
                        "source_se.fc.0.weight", "source_se.fc.2.weight", "target_se.fc.0.weight",
                        "det_head.0.weight", "det_head.0.bias", "det_head.2.weight", "det_head.2.bias"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("source_se.fc.0.bias"));  // the SE layers have no biases
  EXPECT_EQ(m.source_se->fc->at(0)->state_dict()[0].second.shape(), (Shape{32, 512}));  // C -> C/16
  EXPECT_EQ(m.source_encoder->state_dict().back().first, "fc.bias");  // the encoder's own fc: identities
  const auto& w = m.source_encoder->named_parameters();
  EXPECT_EQ(w.back().second.shape(), (Shape{5}));

  FstModel linear(small_options(FstHead::linear));
  std::set<std::string> lnames;
  for (const auto& [name, t] : linear.state_dict()) lnames.insert(name);
  EXPECT_TRUE(lnames.count("det_head.0.weight"));
  EXPECT_FALSE(lnames.count("det_head.2.weight"));
}

TEST(FstModel, InteractionIsZeroForALinearHeadAndNotForAnMlp) {
  Rng rng(11);
  const Tensor f_s = test::random_tensor(Shape{6, 512}, rng, 0.0f, 2.0f);
  const Tensor f_t = test::random_tensor(Shape{6, 512}, rng, 0.0f, 2.0f);
  NoGradGuard ng;
  FstModel linear(small_options(FstHead::linear));
  const FstOutputs lo = linear.forward_pooled(f_s, f_t);
  // W[s, t] + b - W[0, t] - b - W[s, 0] - b + W[0, 0] + b = 0 up to rounding
  EXPECT_LT(max_abs(lo.interaction), 1e-5f * std::max(1.0f, max_abs(lo.det)));
  EXPECT_GT(max_abs(lo.det), 1e-3f);

  FstModel mlp(small_options(FstHead::mlp));
  const FstOutputs mo = mlp.forward_pooled(f_s, f_t);
  EXPECT_GT(max_abs(mo.interaction), 1e-3f);

  // The interaction against a direct evaluation of the four head calls.
  const Tensor zero = Tensor::zeros(Shape{6, 512});
  const auto h = [&](const Tensor& s, const Tensor& t) { return mlp.head(ops::concat_last({t, s})).to_vector(); };
  const auto st = h(mo.source_ir, mo.target_ir), zt = h(zero, mo.target_ir), sz = h(mo.source_ir, zero), zz = h(zero, zero);
  const auto got = mo.interaction.to_vector();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], st[i] - zt[i] - sz[i] + zz[i], 1e-5f);
  // f^r = a f and f^ir = (1 - a) f add up to f
  const auto a = mo.source_attention.to_vector(), ir = mo.source_ir.to_vector(), f = f_s.to_vector();
  for (size_t i = 0; i < f.size(); i += 97) EXPECT_NEAR(ir[i], (1 - a[i]) * f[i], 1e-6f);
}

TEST(FstModel, InteractionLossMatchesItsDefinition) {
  // I = [[1, 3], [2, -1], [0.5, 0.5]], y = [1, 0, 1]: margins 2, 3, 0
  const Tensor I = Tensor::from_vector({1, 3, 2, -1, 0.5f, 0.5f}, Shape{3, 2});
  const Tensor y = Tensor::from_vector_i64({1, 0, 1}, Shape{3});
  EXPECT_NEAR(interaction_loss(I, y, parse_interaction_bound("none")).item(), -(2 + 3 + 0) / 3.0f, 1e-6f);
  EXPECT_NEAR(interaction_loss(I, y, parse_interaction_bound("clamp:1")).item(), -(1 + 1 + 0) / 3.0f, 1e-6f);
  EXPECT_NEAR(interaction_loss(I, y, parse_interaction_bound("clamp:2.5")).item(), -(2 + 2.5f + 0) / 3.0f, 1e-6f);
  const auto softplus = [](double v) { return std::log1p(std::exp(v)); };
  EXPECT_NEAR(interaction_loss(I, y).item(), (softplus(-2) + softplus(-3) + softplus(0)) / 3, 1e-6);  // logistic
  // the linear head's interaction (0) gives 0 and log 2, with zero gradient either way
  const Tensor zero = Tensor::zeros(Shape{3, 2});
  EXPECT_EQ(interaction_loss(zero, y, parse_interaction_bound("none")).item(), 0.0f);
  EXPECT_NEAR(interaction_loss(zero, y).item(), std::log(2.0f), 1e-6f);
  EXPECT_THROW(interaction_loss(I, Tensor::from_vector_i64({1, 2, 0}, Shape{3})), Error);
  for (const char* bad : {"clamp", "clamp:0", "clamp:-1", "clamp:x", "softplus"})
    EXPECT_THROW(parse_interaction_bound(bad), Error) << bad;
  EXPECT_EQ(interaction_bound_name(parse_interaction_bound("clamp:0.5")), "clamp:0.5");
  EXPECT_EQ(interaction_bound_name({}), "logistic");
}

TEST(FstModel, InteractionLossGradcheck) {
  Rng rng(5);
  FstModel m(small_options(FstHead::mlp));
  const Tensor labels = Tensor::from_vector_i64({0, 1, 1, 0}, Shape{4});
  Sequential& h = *m.det_head;
  auto& w0 = dynamic_cast<Linear&>(*h.at(0));
  auto& w2 = dynamic_cast<Linear&>(*h.at(2));
  // Keep h(0, 0)'s hidden pre-activations (the biases) away from the ReLU kink, so finite
  // differences of step 1e-3 do not straddle it.
  {
    float* b = w0.bias.data<float>();
    for (int64_t i = 0; i < w0.bias.numel(); ++i) b[i] = (b[i] < 0 ? -0.02f : 0.02f) + b[i];
  }
  for (const char* bound : {"none", "clamp:0.05", "logistic"}) {
    const InteractionLossOptions o = parse_interaction_bound(bound);
    std::vector<Tensor> inputs = {leaf(Shape{4, 512}, rng, 0.0f, 1.0f), leaf(Shape{4, 512}, rng, 0.0f, 1.0f),
                                  w0.weight, w0.bias, w2.weight, w2.bias};
    GradcheckOptions go;
    go.step = 1e-3f;
    go.max_elements = 24;
    const GradcheckResult r = gradcheck(
        [&](const std::vector<Tensor>& in) { return interaction_loss(m.interaction(in[0], in[1]), labels, o); }, inputs, go);
    EXPECT_TRUE(r.ok) << bound << ":\n" << r.report;
    EXPECT_GT(r.checked, 60) << "skipped " << r.skipped_kinks;
  }
}

TEST(FstModel, SeDisentanglementGradcheck) {
  // Every output of the part after the backbones (identity logits through f^r = a f, det logits and
  // the interaction through f^ir = (1 - a) f) against finite differences, for the pooled features
  // and the SE, identity-head and det-head weights.
  Rng rng(9);
  FstModel m(small_options(FstHead::mlp, 3));
  auto& se1 = dynamic_cast<Linear&>(*m.source_se->fc->at(0));
  auto& se2 = dynamic_cast<Linear&>(*m.source_se->fc->at(2));
  auto& te1 = dynamic_cast<Linear&>(*m.target_se->fc->at(0));
  const auto& src_fc = m.source_encoder->named_parameters();
  const Tensor fc_w = src_fc[src_fc.size() - 2].second;
  std::vector<Tensor> inputs = {leaf(Shape{3, 512}, rng, 0.0f, 1.0f), leaf(Shape{3, 512}, rng, 0.0f, 1.0f),
                                se1.weight, se2.weight, te1.weight, fc_w};
  GradcheckOptions go;
  go.step = 1e-3f;
  go.max_elements = 24;
  const GradcheckResult r = gradcheck(
      [&](const std::vector<Tensor>& in) {
        const FstOutputs o = m.forward_pooled(in[0], in[1]);
        return ops::concat_last({o.det, o.source, o.target, o.interaction});
      },
      inputs, go);
  EXPECT_TRUE(r.ok) << r.report;
  EXPECT_GT(r.checked, 80) << "skipped " << r.skipped_kinks;
}

TEST(FstModel, InferencePlanMatchesEagerForward) {
  FstModel m(small_options(FstHead::mlp));
  // non-trivial BatchNorm statistics, so folding matters
  Rng rng(4);
  for (auto& [name, t] : m.state_dict())
    if (name.find("running_var") != std::string::npos) t.copy_(test::random_tensor(t.shape(), rng, 0.5f, 1.5f));
  m.eval();
  const Tensor x = test::random_tensor(Shape{3, 32, 32, 3}, rng);
  Tensor eager;
  {
    NoGradGuard ng;
    eager = m.forward(x);
  }
  InferencePlan plan([&](const Tensor& in) { return m.forward(in); }, x.shape());
  FSTM_EXPECT_CLOSE(plan.run(x), eager, 1e-4f, 1e-3f);
}

TEST(FstLabels, RealAndBothFakesOfAPairReachTheBatchesAndTheLosses) {
  const std::string dir = test::temp_dir("fst_labels");
  test::FstIndexSpec spec;
  spec.train_pairs = {{100, 101}};
  spec.val_pairs = {};
  spec.frames = 1;
  const std::string path = test::make_fst_index(dir, spec);
  const io::FaceIndex ix = io::FaceIndex::load(path);
  io::LoaderOptions lo;
  lo.batch_size = 4;
  lo.shuffle = false;
  io::DataLoader dl(path, lo);
  io::Batch b;
  ASSERT_TRUE(dl.next(b));
  ASSERT_EQ(b.size(), 4);
  auto cls = [&](const std::string& id) {
    return int64_t(std::find(ix.identities.begin(), ix.identities.end(), id) - ix.identities.begin());
  };
  // expected labels by video: 100 (real), 101 (real), 100_101 (source 100, target 101), 101_100
  std::map<std::string, std::array<int64_t, 3>> expected = {{"100", {0, cls("100"), cls("100")}},
                                                             {"101", {0, cls("101"), cls("101")}},
                                                             {"100_101", {1, cls("100"), cls("101")}},
                                                             {"101_100", {1, cls("101"), cls("100")}}};
  const auto det = b.det.to_vector_i64(), src = b.source.to_vector_i64(), tgt = b.target.to_vector_i64();
  std::set<std::string> seen;
  for (int64_t i = 0; i < 4; ++i) {
    const std::string vid = ix.videos[size_t(ix.frames[size_t(b.frames[size_t(i)])].video)].video_id;
    seen.insert(vid);
    ASSERT_TRUE(expected.count(vid)) << vid;
    EXPECT_EQ(det[size_t(i)], expected[vid][0]) << vid;
    EXPECT_EQ(src[size_t(i)], expected[vid][1]) << vid;
    EXPECT_EQ(tgt[size_t(i)], expected[vid][2]) << vid;
  }
  EXPECT_EQ(seen.size(), 4u);
  EXPECT_NE(cls("100"), cls("101"));

  // The FST losses use the source labels for the source head and the target labels for the target
  // head: compare with cross-entropies taken with the expected labels.
  ModelConfig c;
  c.type = ModelType::fst;
  c.identities = 2;
  auto net = build_network(c, 1);
  net->eval();
  NoGradGuard ng;
  const Losses L = compute_losses(*net, ModelType::fst, b.images, b.det, b.source, b.target);
  const FstOutputs o = dynamic_cast<FstModel&>(*net).forward_all(b.images);
  std::vector<int64_t> es, et, ed;
  for (int64_t i = 0; i < 4; ++i) {
    const auto& e = expected[ix.videos[size_t(ix.frames[size_t(b.frames[size_t(i)])].video)].video_id];
    ed.push_back(e[0]);
    es.push_back(e[1]);
    et.push_back(e[2]);
  }
  std::map<std::string, float> terms;
  for (const auto& [name, t] : L.terms) terms[name] = t.item();
  const float ce_s = ops::cross_entropy(o.source, Tensor::from_vector_i64(es, Shape{4})).item();
  const float ce_t = ops::cross_entropy(o.target, Tensor::from_vector_i64(et, Shape{4})).item();
  const float ce_d = ops::cross_entropy(o.det, Tensor::from_vector_i64(ed, Shape{4})).item();
  const float l_int = interaction_loss(o.interaction, Tensor::from_vector_i64(ed, Shape{4})).item();  // logistic
  EXPECT_NEAR(terms["source"], ce_s, 1e-5f);
  EXPECT_NEAR(terms["target"], ce_t, 1e-5f);
  EXPECT_NEAR(terms["det"], ce_d, 1e-5f);
  EXPECT_NEAR(terms["interaction"], l_int, 1e-5f);
  EXPECT_NEAR(L.total.item(), ce_d + 0.5f * ce_s + ce_t + 100.0f * l_int, 1e-3f);
  // swapping source and target labels changes the loss (the two heads differ)
  const Losses swapped = compute_losses(*net, ModelType::fst, b.images, b.det, b.target, b.source);
  EXPECT_NE(swapped.total.item(), L.total.item());
}

TEST(Models, MetadataRoundTripAndErrors) {
  ModelConfig c;
  c.type = ModelType::fst;
  c.arch = "resnet34";
  c.identities = 3;
  c.fst_head = FstHead::linear;
  c.fst_hidden = 64;
  c.input_size = 96;
  c.identity_names = {"000", "001", "002"};
  const io::Metadata md = model_metadata(c, {{"note", "x"}});
  EXPECT_EQ(md.at("model"), "fst");
  EXPECT_EQ(md.at("num_classes"), "2");
  const ModelConfig back = model_config_from_metadata(md, "ckpt");
  EXPECT_EQ(back.type, ModelType::fst);
  EXPECT_EQ(back.arch, "resnet34");
  EXPECT_EQ(back.identities, 3);
  EXPECT_EQ(back.fst_head, FstHead::linear);
  EXPECT_EQ(back.fst_hidden, 64);
  EXPECT_EQ(back.input_size, 96);
  EXPECT_EQ(back.identity_names, c.identity_names);

  io::Metadata bad = md;
  bad["model"] = "detector";
  EXPECT_THROW(model_config_from_metadata(bad, "ckpt"), Error);
  bad = md;
  bad["identity_names"] = "[\"a\"]";
  try {
    model_config_from_metadata(bad, "ckpt.safetensors");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ckpt.safetensors"), std::string::npos) << e.what();
  }
  // a plain classifier without "model": det when it has 2 classes
  const ModelConfig plain = model_config_from_metadata({{"arch", "resnet18"}, {"num_classes", "2"}}, "x");
  EXPECT_EQ(plain.type, ModelType::det);
  EXPECT_THROW(parse_model_type("vd"), Error);
  EXPECT_THROW(parse_fst_head("conv"), Error);
}

}  // namespace
}  // namespace fstm
