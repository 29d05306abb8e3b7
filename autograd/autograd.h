// The autograd tape: recording, backward, and the no-grad guard.
//
// Ops record a Node when grad mode is on and an input requires gradients (see record()).
// backward(loss) walks the recorded nodes from the loss in reverse topological order. Leaf
// tensors with requires_grad (parameters, or inputs the caller marked) accumulate into .grad.
#pragma once
#include <memory>
#include <vector>

#include "autograd/node.h"
#include "tensor/tensor.h"

namespace fstm {

bool grad_enabled();

// While alive, ops record nothing (inference, optimizer steps, metrics).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when any of the inputs requires a gradient and grad mode is on.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Links `node` to the given inputs (parameters accumulate, activations assign) and makes it the
// grad_fn of `output`. Inputs that do not require grad get inactive edges.
struct RecordedInput {
  const Tensor* tensor;
  GradMode mode;
};
void record(const std::shared_ptr<Node>& node, std::initializer_list<RecordedInput> inputs, Tensor& output);
void record(const std::shared_ptr<Node>& node, const std::vector<RecordedInput>& inputs, Tensor& output);

// Runs backward from `root`. With no grad_output, root must hold one element and its gradient is 1.
void backward(const Tensor& root, const Tensor& grad_output = Tensor());

// Test hook: fill Assign-mode gradient buffers with NaN before each node's backward, so a
// backward that leaves elements unwritten fails loudly.
void set_poison_gradients(bool enabled);
bool poison_gradients();

}  // namespace fstm
