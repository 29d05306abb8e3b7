#include "fstm/cli/commands.h"

namespace fstm::cli {

std::vector<Command> all_commands() {
  return {
      make_info_command(),
      make_demo_command(),
      make_synth_command(),
      make_extract_command(),
      make_compress_command(),
      make_subsets_command(),
      make_train_command(),
      make_eval_command(),
      make_predict_command(),
      make_bench_command(),
      make_explain_command(),
      make_hypothesis_command(),
      make_compare_command(),
  };
}

}  // namespace fstm::cli
