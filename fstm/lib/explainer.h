// One model compiled once for the Shapley maps of many images (fstm/lib/shapley.h), and the map's
// file formats. Shared by `fstm explain` and `fstm hypothesis`.
//
//   LoadedModel m = load_model(spec);                       // fstm/lib/model_loader.h
//   ModelExplainer ex(*m.net, m.input_size, options, 64);
//   ShapleyResult r = ex.explain(io::image_to_tensor(face, m.normalization), cls);
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fstm/lib/shapley.h"
#include "layers/classifier.h"

namespace fstm {

class ModelExplainer {
 public:
  // net: in eval mode, on `device`, outliving the explainer. The plan is compiled for batches of
  // min(batch, forwards of one map) images of input_size x input_size. Throws when the grid does
  // not fit the image or the options are invalid.
  ModelExplainer(ImageClassifier& net, int input_size, const ShapleyOptions& options, int64_t batch = 64,
                 DType dtype = DType::f32, Device device = Device::cpu());
  ~ModelExplainer();

  // image: [1, S, S, 3] (or [S, S, 3]) f32 normalised as the model expects; target: the class
  // whose logit (or margin) is explained. options.seed is replaced by `seed` when given (>= 0).
  // pristine: the real counterpart, normalised alike, for the Pristine baseline.
  ShapleyResult explain(const Tensor& image, int64_t target, const ShapleyProgress& progress = {},
                        int64_t seed = -1, const Tensor& pristine = {});
  // The model's logits for one image (eager forward).
  std::vector<float> logits(const Tensor& image);

  const ShapleyOptions& options() const { return options_; }
  const GridGeometry& geometry() const { return geometry_; }
  int64_t planned_evaluations() const { return planned_; }
  std::string backend() const;

 private:
  ImageClassifier& net_;
  ShapleyOptions options_;
  GridGeometry geometry_;
  int64_t planned_ = 0;
  Device device_;
  std::unique_ptr<InferencePlan> plan_;
};

// Throws naming the image size when an L x L grid does not fit (each cell needs a pixel per side).
void check_grid_fits(int grid, int height, int width);

// The L x L map as rows (JSON) and as CSV lines.
nlohmann::json map_json(const ShapleyMap& phi, int grid);
std::string map_csv(const ShapleyMap& phi, int grid);

}  // namespace fstm
