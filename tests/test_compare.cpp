// fstm compare (fstm/lib/compare.h): the Table 4 protocol end to end on a tiny synthetic set, and
// its bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "fstm/lib/compare.h"
#include "tests/test_support.h"

namespace fstm {
namespace {

// Both models of a seed take the same steps (c40 only under --quick): each model is tested at
// its training compression, FST's mechanism is measured, and the verdict is the per-seed difference.
TEST(CompareCommand, QuickSlow) {
  const std::string dir = test::temp_dir("compare");
  const std::string args = "compare --quick --quiet --out " + dir + " --work " + dir + "/work";
  const test::CommandResult r = test::run_fstm(args, dir);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("compare c40: FST - v_d frame AUC"), std::string::npos) << r.out;
  const nlohmann::json j = nlohmann::json::parse(test::read_text(dir + "/results.json"));
  ASSERT_EQ(j["runs"].size(), 4u);  // {det, fst} x 2 seeds
  std::map<uint64_t, std::map<std::string, int64_t>> steps;
  for (const auto& run : j["runs"]) {
    const std::string model = run["model"];
    EXPECT_EQ(run["train_compression"], "c40");
    steps[run["seed"].get<uint64_t>()][model] = run["steps"].get<int64_t>();
    ASSERT_TRUE(run["tests"].contains("c40")) << run.dump();
    EXPECT_EQ(run["tests"].size(), 1u);  // not raw-trained: tested at c40 only
    const double auc = run["tests"]["c40"]["auc"];
    EXPECT_GE(auc, 0.0);
    EXPECT_LE(auc, 1.0);
    if (model == "fst") {
      for (const char* k : {"source_head_acc", "target_head_acc", "interaction_share"}) {
        ASSERT_TRUE(run[k].is_number()) << k << " " << run.dump();
        EXPECT_GE(run[k].get<double>(), 0.0);
        EXPECT_LE(run[k].get<double>(), 1.0);
      }
      EXPECT_NEAR(run["identity_chance_ce"].get<double>(), std::log(8.0), 1e-9);  // 8 train identities
      for (const char* k : {"source", "target"}) EXPECT_TRUE(run["test_donor_rate"][k].is_number()) << run.dump();
      EXPECT_TRUE(run["test_donor_rate"]["features"].is_null());
    } else {
      EXPECT_TRUE(run["source_head_acc"].is_null());
      EXPECT_TRUE(run["test_donor_rate"]["features"].is_number()) << run.dump();
    }
  }
  ASSERT_EQ(steps.size(), 2u);
  for (const auto& [seed, by] : steps) {
    EXPECT_GT(by.at("det"), 0);
    EXPECT_EQ(by.at("det"), by.at("fst")) << "seed " << seed << ": unequal training budgets";
  }
  ASSERT_EQ(j["verdicts"].size(), 1u);
  const auto& v = j["verdicts"][0];
  ASSERT_EQ(v["fst_minus_vd_auc"].size(), 2u);
  double mean = 0;
  for (const auto& run : j["runs"])
    mean += (run["model"] == "fst" ? 0.5 : -0.5) * run["tests"]["c40"]["auc"].get<double>();
  EXPECT_NEAR(v["mean"].get<double>(), mean, 1e-9);
  // two seeds: the interval is mean +- 12.706 * sd / sqrt(2), and the verdict follows from it
  const double half = 12.706 * v["sd"].get<double>() / std::sqrt(2.0);
  EXPECT_NEAR(v["ci95"][0].get<double>(), mean - half, 1e-6);
  const std::string verdict = v["verdict"];
  EXPECT_EQ(verdict, mean - half > 0 ? "FST better" : mean + half < 0 ? "v_d better" : "no difference shown");
  const std::string html = test::read_text(dir + "/report.html");
  for (const char* s : {"Table 4", "FST - v_d", "95% interval", "Why: the mechanism, measured", "interaction share",
                        "Donor rate"})
    EXPECT_NE(html.find(s), std::string::npos) << s;
  EXPECT_NE(test::read_text(dir + "/compare.csv").find("model,train_compression,test_compression,seed"), std::string::npos);

  // By default every backbone starts from the synthetic identity init: v_t trained on the face swaps
  // of other synthetic people (here 8, tiny), made under WORK/identity-init and measured before training.
  const std::filesystem::path init_dir = std::filesystem::path(dir) / "work" / "identity-init";
  const std::string made = (init_dir / "run" / "last.safetensors").string();
  EXPECT_EQ(j["settings"]["init"], "synthetic identity init (" + made + ")");
  EXPECT_EQ(j["settings"]["identity_init"]["identities"], 8);
  EXPECT_EQ(j["settings"]["identity_init"]["seed"], 7) << "other people than the compared data's (seed 0)";
  const nlohmann::json init_config = nlohmann::json::parse(test::read_text((init_dir / "run" / "config.json").string()));
  EXPECT_EQ(init_config["model"], "target");
  EXPECT_EQ(init_config["methods"], nlohmann::json({"Deepfakes", "FaceSwap", "FaceShifter"}));
  std::set<std::string> methods;
  for (const auto& e : std::filesystem::directory_iterator(init_dir / "synthetic" / "data" / "manipulated_sequences"))
    methods.insert(e.path().filename().string());
  EXPECT_EQ(methods, (std::set<std::string>{"Deepfakes", "FaceSwap", "FaceShifter"})) << "face swaps only";
  ASSERT_TRUE(j["init_donor_rate"]["c40"].is_number()) << j["init_donor_rate"].dump();
  EXPECT_NE(r.out.find("the initialisation's own features have a donor rate of"), std::string::npos) << r.out;
  EXPECT_NE(html.find("same initialisation (synthetic identity init ("), std::string::npos);

