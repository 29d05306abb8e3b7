// fstm hypothesis (fstm/lib/hypotheses.h) and the pieces it added: the Q table's averages, the
// explainer shared with fstm explain (fstm/lib/explainer.h), the evaluation-time face loader
// (io::load_face), bad input, and end-to-end --quick runs of each hypothesis on a tiny index.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "fstm/lib/explainer.h"
#include "fstm/lib/hypotheses.h"
#include "fstm/lib/models.h"
#include "io/loader.h"
#include "io/safetensors.h"
#include "tests/fst_test_data.h"
#include "tests/test_support.h"

namespace fstm {
namespace {

namespace fs = std::filesystem;

ExplainedFace face(const std::string& method, double q_eq1, double q_authors, std::vector<double> per_threshold,
                   double mask_lift = NAN) {
  ExplainedFace f;
  f.method = method;
  f.q_eq1.q = q_eq1;
  f.q_eq1.per_threshold = per_threshold;
  f.q_authors.q = q_authors;
  f.q_authors.per_threshold = std::vector<double>(8, q_authors);
  f.faithfulness = {mask_lift / 4, 0.25, mask_lift};
  return f;
}

TEST(HypothesisQRows, MeansSdAndShareOverEachMethodAndAll) {
  const double nan = NAN;
  const std::vector<ExplainedFace> faces = {
      face("Deepfakes", 0.2, 0.01, {0.1, 0.3, nan, 0, 0, 0, 0, 0}, 2.0),
      face("Deepfakes", -0.1, -0.02, {0.3, nan, nan, 0, 0, 0, 0, 0}, 1.0),
      face("FaceSwap", 0.4, 0.03, {0.2, 0.6, 0.9, 0, 0, 0, 0, 0}),
  };
  const std::vector<QRow> rows = q_rows(faces, "resnet18");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].method, "Deepfakes");
  EXPECT_EQ(rows[1].method, "FaceSwap");
  EXPECT_EQ(rows[2].method, "all");  // last
  EXPECT_EQ(rows[0].arch, "resnet18");

  // Deepfakes: mean (0.2 - 0.1) / 2, sample SD sqrt((0.15^2 + 0.15^2) / 1)
  EXPECT_EQ(rows[0].faces, 2);
  EXPECT_NEAR(rows[0].q_eq1, 0.05, 1e-12);
  EXPECT_NEAR(rows[0].q_eq1_sd, std::sqrt(2 * 0.15 * 0.15), 1e-12);
  EXPECT_NEAR(rows[0].q_authors, -0.005, 1e-12);
  // 95% interval: mean -+ t(0.975, 1 dof) * sd / sqrt(2), t = 12.706
  EXPECT_NEAR(rows[0].q_eq1_ci.lo, 0.05 - 12.706 * 0.15, 1e-9);
  EXPECT_NEAR(rows[0].q_eq1_ci.hi, 0.05 + 12.706 * 0.15, 1e-9);
  EXPECT_DOUBLE_EQ(rows[0].positive_share, 0.5);
  EXPECT_NEAR(rows[0].q_eq1_per_threshold[0], 0.2, 1e-12);   // (0.1 + 0.3) / 2
  EXPECT_NEAR(rows[0].q_eq1_per_threshold[1], 0.3, 1e-12);   // the NaN is left out
  EXPECT_TRUE(std::isnan(rows[0].q_eq1_per_threshold[2]));  // all NaN
  EXPECT_NEAR(rows[0].mask_lift, 1.5, 1e-12);
  EXPECT_NEAR(rows[0].mask_share, 0.375, 1e-12);  // (0.5 + 0.25) / 2
  EXPECT_NEAR(rows[0].mask_area, 0.25, 1e-12);

  // one face: no SD; no mask: NaN
  EXPECT_EQ(rows[1].faces, 1);
  EXPECT_NEAR(rows[1].q_eq1, 0.4, 1e-12);
  EXPECT_TRUE(std::isnan(rows[1].q_eq1_sd));
  EXPECT_TRUE(std::isnan(rows[1].mask_lift));

