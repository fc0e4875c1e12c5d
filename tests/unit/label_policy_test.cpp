#include "aggregate/label_policy.hpp"

#include <arpa/inet.h>
#include <catch2/catch.hpp>

using namespace flowlat;
using flowlat::labels::LabelPolicy;
using flowlat::labels::PeerKind;

namespace {

IpAddress ip(const char* text)
{
    IpAddress address{};
    const int af = std::string_view(text).find(':') != std::string_view::npos ? AF_INET6 : AF_INET;
    REQUIRE(inet_pton(af, text, address.data()) == 1);
    return address;
}

HandshakeEvent event(Direction direction, const char* peer, std::uint16_t server_port)
{
    HandshakeEvent e;
    e.ifindex = 2;
    e.direction = direction;
    e.family = std::string_view(peer).find(':') != std::string_view::npos ? Family::ipv6 : Family::ipv4;
    e.peer = ip(peer);
    e.local = e.family == Family::ipv4 ? ip("192.0.2.1") : ip("2001:db8::1");
    if (direction == Direction::outbound) {
        e.peer_port = server_port;
        e.local_port = 40000;
    } else {
        e.local_port = server_port;
        e.peer_port = 40000;
    }
    return e;
}

config::Config test_config()
{
    config::Config c;
    c.peer_groups = {{"db", {*config::parse_cidr("10.1.0.0/16"), *config::parse_cidr("fd00:1::/32")}},
                     {"wide", {*config::parse_cidr("10.0.0.0/8")}}};
    c.ports.include = {50000};
    c.ports.all_outside_ephemeral = true;
    c.ports.ephemeral_low = 32768;
    c.ports.ephemeral_high = 60999;
    return c;
}

std::string peer_of(const LabelPolicy& policy, const HandshakeEvent& e)
{
    return labels::peer_label(policy.classify(e), policy.group_names());
}

} // namespace

TEST_CASE("peer groups win over folding, first matching group wins", "[metrics][labels]")
{
    const LabelPolicy policy(test_config());
    CHECK(peer_of(policy, event(Direction::outbound, "10.1.2.3", 5432)) == "db");
    CHECK(peer_of(policy, event(Direction::inbound, "10.1.2.3", 5432)) == "db");
    CHECK(peer_of(policy, event(Direction::outbound, "10.2.2.3", 5432)) == "wide");
    CHECK(peer_of(policy, event(Direction::outbound, "fd00:1:ffff::5", 443)) == "db");
    // A v4 group never matches a v6 address with the same leading bytes.
    CHECK(peer_of(policy, event(Direction::outbound, "a01:203::", 443)) == "a01:203::");

    const auto key = policy.classify(event(Direction::outbound, "10.1.2.3", 5432));
    CHECK(key.peer_kind == PeerKind::group);
    CHECK(key.address == IpAddress{});
}

TEST_CASE("ungrouped peers fold per direction and family", "[metrics][labels]")
{
    const LabelPolicy policy(test_config());
    SECTION("outbound keeps /32 and /128")
    {
        CHECK(peer_of(policy, event(Direction::outbound, "198.18.0.77", 443)) == "198.18.0.77");
        CHECK(peer_of(policy, event(Direction::outbound, "2001:db8:1:2::77", 443)) == "2001:db8:1:2::77");
    }
    SECTION("inbound folds to /24 and /48")
    {
        CHECK(peer_of(policy, event(Direction::inbound, "198.18.0.77", 443)) == "198.18.0.0/24");
        CHECK(peer_of(policy, event(Direction::inbound, "2001:db8:1:2::77", 443)) == "2001:db8:1::/48");
        CHECK(policy.classify(event(Direction::inbound, "198.18.0.77", 443)) ==
              policy.classify(event(Direction::inbound, "198.18.0.200", 80 + 363)));
        CHECK_FALSE(policy.classify(event(Direction::inbound, "198.18.0.77", 443)) ==
                    policy.classify(event(Direction::inbound, "198.18.1.77", 443)));
    }
    SECTION("configured lengths, including ones not on a byte boundary")
    {
        auto c = test_config();
        c.peer_folding.outbound_ipv4 = 20;
        c.peer_folding.inbound_ipv6 = 64;
        const LabelPolicy custom(c);
        CHECK(peer_of(custom, event(Direction::outbound, "198.18.31.77", 443)) == "198.18.16.0/20");
        CHECK(peer_of(custom, event(Direction::inbound, "2001:db8:1:2:3::77", 443)) == "2001:db8:1:2::/64");
    }
}

TEST_CASE("ports outside the selection fold to other", "[metrics][labels]")
{
    const LabelPolicy policy(test_config());
    const labels::InterfaceNames names;
    const auto port_of = [&](Direction d, std::uint16_t port) {
        return labels::render_labels(policy.classify(event(d, "198.18.0.1", port)), policy.group_names(),
                                     names.copy())
            .port;
    };
    CHECK(port_of(Direction::outbound, 443) == "443");
    CHECK(port_of(Direction::inbound, 22) == "22");
    CHECK(port_of(Direction::outbound, 40000) == "other"); // ephemeral
    CHECK(port_of(Direction::outbound, 50000) == "50000"); // explicitly included
    CHECK(port_of(Direction::outbound, 61000) == "61000"); // above the ephemeral range
    // The server port is the peer's for outbound, ours for inbound.
    auto e = event(Direction::inbound, "198.18.0.1", 8080);
    e.peer_port = 443;
    CHECK(policy.classify(e).port == 8080);
}

TEST_CASE("rendered labels and interface names", "[metrics][labels]")
{
    const LabelPolicy policy(test_config());
    labels::InterfaceNames names;
    names.set(2, "eth0");
    const auto key = policy.classify(event(Direction::inbound, "10.1.9.9", 443));
    const auto values = labels::render_labels(key, policy.group_names(), names.copy());
    CHECK(values.interface == "eth0");
    CHECK(values.direction == "inbound");
    CHECK(values.family == "ipv4");
    CHECK(values.peer == "db");
    CHECK(values.port == "443");
    CHECK(names.name(2) == "eth0");
    CHECK(names.name(99) == "99");

    labels::SeriesKey other = key;
    other.peer_kind = PeerKind::other;
    CHECK(labels::peer_label(other, policy.group_names()) == "other");
}

TEST_CASE("series keys hash equal when equal", "[metrics][labels]")
{
    const LabelPolicy policy(test_config());
    const labels::SeriesKeyHash hash;
    const auto a = policy.classify(event(Direction::inbound, "198.18.0.1", 443));
    const auto b = policy.classify(event(Direction::inbound, "198.18.0.2", 443));
    const auto c = policy.classify(event(Direction::inbound, "198.18.0.1", 80));
    CHECK(a == b);
    CHECK(hash(a) == hash(b));
    CHECK_FALSE(a == c);
    CHECK(hash(a) != hash(c));
}
