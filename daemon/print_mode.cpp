#include "print_mode.hpp"

#include "startup.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace flowlat {

int run_print_mode(const cli::Options& options)
{
    auto loop = EventLoop::create();
    if (!loop) {
        startup::report({"flowlatd: " + loop.error().message(), ""});
        return 2;
    }
    EventLoop& event_loop = *loop.value();

    std::vector<interfaces::Interface> chosen;
    startup::Failure failure;
    if (!startup::resolve_interfaces(options.interfaces, &chosen, &failure)) {
        startup::report(failure);
        return 2;
    }
    if (chosen.empty()) {
        startup::report({"flowlatd: no interface matches the given patterns", ""});
        return 2;
    }

    probe::ProbeOptions probe_options;
    if (options.handshake_timeout)
        probe_options.handshake_timeout_ns = static_cast<std::uint64_t>(options.handshake_timeout->count()) * 1'000'000;

    const print::PrintMode mode = options.print.value_or(print::PrintMode::text);
    print::WallClock clock;
    probe::ProbeSession* session_view = nullptr;
    auto print_batch = [&](std::span<const HandshakeEvent> batch) {
        for (const auto& event : batch) {
            const std::string name = session_view->interface_name(event.ifindex);
            const std::uint64_t realtime = clock.to_realtime_ns(event.monotonic_ns);
            const std::string line = mode == print::PrintMode::json ? print::format_json(event, name, realtime)
                                                                    : print::format_text(event, name, realtime);
            std::fputs(line.c_str(), stdout);
            std::fputc('\n', stdout);
        }
        std::fflush(stdout);
    };

    auto session = startup::load_probe(probe_options, event_loop, print_batch, &failure);
    if (!session) {
        startup::report(failure);
        return 2;
    }
    session_view = session.get();
    for (const auto& interface : chosen) {
        if (Status attached = session->attach(interface); !attached) {
            startup::report({"flowlatd: cannot " + attached.error().message(), ""});
            return 2;
        }
    }

    Status signals = event_loop.on_signals({SIGINT, SIGTERM}, [&](int signal) {
        spdlog::info("received {}, detaching", signal == SIGINT ? "SIGINT" : "SIGTERM");
        event_loop.stop();
    });
    if (!signals) {
        startup::report({"flowlatd: " + signals.error().message(), ""});
        return 2;
    }
    event_loop.every(std::chrono::seconds(60), [&] { clock.resync(); });

    std::string names;
    for (const auto& interface : chosen) names += (names.empty() ? "" : ", ") + interface.name;
    spdlog::info("ready: printing handshakes on {}", names);
    event_loop.run();

    // Nothing measured is lost: what is still queued is printed before detaching.
    session->flush();
    session->detach_all();
    return 0;
}

} // namespace flowlat
