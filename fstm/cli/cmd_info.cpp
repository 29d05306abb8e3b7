// fstm info: what this build and machine have, as `key: value` lines.
#include <iostream>

#include "fstm/cli/commands.h"
#include "fstm/lib/system_info.h"

namespace fstm::cli {

Command make_info_command() {
  Command c;
  c.add = [](CLI::App& app) {
    return app.add_subcommand("info", "Print the version, CPU features, libraries and devices");
  };
  c.run = [] {
    for (const auto& [key, value] : system_info()) std::cout << key << ": " << value << "\n";
    return 0;
  };
  return c;
}

}  // namespace fstm::cli
