// fstm synth: writes the synthetic FaceForensics++ (io/synth.h) to --out.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "fstm/cli/commands.h"
#include "io/synth.h"
#include "tensor/error.h"

namespace fstm::cli {

Command make_synth_command() {
  struct Flags {
    std::string out, methods, contact_sheet;
    io::SynthOptions options;
    bool no_compress = false, force = false, quiet = false;
  };
  auto flags = std::make_shared<Flags>();
  Command c;
  c.add = [flags](CLI::App& app) {
    CLI::App* sub = app.add_subcommand(
        "synth", "Write a synthetic FaceForensics++-style dataset (real videos, 5 manipulations, masks, landmarks, splits)");
    io::SynthOptions& o = flags->options;
    sub->add_option("--out", flags->out, "Output folder (FF++ layout)");
    sub->add_option("--identities", o.identities, "Number of identities = original videos (even)")->capture_default_str();
    sub->add_option("--frames", o.frames, "Frames per video")->capture_default_str();
    sub->add_option("--size", o.size, "Frame width and height in pixels (even)")->capture_default_str();
    sub->add_option("--seed", o.seed, "Random seed; the same seed writes the same bytes")->capture_default_str();
    sub->add_option("--fps", o.fps, "Frame rate of the videos")->capture_default_str();
    sub->add_option("--methods", flags->methods,
                    "Comma-separated subset of Deepfakes,Face2Face,FaceSwap,NeuralTextures,FaceShifter (default: all)");
    sub->add_option("--threads", o.threads, "Videos rendered and encoded in parallel")->capture_default_str();
    sub->add_option("--swap-colour-match", o.swap_colour_match,
                    "Face swaps' colour correction of the donor's skin, as a fraction of each method's (1: the "
                    "methods' full correction; 0: the donor's tone kept)")
        ->capture_default_str();
    sub->add_flag("--no-compress", flags->no_compress, "Write only raw (lossless) videos, not c23/c40");
    sub->add_flag("--force", flags->force, "Replace a previous synthetic dataset in --out");
    sub->add_flag("--quiet", flags->quiet, "No progress lines");
    sub->add_option("--contact-sheet", flags->contact_sheet,
                    "Also write a PNG: a test pair's real frame, each method's fake, zoom, mask and difference");
    return sub;
  };
  c.run = [flags] {
    io::SynthOptions o = flags->options;
    o.compress = !flags->no_compress;
    if (!flags->methods.empty()) {
      o.methods.clear();
      std::stringstream ss(flags->methods);
      for (std::string m; std::getline(ss, m, ',');)
        if (!m.empty()) o.methods.push_back(io::parse_synth_method(m));
      FSTM_CHECK(!o.methods.empty(), "synth: --methods lists no method");
    }
    FSTM_CHECK(!flags->out.empty() || !flags->contact_sheet.empty(), "synth: give --out DIR (and/or --contact-sheet PNG)");
    o.validate();
    if (!flags->contact_sheet.empty()) {
      io::save_image(io::synth_contact_sheet(o), flags->contact_sheet);
      if (!flags->quiet) std::cerr << "synth: wrote " << flags->contact_sheet << "\n";
    }
    if (flags->out.empty()) return 0;
    io::SynthProgress progress;
    if (!flags->quiet)  // about twenty lines per run
      progress = [](int done, int total, const std::string& video) {
        if (done == total || done % std::max(1, total / 20) == 0)
          std::cerr << "synth: " << done << "/" << total << " videos (" << video << ")\n";
      };
    const io::SynthSummary s = io::write_synth_dataset(o, flags->out, flags->force, progress);
    std::cerr << "synth: wrote " << s.real_videos << " real and " << s.fake_videos << " fake videos (" << s.files
              << " files, " << (s.bytes + 524288) / 1048576 << " MiB) to " << flags->out << " in " << s.seconds << " s\n";
    return 0;
  };
  return c;
}

}  // namespace fstm::cli