  // all: mean 0.5 / 3; SD from the squared deviations 1/30^2 + 8/30^2 ... by hand: 0.12667 / 2
  EXPECT_EQ(rows[2].faces, 3);
  EXPECT_NEAR(rows[2].q_eq1, 0.5 / 3, 1e-12);
  EXPECT_NEAR(rows[2].q_eq1_sd, std::sqrt((0.0011111111 + 0.0711111111 + 0.0544444444) / 2), 1e-9);
  EXPECT_NEAR(rows[2].positive_share, 2.0 / 3, 1e-12);
  EXPECT_NEAR(rows[2].q_eq1_per_threshold[1], 0.45, 1e-12);  // (0.3 + 0.6) / 2
  EXPECT_NEAR(rows[2].q_eq1_per_threshold[2], 0.9, 1e-12);
  EXPECT_NEAR(rows[2].mask_lift, 1.5, 1e-12);  // the face without a mask is left out
}

TEST(Explainer, MapFilesAreRowMajor) {
  const ShapleyMap phi = {1, 2.5, -3, 4};
  EXPECT_EQ(map_csv(phi, 2), "1,2.5\n-3,4\n");
  EXPECT_EQ(map_json(phi, 2).dump(), "[[1.0,2.5],[-3.0,4.0]]");
}

TEST(Explainer, GivesTheMapsOfExplainImageAndRejectsAGridLargerThanTheImage) {
  auto net = make_classifier("resnet18", 3, 4);
  Rng rng(3);
  test::randomize_batch_norm(*net, rng);
  net->eval();
  const Tensor image = test::random_tensor(Shape{1, 16, 16, 3}, rng, -2, 2);
  ShapleyOptions o;
  o.grid = 2;
  o.samples = 3;
  o.seed = 5;
  ModelExplainer ex(*net, 16, o, 4);
  EXPECT_EQ(ex.planned_evaluations(), 2 + 3 * 3);
  InferencePlan plan([&](const Tensor& x) { return net->forward(x); }, Shape{4, 16, 16, 3});
  const ShapleyResult want = explain_image(plan, image, 2, o);
  EXPECT_EQ(ex.explain(image, 2).phi, want.phi);
  o.seed = 9;
  EXPECT_EQ(ex.explain(image, 2, {}, 9).phi, explain_image(plan, image, 2, o).phi);  // the seed given wins
  std::vector<float> logits;
  {
    NoGradGuard g;
    logits = net->forward(image).to_vector();
  }
  EXPECT_EQ(ex.logits(image), logits);

  o.grid = 17;
  try {
    ModelExplainer too_fine(*net, 16, o, 4);
    FAIL() << "a 17x17 grid on 16x16 images was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit a 16x16 image"), std::string::npos) << e.what();
  }
}

TEST(LoadFace, IsWhatTheEvaluationLoaderDelivers) {
  const std::string dir = test::temp_dir("load_face");
  const io::FaceIndex index = io::FaceIndex::load(test::make_fst_index(dir));
  io::LoaderOptions lo;
  lo.splits = {};
  lo.batch_size = 1;
  lo.workers = 1;
  lo.shuffle = false;
  lo.drop_last = false;
  lo.size = 24;  // not the PNGs' 32: the face is resized as in evaluation
  io::DataLoader loader(index, lo);
  io::Batch b;
  int compared = 0;
  while (loader.next(b) && compared < 3) {
    const Tensor mine = io::image_to_tensor(io::load_face(index, index.frames[size_t(b.frames[0])], 24), lo.norm);
    EXPECT_EQ(mine.to_vector(), b.images.to_vector()) << "frame " << b.frames[0];
    ++compared;
  }
  EXPECT_EQ(compared, 3);
}

// ---- the command -----------------------------------------------------------------------------------

// A tiny index with every compression and a test split, and a det checkpoint, shared by the suite.
class HypothesisCommand : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::temp_dir("hypothesis_cli"));
    test::FstIndexSpec spec;
    spec.train_pairs = {{100, 101}, {102, 103}, {104, 105}, {106, 107}};
    spec.val_pairs = {{108, 109}};
    spec.test_pairs = {{110, 111}};
    spec.methods = {"Deepfakes", "FaceSwap"};
    spec.compressions = {"raw", "c23", "c40"};
    spec.frames = 1;
    spec.size = 32;
    fs::create_directories(*dir_ + "/faces");
    test::make_fst_index(*dir_ + "/faces", spec);
    test::write_det_checkpoint(*dir_ + "/det.safetensors", 32, 1);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string index() { return *dir_ + "/faces/index.json"; }
  static std::string* dir_;
};
std::string* HypothesisCommand::dir_ = nullptr;

