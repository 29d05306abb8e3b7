// Module: named parameters, buffers and child modules, with torchvision's state-dict names
// ("layer1.0.conv1.weight"), train/eval mode and device moves.
//
// Parameters and buffers are registered by pointer to the member Tensor that holds them, so
// moving to a device or loading a checkpoint updates the members in place.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace fstm {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Recursive, in registration order, with dotted prefixes.
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  NamedTensors state_dict() const;  // parameters then buffers, per module, as torch orders them
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;

  virtual void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

  // Moves parameters and buffers (except host-only bookkeeping buffers) to `device`.
  void to(Device device);
  Device device() const;
  void zero_grad();  // zeroes existing gradient buffers in place (no reallocation)

  const std::vector<std::pair<std::string, Module*>>& children() const { return children_; }

 protected:
  Tensor& register_parameter(const std::string& name, Tensor* slot, Tensor value);
  Tensor& register_buffer(const std::string& name, Tensor* slot, Tensor value, bool host_only = false);
  template <typename M>
  M* register_module(const std::string& name, std::unique_ptr<M> child) {
    M* raw = child.get();
    owned_.push_back(std::move(child));
    children_.emplace_back(name, raw);
    return raw;
  }

 private:
  struct Slot {
    std::string name;
    Tensor* tensor;
    bool host_only;
  };
  void collect(const std::string& prefix, bool parameters, bool buffers, NamedTensors& out) const;

  std::vector<Slot> params_, buffers_;
  std::vector<std::pair<std::string, Module*>> children_;
  std::vector<std::unique_ptr<Module>> owned_;
  bool training_ = true;
};

// A module with one input and one output, so it can be chained in a Sequential.
class Layer : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace fstm
