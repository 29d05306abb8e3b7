#include "fstm/cli/stop_signal.h"

#include <signal.h>

namespace fstm::cli {

namespace {

std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig); }

}  // namespace

const std::atomic<int>& stop_signal() { return g_stop_signal; }

void install_stop_handlers() {
  g_stop_signal.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // the handler fires once: a second Ctrl-C kills the program as usual
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace fstm::cli
