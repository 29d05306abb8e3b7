#include "kernels/cuda_options.h"

#include <atomic>

namespace fstm::kernels::cuda {

namespace {
std::atomic<bool> g_allow_tf32{false};
std::atomic<bool> g_deterministic{true};
}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

void set_deterministic_algorithms(bool deterministic) { g_deterministic.store(deterministic); }
bool deterministic_algorithms() { return g_deterministic.load(); }

}  // namespace fstm::kernels::cuda
