// How subcommands plug into the CLI: each cmd_*.cpp defines a make_*_command() that adds its
// CLI11 subcommand with its flags and returns the function that runs it.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#ifndef FSTM_VERSION
#define FSTM_VERSION "0.0.0"
#endif
#define FSTM_VERSION_STRING FSTM_VERSION

namespace fstm::cli {

struct Command {
  std::function<CLI::App*(CLI::App&)> add;  // registers the subcommand and its flags
  std::function<int()> run;                 // runs it after parsing; returns the exit code
  CLI::App* sub = nullptr;

  void setup(CLI::App& app) { sub = add(app); }
  bool parsed() const { return sub && sub->parsed(); }
};

// Every subcommand; the order is the order of `fstm --help`.
std::vector<Command> all_commands();

Command make_info_command();
Command make_synth_command();    // cmd_synth.cpp
Command make_extract_command();  // cmd_extract.cpp
Command make_compress_command(); // cmd_extract.cpp
Command make_subsets_command();  // cmd_extract.cpp
Command make_train_command();    // cmd_train.cpp
Command make_eval_command();     // cmd_eval.cpp
Command make_predict_command();  // cmd_predict.cpp
Command make_bench_command();    // cmd_bench.cpp
Command make_explain_command();  // cmd_explain.cpp
Command make_hypothesis_command();  // cmd_hypothesis.cpp
Command make_compare_command();  // cmd_compare.cpp
Command make_demo_command();     // cmd_demo.cpp

}  // namespace fstm::cli
