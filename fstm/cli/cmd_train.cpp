// fstm train: train a detector (det), a source/target encoder or the FST-Matching model (fst) on
// a face index. Settings come from flags or --config FILE.json (keys as the flags, '_' for '-');
// flags given on the command line win. Ctrl-C (SIGINT) or SIGTERM saves DIR/last.safetensors and
// exits with 128 + the signal; `--resume` continues from there.
#include <filesystem>
#include <iostream>
#include <map>

#include "fstm/cli/commands.h"
#include "fstm/cli/stop_signal.h"
#include "fstm/lib/trainer.h"
#include "io/fs.h"

namespace fstm::cli {

namespace {

nlohmann::json load_json(const std::string& path) {
  const std::vector<uint8_t> bytes = io::read_file(path);
  try {
    return nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat(path, ": not valid JSON: ", e.what()));
  }
}

// The settings given explicitly on the command line, as JSON. Every flag but these few names a
// setting (its first long name with '_' for '-').
nlohmann::json given_flags(CLI::App& sub, const TrainOptions& parsed) {
  const nlohmann::json all = train_options_json(parsed);
  nlohmann::json given = nlohmann::json::object();
  for (const CLI::Option* opt : sub.get_options()) {
    if (opt->get_lnames().empty()) continue;
    std::string key = opt->get_lnames().front();
    if (key == "help" || key == "config" || key == "resume" || key == "progress") continue;
    std::replace(key.begin(), key.end(), '-', '_');
    FSTM_CHECK(all.contains(key), "internal: the flag --", opt->get_lnames().front(), " has no setting '", key, "'");
    if (opt->count() > 0) given[key] = all[key];
  }
  return given;
}

struct TrainFlags {
  TrainOptions o;
  // The flags of typed settings (model, optimizer, device, ...) bind to their text, which
  // apply_train_config parses with the names config.json uses. Defaults: o's, as names.
  std::map<std::string, std::string> typed;
  std::string config;
  CLI::App* sub = nullptr;
};

// The text a typed flag binds to (std::map keeps the reference valid).
std::string& typed_flag(TrainFlags& f, const std::string& key) {
  return f.typed.try_emplace(key, train_options_json(f.o).at(key).get<std::string>()).first->second;
}

int run_train(TrainFlags& f) {
  // defaults <- the run's saved config.json (--resume) <- --config <- flags
  apply_train_config(f.o, nlohmann::json(f.typed), "the command line");
  const nlohmann::json flags = given_flags(*f.sub, f.o);
  TrainOptions probe;
  if (!f.config.empty()) apply_train_config(probe, load_json(f.config), f.config);
  apply_train_config(probe, flags, "the command line");
  TrainOptions o;
  if (f.o.resume) {
    FSTM_CHECK(!probe.out.empty(), "--resume needs the run directory: --out DIR");
    const std::string saved = (std::filesystem::path(probe.out) / "config.json").string();
    FSTM_CHECK(std::filesystem::exists(saved), "nothing to resume: ", saved, " does not exist");
    apply_train_config(o, load_json(saved), saved);
    const nlohmann::json before = train_options_json(o);
    for (const auto& [key, value] : flags.items())
      if (before[key] != value && key != "epochs" && key != "max_steps" && key != "threads" && key != "workers" &&
          key != "checkpoint_every" && key != "out")
        std::cerr << "fstm train: warning: --" << key << " changes the run's setting (" << before[key].dump() << " -> "
                  << value.dump() << "); the resumed run will not match an uninterrupted one\n";
  }
  if (!f.config.empty()) apply_train_config(o, load_json(f.config), f.config);
  apply_train_config(o, flags, "the command line");
  o.resume = f.o.resume;
  o.progress = f.o.progress;
  install_stop_handlers();
  o.stop = &stop_signal();

  const TrainResult r = train(o);
  if (r.stopped_by_signal) {
    std::cerr << "fstm train: stopped by signal " << r.stopped_by_signal << " at step " << r.steps << "; saved "
              << r.last << "; continue with: fstm train --out " << o.out << " --resume\n";
    return 128 + r.stopped_by_signal;
  }
  std::cout << "trained " << r.config.describe() << ": " << r.epochs_completed << " epochs, " << r.steps
            << " steps" << (r.stopped_at_max_steps ? " (stopped at --max-steps)" : "") << "\n";
  std::cout << "last: " << r.last << "\n";
  if (!r.best.empty()) std::cout << "best: " << r.best << " (validation score " << r.best_score << ")\n";
  std::cout << "unreadable face images: " << r.bad_files << "\n";
  return 0;
}

}  // namespace

