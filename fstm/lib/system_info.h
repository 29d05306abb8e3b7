// What this build of fstm has and what the machine offers: for `fstm info` and reports.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace fstm {

std::string version();
std::string cpu_isa();  // the best of "avx512_bf16", "avx512", "avx2", "sse4.2"
std::vector<std::pair<std::string, std::string>> system_info();

}  // namespace fstm
