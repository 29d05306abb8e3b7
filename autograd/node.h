// A recorded op on the autograd tape. Each differentiable op (autograd/ops_*.cpp) that sees an
// input requiring gradients creates a Node holding what its backward needs, and links it to the
// nodes (or leaf tensors) that produced its inputs.
//
// The gradient rule, from llm.c: parameters accumulate (+=), activations assign (=).
// For each input, the engine hands backward() a GradSlot:
//   - mode Assign: `grad` is a fresh buffer of the input's shape; backward must write every
//     element (the tests poison these buffers with NaN to prove it).
//   - mode Accumulate: `grad` already holds a gradient (zeros, or a parameter's .grad); backward
//     adds into it.
//   - mode Handover: nothing is allocated; backward sets `grad` to a tensor of its own, typically
//     grad_output overwritten in place (a pass-through gradient without a copy or a new buffer).
// An op declares which of its inputs are parameters (accumulate) when it records itself.
//
// grad_output belongs to the engine and is not read after backward() returns: an op may overwrite
// it and hand it over.
#pragma once
#include <memory>
#include <vector>

#include "tensor/tensor.h"

namespace fstm {

enum class GradMode : unsigned char { Assign, Accumulate, Handover };

struct GradSlot {
  Tensor grad;          // undefined when the input needs no gradient, and for Handover until set
  GradMode mode = GradMode::Assign;
  bool active = false;  // the input needs a gradient
  bool needed() const { return active; }
};

// Where the gradient of one input goes: the node that produced it, or a leaf tensor.
struct Edge {
  std::shared_ptr<Node> node;             // set for a non-leaf input
  std::shared_ptr<TensorImpl> leaf;       // set for a leaf requiring grad
  GradMode mode = GradMode::Assign;       // how the op writes this input's gradient
  Shape shape;                            // the input's shape, for allocating its gradient
  Device device;
  bool active() const { return node || leaf; }
};

class Node {
 public:
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // grad_output has the output's shape; slots[i] is for the i-th input passed at recording.
  virtual void backward(const Tensor& grad_output, std::vector<GradSlot>& slots) = 0;
  // Drops saved activations once backward has run, so memory falls during the backward pass.
  virtual void release_saved() = 0;

  std::vector<Edge> edges;  // one per input, in the order the op recorded them
};

}  // namespace fstm
