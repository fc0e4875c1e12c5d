#include "aggregate/aggregator.hpp"
#include "db_group_config.hpp"

#include <arpa/inet.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>

using namespace flowlat;
using aggregation::Aggregator;
using aggregation::Settings;

namespace {

constexpr std::uint64_t kSecond = 1'000'000'000ull;

Settings settings(std::size_t max_series = 2000, std::chrono::seconds ttl = std::chrono::seconds(3600))
{
    return Settings{{0.001, 0.01, 0.1}, max_series, ttl};
}

HandshakeEvent outbound(std::uint8_t last_octet, Outcome outcome = Outcome::completed,
                        std::optional<std::uint64_t> rtt_ns = 500'000, std::uint64_t at_ns = kSecond)
{
    HandshakeEvent e;
    e.monotonic_ns = at_ns;
    e.ifindex = 3;
    e.direction = Direction::outbound;
    e.outcome = outcome;
    e.family = Family::ipv4;
    e.peer = {198, 18, 0, last_octet};
    e.peer_port = 443;
    e.local_port = 40000;
    e.rtt_ns = rtt_ns;
    e.handshake_ns = rtt_ns.value_or(0);
    return e;
}

const aggregation::SeriesCounters* find_peer(const aggregation::Snapshot& snap, const std::string& peer)
{
    for (const auto& s : snap.series)
        if (labels::peer_label(s.key, snap.group_names) == peer) return &s;
    return nullptr;
}

std::size_t index_of(const aggregation::Snapshot& snap, const aggregation::SeriesCounters* s)
{
    return static_cast<std::size_t>(s - snap.series.data());
}

} // namespace

TEST_CASE("bucket placement uses le semantics", "[metrics][aggregator]")
{
    const std::vector<std::uint64_t> bounds = {1'000'000, 10'000'000, 100'000'000};
    CHECK(aggregation::bucket_index(bounds, 0) == 0);
    CHECK(aggregation::bucket_index(bounds, 1'000'000) == 0);       // exactly on a bound
    CHECK(aggregation::bucket_index(bounds, 1'000'001) == 1);       // just above
    CHECK(aggregation::bucket_index(bounds, 100'000'000) == 2);     // the last bound
    CHECK(aggregation::bucket_index(bounds, 100'000'001) == 3);     // beyond: +Inf only
    CHECK(aggregation::bucket_index(bounds, UINT64_MAX) == 3);

    Aggregator agg(labels::LabelPolicy(testing::db_group_config()), settings());
    const std::vector<HandshakeEvent> events = {
        outbound(1, Outcome::completed, 1'000'000),   // 0.001 exactly
        outbound(1, Outcome::completed, 1'000'001),   // just above 0.001
        outbound(1, Outcome::completed, 100'000'000), // 0.1 exactly
        outbound(1, Outcome::completed, 2 * kSecond), // beyond 0.1
    };
    agg.add(events);
    const auto snap = agg.snapshot();
    REQUIRE(snap.series.size() == 1);
    const auto rtt = snap.rtt_buckets(0);
    CHECK(std::vector<std::uint64_t>(rtt.begin(), rtt.end()) == std::vector<std::uint64_t>{1, 1, 1, 1});
    CHECK(snap.series[0].rtt_count == 4);
    CHECK(snap.series[0].rtt_sum_ns == 1'000'000 + 1'000'001 + 100'000'000 + 2 * kSecond);
}

TEST_CASE("outcomes, retransmits and which events each histogram observes", "[metrics][aggregator]")
{
    Aggregator agg(labels::LabelPolicy(testing::db_group_config()), settings());
    auto completed = outbound(1, Outcome::completed, 2'000'000);
    completed.handshake_ns = 1'002'000'000; // one SYN retransmission, then an unambiguous sample
    completed.retransmits = 1;
    auto refused = outbound(1, Outcome::refused, 300'000);
    auto timeout = outbound(1, Outcome::timeout, std::nullopt);
    timeout.handshake_ns = 10 * kSecond;
    timeout.retransmits = 3;
    const std::vector<HandshakeEvent> events = {completed, refused, timeout};
    agg.add(events);

    const auto snap = agg.snapshot();
    REQUIRE(snap.series.size() == 1);
    const auto& s = snap.series[0];
    CHECK(s.handshakes == std::array<std::uint64_t, 5>{1, 1, 1, 0, 0});
    CHECK(s.syn_retransmits == 4);
    CHECK(s.rtt_count == 2); // completed and refused carried rtt_ns; the timeout did not
    CHECK(s.duration_count == 1); // completed only
    CHECK(s.duration_sum_ns == 1'002'000'000);
    const auto dur = snap.duration_buckets(0);
    CHECK(std::vector<std::uint64_t>(dur.begin(), dur.end()) == std::vector<std::uint64_t>{0, 0, 0, 1});
}

TEST_CASE("max_series folds new label sets into peer=other", "[metrics][aggregator]")
{
    Aggregator agg(labels::LabelPolicy(testing::db_group_config()), settings(3));
    std::vector<HandshakeEvent> events;
    for (std::uint8_t peer = 1; peer <= 5; ++peer) events.push_back(outbound(peer));
    events.push_back(outbound(5)); // folded again: counts again
    events.push_back(outbound(1)); // existing series: not folded
    auto overflow_report = outbound(5); // folded, but the second event of a handshake: not counted
    overflow_report.outcome = Outcome::accept_overflow;
    events.push_back(overflow_report);
    agg.add(events);

    CHECK(agg.series_count() == 4); // three real series and one overflow series
    CHECK(agg.series_overflow() == 3); // events 4, 5 and 5 again
    const auto snap = agg.snapshot();
    const auto* other = find_peer(snap, "other");
    REQUIRE(other != nullptr);
    CHECK(other->handshakes[0] == 3);
    CHECK(other->key.port_other == 1); // the port is given up with the peer
    CHECK(other->key.port == 0);
    REQUIRE(find_peer(snap, "198.18.0.1") != nullptr);
    CHECK(find_peer(snap, "198.18.0.1")->handshakes[0] == 2);
    CHECK(find_peer(snap, "198.18.0.4") == nullptr);

    // A port scan at the cap creates no series: every new port lands in the same overflow
    // series, so the cap is exceeded by at most one series per (interface, direction, family).
    for (std::uint16_t port = 1; port <= 100; ++port) {
        auto scanned = outbound(9);
        scanned.peer_port = port;
        agg.add(std::span(&scanned, 1));
    }
    CHECK(agg.series_count() == 4);
    CHECK(agg.series_overflow() == 103);

    // Another direction at the cap gets its own overflow series.
    auto inbound_event = outbound(9);
    inbound_event.direction = Direction::inbound;
    agg.add(std::span(&inbound_event, 1));
    CHECK(agg.series_count() == 5);
}

TEST_CASE("series idle longer than series_ttl expire", "[metrics][aggregator]")
{
    Aggregator agg(labels::LabelPolicy(testing::db_group_config()), settings(2000, std::chrono::seconds(60)));
    const std::vector<HandshakeEvent> events = {outbound(1, Outcome::completed, 1000, 10 * kSecond),
                                                outbound(2, Outcome::completed, 1000, 50 * kSecond)};
    agg.add(events);
    CHECK(agg.expire(70 * kSecond) == 0); // exactly ttl idle: kept
    CHECK(agg.expire(71 * kSecond) == 1);
    const auto snap = agg.snapshot();
    REQUIRE(snap.series.size() == 1);
    CHECK(labels::peer_label(snap.series[0].key, snap.group_names) == "198.18.0.2");

    // The freed slot is reused with zeroed counts.
    const auto again = outbound(1, Outcome::completed, 1000, 80 * kSecond);
    agg.add(std::span(&again, 1));
    const auto after = agg.snapshot();
    const auto* one = find_peer(after, "198.18.0.1");
    REQUIRE(one != nullptr);
    CHECK(one->handshakes[0] == 1);
    const auto rtt = after.rtt_buckets(index_of(after, one));
    CHECK(std::accumulate(rtt.begin(), rtt.end(), std::uint64_t{0}) == 1);

    SECTION("ttl 0 never expires")
    {
        Aggregator forever(labels::LabelPolicy(testing::db_group_config()), settings(2000, std::chrono::seconds(0)));
        forever.add(events);
        CHECK(forever.expire(UINT64_MAX / 2) == 0);
        CHECK(forever.series_count() == 2);
    }
}

TEST_CASE("counters survive set_policy, groups are matched by name", "[metrics][aggregator]")
{
    Aggregator agg(labels::LabelPolicy(testing::db_group_config()), settings());
    auto db = outbound(1);
    db.peer = {10, 1, 0, 9};
    const std::vector<HandshakeEvent> first = {db, outbound(7)};
    agg.add(first);

    // New policy: another group comes first, "db" moves to index 1, folding changes.
    auto c = testing::db_group_config();
    c.peer_groups.insert(c.peer_groups.begin(), config::PeerGroup{"web", {*config::parse_cidr("198.19.0.0/16")}});
    c.peer_folding.outbound_ipv4 = 24;
    agg.set_policy(labels::LabelPolicy(c));
    const std::vector<HandshakeEvent> second = {db, outbound(7)};
    agg.add(second);

    const auto snap = agg.snapshot();
    REQUIRE(find_peer(snap, "db") != nullptr);
    CHECK(find_peer(snap, "db")->handshakes[0] == 2);          // same series across the reload
    REQUIRE(find_peer(snap, "198.18.0.7") != nullptr);
    CHECK(find_peer(snap, "198.18.0.7")->handshakes[0] == 1);  // old fold keeps its count
    REQUIRE(find_peer(snap, "198.18.0.0/24") != nullptr);
    CHECK(find_peer(snap, "198.18.0.0/24")->handshakes[0] == 1);
    CHECK(snap.series.size() == 3);
}

TEST_CASE("bucket changes on reload are refused with a warning", "[metrics][aggregator]")
{
    Aggregator agg(labels::LabelPolicy(testing::db_group_config()), settings());
    CHECK(agg.set_settings(settings(10, std::chrono::seconds(5))).empty());
    auto changed = settings();
    changed.buckets = {0.5, 1};
    const auto warnings = agg.set_settings(changed);
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], Catch::Contains("restart"));
    CHECK(agg.snapshot().bounds == std::vector<double>{0.001, 0.01, 0.1});
}

TEST_CASE("bad bucket bounds are rejected", "[metrics][aggregator]")
{
    const labels::LabelPolicy policy(testing::db_group_config());
    CHECK_THROWS_AS(Aggregator(policy, Settings{{0.1, 0.01}, 10, {}}), std::invalid_argument);
    CHECK_THROWS_AS(Aggregator(policy, Settings{{0.0, 0.01}, 10, {}}), std::invalid_argument);
    CHECK_THROWS_AS(Aggregator(policy, Settings{{0.1, 0.1}, 10, {}}), std::invalid_argument);
}

TEST_CASE("an interface re-created under its name continues its series", "[metrics][aggregator]")
{
    labels::InterfaceNames names;
    CHECK(names.set(3, "eth0").empty());
    CHECK(names.set(3, "eth0").empty()); // re-attach: nothing moves

    Aggregator agg(labels::LabelPolicy(testing::db_group_config()), settings(2000, std::chrono::seconds(60)));
    auto old_event = outbound(1, Outcome::completed, 500'000, 10 * kSecond);
    agg.add(std::span(&old_event, 1));

    // eth0 comes back as ifindex 7; its old series moves there and merges.
    const auto moves = names.set(7, "eth0");
    REQUIRE(moves == std::vector<labels::InterfaceNames::Move>{{3, 7, true}});
    for (const auto& move : moves) agg.move_interface(move.from, move.to, move.redirect);
    auto new_event = outbound(1, Outcome::completed, 700'000, 50 * kSecond);
    new_event.ifindex = 7;
    // A handshake left pending on the vanished ifindex 3 times out later: same series.
    auto straggler = outbound(1, Outcome::timeout, std::nullopt, 40 * kSecond);
    const std::vector<HandshakeEvent> later = {new_event, straggler};
    agg.add(later);

    auto snap = agg.snapshot();
    REQUIRE(snap.series.size() == 1); // one key per rendered label set
    CHECK(snap.series[0].key.ifindex == 7);
    CHECK(snap.series[0].handshakes[0] == 2);
    CHECK(snap.series[0].handshakes[2] == 1);
    CHECK(snap.series[0].rtt_sum_ns == 1'200'000);
    // Expiry judged by the newest event of the merged series: the old part cannot expire alone.
    CHECK(agg.expire(100 * kSecond) == 0);
    CHECK(agg.snapshot().series[0].handshakes[0] == 2);
}

TEST_CASE("an ifindex reused under another name keeps the old series' name", "[metrics][aggregator]")
{
    labels::InterfaceNames names;
    names.set(3, "eth0");
    const auto moves = names.set(3, "tun0");
    REQUIRE(moves.size() == 1);
    CHECK(moves[0].from == 3);
    CHECK(moves[0].to >= labels::InterfaceNames::kFirstRetiredKey);
    const auto copy = names.copy();
    CHECK(copy.at(moves[0].to) == "eth0");
    CHECK(copy.at(3) == "tun0");
    CHECK_FALSE(moves[0].redirect); // new events on ifindex 3 are tun0's

    Aggregator agg(labels::LabelPolicy(testing::db_group_config()), settings());
    auto event = outbound(1);
    agg.add(std::span(&event, 1));
    agg.move_interface(moves[0].from, moves[0].to, moves[0].redirect);
    agg.add(std::span(&event, 1)); // tun0's own handshake
    const auto snap = agg.snapshot();
    REQUIRE(snap.series.size() == 2);
    std::vector<std::string> interfaces;
    for (const auto& s : snap.series) interfaces.push_back(labels::render_labels(s.key, snap.group_names, copy).interface);
    std::sort(interfaces.begin(), interfaces.end());
    CHECK(interfaces == std::vector<std::string>{"eth0", "tun0"});

    // eth0 comes back (ifindex 9): the retired series joins it.
    const auto back = names.set(9, "eth0");
    REQUIRE(back.size() == 1);
    CHECK(back[0].from == moves[0].to);
    CHECK(back[0].to == 9);
}
