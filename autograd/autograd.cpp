#include "autograd/autograd.h"

#include <atomic>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "kernels/elementwise.h"

namespace fstm {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<bool> g_poison{false};  // read by every backward, from any thread
}  // namespace

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }
void set_poison_gradients(bool enabled) { g_poison.store(enabled, std::memory_order_relaxed); }
bool poison_gradients() { return g_poison.load(std::memory_order_relaxed); }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && (t->requires_grad() || t->grad_fn())) return true;
  return false;
}

void record(const std::shared_ptr<Node>& node, const std::vector<RecordedInput>& inputs, Tensor& output) {
  node->edges.clear();
  node->edges.reserve(inputs.size());
  for (const RecordedInput& in : inputs) {
    Edge e;
    e.mode = in.mode;
    if (in.tensor && in.tensor->defined()) {
      e.shape = in.tensor->shape();
      e.device = in.tensor->device();
      if (in.tensor->grad_fn())
        e.node = in.tensor->grad_fn();
      else if (in.tensor->requires_grad())
        e.leaf = in.tensor->impl_ptr();
    }
    node->edges.push_back(std::move(e));
  }
  output.impl().grad_fn = node;
}

void record(const std::shared_ptr<Node>& node, std::initializer_list<RecordedInput> inputs, Tensor& output) {
  record(node, std::vector<RecordedInput>(inputs), output);
}

namespace {

// Reverse post-order of the graph below `root`: every node comes before the nodes it feeds from.
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  seen.insert(root);
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->edges.size()) {
      Node* child = node->edges[next++].node.get();
      if (child && seen.insert(child).second) stack.push_back({child, 0});
    } else {
      post.push_back(node);
      stack.pop_back();
    }
  }
  return {post.rbegin(), post.rend()};
}

// Adds g into the gradient already held for a leaf (parameters accumulate). g must be a buffer
// that nothing else refers to: with no gradient yet, the leaf takes it over.
void accumulate_into_leaf(TensorImpl& leaf, const Tensor& g) {
  if (!leaf.grad) {
    leaf.grad = g.impl_ptr();
  } else {
    Tensor dst(leaf.grad);
    kernels::add_inplace(dst, g);
  }
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad_output) {
  Tensor seed = grad_output;
  if (!seed.defined()) {
    FSTM_CHECK(root.numel() == 1, "backward() without a gradient needs a one-element output, got ",
               root.describe());
    seed = Tensor::full(root.shape(), 1.0f, DType::f32, root.device());
  } else {
    seed = seed.clone();  // the engine owns every gradient it hands to a node (nodes may overwrite it)
  }
  check_same_shape(seed, root, "backward");
  if (!root.grad_fn()) {  // a leaf: its gradient is the seed
    FSTM_CHECK(root.requires_grad(), "backward() on ", root.describe(),
               " which does not require grad and has no recorded history");
    accumulate_into_leaf(root.impl(), seed);
    return;
  }

  NoGradGuard no_grad;  // backward kernels record nothing
  const std::vector<Node*> order = topological_order(root.grad_fn().get());
  std::unordered_map<Node*, Tensor> pending;  // gradient flowing into each node's output
  pending[root.grad_fn().get()] = seed;

  for (Node* node : order) {
    auto it = pending.find(node);
    if (it == pending.end()) continue;  // no gradient reached this node
    Tensor grad_out = std::move(it->second);
    pending.erase(it);

    std::vector<GradSlot> slots(node->edges.size());
    for (size_t i = 0; i < node->edges.size(); ++i) {
      const Edge& e = node->edges[i];
      if (!e.active()) continue;
      slots[i].mode = e.mode;
      slots[i].active = true;
      if (e.mode == GradMode::Handover) continue;  // the node sets it
      if (e.mode == GradMode::Accumulate) {
        if (e.leaf && e.leaf->grad && Tensor(e.leaf->grad).device() == e.device) {
          slots[i].grad = Tensor(e.leaf->grad);  // parameters accumulate in place
        } else {
          slots[i].grad = Tensor::zeros(e.shape, DType::f32, e.device);
        }
      } else {
        slots[i].grad = Tensor::empty(e.shape, DType::f32, e.device);
        if (g_poison) slots[i].grad.fill_(std::numeric_limits<float>::quiet_NaN());
      }
    }

    node->backward(grad_out, slots);
    node->release_saved();

    for (size_t i = 0; i < node->edges.size(); ++i) {
      const Edge& e = node->edges[i];
      if (!e.active()) continue;
      Tensor& g = slots[i].grad;
      FSTM_CHECK(g.defined() && g.shape() == e.shape, node->name(), " did not produce the gradient of its input ", i);
      if (e.leaf) {
        if (!(e.leaf->grad && Tensor(e.leaf->grad).shares_storage(g))) accumulate_into_leaf(*e.leaf, g);
      } else {
        auto [slot, inserted] = pending.try_emplace(e.node.get(), g);
        if (!inserted) kernels::add_inplace(slot->second, g);  // fan-out: gradients add up
      }
    }
  }
}

}  // namespace fstm
