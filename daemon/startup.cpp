#include "startup.hpp"

#include <cstdio>

namespace flowlat::startup {

std::unique_ptr<probe::ProbeSession> load_probe(const probe::ProbeOptions& options, EventLoop& loop,
                                                probe::EventSink sink, Failure* failure)
{
    if (std::string missing = probe::missing_capabilities(); !missing.empty()) {
        *failure = {"flowlatd: missing privileges: " + missing +
                        " (flowlatd needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; run as root or grant them)",
                    ""};
        return nullptr;
    }
    probe::LoadError load_error;
    auto session = probe::ProbeSession::start(options, loop, std::move(sink), &load_error);
    if (!session) {
        *failure = {"flowlatd: cannot " + session.error().message(), load_error.verifier_log_tail};
        return nullptr;
    }
    return std::move(session).value();
}

bool resolve_interfaces(const std::vector<std::string>& patterns, std::vector<interfaces::Interface>* resolved,
                        Failure* failure)
{
    std::vector<std::string> wanted = patterns;
    if (wanted.empty()) {
        wanted = interfaces::default_route_interfaces();
        if (wanted.empty()) {
            *failure = {"flowlatd: no interface given and no default route found; name one with --interface", ""};
            return false;
        }
    }
    const auto all = interfaces::list_all();
    for (const auto& pattern : wanted) {
        if (interfaces::is_glob(pattern)) continue;
        if (interfaces::match({pattern}, all).empty()) {
            *failure = {"flowlatd: unknown interface '" + pattern + "'", ""};
            return false;
        }
    }
    *resolved = interfaces::match(wanted, all);
    return true;
}

void report(const Failure& failure)
{
    std::fprintf(stderr, "%s\n", failure.line.c_str());
    if (!failure.detail.empty()) std::fprintf(stderr, "verifier log (tail):\n%s", failure.detail.c_str());
}

} // namespace flowlat::startup
