#include "kernels/backend.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>

namespace fstm::kernels {

namespace {
CpuPath initial_path() {
  const char* env = std::getenv("FSTM_REFERENCE_KERNELS");
  return (env && std::strcmp(env, "0") != 0 && *env) ? CpuPath::Reference : CpuPath::Fast;
}
CpuPath g_path = initial_path();
}  // namespace

void set_cpu_path(CpuPath path) { g_path = path; }
CpuPath cpu_path() { return g_path; }

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}
int num_threads() { return omp_get_max_threads(); }

}  // namespace fstm::kernels
