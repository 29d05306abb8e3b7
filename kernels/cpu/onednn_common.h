// Internal helpers shared by the oneDNN fast paths (kernels/cpu/*_onednn.cpp): the engine, one
// stream per thread, memory descriptors for fstm's layouts, reorders, and a small keyed cache of
// primitives so that a training step builds each convolution once, not once per call.
//
// oneDNN's own primitive cache (on by default) keeps compiled kernels, but building the operation
// and primitive descriptors that it is keyed by still costs tens of microseconds per call; our
// cache skips that too. bench/bench_conv.cpp measures both.
#pragma once
#include <dnnl.hpp>

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/tensor.h"

namespace fstm::kernels::onednn {

using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

dnnl::engine& engine();
// oneDNN streams are not thread-safe; each calling thread gets its own.
dnnl::stream& stream();

// An activation [N, H, W, C] as oneDNN's logical (N, C, H, W) in nhwc layout.
dnnl::memory::desc nhwc_desc(const Shape& s, dt type = dt::f32);
// Any contiguous tensor with the given logical dims and layout tag.
dnnl::memory::desc plain_desc(const dims& d, tag layout, dt type = dt::f32);
// A oneDNN memory object over the tensor's own data (no copy).
dnnl::memory wrap(const dnnl::memory::desc& md, const Tensor& t);
// A oneDNN memory object over raw storage owned by the caller.
dnnl::memory wrap(const dnnl::memory::desc& md, void* data);

// A reorder primitive from one layout to another; with accumulate it computes dst += src (oneDNN's
// sum post-op), which is how parameter gradients computed in a blocked layout are added into the
// caller's buffer in one pass.
dnnl::reorder make_reorder(const dnnl::memory::desc& src, const dnnl::memory::desc& dst, bool accumulate);

// Which implementation oneDNN picked ("jit:avx512_core", "gemm:jit", "ref:any", ...).
std::string impl_name(const dnnl::primitive_desc_base& pd);

// ---- the primitive cache -----------------------------------------------------------------------
// Keys are flat lists of integers: an op tag, then every shape and parameter the primitive depends on.
struct Key {
  std::vector<int64_t> values;
  bool operator==(const Key& o) const { return values == o.values; }
};
struct KeyHash {
  size_t operator()(const Key& k) const;
};

// Test and benchmark hook: with the cache off, every call builds its primitives afresh (oneDNN's
// own cache still applies).
void set_primitive_cache_enabled(bool enabled);
bool primitive_cache_enabled();

// Benchmark hook: convolutions choose their own weight layout (format_tag::any, the default), or
// run on the caller's oihw weights without reorders.
void set_conv_weights_any(bool enabled);
bool conv_weights_any();

// Dense 3x3 stride-1 convolutions can use oneDNN's Winograd kernels where it has them (faster per
// core in isolation; rounding differs from direct convolution by about 1e-5 of the output scale).
// Off by default, as TF32 on CUDA: through a training step's BatchNorm and ReLU kinks that rounding
// grows to 0.3-2% in the first layers' gradients (py_test_resnet_parity fails its 1e-3 bound). It
// pays in training: a ResNet-18 step (2 cores, batch 32) ran at 30 img/s with it against 19.6
// without (2026-11-29). FSTM_CONV_WINOGRAD=1 or this setter turns it on.
void set_conv2d_winograd(bool enabled);
bool conv2d_winograd();

// A least-recently-used map from Key to an immutable value (a primitive and what running it needs).
// Lookups are locked; running the primitives is not (oneDNN primitives may run concurrently).
template <typename Value>
class PrimitiveCache {
 public:
  explicit PrimitiveCache(size_t capacity = 512) : capacity_(capacity) {}

  std::shared_ptr<const Value> get(const Key& key, const std::function<Value()>& make) {
    if (!primitive_cache_enabled()) return std::make_shared<const Value>(make());
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = map_.find(key);
      if (it != map_.end()) {
        order_.splice(order_.begin(), order_, it->second.second);
        return it->second.first;
      }
    }
    auto value = std::make_shared<const Value>(make());  // built outside the lock
    std::lock_guard<std::mutex> lock(mutex_);
    auto [it, inserted] = map_.try_emplace(key, value, order_.end());
    if (!inserted) return it->second.first;  // another thread built it first
    order_.push_front(key);
    it->second.second = order_.begin();
    if (map_.size() > capacity_) {
      map_.erase(order_.back());
      order_.pop_back();
    }
    return value;
  }

 private:
  using Entry = std::pair<std::shared_ptr<const Value>, typename std::list<Key>::iterator>;
  size_t capacity_;
  std::mutex mutex_;
  std::list<Key> order_;  // most recently used first
  std::unordered_map<Key, Entry, KeyHash> map_;
};

}  // namespace fstm::kernels::onednn