TEST_F(HypothesisCommand, BadInputsExitWithAClearMessage) {
  const std::string out = " --out " + test::temp_dir("bad");
  struct Case {
    std::string args, message;
    int code = 1;
  };
  const std::vector<Case> cases = {
      {"1 --data " + *dir_ + "/missing.json" + out, "missing.json: no such face index"},
      {"4 --data " + index() + out, "there are three hypotheses (1, 2, 3), not 4"},
      {"0 --data " + index() + out, "not 0"},
      {"1 --data " + index() + " --source " + *dir_ + "/det.safetensors" + out,
       "--source takes a source identity encoder"},
      {"3 --data " + index() + " --target " + *dir_ + "/det.safetensors" + out, "--target takes a target identity encoder"},
      {"1 --data " + index() + " --det " + *dir_ + "/nothing.safetensors" + out, "--det " + *dir_ + "/nothing.safetensors: no such checkpoint"},
      {"1 --data " + index() + " --grid 33" + out, "a 33x33 grid (1089 players) does not fit a 32x32 image"},
      {"1 --data " + index() + " --samples 0" + out, "--samples must be at least 1"},
      {"1 --data " + index() + " --archs resnet18,resnet34 --det " + *dir_ + "/det.safetensors" + out,
       "checkpoints (--det/--source/--target/--paired/--unpaired) go with a single backbone"},
      {"1 --data " + index() + " --compression c99" + out, "c99", 2},  // a usage error
      {"1 --data " + index(), "--out", 2},
  };
  for (const Case& c : cases) {
    const test::CommandResult r = test::run_fstm("hypothesis " + c.args, *dir_);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\nstderr: " << r.err;
  }
}

// Every number in the JSON is finite or null (NaN where a quantity is undefined), and there is at least one.
int count_finite(const nlohmann::json& j) {
  if (j.is_number()) {
    EXPECT_TRUE(std::isfinite(j.get<double>()));
    return 1;
  }
  int n = 0;
  if (j.is_structured())
    for (const auto& v : j) n += count_finite(v);
  return n;
}

void expect_csv_rows(const std::string& path, size_t min_rows, const std::string& header_start) {
  const std::string text = test::read_text(path);
  ASSERT_FALSE(text.empty()) << path;
  EXPECT_EQ(text.rfind(header_start, 0), 0u) << path << ":\n" << text;
  EXPECT_GE(size_t(std::count(text.begin(), text.end(), '\n')), min_rows + 1) << path;
  EXPECT_EQ(text.find("nan"), std::string::npos) << path;
  EXPECT_EQ(text.find("inf"), std::string::npos) << path;
}

nlohmann::json run_quick(int h, const std::string& index, const std::string& dir) {
  const test::CommandResult r = test::run_fstm("hypothesis " + std::to_string(h) + " --quick --quiet --data " + index +
                                                   " --out " + dir + " --work " + dir + "/work",
                                               dir);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("report.html"), std::string::npos) << r.out;
  return nlohmann::json::parse(test::read_text(dir + "/results.json"));
}

// A report with the table's header, its finding and its figures, self-contained (no external file).
void expect_report(const std::string& dir, const std::string& table_header) {
  const std::string html = test::read_text(dir + "/report.html");
  EXPECT_NE(html.find("<table>"), std::string::npos);
  EXPECT_NE(html.find(table_header), std::string::npos) << table_header;
  EXPECT_NE(html.find("on this data"), std::string::npos);  // the finding
  EXPECT_NE(html.find("Paper ("), std::string::npos);       // next to the paper's claim
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("src=\"/"), std::string::npos);
}

