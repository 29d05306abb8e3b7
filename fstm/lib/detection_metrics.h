// Detection metrics on scores s (the probability of "fake") and labels y (1 = fake), as the
// paper's tables report them and as scikit-learn computes them, ties included:
//
//   ACC  fraction of samples with (s > threshold) == y; threshold 0.5 (the argmax of 2 logits)
//   AUC  area under the ROC curve = P(s_fake > s_real) + 0.5 P(s_fake == s_real)
//        (Mann-Whitney with mid-ranks; equals sklearn.metrics.roc_auc_score)
//   EER  the point where the ROC curve, linearly interpolated between its points, crosses
//        FPR = FNR = 1 - TPR (the usual brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1))
//   AP   sum over distinct thresholds, descending, of (R_k - R_{k-1}) P_k
//        (equals sklearn.metrics.average_precision_score)
// AUC, EER and AP are NaN when one class is missing. Video-level AUC uses the mean frame score of
// each video (video_scores()).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace fstm {

struct DetectionMetrics {
  int64_t samples = 0, positives = 0;
  double acc = 0, auc = 0, eer = 0, ap = 0;
  double balanced_acc = 0;  // at 0.5: the mean of the two classes' accuracies
  // At a threshold chosen on other data (fstm eval --threshold-from val); NaN when none was chosen.
  double threshold = std::numeric_limits<double>::quiet_NaN();
  double acc_at_threshold = std::numeric_limits<double>::quiet_NaN();
  double balanced_acc_at_threshold = std::numeric_limits<double>::quiet_NaN();
};

double accuracy(const std::vector<double>& scores, const std::vector<int>& labels, double threshold = 0.5);
// (true-positive rate + true-negative rate) / 2 at `threshold`: what ACC means on a test split of 80
// real and 400 fake faces (there, calling everything fake scores ACC 0.83 and balanced ACC 0.5).
// NaN when a class is missing.
double balanced_accuracy(const std::vector<double>& scores, const std::vector<int>& labels, double threshold = 0.5);
// The threshold with the highest balanced accuracy on (scores, labels): the midpoint between two
// neighbouring distinct scores (or just outside the range); the lowest such threshold on ties.
// Chosen on a validation split and applied to the test split, it gives an ACC that does not hang on
// 0.5 being a good cut for a model whose scores are shifted (few epochs, unbalanced classes). NaN
// when a class is missing.
double best_balanced_threshold(const std::vector<double>& scores, const std::vector<int>& labels);
double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels);
double equal_error_rate(const std::vector<double>& scores, const std::vector<int>& labels);
double average_precision(const std::vector<double>& scores, const std::vector<int>& labels);
DetectionMetrics detection_metrics(const std::vector<double>& scores, const std::vector<int>& labels);

// Mean score and label per group (video): groups[i] is sample i's group id (any integers).
// Returns one (score, label) per group, in increasing group id; throws when a group mixes labels.
void video_scores(const std::vector<double>& scores, const std::vector<int>& labels, const std::vector<int64_t>& groups,
                  std::vector<double>& group_scores, std::vector<int>& group_labels);

}  // namespace fstm
