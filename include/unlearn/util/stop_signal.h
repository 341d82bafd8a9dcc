// SIGTERM and SIGUSR1 as a request to stop after the current step (Slurm's --signal, scancel, mpiexec forwarding
// SIGUSR1): the handler only records the signal; long loops poll it and agree on it across ranks. util layer.
#pragma once

namespace unlearn {

/// Installs the handler for SIGTERM and SIGUSR1 (idempotent).
void install_stop_signals();
/// The last stop signal received by this process, 0 when none.
int stop_signal_received();

}  // namespace unlearn
