#include "layers/module.h"

namespace fstm {

Tensor& Module::register_parameter(const std::string& name, Tensor* slot, Tensor value) {
  *slot = std::move(value);
  if (slot->defined()) slot->set_requires_grad(true);
  params_.push_back({name, slot, false});
  return *slot;
}

Tensor& Module::register_buffer(const std::string& name, Tensor* slot, Tensor value, bool host_only) {
  *slot = std::move(value);
  buffers_.push_back({name, slot, host_only});
  return *slot;
}

void Module::collect(const std::string& prefix, bool parameters, bool buffers, NamedTensors& out) const {
  if (parameters)
    for (const Slot& s : params_)
      if (s.tensor->defined()) out.emplace_back(prefix + s.name, *s.tensor);
  if (buffers)
    for (const Slot& s : buffers_)
      if (s.tensor->defined()) out.emplace_back(prefix + s.name, *s.tensor);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", parameters, buffers, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, out);
  for (auto& [name, t] : out) t.set_name(name);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, true, out);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::to(Device device) {
  for (Slot& s : params_) {
    if (!s.tensor->defined() || s.tensor->device() == device) continue;
    const std::string name = s.tensor->name();
    *s.tensor = s.tensor->to(device).set_requires_grad(true).set_name(name);
  }
  for (Slot& s : buffers_)
    if (s.tensor->defined() && !s.host_only) *s.tensor = s.tensor->to(device);
  for (auto& [name, child] : children_) child->to(device);
}

Device Module::device() const {
  for (const Slot& s : params_)
    if (s.tensor->defined()) return s.tensor->device();
  for (const auto& [name, child] : children_) return child->device();
  return Device::cpu();
}

void Module::zero_grad() {
  for (Slot& s : params_)
    if (s.tensor->defined() && s.tensor->grad().defined()) s.tensor->grad().zero_();
  for (auto& [name, child] : children_) child->zero_grad();
}

}  // namespace fstm
