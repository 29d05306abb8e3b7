#include "layers/classifier.h"

#include "layers/efficientnet.h"
#include "layers/resnet.h"

namespace fstm {

std::vector<std::string> known_architectures() { return {"resnet18", "resnet34", "efficientnet_b3", "efficientnet_b4"}; }

std::unique_ptr<ImageClassifier> make_classifier(const std::string& arch, int64_t num_classes, uint64_t seed) {
  if (arch == "resnet18") return std::make_unique<ResNet>(18, num_classes, seed);
  if (arch == "resnet34") return std::make_unique<ResNet>(34, num_classes, seed);
  if (arch == "efficientnet_b3") return std::make_unique<EfficientNet>(3, num_classes, seed);
  if (arch == "efficientnet_b4") return std::make_unique<EfficientNet>(4, num_classes, seed);
  std::string known;
  for (const auto& a : known_architectures()) known += (known.empty() ? "" : ", ") + a;
  throw Error(detail::concat("unknown architecture '", arch, "' (known: ", known, ")"));
}

}  // namespace fstm
