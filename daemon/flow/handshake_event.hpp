// A finished handshake as user space sees it: decoded, host byte order, typed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct flowlat_event;

namespace flowlat {

enum class Direction : std::uint8_t { outbound, inbound };
// Numbered as enum flowlat_outcome. accept_overflow is not a handshake's outcome but a second
// event about an inbound handshake already counted completed (its final ACK was dropped).
enum class Outcome : std::uint8_t { completed, refused, timeout, unreachable, accept_overflow };
enum class Family : std::uint8_t { ipv4, ipv6 };

std::string_view to_string(Direction direction);
std::string_view to_string(Outcome outcome);
std::string_view to_string(Family family);

// 16 bytes; an IPv4 address occupies the first 4 (network order), the rest is zero.
using IpAddress = std::array<std::uint8_t, 16>;

// Text form: dotted quad or RFC 5952 IPv6.
std::string format_address(Family family, const IpAddress& address);

struct HandshakeEvent {
    std::uint64_t monotonic_ns{0}; // CLOCK_MONOTONIC of the outcome
    std::uint32_t ifindex{0};
    Direction direction{Direction::outbound};
    Outcome outcome{Outcome::completed};
    Family family{Family::ipv4};
    IpAddress local{};
    IpAddress peer{};
    std::uint16_t local_port{0};
    std::uint16_t peer_port{0};
    std::optional<std::uint64_t> rtt_ns; // empty when Karn's rule leaves it ambiguous
    std::uint64_t handshake_ns{0};
    std::uint16_t retransmits{0};
    // cgroup v2 id of the local socket; 0 when the packet carried none (unknown workload).
    std::uint64_t cgroup_id{0};

    // The server's port: the peer's for outbound, ours for inbound.
    std::uint16_t server_port() const
    {
        return direction == Direction::outbound ? peer_port : local_port;
    }
};

// Decodes one ring buffer record; nullopt when it is not a valid handshake event.
std::optional<HandshakeEvent> decode_event(const void* data, std::size_t size);

// The inverse, for synthesised events (timeouts) and tests.
flowlat_event encode_event(const HandshakeEvent& event);

} // namespace flowlat
