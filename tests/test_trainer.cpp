// The trainer and the evaluator on a tiny generated index (32-pixel faces): bit-identical resume
// (after --max-steps and after a stop request, mid-epoch), metrics and checkpoints, NaN losses,
// bad input (missing or empty index, another architecture, identity counts that do not match),
// configuration files, and evaluation tables with perturbations.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "fstm/lib/evaluator.h"
#include "fstm/lib/model_loader.h"
#include "fstm/lib/trainer.h"
#include "fstm_build_config.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "kernels/conv2d.h"
#include "tests/fst_test_data.h"
#include "tests/test_support.h"

namespace fstm {
namespace {
using ::fstm::test::error_of;

namespace fs = std::filesystem;

TrainOptions tiny(ModelType model, const std::string& data, const std::string& out) {
  TrainOptions o;
  o.model = model;
  o.data = data;
  o.out = out;
  o.batch = 4;
  o.epochs = 2;
  o.lr = 1e-3f;
  o.workers = 2;
  o.val_batch = 8;
  o.fst_hidden = 16;
  o.progress = false;
  o.seed = 5;
  return o;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  return lines;
}

// The model and optimizer tensors of a checkpoint must be bitwise equal.
void expect_same_tensors(const std::string& a, const std::string& b) {
  const io::SafetensorsFile fa = io::read_safetensors(a), fb = io::read_safetensors(b);
  ASSERT_EQ(fa.tensors.size(), fb.tensors.size());
  int compared = 0;
  for (const auto& [name, t] : fa.tensors) {
    const Tensor* u = fb.tensors.find(name);
    ASSERT_NE(u, nullptr) << name;
    ASSERT_EQ(t.nbytes(), u->nbytes()) << name;
    EXPECT_EQ(std::memcmp(t.raw_data(), u->raw_data(), t.nbytes()), 0) << name << " differs";
    ++compared;
  }
  EXPECT_GT(compared, 100);
}

// metrics.jsonl lines without the timings
std::vector<nlohmann::json> metrics_without_time(const std::string& dir) {
  std::vector<nlohmann::json> out;
  for (const std::string& l : read_lines(dir + "/metrics.jsonl")) {
    nlohmann::json j = nlohmann::json::parse(l);
    j.erase("seconds");
    j.erase("images_per_s");
    out.push_back(j);
  }
  return out;
}

class Trainer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new std::string(test::temp_dir("trainer_data"));
    test::FstIndexSpec spec;
    spec.test_pairs = {{106, 107}};
    spec.methods = {"Deepfakes", "FaceSwap"};
    index_ = new std::string(test::make_fst_index(*data_dir_, spec));
    test::FstIndexSpec one_pair;
    one_pair.train_pairs = {{100, 101}};
    small_index_ = new std::string(test::make_fst_index(test::temp_dir("trainer_small_data"), one_pair));
  }
  static void TearDownTestSuite() {
    delete data_dir_;
    delete index_;
    delete small_index_;
  }
  static std::string* data_dir_;
  static std::string* index_;        // 2 train pairs, 1 val pair, 1 test pair; Deepfakes and FaceSwap
  static std::string* small_index_;  // 1 train pair, 1 val pair; Deepfakes
};
std::string* Trainer::data_dir_ = nullptr;
std::string* Trainer::index_ = nullptr;
std::string* Trainer::small_index_ = nullptr;

