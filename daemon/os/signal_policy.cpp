#include "os/signal_policy.hpp"

#include <csignal>
#include <cstring>

namespace flowlat::signal_policy {

Action action_for(Mode mode, int signal)
{
    switch (signal) {
    case SIGINT:
    case SIGTERM:
    case SIGQUIT:
    case SIGXCPU: // the soft CPU limit: the hard limit's SIGKILL would come next
        return Action::stop;
    case SIGHUP: return mode == Mode::daemon ? Action::reload : Action::stop;
    default: return Action::ignore;
    }
}

std::vector<int> handled_signals()
{
    std::vector<int> signals{SIGHUP,    SIGINT,  SIGQUIT, SIGTERM, SIGUSR1,   SIGUSR2, SIGALRM,
                             SIGVTALRM, SIGPROF, SIGIO,   SIGPWR,  SIGSTKFLT, SIGXCPU, SIGXFSZ};
    // SIGRTMIN is glibc's first free real-time signal (it keeps the first two for threads).
    for (int signal = SIGRTMIN; signal <= SIGRTMAX; ++signal) signals.push_back(signal);
    return signals;
}

void ignore_broken_pipes()
{
    struct sigaction ignore{};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, nullptr);
}

std::string signal_name(int signal)
{
    if (signal >= SIGRTMIN && signal <= SIGRTMAX)
        return signal == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(signal - SIGRTMIN);
    if (const char* abbrev = sigabbrev_np(signal)) return std::string("SIG") + abbrev;
    return "signal " + std::to_string(signal);
}

} // namespace flowlat::signal_policy
