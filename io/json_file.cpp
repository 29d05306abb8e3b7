#include "io/json_file.h"

#include <filesystem>
#include <fstream>

#include "io/limits.h"
#include "tensor/error.h"

namespace fstm::io {

nlohmann::json read_json_file(const std::string& path, const char* what) {
  std::ifstream f(path);
  FSTM_CHECK(f.good(), path, ": cannot open ", what);
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(path, ec);
  if (!ec) check_json_size(int64_t(bytes), path);
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(path, ": not valid JSON (", e.what(), ")"));
  }
}

}  // namespace fstm::io