Command make_train_command() {
  auto f = std::make_shared<TrainFlags>();
  Command c;
  c.add = [f](CLI::App& app) {
    TrainOptions& o = f->o;
    CLI::App* s = app.add_subcommand("train", "Train a detector (det), source/target encoder or the FST-Matching model");
    f->sub = s;
    s->add_option("--model", typed_flag(*f, "model"), "det, source, target or fst")
        ->check(CLI::IsMember({"det", "source", "target", "fst"}))
        ->capture_default_str();
    s->add_option("--arch", o.arch, "Backbone architecture")->capture_default_str();
    s->add_option("--data", o.data, "Face index (index.json from fstm extract)");
    s->add_option("--out", o.out, "Run directory (config.json, metrics.jsonl, last/best.safetensors)");
    s->add_option("--init", o.init, "torchvision weights (.safetensors) for the backbones; the head is ignored");
    s->add_option("--config", f->config, "JSON settings (keys as the flags with '_'); flags given here win");
    s->add_flag("--resume", o.resume, "Continue the run in --out from last.safetensors (also mid-epoch)");
    // data
    s->add_option("--train-split", o.train_split, "Split to train on ('all': every frame)")->capture_default_str();
    s->add_option("--val-split", o.val_split, "Split to validate on each epoch ('' for none)")->capture_default_str();
    s->add_option("--methods", o.methods, "Manipulation methods (comma-separated; reals always)")->delimiter(',');
    s->add_option("--compressions,--compression", o.compressions, "Compressions (comma-separated: raw,c23,c40)")
        ->delimiter(',');
    s->add_option("--size", o.size, "Input side in pixels (0: the index's)")->check(CLI::Range(0, 4096));
    s->add_option("--balance", typed_flag(*f, "balance"),
                  "none or oversample (default: oversample for det/fst, none for encoders)")
        ->check(CLI::IsMember({"none", "oversample"}));
    s->add_flag("--augment,!--no-augment", o.augment, "Training augmentations (the authors'); --no-augment: none");
    s->add_flag("--photometric,!--no-photometric", o.photometric, "Photometric augmentations");
    s->add_flag("--jitter,!--no-jitter", o.jitter, "Alignment jitter (needs landmarks in the index)");
    s->add_flag("--flip,!--no-flip", o.flip, "Horizontal flips");
    s->add_option("--workers", o.workers, "Loader threads")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--max-bad-fraction", o.max_bad_fraction,
                  "Share of the face PNGs that may be unreadable (each is reported and skipped) before the run fails")
        ->capture_default_str()->check(CLI::Range(0.0, 1.0));
    // optimisation
    s->add_option("--optimizer", typed_flag(*f, "optimizer"), "adamw or sgd")
        ->check(CLI::IsMember({"adamw", "sgd"}))
        ->capture_default_str();
    s->add_option("--lr", o.lr, "Learning rate")->capture_default_str();
    s->add_option("--weight-decay", o.weight_decay, "Weight decay (decoupled for AdamW)")->capture_default_str();
    s->add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str();
    s->add_flag("--nesterov", o.nesterov, "SGD with Nesterov momentum");
    s->add_option("--schedule", typed_flag(*f, "schedule"), "constant, step or cosine")
        ->check(CLI::IsMember({"constant", "step", "cosine"}))
        ->capture_default_str();
    s->add_option("--warmup-epochs", o.warmup_epochs, "Linear warm-up length in epochs (fractions allowed)")->capture_default_str();
    s->add_option("--step-epochs", o.step_epochs, "step: decay every N epochs")->capture_default_str();
    s->add_option("--gamma", o.gamma, "step: decay factor")->capture_default_str();
    s->add_option("--min-lr", o.min_lr, "cosine: final learning rate")->capture_default_str();
    s->add_option("--batch", o.batch, "Batch size")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--epochs", o.epochs, "Epochs")->capture_default_str()->check(CLI::PositiveNumber);
    s->add_option("--val-batch", o.val_batch, "Batch size of validation")->capture_default_str()->check(CLI::PositiveNumber);
    // FST-Matching
    s->add_option("--l-src", o.l_src, "Weight of the source identity loss")->capture_default_str();
    s->add_option("--l-tgt", o.l_tgt, "Weight of the target identity loss")->capture_default_str();
    s->add_option("--l-int", o.l_int, "Weight of the interaction loss (Eq. 5)")->capture_default_str();
    s->add_option("--int-bound", typed_flag(*f, "int_bound"),
                  "Interaction loss: logistic (softplus of the margin), clamp:C (margin capped at C), or none "
                  "(Eq. 5 as written, unbounded)")
        ->capture_default_str();
    s->add_option("--fst-head", typed_flag(*f, "fst_head"),
                  "Real/fake head: mlp, or linear (the released code; its interaction is 0)")
        ->check(CLI::IsMember({"mlp", "linear"}))
        ->capture_default_str();
    s->add_option("--fst-hidden", o.fst_hidden, "Hidden width of the mlp head")->capture_default_str()->check(CLI::PositiveNumber);
    // run
    s->add_option("--seed", o.seed, "Seed of everything random")->capture_default_str();
    s->add_option("--threads", o.threads, "CPU threads (0: all)")->check(CLI::NonNegativeNumber);
    s->add_option("--device", typed_flag(*f, "device"), "cpu or cuda[:N]")->capture_default_str();
    s->add_flag("--fast-conv", o.fast_conv,
                "CPU: oneDNN's Winograd convolutions, about 1.5x faster per ResNet step; gradients differ by "
                "0.3-2% from the default direct convolutions (README, Precision)");
    s->add_flag("--nondeterministic-algorithms", o.nondeterministic_algorithms,
                "CUDA: allow cuDNN's non-deterministic (faster) convolution algorithms; training is then not "
                "bit-reproducible");
    s->add_option("--max-steps", o.max_steps, "Stop (and save) after this many steps in total")->check(CLI::NonNegativeNumber);
    s->add_option("--checkpoint-every", o.checkpoint_every, "Also save last.safetensors every N steps")
        ->check(CLI::NonNegativeNumber);
    s->add_flag("--progress,!--no-progress", o.progress, "Progress bar and log on stderr");
    return s;
  };
  c.run = [f] { return run_train(*f); };
  return c;
}

}  // namespace fstm::cli
