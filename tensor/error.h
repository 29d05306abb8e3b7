// One exception type for every error a user can cause (bad file, bad shape, bad flag).
// Messages name the file or tensor and say what is wrong; the CLI prints them and exits 1.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace fstm {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}
}  // namespace detail

// FSTM_CHECK(cond, "message parts", ...) throws fstm::Error with the parts joined.
#define FSTM_CHECK(cond, ...)                                            \
  do {                                                                   \
    if (!(cond)) throw ::fstm::Error(::fstm::detail::concat(__VA_ARGS__)); \
  } while (0)

}  // namespace fstm
