#include "app/startup.hpp"

#include <cstdio>
#include <cstring>

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
        // A load failure carries its log; a failure after the load (ring reader, timers) does not.
        *failure = !load_error.what.empty() ? load_failure(load_error)
                                            : Failure{"flowlatd: cannot " + session.error().message(), ""};
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

Failure load_failure(const probe::LoadError& error)
{
    Failure failure;
    failure.line = "flowlatd: " + error.what + " failed";
    if (error.errno_value != 0) failure.line += ": " + std::string(std::strerror(error.errno_value));
    const probe::LogTail& log = error.log;
    if (log.lines.empty()) return failure;
    failure.line += log.verifier_log ? "; verifier log (last " : "; libbpf said (last ";
    failure.line += std::to_string(log.lines.size());
    if (log.total_lines > log.lines.size()) failure.line += " of " + std::to_string(log.total_lines);
    failure.line += log.lines.size() == 1 ? " line):" : " lines):";
    for (const auto& line : log.lines) failure.detail += "    " + line + "\n";
    return failure;
}

void report(const Failure& failure)
{
    std::fprintf(stderr, "%s\n%s", failure.line.c_str(), failure.detail.c_str());
}

} // namespace flowlat::startup
