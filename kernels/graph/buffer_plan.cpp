#include "kernels/graph/buffer_plan.h"

#include <algorithm>

namespace fstm {

BufferPlan plan_buffers(const std::vector<BufferRequest>& requests) {
  const int n = int(requests.size());
  BufferPlan plan;
  plan.buffer_of.assign(size_t(n), -1);
  std::vector<int> order;
  for (int v = 0; v < n; ++v)
    if (requests[size_t(v)].first >= 0) order.push_back(v);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return requests[size_t(a)].first < requests[size_t(b)].first; });
  std::vector<int> free_after;  // per buffer: the last step of the values it holds
  for (int v : order) {
    const BufferRequest& r = requests[size_t(v)];
    int chosen = -1;
    for (int b = 0; b < int(free_after.size()); ++b)
      if (free_after[size_t(b)] < r.first && plan.buffer_bytes[size_t(b)] >= r.bytes &&
          (chosen < 0 || plan.buffer_bytes[size_t(b)] < plan.buffer_bytes[size_t(chosen)]))
        chosen = b;
    if (chosen < 0) {
      plan.buffer_bytes.push_back(r.bytes);
      free_after.push_back(-1);
      chosen = int(free_after.size()) - 1;
    }
    free_after[size_t(chosen)] = std::max(free_after[size_t(chosen)], r.last);
    plan.buffer_of[size_t(v)] = chosen;
  }
  return plan;
}

}  // namespace fstm