TEST_F(HypothesisCommand, H1QuickSlow) {
  const std::string dir = test::temp_dir("h1");
  const nlohmann::json j = run_quick(1, index(), dir);
  EXPECT_EQ(j["hypothesis"], 1);
  EXPECT_EQ(j["explain_split"], "test");  // the encoders trained here learn every split's identities
  EXPECT_GT(count_finite(j), 100);
  ASSERT_EQ(j["q_table"].size(), 3u);  // Deepfakes, FaceSwap, all
  for (const auto& row : j["q_table"]) {
    EXPECT_TRUE(row["q_eq1"].is_number()) << row.dump();
    EXPECT_TRUE(row["q_authors"].is_number()) << row.dump();
  }
  ASSERT_EQ(j["faces"].size(), 2u);  // one per method
  EXPECT_EQ(j["faces"][0]["phi_d"].size(), 4u);  // the quick 4 x 4 grid
  // --quick explains the first face twice: the instability of two maps of T, in [0, 1]
  for (const auto& v : j["faces"][0]["instability_two_maps"]) {
    ASSERT_TRUE(v.is_number()) << j["faces"][0].dump();
    EXPECT_GE(v.get<double>(), 0.0);
    EXPECT_LE(v.get<double>(), 1.0 + 1e-9);
  }
  EXPECT_TRUE(j["faces"][1]["instability_two_maps"][0].is_null());
  for (const auto& row : j["q_table"])
    if (row["method"] == "all") {  // two faces: a (wide) interval around the mean
      EXPECT_LE(row["q_eq1_ci95"][0].get<double>(), row["q_eq1"].get<double>());
      EXPECT_GE(row["q_eq1_ci95"][1].get<double>(), row["q_eq1"].get<double>());
    }
  EXPECT_EQ(j["instability"].size(), 3u);
  expect_csv_rows(dir + "/h1_q.csv", 3, "arch,method,faces,q_eq1");
  expect_csv_rows(dir + "/instability.csv", 3, "model,samples_per_half");
  expect_report(dir, "Q (Eq. 1)");
  // a second run reuses the three training runs
  const test::CommandResult again = test::run_fstm("hypothesis 1 --quick --data " + index() + " --out " + dir +
                                                       " --work " + dir + "/work",
                                                   dir);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("epoch 1/1"), std::string::npos) << again.err;
}

TEST_F(HypothesisCommand, H2QuickSlow) {
  const std::string dir = test::temp_dir("h2");
  const nlohmann::json j = run_quick(2, index(), dir);
  EXPECT_EQ(j["h2"]["identities"], 4);  // 4 train pairs: 2 paired, 2 unpaired
  EXPECT_GT(count_finite(j), 100);
  for (const char* k : {"paired", "unpaired", "all_train_data"}) {
    const auto& rows = j["h2"][k]["rows"];
    ASSERT_FALSE(rows.empty()) << k;
    EXPECT_TRUE(rows.back()["acc"].is_number()) << rows.dump();
    EXPECT_TRUE(rows.back()["auc"].is_number()) << rows.dump();
  }
  int curves = 0;
  for (const auto& row : j["h2"]["q"])
    if (row["method"] == "all") {
      ++curves;
      EXPECT_EQ(row["q_eq1_per_threshold"].size(), 8u);
    }
  EXPECT_EQ(curves, 2);
  EXPECT_EQ(j["h2"]["q_eq1_paired_minus_unpaired"]["faces"], 2);
  expect_csv_rows(dir + "/h2_detection.csv", 3, "detector,compression,method");
  expect_csv_rows(dir + "/h2_q_curves.csv", 16, "detector,threshold,q_eq1,q_authors");
  expect_report(dir, "video AUC");
}

TEST_F(HypothesisCommand, H3QuickSlow) {
  const std::string dir = test::temp_dir("h3");
  const nlohmann::json j = run_quick(3, index(), dir);
  EXPECT_GT(count_finite(j), 10);
  ASSERT_EQ(j["deltas"].size(), 9u);  // v_d, v_s, v_t x (Deepfakes, FaceSwap, all)
  for (const auto& row : j["deltas"]) {
    EXPECT_TRUE(row["delta"].is_number()) << row.dump();
    EXPECT_LE(std::abs(row["delta"].get<double>()), 1.0 + 1e-9);  // a mean of cosines
  }
  EXPECT_EQ(j["delta_gaps"]["resnet18"]["faces"], 2);
  EXPECT_TRUE(j["delta_gaps"]["resnet18"]["delta_s_minus_delta_d"]["mean"].is_number());
  expect_csv_rows(dir + "/h3_delta.csv", 9, "arch,model,method,faces,cos_c23");
  expect_report(dir, "cos(c40, raw)");
}

}  // namespace
}  // namespace fstm
