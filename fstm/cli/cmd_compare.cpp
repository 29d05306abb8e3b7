// fstm compare: v_d against FST-Matching as the paper's Table 4 compares them (fstm/lib/compare.h).
//
//   fstm compare --out cmp/                              # synthetic data, raw/c23/c40, 3 seeds,
//                                                        # from the synthetic identity init
//   fstm compare --out cmp/ --compressions c40 --seeds 3 --init resnet18-imagenet.safetensors
#include <iostream>

#include "fstm/cli/commands.h"
#include "fstm/cli/stop_signal.h"
#include "fstm/lib/compare.h"
#include "fstm/lib/progress.h"
#include "kernels/backend.h"

namespace fstm::cli {

Command make_compare_command() {
  struct Flags {
    CompareOptions o;
    bool quick = false, quiet = false;
    std::string fst_head = "mlp", int_bound = "logistic", init = "synthetic-identity";
    CLI::App* sub = nullptr;
  };
  auto f = std::make_shared<Flags>();
  Command c;
  c.add = [f](CLI::App& app) {
    CompareOptions& o = f->o;
    CLI::App* s = app.add_subcommand(
        "compare", "v_d against FST-Matching, trained and tested at the same compression with equal steps, "
                   "initialisation and seeds (the paper's Table 4), with a report");
    f->sub = s;
    s->add_option("--data", o.data, "Face index (fstm extract); default: the demo's synthetic data, made under --work");
    s->add_option("--out", o.out, "Output folder: report.html, results.json, compare.csv")->required();
    s->add_option("--work", o.work, "Folder for the synthetic data and training runs, reused between runs (default OUT/work)");
    s->add_option("--compressions", o.compressions, "Compressions, each trained and tested alike")
        ->delimiter(',')
        ->check(CLI::IsMember({"raw", "c23", "c40"}))
        ->capture_default_str();
    s->add_option("--seeds", o.seeds, "Training seeds per model and compression")->capture_default_str();
    s->add_option("--seed", o.seed, "First seed")->capture_default_str();
    s->add_option("--arch", o.arch, "Backbone of both models")->capture_default_str();
    s->add_option("--init", f->init,
                  "Every backbone's start: a weights file (.safetensors: torchvision's or a fstm checkpoint), "
                  "'random' (from the seed), or 'synthetic-identity': a network trained to name the donor of "
                  "face swaps of 600 other synthetic people, the stand-in for ImageNet weights (made once under "
                  "--work, about 30 min on 2 cores)")
        ->capture_default_str();
    s->add_option("--epochs", o.epochs, "Epochs of both models (the same steps)")->capture_default_str();
    s->add_option("--batch", o.batch, "Training batch size")->capture_default_str();
    s->add_option("--lr", o.lr, "Learning rate (AdamW, cosine schedule)")->capture_default_str();
    s->add_option("--fst-head", f->fst_head, "FST-Matching's real/fake head: mlp, or linear (the released code; its interaction is 0)")
        ->check(CLI::IsMember({"mlp", "linear"}))
        ->capture_default_str();
    s->add_option("--l-src", o.l_src, "FST-Matching: weight of the source identity loss")->capture_default_str();
    s->add_option("--l-tgt", o.l_tgt, "FST-Matching: weight of the target identity loss")->capture_default_str();
    s->add_option("--l-int", o.l_int, "FST-Matching: weight of the interaction loss (Eq. 5)")->capture_default_str();
    s->add_option("--int-bound", f->int_bound, "FST-Matching's interaction loss: logistic, clamp:C or none (as fstm train)")
        ->capture_default_str();
    s->add_option("--threads", o.threads, "CPU threads (default: all)")->check(CLI::NonNegativeNumber);
    s->add_flag("--quick", f->quick, "Tiny sizes for tests: 12 synthetic identities, c40, 2 seeds, 1 epoch");
    s->add_flag("--quiet", f->quiet, "No progress bars");
    return s;
  };
  c.run = [f] {
    CompareOptions o = f->o;
    o.fst_head = parse_fst_head(f->fst_head);
    o.interaction = parse_interaction_bound(f->int_bound);
    o.identity_init = f->init == "synthetic-identity";
    o.init = f->init == "synthetic-identity" || f->init == "random" ? "" : f->init;
    if (f->quick) {
      CompareOptions q = CompareOptions::quick(o);
      auto given = [&](const char* flag) { return f->sub->get_option(flag)->count() > 0; };
      if (given("--compressions")) q.compressions = o.compressions;
      if (given("--seeds")) q.seeds = o.seeds;
      if (given("--epochs")) q.epochs = o.epochs;
      o = q;
    }
    o.progress = !f->quiet && progress_stream() != nullptr;
    if (o.threads > 0) kernels::set_num_threads(o.threads);
    install_stop_handlers();
    o.stop = &stop_signal();
    CompareResult r;
    try {
      r = run_compare(o);
    } catch (const Interrupted& e) {
      std::cerr << e.what() << "; run the same command again to continue\n";
      return 128 + e.signal;
    }
    write_compare_outputs(r);
    for (const CompareVerdict& v : r.verdicts) {
      std::cout << "compare " << v.compression << ": FST - v_d frame AUC " << v.mean;
      if (v.auc_difference.size() > 1) std::cout << " +- " << v.sd;
      std::cout << " over " << v.auc_difference.size() << " seeds: " << v.verdict << "\n";
    }
    for (const auto& [c, rate] : r.init_donor_rate)
      std::cout << "compare " << c << ": the initialisation's own features have a donor rate of " << rate
                << " on unseen test swaps\n";
    std::cout << "compare: " << r.out << "/report.html (results.json, compare.csv) in "
              << ProgressBar::format_duration(r.seconds) << "\n";
    return 0;
  };
  return c;
}

}  // namespace fstm::cli
