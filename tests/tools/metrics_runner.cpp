// Reads {"scores": [...], "labels": [...], "groups": [...] (optional)} as JSON from a file and
// prints fstm's detection metrics as JSON, for tests/py_test_detection_metrics.py (scikit-learn
// is the oracle).
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "fstm/lib/detection_metrics.h"
#include "tensor/error.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: metrics_runner CASES.json\n";
    return 2;
  }
  try {
    std::ifstream in(argv[1]);
    const nlohmann::json cases = nlohmann::json::parse(in);
    nlohmann::json out = nlohmann::json::array();
    for (const nlohmann::json& c : cases) {
      const auto s = c.at("scores").get<std::vector<double>>();
      const auto y = c.at("labels").get<std::vector<int>>();
      const fstm::DetectionMetrics m = fstm::detection_metrics(s, y);
      nlohmann::json r = {{"acc", m.acc}, {"auc", m.auc}, {"eer", m.eer}, {"ap", m.ap}};
      if (c.contains("groups")) {
        std::vector<double> vs;
        std::vector<int> vy;
        fstm::video_scores(s, y, c.at("groups").get<std::vector<int64_t>>(), vs, vy);
        r["video_auc"] = fstm::roc_auc(vs, vy);
      }
      out.push_back(r);
    }
    std::cout << out.dump() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "metrics_runner: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
