#include "app/startup.hpp"

#include <cstdio>

namespace flowlat::startup {

Result<std::unique_ptr<probe::ProbeSession>> load_probe(const probe::ProbeOptions& options, EventLoop& loop,
                                                        probe::EventSink sink)
{
    if (std::string missing = probe::missing_capabilities(); !missing.empty())
        return Error{"missing privileges: " + missing +
                     " (flowlatd needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; run as root or grant them)"};
    auto probe = probe::Probe::load(options);
    if (!probe) return std::move(probe).error(); // "loading the BPF program failed: ..." with its log
    auto session = probe::ProbeSession::start(std::move(probe).value(), loop, std::move(sink));
    if (!session) return cannot(session.error());
    return session;
}

Result<std::vector<interfaces::Interface>> resolve_interfaces(const std::vector<std::string>& patterns)
{
    std::vector<std::string> wanted = patterns;
    if (wanted.empty()) {
        wanted = interfaces::default_route_interfaces();
        if (wanted.empty()) return Error{"no interface given and no default route found; name one with --interface"};
    }
    const auto all = interfaces::list_all();
    for (const auto& pattern : wanted) {
        if (interfaces::is_glob(pattern)) continue;
        if (interfaces::match({pattern}, all).empty()) return Error{"unknown interface '" + pattern + "'"};
    }
    return interfaces::match(wanted, all);
}

Error cannot(const Error& error)
{
    Error sentence = error;
    sentence.what = "cannot " + error.what;
    return sentence;
}

std::string report_text(const Error& error)
{
    std::string text = "flowlatd: " + error.message();
    if (!error.detail.empty()) text += "; " + error.detail_title + ":";
    text += "\n";
    for (const auto& line : error.detail) text += "    " + line + "\n";
    return text;
}

void report(const Error& error)
{
    std::fputs(report_text(error).c_str(), stderr);
}

void report_internal(const Error& error)
{
    std::fprintf(stderr, "flowlatd: internal error, detached and stopped: %s\n", error.message().c_str());
}

} // namespace flowlat::startup
