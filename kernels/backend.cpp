#include "kernels/backend.h"

#include <omp.h>

#include <atomic>

#include "tensor/environment.h"

namespace fstm::kernels {

namespace {
CpuPath initial_path() { return environment().reference_kernels ? CpuPath::Reference : CpuPath::Fast; }
// Read by every kernel call, from any thread (OpenMP, loader workers); set by tests and the CLI.
std::atomic<CpuPath> g_path{initial_path()};
}  // namespace

void set_cpu_path(CpuPath path) { g_path.store(path, std::memory_order_relaxed); }
CpuPath cpu_path() { return g_path.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}
int num_threads() { return omp_get_max_threads(); }

}  // namespace fstm::kernels
