#include "io/json_file.h"

#include "io/fs.h"
#include "io/limits.h"
#include "tensor/error.h"

namespace fstm::io {

nlohmann::json read_json_file(const std::string& path, const char* what) {
  // InputFile refuses a missing file, a folder or a device with a message naming the path (a
  // stream on a folder opens fine, then throws std::ios_failure from inside the parser).
  InputFile file(path);
  check_json_size(int64_t(file.size()), path);
  std::string text(size_t(file.size()), '\0');
  file.read_at(0, text.data(), text.size());
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(path, ": the ", what, " is not valid JSON (", e.what(), ")"));
  }
}

}  // namespace fstm::io