  // a second run reuses the four training runs
  const test::CommandResult again = test::run_fstm(args, dir);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("epoch 1/1"), std::string::npos) << again.err;

  // FST's loss settings vary FST only: v_d's runs are reused, FST's retrained
  const test::CommandResult varied = test::run_fstm(args + " --l-int 1", dir);
  EXPECT_EQ(varied.exit_code, 0) << varied.err;
  EXPECT_EQ(varied.err.find("det-c40-seed"), std::string::npos) << varied.err;
  EXPECT_NE(varied.err.find("fst-c40-seed0 holds a run with other settings"), std::string::npos) << varied.err;
  EXPECT_EQ(nlohmann::json::parse(test::read_text(dir + "/results.json"))["settings"]["l_int"], 1.0);

  // --init random: nothing to measure before training, and the report says so
  const test::CommandResult random = test::run_fstm(args + " --init random", dir);
  ASSERT_EQ(random.exit_code, 0) << random.err;
  const nlohmann::json rj = nlohmann::json::parse(test::read_text(dir + "/results.json"));
  EXPECT_EQ(rj["settings"]["init"], "random");
  EXPECT_TRUE(rj["init_donor_rate"].empty()) << "random initialisation: nothing to measure";
  EXPECT_NE(test::read_text(dir + "/report.html").find("same initialisation (random, from the seed)"), std::string::npos);

  // --init with a fstm checkpoint (here v_d's): every backbone starts from it, and the donor rate of
  // the initialisation itself is measured, reported and in the finding
  const std::string init = dir + "/init.safetensors";
  std::filesystem::copy_file(std::filesystem::path(dir) / "work" / "runs" / "det-c40-seed0" / "last.safetensors", init);
  const test::CommandResult from = test::run_fstm(args + " --init " + init, dir);
  ASSERT_EQ(from.exit_code, 0) << from.err;
  const nlohmann::json k = nlohmann::json::parse(test::read_text(dir + "/results.json"));
  EXPECT_EQ(k["settings"]["init"], init);
  ASSERT_TRUE(k["init_donor_rate"]["c40"].is_number()) << k["init_donor_rate"].dump();
  EXPECT_GE(k["init_donor_rate"]["c40"].get<double>(), 0.0);
  EXPECT_LE(k["init_donor_rate"]["c40"].get<double>(), 1.0);
  EXPECT_NE(from.out.find("the initialisation's own features have a donor rate of"), std::string::npos) << from.out;
  const std::string report = test::read_text(dir + "/report.html");
  EXPECT_NE(report.find("(the initialisation, before training)"), std::string::npos);
  EXPECT_NE(report.find("same initialisation (" + init + ")"), std::string::npos);
}

// The donor rate: a swap A_B counts when its feature is nearer the donor B's real frames than the
// context A's; reenactments (no visible target) and reals are not asked.
TEST(CompareDonorRate, CountsSwapsNearerTheDonorThanTheContext) {
  auto video = [](int det, int source, int target, bool visible) {
    io::IndexVideo v;
    v.det = det;
    v.source = source;
    v.target = target;
    v.target_visible = visible;
    return v;
  };
  const io::IndexVideo a = video(0, 0, 0, true), b = video(0, 1, 1, true), ab = video(1, 0, 1, true),
                       reenact = video(1, 0, 1, false);
  // A's reals point along x, B's along y (scaled rows: the centroid uses unit rows)
  std::vector<std::vector<float>> rows = {{2, 0}, {3, 0.1f}, {0, 1}, {0.2f, 5}};
  std::vector<const io::IndexVideo*> videos = {&a, &a, &b, &b};
  auto with = [&](std::vector<std::vector<float>> swaps, const io::IndexVideo* v) {
    std::vector<std::vector<float>> r = rows;
    std::vector<const io::IndexVideo*> vs = videos;
    for (auto& s : swaps) r.push_back(s), vs.push_back(v);
    return donor_rate(r, vs);
  };
  EXPECT_DOUBLE_EQ(with({{0.1f, 0.9f}, {0.2f, 3}}, &ab), 1.0);    // the donor's identity
  EXPECT_DOUBLE_EQ(with({{0.9f, 0.1f}, {4, 1}}, &ab), 0.0);       // the context's
  EXPECT_DOUBLE_EQ(with({{0.9f, 0.1f}, {0.1f, 0.9f}}, &ab), 0.5);
  EXPECT_TRUE(std::isnan(with({{0.1f, 0.9f}}, &reenact)));        // no visible target: not asked
  EXPECT_TRUE(std::isnan(donor_rate({{1, 0}, {0, 1}}, {&a, &ab}))); // the donor has no real frames
  EXPECT_THROW(donor_rate({{1, 0}}, {&a, &b}), Error);
}

TEST(CompareCommand, BadInputsExitWithAClearMessage) {
  const std::string dir = test::temp_dir("compare_bad");
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--out " + dir + "/o --data " + dir + "/missing.json", "missing.json: no such face index"},
      {"--out " + dir + "/o --seeds 0", "--seeds must be between 1 and 100"},
      {"--out " + dir + "/o --init " + dir + "/none.safetensors", "none.safetensors: no such weights file"},
      {"--out " + dir + "/o --compressions c99", "c99"},
  };
  for (const Case& c : cases) {
    const test::CommandResult r = test::run_fstm("compare --quiet " + c.args, dir);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args << "\nstderr: " << r.err;
  }
}

}  // namespace
}  // namespace fstm
