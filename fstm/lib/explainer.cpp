#include "fstm/lib/explainer.h"

#include <algorithm>
#include <sstream>

#include "autograd/autograd.h"

namespace fstm {

void check_grid_fits(int grid, int height, int width) {
  FSTM_CHECK(grid >= 2, "the grid must be at least 2 x 2, got ", grid);
  FSTM_CHECK(grid <= height && grid <= width, "a ", grid, "x", grid, " grid (", int64_t(grid) * grid,
             " players) does not fit a ", width, "x", height, " image: each grid cell needs at least one pixel per side");
}

ModelExplainer::ModelExplainer(ImageClassifier& net, int input_size, const ShapleyOptions& options, int64_t batch,
                               DType dtype, Device device)
    : net_(net), options_(options), device_(device) {
  check_grid_fits(options.grid, input_size, input_size);
  FSTM_CHECK(batch >= 1, "the Shapley batch must be at least 1, got ", batch);
  geometry_ = GridGeometry::make(input_size, input_size, options.grid);
  check_shapley_options(options_, geometry_.players());
  planned_ = fstm::planned_evaluations(geometry_.players(), options_);
  const int64_t rows = std::min<int64_t>(batch, planned_);
  plan_ = std::make_unique<InferencePlan>([this](const Tensor& in) { return net_.forward(in); },
                                          Shape{rows, input_size, input_size, 3}, dtype, device);
}

ModelExplainer::~ModelExplainer() = default;

std::string ModelExplainer::backend() const { return plan_->backend(); }

ShapleyResult ModelExplainer::explain(const Tensor& image, int64_t target, const ShapleyProgress& progress,
                                      int64_t seed, const Tensor& pristine) {
  ShapleyOptions o = options_;
  if (seed >= 0) o.seed = uint64_t(seed);
  return explain_image(*plan_, image, target, o, progress, pristine);
}

std::vector<float> ModelExplainer::logits(const Tensor& image) {
  NoGradGuard no_grad;
  const Tensor x = image.dim() == 3 ? image.reshape({1, image.shape()[0], image.shape()[1], image.shape()[2]}) : image;
  return net_.forward(x.to(device_)).to_vector();
}

nlohmann::json map_json(const ShapleyMap& phi, int grid) {
  nlohmann::json rows = nlohmann::json::array();
  for (int i = 0; i < grid; ++i) rows.push_back(std::vector<double>(phi.begin() + i * grid, phi.begin() + (i + 1) * grid));
  return rows;
}

std::string map_csv(const ShapleyMap& phi, int grid) {
  std::ostringstream s;
  s.precision(9);
  for (int i = 0; i < grid; ++i) {
    for (int j = 0; j < grid; ++j) s << (j ? "," : "") << phi[size_t(i * grid + j)];
    s << "\n";
  }
  return s.str();
}

}  // namespace fstm
