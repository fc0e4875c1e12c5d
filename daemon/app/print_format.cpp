#include "app/print_format.hpp"
#include "os/json_text.hpp"

#include <fmt/format.h>

#include <ctime>

namespace flowlat::print {

std::string format_timestamp(std::uint64_t realtime_ns)
{
    const std::time_t seconds = static_cast<std::time_t>(realtime_ns / 1'000'000'000ull);
    const std::uint64_t micros = realtime_ns % 1'000'000'000ull / 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                       utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, micros);
}

std::string format_endpoint(Family family, const IpAddress& address, std::uint16_t port)
{
    if (family == Family::ipv6) return fmt::format("[{}]:{}", format_address(family, address), port);
    return fmt::format("{}:{}", format_address(family, address), port);
}

namespace {

std::string milliseconds(std::uint64_t ns)
{
    return fmt::format("{}.{:03}ms", ns / 1'000'000, ns % 1'000'000 / 1000);
}

} // namespace

std::string format_text(const HandshakeEvent& event, std::string_view interface, std::uint64_t realtime_ns,
                        std::string_view workload)
{
    return fmt::format("{} {} {} {} {} rtt={} handshake={} retrans={} workload={}", format_timestamp(realtime_ns),
                       interface,
                       to_string(event.direction), to_string(event.outcome),
                       // The "peer, port": the remote address with the server's port, so
                       // an inbound line names the service, not the client's ephemeral port.
                       format_endpoint(event.family, event.peer, event.server_port()),
                       event.rtt_ns ? milliseconds(*event.rtt_ns) : std::string("-"),
                       milliseconds(event.handshake_ns), event.retransmits,
                       // A cgroup name may hold any byte but '/' and NUL: quote what would split the line.
                       workload.find_first_of(" \t\"\\") == std::string_view::npos && !workload.empty()
                           ? std::string(workload)
                           : '"' + json::escaped(workload) + '"');
}

std::string json_escape(std::string_view text)
{
    return json::escaped(text);
}

std::string format_json(const HandshakeEvent& event, std::string_view interface, std::uint64_t realtime_ns,
                        std::string_view workload)
{
    return fmt::format(
        "{{\"ts\":\"{}\",\"interface\":\"{}\",\"direction\":\"{}\",\"outcome\":\"{}\",\"family\":\"{}\","
        "\"local\":\"{}\",\"local_port\":{},\"peer\":\"{}\",\"peer_port\":{},\"rtt_ns\":{},"
        "\"handshake_ns\":{},\"retransmits\":{},\"cgroup_id\":{},\"workload\":\"{}\"}}",
        format_timestamp(realtime_ns), json_escape(interface), to_string(event.direction),
        to_string(event.outcome), to_string(event.family), format_address(event.family, event.local),
        event.local_port, format_address(event.family, event.peer), event.peer_port,
        event.rtt_ns ? std::to_string(*event.rtt_ns) : std::string("null"), event.handshake_ns,
        event.retransmits, event.cgroup_id, json_escape(workload));
}

WallClock::WallClock()
{
    resync();
}

void WallClock::resync()
{
    timespec realtime{};
    timespec monotonic{};
    clock_gettime(CLOCK_REALTIME, &realtime);
    clock_gettime(CLOCK_MONOTONIC, &monotonic);
    auto ns = [](const timespec& ts) { return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec; };
    offset_ns_ = ns(realtime) - ns(monotonic);
}

std::uint64_t WallClock::to_realtime_ns(std::uint64_t monotonic_ns) const
{
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(monotonic_ns) + offset_ns_);
}

} // namespace flowlat::print
