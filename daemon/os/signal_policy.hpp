// What flowlatd does with each signal. Every signal whose default action would end the
// process is caught, so that no stray `kill -USR1` can take the probes down without
// detaching them or lose what the daemon has counted: it either stops flowlatd cleanly,
// reloads the configuration, or is logged and ignored. Faults (SEGV, BUS, FPE, ILL, TRAP,
// SYS, ABRT) keep their default action: they are not requests, and KILL and STOP cannot
// be caught.
#pragma once

#include <string>
#include <vector>

namespace flowlat::signal_policy {

enum class Mode { daemon, print };
enum class Action { stop, reload, ignore };

// INT, TERM, QUIT and XCPU stop. HUP reloads the daemon and stops --print (a terminal
// hang-up; there is nothing to reload). Everything else handled is ignored.
Action action_for(Mode mode, int signal);

// Every catchable signal whose default action is to end the process, faults and SIGPIPE
// excepted: the set to hand to EventLoop::on_signals.
std::vector<int> handled_signals();

// SIGPIPE is ignored instead: a write to a closed socket or pipe then fails with EPIPE in
// the thread that made it (a blocked SIGPIPE would stay pending on that thread forever).
void ignore_broken_pipes();

// "SIGUSR1", "SIGRTMIN+3".
std::string signal_name(int signal);

} // namespace flowlat::signal_policy