TEST_F(Trainer, FstResumeAfterMaxStepsAndAStopIsBitIdentical) {
  const std::string root = test::temp_dir("fst_resume");
  // 1 train pair, 2 frames per video: 4 real + 4 fake frames = 2 steps of 4 per epoch
  TrainOptions full = tiny(ModelType::fst, *small_index_, root + "/full");
  full.epochs = 3;
  const TrainResult a = train(full);
  EXPECT_EQ(a.epochs_completed, 3);
  EXPECT_EQ(a.steps, 6);
  EXPECT_FALSE(a.best.empty());

  TrainOptions part = full;
  part.out = root + "/parts";
  part.max_steps = 1;  // mid-epoch 1
  const TrainResult b1 = train(part);
  EXPECT_TRUE(b1.stopped_at_max_steps);
  EXPECT_EQ(b1.steps, 1);
  EXPECT_EQ(b1.epochs_completed, 0);
  std::atomic<int> stop{15};  // as if SIGTERM arrived during the first step after resuming
  part.max_steps = 0;
  part.resume = true;
  part.stop = &stop;
  const TrainResult b2 = train(part);
  EXPECT_EQ(b2.stopped_by_signal, 15);
  EXPECT_EQ(b2.steps, 2);  // the last step of epoch 1: the epoch ends (validation, metrics) before stopping
  EXPECT_EQ(b2.epochs_completed, 1);
  part.stop = nullptr;
  const TrainResult b3 = train(part);
  EXPECT_EQ(b3.steps, 6);
  EXPECT_EQ(b3.epochs_completed, 3);

  expect_same_tensors(root + "/full/last.safetensors", root + "/parts/last.safetensors");
  expect_same_tensors(root + "/full/best.safetensors", root + "/parts/best.safetensors");
  EXPECT_EQ(metrics_without_time(root + "/full"), metrics_without_time(root + "/parts"));
  const auto m = metrics_without_time(root + "/full");
  ASSERT_EQ(m.size(), 3u);
  for (const char* key : {"epoch", "step", "lr", "loss", "losses", "train_acc", "val_acc", "val_auc", "val_frames"})
    EXPECT_TRUE(m[1].contains(key)) << key;
  for (const char* term : {"det", "source", "target", "interaction"}) EXPECT_TRUE(m[1]["losses"].contains(term)) << term;
  EXPECT_EQ(m[1]["val_frames"], 8);  // 1 val pair: 2 real + 2 fake videos, 2 frames each

  // the checkpoint loads for inference as an fst model, and its metadata says what it is
  ModelSpec spec;
  spec.model = root + "/full/last.safetensors";
  const LoadedModel lm = load_model(spec);
  EXPECT_EQ(lm.config.type, ModelType::fst);
  EXPECT_EQ(lm.config.identities, 2);
  EXPECT_EQ(lm.config.input_size, 32);
  const io::SafetensorsFile f = io::read_safetensors(spec.model);
  EXPECT_EQ(f.metadata.at("format"), "fstm-train-checkpoint");
  EXPECT_TRUE(f.tensors.contains("optimizer.step"));
  EXPECT_TRUE(f.tensors.contains("optimizer.source_se.fc.0.weight.exp_avg"));
  EXPECT_EQ(nlohmann::json::parse(f.metadata.at("trainer"))["step"], 6);
  EXPECT_EQ(nlohmann::json::parse(f.metadata.at("config"))["model"], "fst");
  const nlohmann::json saved = nlohmann::json::parse(read_lines(root + "/full/config.json").empty()
                                                         ? "{}"
                                                         : [&] {
                                                             std::ifstream in(root + "/full/config.json");
                                                             return std::string(std::istreambuf_iterator<char>(in), {});
                                                           }());
  EXPECT_EQ(saved["l_int"], 100.0);
  EXPECT_EQ(saved["batch"], 4);
}

