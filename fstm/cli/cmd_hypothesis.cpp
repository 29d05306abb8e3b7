// fstm hypothesis 1|2|3: the paper's hypotheses as experiments (fstm/lib/hypotheses.h).
//
//   fstm hypothesis 1 --out h1/                         # synthetic data, trains v_d, v_s, v_t
//   fstm hypothesis 3 --data faces/index.json --det d.safetensors --source s.safetensors
//                     --target t.safetensors --out h3/
#include <iostream>

#include "fstm/cli/commands.h"
#include "fstm/cli/stop_signal.h"
#include "fstm/lib/hypotheses.h"
#include "fstm/lib/progress.h"
#include "kernels/backend.h"

namespace fstm::cli {

Command make_hypothesis_command() {
  struct Flags {
    HypothesisOptions o;
    bool quick = false, quiet = false;
    CLI::App* sub = nullptr;
  };
  auto f = std::make_shared<Flags>();
  Command c;
  c.add = [f](CLI::App& app) {
    HypothesisOptions& o = f->o;
    CLI::App* s = app.add_subcommand(
        "hypothesis", "Run one of the paper's hypotheses (1: Q > 0, 2: paired vs unpaired, 3: compression) with a report");
    f->sub = s;
    s->add_option("number", o.hypothesis, "1, 2 or 3")->required();
    s->add_option("--data", o.data, "Face index (fstm extract); default: the synthetic data set, made under --work");
    s->add_option("--out", o.out, "Output folder: report.html, results.json, CSV tables")->required();
    s->add_option("--work", o.work, "Folder for the synthetic data and training runs, reused between runs (default OUT/work)");
    s->add_option("--archs", o.archs, "Backbones to train (comma-separated)")->delimiter(',')->capture_default_str();
    s->add_option("--det", o.det, "v_d checkpoint (det or fst) instead of training one");
    s->add_option("--source", o.source, "v_s checkpoint (source identity encoder) instead of training one");
    s->add_option("--target", o.target, "v_t checkpoint (target identity encoder) instead of training one");
    s->add_option("--paired", o.paired, "H2: detector trained on the paired subset");
    s->add_option("--unpaired", o.unpaired, "H2: detector trained on the unpaired subset");
    s->add_option("--compression", o.compression, "Compression trained, tested and explained (H1, H2)")
        ->check(CLI::IsMember({"raw", "c23", "c40"}))
        ->capture_default_str();
    s->add_option("--splits", o.splits, "Splits the explained faces may come from, in order of preference")
        ->delimiter(',')
        ->capture_default_str();
    s->add_option("--identities", o.identities, "H2: real identities per subset (default 40, or what the train split allows)");
    s->add_option("--grid", o.grid, "L: Shapley players are the L x L grid cells")->capture_default_str();
    s->add_option("--samples", o.samples, "T: permutations per map")->capture_default_str();
    s->add_option("--faces", o.faces, "Fake faces explained per manipulation method (default 6: 30 over five methods)");
    s->add_option("--instability-faces", o.instability_faces,
                  "H1: faces whose maps are explained twice, for the instability of two maps of T samples")
        ->capture_default_str();
    s->add_option("--batch", o.batch, "Masked images per forward")->capture_default_str();
    s->add_option("--seed", o.seed, "Seed of the training runs, face choice and Shapley permutations")->capture_default_str();
    s->add_option("--epochs-det", o.training.epochs_det, "Epochs of the detectors trained here")->capture_default_str();
    s->add_option("--epochs-source", o.training.epochs_encoders, "Epochs of v_s")->capture_default_str();
    s->add_option("--epochs-target", o.training.epochs_target, "Epochs of v_t")->capture_default_str();
    s->add_option("--train-batch", o.training.batch, "Training batch size")->capture_default_str();
    s->add_option("--lr", o.training.lr, "Training learning rate (AdamW, cosine schedule)")->capture_default_str();
    s->add_option("--synthetic-identities", o.synthetic.identities, "Synthetic default: identities")->capture_default_str();
    s->add_option("--synthetic-faces", o.synthetic.faces_per_video, "Synthetic default: faces per video")->capture_default_str();
    s->add_option("--threads", o.threads, "CPU threads (default: all)")->check(CLI::NonNegativeNumber);
    s->add_flag("--quick", f->quick, "Tiny sizes for tests: 16 synthetic identities, 1 epoch per model, 4x4 grid, T = 4, 1 face per method");
    s->add_flag("--quiet", f->quiet, "No progress bars");
    return s;
  };
  c.run = [f] {
    HypothesisOptions o = f->o;
    if (f->quick) {
      // --quick sets small sizes; flags given explicitly still win
      HypothesisOptions q = HypothesisOptions::quick(o);
      auto given = [&](const char* flag) { return f->sub->get_option(flag)->count() > 0; };
      if (given("--grid")) q.grid = o.grid;
      if (given("--samples")) q.samples = o.samples;
      if (given("--faces")) q.faces = o.faces;
      if (given("--instability-faces")) q.instability_faces = o.instability_faces;
      if (given("--epochs-det")) q.training.epochs_det = o.training.epochs_det;
      if (given("--epochs-source")) q.training.epochs_encoders = o.training.epochs_encoders;
      if (given("--epochs-target")) q.training.epochs_target = o.training.epochs_target;
      if (given("--train-batch")) q.training.batch = o.training.batch;
      if (given("--lr")) q.training.lr = o.training.lr;
      if (given("--synthetic-identities")) q.synthetic.identities = o.synthetic.identities;
      if (given("--synthetic-faces")) q.synthetic.faces_per_video = o.synthetic.faces_per_video;
      o = q;
    }
    o.progress = !f->quiet && progress_stream() != nullptr;
    if (o.threads > 0) kernels::set_num_threads(o.threads);
    install_stop_handlers();
    o.stop = &stop_signal();
    HypothesisResult r;
    try {
      r = run_hypothesis(o);
    } catch (const Interrupted& e) {
      // finished training runs and data are kept under --work; the same command continues from them
      std::cerr << e.what() << "; run the same command again to continue\n";
      return 128 + e.signal;
    }
    std::cout << "hypothesis " << o.hypothesis << ": " << r.out << "/report.html (results.json, CSV tables) in "
              << ProgressBar::format_duration(r.seconds) << "\n";
    return 0;
  };
  return c;
}

}  // namespace fstm::cli
