#include "app/print_mode.hpp"

#include "os/signal_policy.hpp"
#include "app/cgroup_paths.hpp"
#include "app/startup.hpp"
#include "probe/hook_healer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace flowlat {

namespace {

using signal_policy::Action;
using signal_policy::Mode;
using signal_policy::signal_name;

// A stop signal that arrived while start-up had them blocked (0 if none).
int pending_stop_signal()
{
    sigset_t pending;
    if (sigpending(&pending) != 0) return 0;
    for (int signal : signal_policy::handled_signals())
        if (sigismember(&pending, signal) == 1 && signal_policy::action_for(Mode::print, signal) == Action::stop)
            return signal;
    return 0;
}

// stdout is the write end of a pipe: the kernel flags it (EPOLLERR, reported whatever the
// watch asked for) once the reader has gone. Only then is it watched: a tty or a read-write
// fd would report input as readable and wake the loop for nothing.
bool stdout_is_pipe()
{
    struct stat st{};
    if (fstat(STDOUT_FILENO, &st) != 0 || !S_ISFIFO(st.st_mode)) return false;
    const int flags = fcntl(STDOUT_FILENO, F_GETFL);
    return flags >= 0 && (flags & O_ACCMODE) == O_WRONLY;
}

bool stdout_reader_gone()
{
    pollfd fd{STDOUT_FILENO, POLLOUT, 0};
    return poll(&fd, 1, 0) == 1 && (fd.revents & POLLERR) != 0;
}

// Someone may remove our clsact filter (or the qdisc) or detach a TCX link while --print
// runs; the output would then stop without a word. Every few seconds, as the daemon does,
// hooks that went missing are attached again, found again by name (the interface may have
// been re-created). A failure is logged once per distinct message and retried.
void heal(probe::ProbeSession& session, probe::HookHealer& healer)
{
    for (const auto& name : session.drop_lost_attachments()) healer.lost(name);
    if (healer.all_up()) return;
    const auto present = interfaces::list_all();
    for (const auto& name : healer.down()) (void)healer.attach(name, present); // the healer logs it
}

} // namespace

int run_print_mode(const cli::Options& options)
{
    // A closed reader (`| head -1`) must not kill flowlatd before it detaches: the write
    // fails with EPIPE instead, and that stops the loop like a signal.
    signal_policy::ignore_broken_pipes();

    auto loop = EventLoop::create();
    if (!loop) {
        startup::report(startup::cannot(loop.error()));
        return 2;
    }
    EventLoop& event_loop = *loop.value();

    // Before anything is loaded or attached, so that a signal during start-up cannot kill
    // flowlatd with filters attached: it waits, and start-up checks for it between steps.
    int stop_signal = 0;
    Status signals = event_loop.on_signals(signal_policy::handled_signals(), [&](int signal) {
        if (signal_policy::action_for(Mode::print, signal) != Action::stop) {
            spdlog::warn("received {}, ignored (INT, TERM, QUIT or HUP stop --print)", signal_name(signal));
            return;
        }
        spdlog::info("received {}, detaching", signal_name(signal));
        stop_signal = signal;
        event_loop.stop();
    });
    if (!signals) {
        startup::report(startup::cannot(signals.error()));
        return 2;
    }

    auto resolved = startup::resolve_interfaces(options.interfaces);
    if (!resolved) {
        startup::report(resolved.error());
        return 2;
    }
    const std::vector<interfaces::Interface> chosen = std::move(resolved).value();
    if (chosen.empty()) {
        startup::report(Error{"no interface matches the given patterns"});
        return 2;
    }

    probe::ProbeOptions probe_options;
    probe_options.attach_slot = probe::AttachSlot::print;
    if (options.handshake_timeout)
        probe_options.handshake_timeout_ns = static_cast<std::uint64_t>(options.handshake_timeout->count()) * 1'000'000;

    const print::PrintMode mode = options.print.value_or(print::PrintMode::text);
    print::WallClock clock;
    CgroupPathSource cgroup_paths;
    probe::ProbeSession* session_view = nullptr;
    int output_errno = 0; // the first failed write to stdout; nothing is printed after it
    auto output_failed = [&](int err) {
        if (output_errno != 0) return;
        output_errno = err;
        spdlog::info("stdout: {}, detaching", err == EPIPE ? "the reader has gone" : std::strerror(err));
        event_loop.stop();
    };
    auto print_batch = [&](std::span<const HandshakeEvent> batch) {
        if (output_errno != 0) return;
        for (const auto& event : batch) {
            const std::string name = session_view->interface_name(event.ifindex);
            const std::uint64_t realtime = clock.to_realtime_ns(event.monotonic_ns);
            const std::string workload = cgroup_paths.describe(event.cgroup_id);
            const std::string line = mode == print::PrintMode::json
                                         ? print::format_json(event, name, realtime, workload)
                                         : print::format_text(event, name, realtime, workload);
            if (std::fputs(line.c_str(), stdout) == EOF || std::fputc('\n', stdout) == EOF) {
                output_failed(errno);
                return;
            }
        }
        if (std::fflush(stdout) != 0) output_failed(errno);
    };

    auto loaded = startup::load_probe(probe_options, event_loop, print_batch);
    if (!loaded) {
        startup::report(loaded.error());
        return 2;
    }
    const std::unique_ptr<probe::ProbeSession> session = std::move(loaded).value();
    session_view = session.get();
    for (const auto& interface : chosen) {
        if ((stop_signal = pending_stop_signal()) != 0) break;
        if (Status attached = session->attach(interface); !attached) {
            startup::report(startup::cannot(attached.error()));
            return 2; // the session's destructor detaches what was attached
        }
    }
    if (stop_signal == 0) stop_signal = pending_stop_signal();

    Status ran = Ok{};
    if (stop_signal != 0) {
        spdlog::info("received {} during start-up, detaching", signal_name(stop_signal));
    } else {
        if (stdout_is_pipe()) {
            Status watched = event_loop.watch(STDOUT_FILENO, [&] {
                if (stdout_reader_gone()) output_failed(EPIPE);
            });
            if (!watched) spdlog::warn("cannot watch stdout for a closed reader: {}", watched.error().message());
        }
        probe::HookHealer healer(*session);
        Status timers = event_loop.every(std::chrono::seconds(60), [&] { clock.resync(); });
        if (timers) timers = event_loop.every(probe::attachment_check_interval, [&] { heal(*session, healer); });
        if (!timers) {
            startup::report(startup::cannot(timers.error()));
            return 2; // the session's destructor detaches
        }

        std::string names;
        for (const auto& interface : chosen) names += (names.empty() ? "" : ", ") + interface.name;
        spdlog::info("ready: printing handshakes on {}", names);
        ran = event_loop.run();
    }

    // Nothing measured is lost: what is still queued is printed before detaching.
    session->flush();
    session->detach_all();
    if (!ran) {
        startup::report_internal(ran.error());
        return 3;
    }

    // A reader that has gone (EPIPE) is a normal end, as for any filter in a pipeline; so is a
    // write that failed because a signal (a hangup) was already stopping flowlatd. Any other
    // failed write lost output: exit 2 with one line.
    if (output_errno != 0 && output_errno != EPIPE && stop_signal == 0) {
        startup::report(Error{"cannot write to stdout", output_errno});
        return 2;
    }
    return 0;
}

} // namespace flowlat
