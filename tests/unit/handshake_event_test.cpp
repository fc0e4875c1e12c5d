#include "flow/flowlat_abi.hpp"
#include "flow/handshake_event.hpp"

#include <arpa/inet.h>
#include <catch2/catch.hpp>

#include <cstring>

using namespace flowlat;

namespace {

flowlat_event raw_outbound_v4()
{
    flowlat_event raw{};
    raw.header.ts_ns = 42;
    raw.header.type = FLOWLAT_EVENT_HANDSHAKE;
    raw.header.ifindex = 3;
    raw.rtt_ns = 1000;
    raw.handshake_ns = 2000;
    const std::uint8_t local[4] = {198, 18, 0, 1};
    const std::uint8_t peer[4] = {198, 18, 0, 2};
    std::memcpy(raw.local_addr, local, 4);
    std::memcpy(raw.peer_addr, peer, 4);
    raw.local_port_be = htons(40000);
    raw.peer_port_be = htons(443);
    raw.retransmits = 1;
    raw.family = FLOWLAT_FAMILY_IPV4;
    raw.direction = FLOWLAT_DIRECTION_OUTBOUND;
    raw.outcome = FLOWLAT_OUTCOME_COMPLETED;
    raw.flags = FLOWLAT_EVENT_F_RTT_VALID;
    return raw;
}

} // namespace

TEST_CASE("a kernel record decodes into host byte order", "[event]")
{
    const flowlat_event raw = raw_outbound_v4();
    auto event = decode_event(&raw, sizeof(raw));
    REQUIRE(event);
    CHECK(event->monotonic_ns == 42);
    CHECK(event->ifindex == 3);
    CHECK(event->direction == Direction::outbound);
    CHECK(event->outcome == Outcome::completed);
    CHECK(event->family == Family::ipv4);
    CHECK(event->local_port == 40000);
    CHECK(event->peer_port == 443);
    CHECK(event->server_port() == 443);
    REQUIRE(event->rtt_ns);
    CHECK(*event->rtt_ns == 1000);
    CHECK(event->handshake_ns == 2000);
    CHECK(event->retransmits == 1);
    CHECK(format_address(event->family, event->local) == "198.18.0.1");
    CHECK(format_address(event->family, event->peer) == "198.18.0.2");
}

TEST_CASE("an ambiguous sample decodes without an rtt", "[event]")
{
    flowlat_event raw = raw_outbound_v4();
    raw.flags = 0;
    auto event = decode_event(&raw, sizeof(raw));
    REQUIRE(event);
    CHECK_FALSE(event->rtt_ns);
    CHECK(event->handshake_ns == 2000);
}

TEST_CASE("inbound events label the local port as the server port", "[event]")
{
    flowlat_event raw = raw_outbound_v4();
    raw.direction = FLOWLAT_DIRECTION_INBOUND;
    auto event = decode_event(&raw, sizeof(raw));
    REQUIRE(event);
    CHECK(event->server_port() == 40000);
}

TEST_CASE("malformed records are rejected, not guessed", "[event]")
{
    flowlat_event raw = raw_outbound_v4();
    CHECK_FALSE(decode_event(&raw, sizeof(raw) - 1));
    raw.header.type = 99;
    CHECK_FALSE(decode_event(&raw, sizeof(raw)));
    raw = raw_outbound_v4();
    raw.family = 5;
    CHECK_FALSE(decode_event(&raw, sizeof(raw)));
    raw = raw_outbound_v4();
    raw.direction = 2;
    CHECK_FALSE(decode_event(&raw, sizeof(raw)));
    raw = raw_outbound_v4();
    raw.outcome = 5; // past FLOWLAT_OUTCOME_ACCEPT_OVERFLOW
    CHECK_FALSE(decode_event(&raw, sizeof(raw)));
    raw = raw_outbound_v4();
    raw.outcome = FLOWLAT_OUTCOME_UNREACHABLE;
    REQUIRE(decode_event(&raw, sizeof(raw)));
    CHECK(decode_event(&raw, sizeof(raw))->outcome == Outcome::unreachable);
    raw.outcome = FLOWLAT_OUTCOME_ACCEPT_OVERFLOW;
    REQUIRE(decode_event(&raw, sizeof(raw)));
    CHECK(to_string(decode_event(&raw, sizeof(raw))->outcome) == "accept_overflow");
}

TEST_CASE("encode and decode are inverse", "[event]")
{
    const flowlat_event raw = raw_outbound_v4();
    auto event = decode_event(&raw, sizeof(raw));
    REQUIRE(event);
    const flowlat_event again = encode_event(*event);
    CHECK(std::memcmp(&raw, &again, sizeof(raw)) == 0);

    HandshakeEvent v6;
    v6.family = Family::ipv6;
    v6.peer[0] = 0xfd;
    v6.peer[15] = 0x01;
    v6.outcome = Outcome::timeout;
    const flowlat_event encoded = encode_event(v6);
    auto back = decode_event(&encoded, sizeof(encoded));
    REQUIRE(back);
    CHECK(format_address(Family::ipv6, back->peer) == "fd00::1");
    CHECK(back->outcome == Outcome::timeout);
    CHECK_FALSE(back->rtt_ns);
}
