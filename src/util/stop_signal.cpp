#include "unlearn/util/stop_signal.h"

#include <csignal>

namespace unlearn {
namespace {
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int sig) { g_signal = sig; }
}  // namespace

void install_stop_signals() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

int stop_signal_received() { return static_cast<int>(g_signal); }

}  // namespace unlearn