TEST_F(Trainer, DetTrainsValidatesAndEvaluatesPerMethodAndPerturbation) {
  const std::string root = test::temp_dir("det_eval");
  TrainOptions o = tiny(ModelType::det, *index_, root + "/run");
  o.epochs = 1;
  o.schedule = LrSchedule::Kind::Cosine;
  o.warmup_epochs = 0.5f;
  const TrainResult r = train(o);
  ASSERT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(r.steps, 8);
  EXPECT_EQ(r.epochs[0].val_frames, 12);
  EXPECT_FALSE(std::isnan(r.epochs[0].val_auc));
  EXPECT_EQ(r.best, root + "/run/best.safetensors");
  // cosine over 8 steps after 4 warm-up steps: the last step (7) is 3/4 of the way down
  EXPECT_NEAR(r.epochs[0].lr, 0.5 * o.lr * (1 + std::cos(M_PI * 0.75)), 1e-9);

  EvalOptions e;
  e.model.model = r.best;
  e.data = *index_;
  e.split = "test";
  e.perturbations = {"none", "blur:3"};
  e.threshold_split = "val";
  e.batch = 5;  // not a divisor of the frame count: the last batch is padded
  e.progress = false;
  const EvalReport rep = evaluate(e);
  // test pair (106, 107): 2 real videos and 2 fakes per method, 2 frames each
  EXPECT_EQ(rep.frames, 12);
  ASSERT_EQ(rep.rows.size(), 6u);  // {Deepfakes, FaceSwap, all} x {none, blur:3}
  EXPECT_EQ(rep.rows[0].method, "Deepfakes");
  EXPECT_EQ(rep.rows[1].method, "FaceSwap");
  EXPECT_EQ(rep.rows[2].method, "all");
  EXPECT_EQ(rep.rows[0].compression, "c23");
  EXPECT_EQ(rep.rows[0].real_frames, 4);
  EXPECT_EQ(rep.rows[0].fake_frames, 4);
  EXPECT_EQ(rep.rows[0].videos, 4);
  EXPECT_EQ(rep.rows[2].fake_frames, 8);
  EXPECT_EQ(rep.rows[3].perturbation, "blur:3");
  for (const EvalRow& row : rep.rows) {
    EXPECT_GE(row.frame.auc, 0.0);
    EXPECT_LE(row.frame.auc, 1.0);
    EXPECT_GE(row.frame.acc, 0.0);
    EXPECT_FALSE(std::isnan(row.video_auc));
  }
  const std::string table = rep.table();
  for (const char* s : {"Deepfakes", "FaceSwap", "perturbation: blur:3", "vAUC", "EER", "robustness, c23: frame AUC",
                        "threshold of best balanced ACC on the val split"})
    EXPECT_NE(table.find(s), std::string::npos) << s << "\n" << table;
  const nlohmann::json j = rep.to_json();
  EXPECT_EQ(j["rows"].size(), 6u);
  EXPECT_EQ(j["rows"][0]["method"], "Deepfakes");

  // the eval scores equal a plain eager forward of the checkpoint (the plan, padding and order)
  ModelSpec spec;
  spec.model = r.best;
  LoadedModel m = load_model(spec);
  ScoreOptions so;
  so.splits = {"test"};
  so.batch = 5;
  const FrameScores plan_scores = score_frames(*m.net, m.config, io::FaceIndex::load(*index_), so);
  so.batch = 12;
  const FrameScores one_batch = score_frames(*m.net, m.config, io::FaceIndex::load(*index_), so);
  ASSERT_EQ(plan_scores.frames, one_batch.frames);
  const EvalReport in_memory = evaluate(*m.net, m.config, io::FaceIndex::load(*index_), e);
  ASSERT_EQ(in_memory.rows.size(), rep.rows.size());
  for (size_t i = 0; i < rep.rows.size(); ++i) EXPECT_EQ(in_memory.rows[i].frame.auc, rep.rows[i].frame.auc);
  for (size_t i = 0; i < plan_scores.p_fake.size(); ++i) EXPECT_NEAR(plan_scores.p_fake[i], one_batch.p_fake[i], 1e-5);
  EXPECT_TRUE(m.net->training() == false);

  // The threshold is the val split's best balanced cut, the same for every row, and applied to the
  // test frames: recomputed here from the val and test scores.
  const io::FaceIndex index = io::FaceIndex::load(*index_);
  so.splits = {"val"};
  const FrameScores val = score_frames(*m.net, m.config, index, so);
  std::vector<double> vs;
  std::vector<int> vy;
  for (size_t i = 0; i < val.frames.size(); ++i) {
    vs.push_back(val.p_fake[i]);
    vy.push_back(index.videos[size_t(index.frames[size_t(val.frames[i])].video)].det);
  }
  const double t = best_balanced_threshold(vs, vy);
  ASSERT_TRUE(std::isfinite(t));
  std::vector<double> ts;
  std::vector<int> ty;
  for (size_t i = 0; i < one_batch.frames.size(); ++i) {
    ts.push_back(one_batch.p_fake[i]);
    ty.push_back(index.videos[size_t(index.frames[size_t(one_batch.frames[i])].video)].det);
  }
  for (const EvalRow& row : rep.rows) EXPECT_NEAR(row.frame.threshold, t, 1e-5) << row.method << " " << row.perturbation;
  EXPECT_NEAR(rep.rows[2].frame.acc_at_threshold, accuracy(ts, ty, rep.rows[2].frame.threshold), 1e-12);
  EXPECT_NEAR(rep.rows[2].frame.balanced_acc_at_threshold, balanced_accuracy(ts, ty, rep.rows[2].frame.threshold), 1e-12);
  EXPECT_TRUE(j["rows"][0]["acc_at_threshold"].is_number());
}

