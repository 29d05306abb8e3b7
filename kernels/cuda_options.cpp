#include "kernels/cuda_options.h"

#include <atomic>

namespace fstm::kernels::cuda {

namespace {
std::atomic<bool> g_allow_tf32{false};
}

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

}  // namespace fstm::kernels::cuda
