#include "fstm/lib/detection_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "tensor/error.h"

namespace fstm {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_inputs(const std::vector<double>& scores, const std::vector<int>& labels, const char* what) {
  FSTM_CHECK(scores.size() == labels.size(), what, ": ", scores.size(), " scores for ", labels.size(), " labels");
  for (size_t i = 0; i < labels.size(); ++i) {
    FSTM_CHECK(labels[i] == 0 || labels[i] == 1, what, ": label ", labels[i], " at ", i, " is not 0 or 1");
    FSTM_CHECK(!std::isnan(scores[i]), what, ": score ", i, " is NaN");
  }
}

struct Counts {
  int64_t positives = 0, negatives = 0;
};

Counts count(const std::vector<int>& labels) {
  Counts c;
  for (int y : labels) (y ? c.positives : c.negatives)++;
  return c;
}

// Cumulative (false positives, true positives) after each distinct threshold, scores descending.
std::vector<std::pair<int64_t, int64_t>> roc_counts(const std::vector<double>& scores, const std::vector<int>& labels) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  std::vector<std::pair<int64_t, int64_t>> points;
  int64_t fp = 0, tp = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    (labels[order[i]] ? tp : fp)++;
    if (i + 1 == order.size() || scores[order[i + 1]] != scores[order[i]]) points.emplace_back(fp, tp);
  }
  return points;
}

}  // namespace

double accuracy(const std::vector<double>& scores, const std::vector<int>& labels, double threshold) {
  check_inputs(scores, labels, "accuracy");
  if (scores.empty()) return kNaN;
  int64_t right = 0;
  for (size_t i = 0; i < scores.size(); ++i) right += int(scores[i] > threshold) == labels[i];
  return double(right) / double(scores.size());
}

double balanced_accuracy(const std::vector<double>& scores, const std::vector<int>& labels, double threshold) {
  check_inputs(scores, labels, "balanced accuracy");
  int64_t right[2] = {0, 0}, total[2] = {0, 0};
  for (size_t i = 0; i < scores.size(); ++i) {
    total[labels[i]] += 1;
    right[labels[i]] += int(scores[i] > threshold) == labels[i];
  }
  if (total[0] == 0 || total[1] == 0) return kNaN;
  return 0.5 * (double(right[0]) / double(total[0]) + double(right[1]) / double(total[1]));
}

double best_balanced_threshold(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_inputs(scores, labels, "threshold");
  const Counts c = count(labels);
  if (c.positives == 0 || c.negatives == 0) return kNaN;
  std::vector<size_t> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Sweep the cut upwards: below it everything is called real. Start below the lowest score.
  int64_t reals_below = 0, fakes_below = 0;
  double best = 0.5, best_t = scores[order[0]] - 1;  // everything called fake: TPR 1, TNR 0
  for (size_t k = 0; k < order.size();) {
    const double v = scores[order[k]];
    for (; k < order.size() && scores[order[k]] == v; ++k) (labels[order[k]] ? fakes_below : reals_below) += 1;
    const double bal = 0.5 * (double(reals_below) / double(c.negatives) +
                              double(c.positives - fakes_below) / double(c.positives));
    if (bal > best) {
      best = bal;
      best_t = k < order.size() ? 0.5 * (v + scores[order[k]]) : v + 1;
    }
  }
  return best_t;
}

double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_inputs(scores, labels, "AUC");
  const Counts c = count(labels);
  if (c.positives == 0 || c.negatives == 0) return kNaN;
  // Mid-ranks (1-based) of the scores, ascending; tied scores share their mean rank.
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double positive_rank_sum = 0;
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double mid_rank = 0.5 * double(i + 1 + j);  // mean of ranks i+1 .. j
    for (size_t k = i; k < j; ++k)
      if (labels[order[k]]) positive_rank_sum += mid_rank;
    i = j;
  }
  const double p = double(c.positives), n = double(c.negatives);
  return (positive_rank_sum - p * (p + 1) / 2) / (p * n);
}

double equal_error_rate(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_inputs(scores, labels, "EER");
  const Counts c = count(labels);
  if (c.positives == 0 || c.negatives == 0) return kNaN;
  const double P = double(c.positives), N = double(c.negatives);
  // Walk the ROC curve from (0, 0); d = FNR - FPR goes from 1 to -1.
  double fpr0 = 0, d0 = 1;
  for (const auto& [fp, tp] : roc_counts(scores, labels)) {
    const double fpr = double(fp) / N, fnr = 1.0 - double(tp) / P, d = fnr - fpr;
    if (d <= 0) {
      const double t = d0 / (d0 - d);  // where d crosses 0 on the segment
      return fpr0 + t * (fpr - fpr0);
    }
    fpr0 = fpr;
    d0 = d;
  }
  return kNaN;  // unreachable: the last point is (1, 1)
}

double average_precision(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_inputs(scores, labels, "AP");
  const Counts c = count(labels);
  if (c.positives == 0 || c.negatives == 0) return kNaN;
  double ap = 0, recall0 = 0;
  for (const auto& [fp, tp] : roc_counts(scores, labels)) {
    const double recall = double(tp) / double(c.positives), precision = double(tp) / double(tp + fp);
    ap += (recall - recall0) * precision;
    recall0 = recall;
  }
  return ap;
}

DetectionMetrics detection_metrics(const std::vector<double>& scores, const std::vector<int>& labels) {
  DetectionMetrics m;
  m.samples = int64_t(scores.size());
  m.positives = count(labels).positives;
  m.acc = accuracy(scores, labels);
  m.balanced_acc = balanced_accuracy(scores, labels);
  m.auc = roc_auc(scores, labels);
  m.eer = equal_error_rate(scores, labels);
  m.ap = average_precision(scores, labels);
  return m;
}

void video_scores(const std::vector<double>& scores, const std::vector<int>& labels, const std::vector<int64_t>& groups,
                  std::vector<double>& group_scores, std::vector<int>& group_labels) {
  check_inputs(scores, labels, "video scores");
  FSTM_CHECK(groups.size() == scores.size(), "video scores: ", groups.size(), " group ids for ", scores.size(), " scores");
  std::map<int64_t, std::pair<double, int64_t>> sums;  // group -> (sum, count)
  std::map<int64_t, int> label;
  for (size_t i = 0; i < scores.size(); ++i) {
    auto& s = sums[groups[i]];
    s.first += scores[i];
    s.second += 1;
    auto [it, fresh] = label.emplace(groups[i], labels[i]);
    FSTM_CHECK(fresh || it->second == labels[i], "video scores: group ", groups[i], " mixes real and fake samples");
  }
  group_scores.clear();
  group_labels.clear();
  for (const auto& [g, s] : sums) {
    group_scores.push_back(s.first / double(s.second));
    group_labels.push_back(label[g]);
  }
}

}  // namespace fstm
