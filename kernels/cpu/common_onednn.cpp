// Compiled only with oneDNN (the name does not end in _onednn.cpp, so the build keeps the file and
// this guard empties it).
#include "fstm_build_config.h"
#if FSTM_HAVE_ONEDNN
#include "kernels/cpu/onednn_common.h"
#include "tensor/environment.h"

#include <atomic>
#include <cstdlib>

namespace fstm::kernels::onednn {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory::desc nhwc_desc(const Shape& s, dt type) {
  FSTM_CHECK(s.size() == 4, "oneDNN: expected an activation [N, H, W, C], got ", s.str());
  return dnnl::memory::desc({s[0], s[3], s[1], s[2]}, type, tag::nhwc);
}

dnnl::memory::desc plain_desc(const dims& d, tag layout, dt type) { return dnnl::memory::desc(d, type, layout); }

dnnl::memory wrap(const dnnl::memory::desc& md, const Tensor& t) { return dnnl::memory(md, engine(), t.raw_data()); }

dnnl::memory wrap(const dnnl::memory::desc& md, void* data) { return dnnl::memory(md, engine(), data); }

dnnl::reorder make_reorder(const dnnl::memory::desc& src, const dnnl::memory::desc& dst, bool accumulate) {
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops ops;
    ops.append_sum(1.0f);
    attr.set_post_ops(ops);
  }
  return dnnl::reorder(dnnl::reorder::primitive_desc(engine(), src, engine(), dst, attr));
}

std::string impl_name(const dnnl::primitive_desc_base& pd) { return pd.impl_info_str(); }

size_t KeyHash::operator()(const Key& k) const {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the 64-bit words
  for (int64_t v : k.values) {
    h ^= uint64_t(v);
    h *= 0x100000001b3ull;
  }
  return size_t(h);
}

namespace {
std::atomic<bool> g_cache_enabled{true};
std::atomic<bool> g_conv_weights_any{true};
std::atomic<bool> g_conv2d_winograd{environment().conv_winograd};
}  // namespace
void set_primitive_cache_enabled(bool enabled) { g_cache_enabled = enabled; }
bool primitive_cache_enabled() { return g_cache_enabled; }
void set_conv_weights_any(bool enabled) { g_conv_weights_any = enabled; }
bool conv_weights_any() { return g_conv_weights_any; }
void set_conv2d_winograd(bool enabled) { g_conv2d_winograd = enabled; }
bool conv2d_winograd() { return g_conv2d_winograd; }

}  // namespace fstm::kernels::onednn

#endif  // FSTM_HAVE_ONEDNN
