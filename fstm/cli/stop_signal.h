// Ctrl-C (SIGINT) and SIGTERM for long commands (train, demo, hypothesis): the first one only
// sets a flag that the work polls (TrainOptions::stop and the like), so that it saves its state
// and exits cleanly; a second one kills the program as usual.
#pragma once
#include <atomic>

namespace fstm::cli {

// The signal number once SIGINT or SIGTERM arrived after install_stop_handlers(), else 0.
const std::atomic<int>& stop_signal();

// Installs the one-shot handlers (SA_RESETHAND) and clears the flag.
void install_stop_handlers();

}  // namespace fstm::cli