// --fast-conv: the run's convolutions take oneDNN's Winograd kernels (its weights move away from
// the direct run's, but not far), config.json records it, and the process-wide setting is back
// to off when the run ends, so that later inference in the same process (the demo) is exact.
TEST_F(Trainer, FastConvIsSetForTheRunAndRestoredAfter) {
  if (kernels::fast_conv()) GTEST_SKIP() << "FSTM_CONV_WINOGRAD=1 is set: fast convolutions are on from the start";
  const std::string root = test::temp_dir("fast_conv");
  TrainOptions o = tiny(ModelType::det, *index_, root + "/direct");
  o.max_steps = 3;
  o.optimizer = OptimizerKind::sgd;  // AdamW's first steps move each weight by about lr whatever the
  o.lr = 0.05f;                      // gradient's size, so a rounding change can flip a tiny one
  train(o);
  o.out = root + "/fast";
  o.fast_conv = true;
  train(o);
  EXPECT_FALSE(kernels::fast_conv()) << "fast convolutions stayed on after the run";
  EXPECT_EQ(io::read_json_file(root + "/fast/config.json", "run configuration").value("fast_conv", false), true);
  const io::SafetensorsFile direct = io::read_safetensors(root + "/direct/last.safetensors");
  const io::SafetensorsFile fast = io::read_safetensors(root + "/fast/last.safetensors");
  // Over all the model's weights together: a bias that starts at 0 moves by about lr per step
  // whatever the rounding, so its own relative change says nothing.
  double diff = 0, norm = 0;
  int differing = 0;
  for (const auto& [name, t] : direct.tensors) {
    if (t.dtype() != DType::f32 || name.rfind("optimizer.", 0) == 0) continue;
    const std::vector<float> a = t.to_vector(), b = fast.tensors.find(name)->to_vector();
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      d += double(a[i] - b[i]) * (a[i] - b[i]);
      norm += double(a[i]) * a[i];
    }
    differing += d > 0;
    diff += d;
  }
  const double rel = std::sqrt(diff / norm);
  // Measured 0.008 here (Winograd's rounding, grown through BatchNorm over batches of 4 and three
  // steps at lr 0.05); wrong convolutions would move them by far more.
  EXPECT_LT(rel, 0.03) << "three steps with fast convolutions moved the weights by " << rel << " (relative L2)";
}

