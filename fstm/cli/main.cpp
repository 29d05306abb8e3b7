// The fstm command-line program. Each subcommand lives in its own file (fstm/cli/cmd_*.cpp) and
// registers itself here; errors a user can cause print one clear line and exit 1, bad flags
// print usage and exit 2.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "fstm/cli/commands.h"
#include "io/limits.h"
#include "tensor/error.h"

int main(int argc, char** argv) {
  // Past a file-size limit (ulimit -f) a write fails with EFBIG, reported with the file's name,
  // instead of the default SIGXFSZ killing the process without a word.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"fstm: FST-Matching deepfake detection and Shapley explanations"};
  app.require_subcommand(1);
  app.set_version_flag("--version", FSTM_VERSION_STRING);
  // Bounds on what an input file may claim (io/limits.h), for every subcommand.
  fstm::io::InputLimits limits;
  auto* bounds = app.add_option_group("Input limits", "refuse forged or absurd files before allocating for them");
  bounds->add_option("--max-image-pixels", limits.max_image_pixels, "Pixels of one decoded image")
      ->capture_default_str();
  bounds->add_option("--max-video-pixels", limits.max_video_pixels, "Pixels of one video frame")
      ->capture_default_str();
  bounds->add_option("--max-video-frames", limits.max_video_frames, "Frames one video may list or hold")
      ->capture_default_str();
  bounds->add_option("--max-json-bytes", limits.max_json_bytes, "Bytes of one JSON file (index, ldm.json, splits)")
      ->capture_default_str();
  std::vector<fstm::cli::Command> commands = fstm::cli::all_commands();
  for (auto& c : commands) c.setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // unknown flag or bad value: usage was printed
  }
  try {
    fstm::io::set_input_limits(limits);
    for (auto& c : commands)
      if (c.parsed()) return c.run();
  } catch (const fstm::Error& e) {
    std::cerr << "fstm: error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "fstm: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "fstm: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
