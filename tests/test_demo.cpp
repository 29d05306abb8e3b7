// fstm demo (fstm/lib/demo.h) end to end at its --quick size: metrics.json and report.html, a
// second run that reuses every step, a stop request, and bad output folders.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fstm/lib/demo.h"
#include "io/fs.h"
#include "tests/test_support.h"

namespace fstm {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

json load(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void expect_fraction(const json& v, const std::string& what) {
  ASSERT_TRUE(v.is_number()) << what << " = " << v.dump();
  const double x = v.get<double>();
  EXPECT_TRUE(std::isfinite(x) && x >= 0 && x <= 1) << what << " = " << x;
}

std::string error_of(const DemoOptions& o) {
  try {
    run_demo(o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Demo, QuickRunWritesMetricsAndReportThenReusesEverythingSlow) {
  DemoOptions o = demo_options(true);
  o.out = test::temp_dir("out");
  o.progress = false;
  const auto t0 = std::chrono::steady_clock::now();
  const DemoResult r = run_demo(o);
  const double first = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.stopped_by_signal, 0);

  const json m = load(o.out + "/metrics.json");
  EXPECT_EQ(m, r.metrics);
  for (const char* model : {"det", "fst"})
    for (const char* c : {"raw", "c23", "c40"}) {
      const std::string where = std::string(model) + "." + c;
      ASSERT_TRUE(m[model].contains(c)) << where;
      expect_fraction(m[model][c]["acc"], where + ".acc");
      expect_fraction(m[model][c]["balanced_acc"], where + ".balanced_acc");
      expect_fraction(m[model][c]["acc_val_threshold"], where + ".acc_val_threshold");  // chosen on val
      expect_fraction(m[model][c]["balanced_acc_val_threshold"], where + ".balanced_acc_val_threshold");
      expect_fraction(m[model][c]["auc"], where + ".auc");
      expect_fraction(m[model][c]["video_auc"], where + ".video_auc");
      EXPECT_GT(m[model][c]["real_frames"].get<int64_t>(), 0) << where;
      EXPECT_GT(m[model][c]["fake_frames"].get<int64_t>(), 0) << where;
    }
  for (const char* model : {"source", "target"})
    for (const char* c : {"raw", "c23", "c40"}) {
      const std::string where = std::string(model) + "." + c;
      expect_fraction(m[model][c]["acc"], where);
      expect_fraction(m[model][c]["acc_real"], where + ".acc_real");
      expect_fraction(m[model][c]["acc_swap"], where + ".acc_swap");
      expect_fraction(m[model][c]["acc_reenactment"], where + ".acc_reenactment");
      expect_fraction(m[model][c]["partner_rate_real"], where + ".partner_rate_real");
    }
  // Every summary is a mean with its 95% interval over the explained faces (2 under --quick).
  const json& x = m["explain"];
  EXPECT_EQ(x["faces"], 2);
  EXPECT_EQ(x["baseline"], "black");
  auto expect_ci = [](const json& c, const std::string& what) {
    ASSERT_TRUE(c.is_object()) << what;
    EXPECT_EQ(c["n"], 2) << what;
    ASSERT_TRUE(c["mean"].is_number() && c["lo"].is_number() && c["hi"].is_number()) << what << ": " << c.dump();
    EXPECT_LE(c["lo"].get<double>(), c["mean"].get<double>()) << what;
    EXPECT_GE(c["hi"].get<double>(), c["mean"].get<double>()) << what;
  };
  expect_ci(x["q_eq1"], "q_eq1");
  expect_ci(x["q_authors"], "q_authors");
  for (const char* model : {"det", "source", "target"}) {
    expect_ci(x["delta"][model], std::string("delta ") + model);
    const double d = x["delta"][model]["mean"].get<double>();
    EXPECT_TRUE(d >= -1 && d <= 1) << model << " delta " << d;
  }
  // the generator's masks and pristine frames are reachable: faithfulness, controls and the margins
  for (const char* k : {"lift", "lift_ceiling", "margin_fake", "margin_replaced", "margin_pristine"}) expect_ci(x[k], k);
  for (const char* k : {"difference", "random_init", "gaussian"}) expect_ci(x["control_lift"][k], k);
  for (const char* k : {"source", "target"}) expect_ci(x["identity_lift"][k], std::string("identity lift ") + k);
  for (const char* k : {"black", "mean-colour", "pristine"}) expect_ci(x["baseline_lift"][k], k);
  EXPECT_TRUE(x["beats_controls"].is_boolean());
  EXPECT_EQ(x["per_face"][0]["phi"]["det"]["raw"].size(), 16u);  // 4x4 grid
  EXPECT_EQ(m["settings"]["data"]["identities"], 6);
  EXPECT_TRUE(m["seconds"].is_number());

  const std::string html = slurp(o.out + "/report.html");
  for (const char* part : {"<table", "v_d", "FST-Matching", "frame AUC", "c23", "c40", "<svg", "data:image/png;base64,",
                           "Q (Eq. 1)", "delta v_d", "control: random-init network", "pristine",
                           "reals answered with the partner", "95% confidence interval"})
    EXPECT_NE(html.find(part), std::string::npos) << "report.html lacks " << part;

  // a second run trains, evaluates and explains nothing again, and gives the same metrics
  const auto t1 = std::chrono::steady_clock::now();
  const DemoResult again = run_demo(o);
  const double second = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  EXPECT_LT(second, first / 3) << "first " << first << " s, second " << second << " s";
  json a = again.metrics, b = r.metrics;
  for (json* j : {&a, &b}) {
    j->erase("seconds");
    j->erase("steps");
  }
  EXPECT_EQ(a, b);
  EXPECT_TRUE(again.metrics["steps"]["data"]["reused"].get<bool>());
  EXPECT_TRUE(again.metrics["steps"]["explain"]["reused"].get<bool>());
  EXPECT_TRUE(again.metrics["steps"]["eval_det"]["reused"].get<bool>());
}

TEST(Demo, StopRequestReturnsBeforeWritingResults) {
  DemoOptions o = demo_options(true);
  o.out = test::temp_dir("out");
  o.progress = false;
  std::atomic<int> stop{15};
  o.stop = &stop;
  const DemoResult r = run_demo(o);
  EXPECT_EQ(r.stopped_by_signal, 15);
  EXPECT_EQ(r.stopped_in, "data");
  EXPECT_TRUE(r.metrics_path.empty());
  EXPECT_FALSE(fs::exists(o.out + "/metrics.json"));
  EXPECT_FALSE(fs::exists(o.out + "/report.html"));
}

TEST(Demo, BadOutputFolders) {
  DemoOptions o = demo_options(true);
  o.progress = false;
  const std::string dir = test::temp_dir("bad");
  const std::string file = dir + "/a_file";
  io::write_file_atomic(file, std::string("not a folder"));

  o.out = file;  // a regular file
  std::string e = error_of(o);
  EXPECT_NE(e.find(file), std::string::npos) << e;
  EXPECT_NE(e.find("not a directory"), std::string::npos) << e;

  o.out = file + "/sub";  // below a file: cannot be created (even as root)
  e = error_of(o);
  EXPECT_NE(e.find("cannot create the output folder"), std::string::npos) << e;

  o.out = "";
  EXPECT_NE(error_of(o).find("--out"), std::string::npos);

  // a faces folder that is not the demo's is not replaced
  o.out = dir + "/other";
  io::ensure_dir(o.out + "/faces");
  io::write_file_atomic(o.out + "/faces/notes.txt", std::string("mine"));
  e = error_of(o);
  EXPECT_NE(e.find("was not written by fstm"), std::string::npos) << e;
  EXPECT_TRUE(fs::exists(o.out + "/faces/notes.txt"));
}

}  // namespace
}  // namespace fstm
