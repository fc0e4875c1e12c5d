#include "flow/flowlat_abi.hpp"
#include "flow/handshake_event.hpp"
#include "app/print_format.hpp"

#include <arpa/inet.h>
#include <catch2/catch.hpp>

#include <cstring>
#include <regex>

using namespace flowlat;

namespace {

IpAddress v4(const char* text)
{
    IpAddress address{};
    REQUIRE(inet_pton(AF_INET, text, address.data()) == 1);
    return address;
}

IpAddress v6(const char* text)
{
    IpAddress address{};
    REQUIRE(inet_pton(AF_INET6, text, address.data()) == 1);
    return address;
}

HandshakeEvent outbound_v6()
{
    HandshakeEvent event;
    event.monotonic_ns = 1;
    event.ifindex = 7;
    event.direction = Direction::outbound;
    event.outcome = Outcome::completed;
    event.family = Family::ipv6;
    event.local = v6("fd00::1");
    event.peer = v6("fd00:db8::1");
    event.local_port = 51000;
    event.peer_port = 443;
    event.rtt_ns = 12'345'678;
    event.handshake_ns = 12'345'999;
    return event;
}

// 2026-11-25T10:00:00.123456Z
constexpr std::uint64_t example_realtime_ns = 1795600800ull * 1'000'000'000ull + 123'456'789ull;

} // namespace

TEST_CASE("timestamps are RFC 3339 UTC with microseconds", "[print]")
{
    CHECK(print::format_timestamp(example_realtime_ns) == "2026-11-25T10:00:00.123456Z");
    CHECK(print::format_timestamp(0) == "1970-01-01T00:00:00.000000Z");
}

TEST_CASE("text lines follow the documented layout", "[print]")
{
    HandshakeEvent event = outbound_v6();
    CHECK(print::format_text(event, "eth0", example_realtime_ns, "system.slice/nginx.service") ==
          "2026-11-25T10:00:00.123456Z eth0 outbound completed [fd00:db8::1]:443 rtt=12.345ms "
          "handshake=12.345ms retrans=0 workload=system.slice/nginx.service");

    event.family = Family::ipv4;
    event.peer = v4("198.18.0.2");
    event.peer_port = 80;
    event.rtt_ns.reset();
    event.handshake_ns = 1'002'000'000;
    event.retransmits = 1;
    event.outcome = Outcome::completed;
    CHECK(print::format_text(event, "veth1", example_realtime_ns, "unknown") ==
          "2026-11-25T10:00:00.123456Z veth1 outbound completed 198.18.0.2:80 rtt=- handshake=1002.000ms "
          "retrans=1 workload=unknown");
}

TEST_CASE("an inbound text line shows the client with our server port", "[print]")
{
    HandshakeEvent event = outbound_v6();
    event.direction = Direction::inbound;
    event.local_port = 8443;
    event.peer_port = 51234; // the client's ephemeral port: in JSON only
    CHECK(print::format_text(event, "eth0", example_realtime_ns, "/") ==
          "2026-11-25T10:00:00.123456Z eth0 inbound completed [fd00:db8::1]:8443 rtt=12.345ms "
          "handshake=12.345ms retrans=0 workload=/");
}

TEST_CASE("a workload that would split a text line is quoted", "[print]")
{
    const auto line = print::format_text(outbound_v6(), "eth0", example_realtime_ns, "my app.slice/x\"y");
    CHECK_THAT(line, Catch::EndsWith(R"( workload="my app.slice/x\"y")"));
    CHECK_THAT(print::format_text(outbound_v6(), "eth0", 0, ""), Catch::EndsWith(R"( workload="")"));
}

TEST_CASE("sub-millisecond values keep microseconds in text mode", "[print]")
{
    HandshakeEvent event = outbound_v6();
    event.rtt_ns = 37'319;
    event.handshake_ns = 999;
    const std::string line = print::format_text(event, "eth0", example_realtime_ns, "unknown");
    CHECK_THAT(line, Catch::Contains("rtt=0.037ms handshake=0.000ms"));
}

TEST_CASE("json lines carry exactly the documented keys", "[print]")
{
    HandshakeEvent event = outbound_v6();
    event.direction = Direction::inbound;
    event.outcome = Outcome::refused;
    event.rtt_ns.reset();
    event.retransmits = 2;
    event.cgroup_id = 4242;
    CHECK(print::format_json(event, "eth0", example_realtime_ns, "a.slice/b\"c.service") ==
          R"({"ts":"2026-11-25T10:00:00.123456Z","interface":"eth0","direction":"inbound","outcome":"refused",)"
          R"("family":"ipv6","local":"fd00::1","local_port":51000,"peer":"fd00:db8::1","peer_port":443,)"
          R"("rtt_ns":null,"handshake_ns":12345999,"retransmits":2,"cgroup_id":4242,)"
          R"("workload":"a.slice/b\"c.service"})");

    event.rtt_ns = 5;
    CHECK_THAT(print::format_json(event, "eth0", 0, "unknown"), Catch::Contains(R"("rtt_ns":5,)"));
}

TEST_CASE("json escapes interface names", "[print]")
{
    CHECK(print::json_escape("a\"b\\c\n\x01") == "a\\\"b\\\\c\\n\\u0001");
    const std::string line = print::format_json(outbound_v6(), "we\"ird", 0, "unknown");
    CHECK_THAT(line, Catch::Contains(R"("interface":"we\"ird")"));
}

TEST_CASE("endpoints bracket IPv6 only", "[print]")
{
    CHECK(print::format_endpoint(Family::ipv4, v4("198.18.1.2"), 5432) == "198.18.1.2:5432");
    CHECK(print::format_endpoint(Family::ipv6, v6("fd00::2"), 443) == "[fd00::2]:443");
}

TEST_CASE("the wall clock maps monotonic stamps onto real time", "[print]")
{
    print::WallClock clock;
    timespec realtime{};
    timespec monotonic{};
    clock_gettime(CLOCK_MONOTONIC, &monotonic);
    clock_gettime(CLOCK_REALTIME, &realtime);
    const auto mono_ns = static_cast<std::uint64_t>(monotonic.tv_sec) * 1'000'000'000ull +
                         static_cast<std::uint64_t>(monotonic.tv_nsec);
    const auto real_ns = static_cast<std::uint64_t>(realtime.tv_sec) * 1'000'000'000ull +
                         static_cast<std::uint64_t>(realtime.tv_nsec);
    const auto converted = clock.to_realtime_ns(mono_ns);
    const auto difference = converted > real_ns ? converted - real_ns : real_ns - converted;
    CHECK(difference < 50'000'000ull);
}
