// The lines of `flowlatd --print`: text for people, JSON (one object per line) for programs.
#pragma once

#include "flow/handshake_event.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace flowlat::print {

enum class PrintMode { text, json };

// RFC 3339 in UTC with microseconds: 2026-11-25T10:00:00.123456Z
std::string format_timestamp(std::uint64_t realtime_ns);

// "1.2.3.4:80" or "[fd00::1]:443".
std::string format_endpoint(Family family, const IpAddress& address, std::uint16_t port);

// `workload` is the local socket's cgroup path, "unknown" or "unresolved" (CgroupPathSource::describe).
std::string format_text(const HandshakeEvent& event, std::string_view interface, std::uint64_t realtime_ns,
                        std::string_view workload);
std::string format_json(const HandshakeEvent& event, std::string_view interface, std::uint64_t realtime_ns,
                        std::string_view workload);

std::string json_escape(std::string_view text);

// Converts the probe's CLOCK_MONOTONIC stamps to wall-clock time.
class WallClock {
public:
    WallClock();
    void resync(); // the offset drifts when NTP steps the clock
    std::uint64_t to_realtime_ns(std::uint64_t monotonic_ns) const;

private:
    std::int64_t offset_ns_{0};
};

} // namespace flowlat::print
