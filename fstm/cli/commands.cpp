#include "fstm/cli/commands.h"

namespace fstm::cli {

std::vector<Command> all_commands() {
  return {
      make_info_command(),
      make_synth_command(),
  };
}

}  // namespace fstm::cli
