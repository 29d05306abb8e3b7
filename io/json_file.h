// Reading a JSON file a user gave: the index, ldm.json, the splits. One place that opens it, checks
// its size against io::input_limits() before reading, and turns a parse error into an fstm::Error
// naming the file.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace fstm::io {

// `what` names the file's role in the parse error ("index", "landmark file", "split file").
nlohmann::json read_json_file(const std::string& path, const char* what);

}  // namespace fstm::io