TEST_F(Trainer, NonFiniteLossStopsNamingTheStep) {
  const std::string root = test::temp_dir("nan");
  TrainOptions o = tiny(ModelType::det, *index_, root + "/run");
  o.optimizer = OptimizerKind::sgd;
  o.lr = 1e30f;
  o.momentum = 0;
  o.checkpoint_every = 1;
  const std::string msg = error_of([&] { train(o); });
  EXPECT_NE(msg.find("training diverged"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at step "), std::string::npos) << msg;
  EXPECT_NE(msg.find("last.safetensors keeps the last good state"), std::string::npos) << msg;
  // the last checkpoint is from before the bad step and loads
  const io::SafetensorsFile f = io::read_safetensors(root + "/run/last.safetensors");
  const int64_t saved_step = nlohmann::json::parse(f.metadata.at("trainer"))["step"];
  EXPECT_NE(msg.find("at step " + std::to_string(saved_step + 1) + " "), std::string::npos) << msg;
  ModelSpec spec;
  spec.model = root + "/run/last.safetensors";
  EXPECT_NO_THROW(load_model(spec));
}

TEST_F(Trainer, BadInputGivesClearErrors) {
  const std::string root = test::temp_dir("bad");
  // a missing index, an empty one
  std::string msg = error_of([&] { train(tiny(ModelType::det, root + "/none.json", root + "/a")); });
  EXPECT_NE(msg.find(root + "/none.json"), std::string::npos) << msg;
  {
    io::FaceIndex empty;
    empty.save(root + "/empty.json");
  }
  msg = error_of([&] { train(tiny(ModelType::det, root + "/empty.json", root + "/b")); });
  EXPECT_NE(msg.find("empty.json: the face index has no frames"), std::string::npos) << msg;
  // a split without frames
  TrainOptions nosplit = tiny(ModelType::det, *index_, root + "/c");
  nosplit.train_split = "training";
  msg = error_of([&] { train(nosplit); });
  EXPECT_NE(msg.find("no frame of the index matches"), std::string::npos) << msg;

  // a source encoder checkpoint to resume from
  TrainOptions src = tiny(ModelType::source, *index_, root + "/src");
  src.max_steps = 1;
  src.val_split = "";
  train(src);
  EXPECT_TRUE(fs::exists(root + "/src/last.safetensors"));
  msg = error_of([&] { train(src); });  // not --resume
  EXPECT_NE(msg.find("already holds a run"), std::string::npos) << msg;
  TrainOptions other = src;
  other.resume = true;
  other.arch = "resnet34";
  msg = error_of([&] { train(other); });
  EXPECT_NE(msg.find("is a resnet18 checkpoint, the run asks for resnet34"), std::string::npos) << msg;
  other = src;
  other.resume = true;
  other.model = ModelType::target;
  msg = error_of([&] { train(other); });
  EXPECT_NE(msg.find("holds a source model, not target"), std::string::npos) << msg;
  // another index with more identities: the identity heads do not fit
  test::FstIndexSpec bigger;
  bigger.train_pairs = {{100, 101}, {102, 103}, {110, 111}};
  const std::string big = test::make_fst_index(test::temp_dir("bigger"), bigger);
  other = src;
  other.resume = true;
  other.data = big;
  msg = error_of([&] { train(other); });
  EXPECT_NE(msg.find("has 4 identity classes, but the training data"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gives 6"), std::string::npos) << msg;
  // nothing to resume
  other = tiny(ModelType::det, *index_, root + "/never");
  other.resume = true;
  msg = error_of([&] { train(other); });
  EXPECT_NE(msg.find("nothing to resume"), std::string::npos) << msg;
  // fstm eval refuses an identity classifier, and --num-classes that do not fit
  EvalOptions e;
  e.model.model = root + "/src/last.safetensors";
  e.data = *index_;
  e.progress = false;
  msg = error_of([&] { evaluate(e); });
  EXPECT_NE(msg.find("source encoder is an identity classifier"), std::string::npos) << msg;
  ModelSpec spec;
  spec.model = root + "/src/last.safetensors";
  spec.num_classes = 7;
  msg = error_of([&] { load_model(spec); });
  EXPECT_NE(msg.find("has 4 classes, --num-classes says 7"), std::string::npos) << msg;
  // a checkpoint of another architecture for eval: metadata says resnet18, tensors are resnet18,
  // loading with a bare --arch resnet34 fails naming the file and keys
  spec = ModelSpec();
  spec.weights = root + "/src/last.safetensors";
  spec.arch = "resnet34";
  spec.num_classes = 4;
  msg = error_of([&] { load_model(spec); });
  EXPECT_NE(msg.find(root + "/src/last.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer1.2"), std::string::npos) << msg;  // resnet34 has 3 blocks in layer1
  // a diverged checkpoint (NaN weights): a clear error instead of NaN metrics
  {
    ModelConfig c;
    c.input_size = 32;
    auto net = build_network(c, 1);
    io::StateDict sd;
    for (auto [name, t] : net->state_dict()) {
      if (name == "fc.bias") t.fill_(std::nanf(""));
      sd.add(name, t);
    }
    io::write_safetensors(root + "/nan.safetensors", sd, model_metadata(c));
    EvalOptions bad = e;
    bad.model.model = root + "/nan.safetensors";
    msg = error_of([&] { evaluate(bad); });
    EXPECT_NE(msg.find("nan.safetensors: the model gives non-finite logits for 12 of 12 frames"), std::string::npos)
        << msg;
  }
  // eval: no frames in the split, a bad perturbation
  e.model.model = root + "/src/last.safetensors";
  e.perturbations = {"blur:9"};
  msg = error_of([&] { evaluate(e); });
  EXPECT_NE(msg.find("severity"), std::string::npos) << msg;
}

TEST(TrainConfig, JsonRoundTripAndUnknownKeys) {
  TrainOptions o;
  o.model = ModelType::fst;
  o.l_int = 3;
  o.methods = {"Deepfakes"};
  o.optimizer = OptimizerKind::sgd;
  o.schedule = LrSchedule::Kind::Step;
  o.balance = io::Balance::none;
  o.int_bound = parse_interaction_bound("clamp:2");
  o.fst_head = FstHead::linear;
  const nlohmann::json j = train_options_json(o);
  // typed settings are written as the names the command line takes
  EXPECT_EQ(j["model"], "fst");
  EXPECT_EQ(j["optimizer"], "sgd");
  EXPECT_EQ(j["schedule"], "step");
  EXPECT_EQ(j["balance"], "none");
  EXPECT_EQ(j["int_bound"], "clamp:2");
  EXPECT_EQ(j["fst_head"], "linear");
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(train_options_json(TrainOptions{})["balance"], "") << "an unset balance (the model's default)";
  TrainOptions back;
  apply_train_config(back, j, "cfg.json");
  EXPECT_EQ(train_options_json(back), j);
  EXPECT_EQ(back.model, ModelType::fst);
  EXPECT_EQ(back.optimizer, OptimizerKind::sgd);
  EXPECT_EQ(back.schedule, LrSchedule::Kind::Step);
  ASSERT_TRUE(back.balance.has_value());
  EXPECT_EQ(*back.balance, io::Balance::none);
  EXPECT_EQ(back.int_bound.bound, InteractionBound::clamp);
  EXPECT_FLOAT_EQ(back.int_bound.clamp, 2.0f);
  EXPECT_EQ(back.fst_head, FstHead::linear);
  EXPECT_EQ(back.methods, o.methods);
  apply_train_config(back, {{"balance", ""}}, "cfg.json");
  EXPECT_FALSE(back.balance.has_value());
  const std::string name = error_of([&] { apply_train_config(back, {{"optimizer", "adam"}}, "cfg.json"); });
  EXPECT_NE(name.find("cfg.json: unknown optimizer 'adam' (adamw or sgd)"), std::string::npos) << name;
  const std::string unknown = error_of([&] { apply_train_config(back, {{"l_intt", 2}}, "cfg.json"); });
  EXPECT_NE(unknown.find("cfg.json: unknown setting 'l_intt'"), std::string::npos) << unknown;
  const std::string type = error_of([&] { apply_train_config(back, {{"batch", "many"}}, "cfg.json"); });
  EXPECT_NE(type.find("cfg.json: a setting has the wrong type"), std::string::npos) << type;
  EXPECT_EQ(train_option_keys().size(), j.size());
}

}  // namespace
}  // namespace fstm
