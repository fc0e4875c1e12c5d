#include "flow/handshake_event.hpp"

#include "flow/flowlat_abi.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace flowlat {

std::string_view to_string(Direction direction)
{
    return direction == Direction::outbound ? "outbound" : "inbound";
}

std::string_view to_string(Outcome outcome)
{
    switch (outcome) {
    case Outcome::completed: return "completed";
    case Outcome::refused: return "refused";
    case Outcome::timeout: return "timeout";
    case Outcome::unreachable: return "unreachable";
    case Outcome::accept_overflow: return "accept_overflow";
    }
    return "unknown";
}

std::string_view to_string(Family family)
{
    return family == Family::ipv4 ? "ipv4" : "ipv6";
}

std::string format_address(Family family, const IpAddress& address)
{
    char text[INET6_ADDRSTRLEN] = {};
    const int af = family == Family::ipv4 ? AF_INET : AF_INET6;
    if (inet_ntop(af, address.data(), text, sizeof(text)) == nullptr) return "?";
    return text;
}

std::optional<HandshakeEvent> decode_event(const void* data, std::size_t size)
{
    if (size < sizeof(flowlat_event)) return std::nullopt;
    flowlat_event raw;
    std::memcpy(&raw, data, sizeof(raw));
    if (raw.header.type != FLOWLAT_EVENT_HANDSHAKE) return std::nullopt;
    if (raw.direction > FLOWLAT_DIRECTION_INBOUND || raw.outcome > FLOWLAT_OUTCOME_ACCEPT_OVERFLOW)
        return std::nullopt;
    if (raw.family != FLOWLAT_FAMILY_IPV4 && raw.family != FLOWLAT_FAMILY_IPV6) return std::nullopt;

    HandshakeEvent event;
    event.monotonic_ns = raw.header.ts_ns;
    event.ifindex = raw.header.ifindex;
    event.direction = static_cast<Direction>(raw.direction);
    event.outcome = static_cast<Outcome>(raw.outcome);
    event.family = raw.family == FLOWLAT_FAMILY_IPV4 ? Family::ipv4 : Family::ipv6;
    std::memcpy(event.local.data(), raw.local_addr, 16);
    std::memcpy(event.peer.data(), raw.peer_addr, 16);
    event.local_port = ntohs(raw.local_port_be);
    event.peer_port = ntohs(raw.peer_port_be);
    if (raw.flags & FLOWLAT_EVENT_F_RTT_VALID) event.rtt_ns = raw.rtt_ns;
    event.handshake_ns = raw.handshake_ns;
    event.retransmits = raw.retransmits;
    event.cgroup_id = raw.cgroup_id;
    return event;
}

flowlat_event encode_event(const HandshakeEvent& event)
{
    flowlat_event raw{};
    raw.header.ts_ns = event.monotonic_ns;
    raw.header.type = FLOWLAT_EVENT_HANDSHAKE;
    raw.header.ifindex = event.ifindex;
    raw.rtt_ns = event.rtt_ns.value_or(0);
    raw.handshake_ns = event.handshake_ns;
    std::memcpy(raw.local_addr, event.local.data(), 16);
    std::memcpy(raw.peer_addr, event.peer.data(), 16);
    raw.local_port_be = htons(event.local_port);
    raw.peer_port_be = htons(event.peer_port);
    raw.retransmits = event.retransmits;
    raw.family = event.family == Family::ipv4 ? FLOWLAT_FAMILY_IPV4 : FLOWLAT_FAMILY_IPV6;
    raw.direction = static_cast<std::uint8_t>(event.direction);
    raw.outcome = static_cast<std::uint8_t>(event.outcome);
    raw.flags = event.rtt_ns ? FLOWLAT_EVENT_F_RTT_VALID : 0;
    raw.cgroup_id = event.cgroup_id;
    return raw;
}

} // namespace flowlat
