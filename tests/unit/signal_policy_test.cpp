#include "os/signal_policy.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>

using flowlat::signal_policy::Action;
using flowlat::signal_policy::Mode;
namespace sp = flowlat::signal_policy;

namespace {

bool handled(int signal)
{
    const auto all = sp::handled_signals();
    return std::find(all.begin(), all.end(), signal) != all.end();
}

} // namespace

TEST_CASE("signal policy: the daemon reloads on HUP, --print stops on it", "[signal_policy]")
{
    CHECK(sp::action_for(Mode::daemon, SIGHUP) == Action::reload);
    CHECK(sp::action_for(Mode::print, SIGHUP) == Action::stop);
    for (Mode mode : {Mode::daemon, Mode::print})
        for (int signal : {SIGINT, SIGTERM, SIGQUIT, SIGXCPU}) CHECK(sp::action_for(mode, signal) == Action::stop);
}

TEST_CASE("signal policy: every signal that would end the process is caught, faults excepted", "[signal_policy]")
{
    // The default action of each of these terminates the process (signal(7)).
    for (int signal : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO,
                       SIGPWR, SIGSTKFLT, SIGXCPU, SIGXFSZ}) {
        INFO(sp::signal_name(signal));
        CHECK(handled(signal));
    }
    for (int signal = SIGRTMIN; signal <= SIGRTMAX; ++signal) CHECK(handled(signal));
    // Faults are not requests; KILL and STOP cannot be caught; PIPE is ignored (EPIPE instead).
    for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT, SIGKILL, SIGSTOP, SIGPIPE}) {
        INFO(sp::signal_name(signal));
        CHECK_FALSE(handled(signal));
    }
}

TEST_CASE("signal policy: a stray signal is ignored, not obeyed", "[signal_policy]")
{
    for (Mode mode : {Mode::daemon, Mode::print})
        for (int signal : {SIGUSR1, SIGUSR2, SIGALRM, SIGPWR, SIGXFSZ, SIGRTMIN + 1})
            CHECK(sp::action_for(mode, signal) == Action::ignore);
}

TEST_CASE("signal policy: names", "[signal_policy]")
{
    CHECK(sp::signal_name(SIGUSR1) == "SIGUSR1");
    CHECK(sp::signal_name(SIGQUIT) == "SIGQUIT");
    CHECK(sp::signal_name(SIGRTMIN) == "SIGRTMIN");
    CHECK(sp::signal_name(SIGRTMIN + 3) == "SIGRTMIN+3");
}
