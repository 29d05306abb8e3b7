// fstm eval: ACC, frame AUC, video AUC, EER and AP of a det or fst checkpoint on a face index, per
// compression and manipulation method (the paper's Table 4), optionally under the robustness
// perturbations of its Table 7.
#include <iostream>

#include "fstm/cli/commands.h"
#include "fstm/cli/options.h"
#include "fstm/lib/evaluator.h"
#include "io/fs.h"

namespace fstm::cli {

namespace {

struct EvalFlags {
  EvalOptions o;
  std::vector<std::string> perturb;
  bool json = false;
  std::string output;
};

int run_eval(EvalFlags& f) {
  EvalOptions o = f.o;
  for (const std::string& p : f.perturb) {
    if (p == "all") {
      o.perturbations.push_back("none");
      for (const std::string& kind : perturbation_kinds())
        for (int s = 1; s <= 5; ++s) o.perturbations.push_back(kind + ":" + std::to_string(s));
    } else {
      o.perturbations.push_back(p);
    }
  }
  const EvalReport r = evaluate(o);
  if (!f.output.empty()) io::write_file_atomic(f.output, r.to_json().dump(2) + "\n");
  if (f.json) {
    std::cout << r.to_json().dump(2) << "\n";
  } else {
    std::cout << r.table();
  }
  return 0;
}

}  // namespace

Command make_eval_command() {
  auto f = std::make_shared<EvalFlags>();
  Command c;
  c.add = [f](CLI::App& app) {
    EvalOptions& o = f->o;
    CLI::App* s = app.add_subcommand("eval", "Detection metrics (ACC, AUC, video AUC, EER, AP) of a det/fst checkpoint");
    add_model_options(*s, o.model);
    s->add_option("--data", o.data, "Face index (index.json from fstm extract)")->required();
    s->add_option("--split", o.split, "Split to evaluate ('all': every frame)")->capture_default_str();
    s->add_option("--threshold-from", o.threshold_split,
                  "Also report ACC at the threshold of best balanced accuracy on this split (e.g. val), per compression");
    s->add_option("--compression", o.compressions, "Compressions (comma-separated: raw,c23,c40; default all)")
        ->delimiter(',');
    s->add_option("--methods", o.methods, "Manipulation methods (comma-separated; default all)")->delimiter(',');
    s->add_option("--perturb", f->perturb,
                  "Perturbations KIND:SEVERITY (saturation, contrast, block, noise, blur, pixelation; 1-5), "
                  "comma-separated or repeated; 'none' for the clean set, 'all' for every one")
        ->delimiter(',');
    s->add_option("--batch", o.batch, "Images per forward pass")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--dtype", o.dtype, "f32 or bf16")->check(CLI::IsMember({"f32", "bf16"}))->capture_default_str();
    s->add_option("--threads", o.threads, "CPU threads (0: all)")->check(CLI::NonNegativeNumber);
    s->add_option("--workers", o.workers, "Loader threads")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--max-bad-fraction", o.max_bad_fraction,
                  "Share of the face PNGs that may be unreadable (each is reported and skipped) before eval fails")
        ->capture_default_str()->check(CLI::Range(0.0, 1.0));
    s->add_option("--seed", o.seed, "Seed of the random perturbations (block, noise)")->capture_default_str();
    s->add_flag("--json", f->json, "Print JSON instead of the table");
    s->add_option("--output", f->output, "Also write the JSON report to this file");
    s->add_flag("--progress,!--no-progress", o.progress, "Progress bar on stderr");
    return s;
  };
  c.run = [f] { return run_eval(*f); };
  return c;
}

}  // namespace fstm::cli
