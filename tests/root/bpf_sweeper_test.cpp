// The daemon's own probe modules against the real program (root, BPF_PROG_TEST_RUN, no attach):
// Probe (load, counters, counting filter), EventReader (batches) and TimeoutSweeper.
#include "os/clock.hpp"
#include "probe/event_reader.hpp"
#include "loopback_run.hpp"
#include "packet_builder.hpp"
#include "probe/probe.hpp"
#include "probe/timeout_sweeper.hpp"

#include <bpf/bpf.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <thread>
#include <vector>

using namespace flowlat;
using namespace flowlat::test;
using namespace std::chrono_literals;

namespace {

const Address local4 = Address::parse("198.18.0.1");
const Address client4 = Address::parse("198.19.0.3");
const Address local6 = Address::parse("fd00::1");
const Address client6 = Address::parse("fd00::3");

void run(int program_fd, const PacketBuilder& builder)
{
    CHECK(static_cast<int>(run_on_loopback(program_fd, builder.build())) == -1); // TC_ACT_UNSPEC
}

PacketBuilder segment(const Address& from, const Address& to, std::uint16_t sport, std::uint16_t dport,
                      std::uint8_t flags, std::uint32_t seq, std::uint32_t ack = 0)
{
    PacketBuilder b;
    b.ip(from, to).tcp(sport, dport).flags(flags).seq(seq).ack(ack);
    return b;
}

std::uint32_t total_ack_filter(const probe::Probe& probe)
{
    std::uint32_t total = 0;
    for (std::uint32_t bucket = 0; bucket < FLOWLAT_ACK_FILTER_BUCKETS; ++bucket)
        total += probe.ack_filter_bucket_value(bucket);
    return total;
}

std::unique_ptr<probe::Probe> load(std::uint64_t timeout_ns)
{
    probe::ProbeOptions options;
    options.flow_table_size = 1024;
    options.handshake_timeout_ns = timeout_ns;
    auto loaded = probe::Probe::load(options);
    REQUIRE(loaded.ok());
    return std::move(loaded).value();
}

} // namespace

TEST_CASE("the sweep reports unanswered handshakes once and gives back their filter buckets", "[root][bpf]")
{
    auto probe = load(50'000'000); // 50 ms
    const int ingress = probe->ingress_program_fd();
    const int egress = probe->egress_program_fd();
    using namespace tcp_flag;

    // Inbound v4: SYN in, our SYN-ACK out, no final ACK: it holds a counting-filter bucket.
    run(ingress, segment(client4, local4, 50000, 8080, syn, 1000));
    run(egress, segment(local4, client4, 8080, 50000, syn | ack, 7000, 1001));
    // Outbound v6: SYN out, never answered.
    run(egress, segment(local6, client6, 40000, 443, syn, 2000));
    CHECK(total_ack_filter(*probe) == 1);

    probe::TimeoutSweeper sweeper(*probe);
    // Too young: nothing is reported, both are still counted as pending.
    CHECK(sweeper.sweep(clock::monotonic_ns()).empty());
    CHECK(sweeper.last_entry_count() == 2);

    std::this_thread::sleep_for(60ms);
    const std::uint64_t now = clock::monotonic_ns();
    auto timeouts = sweeper.sweep(now);
    REQUIRE(timeouts.size() == 2);
    for (const auto& event : timeouts) {
        CHECK(event.outcome == Outcome::timeout);
        CHECK_FALSE(event.rtt_ns);
        CHECK(event.handshake_ns >= 50'000'000u);
        CHECK(event.monotonic_ns == now);
        if (event.direction == Direction::inbound) {
            CHECK(event.family == Family::ipv4);
            CHECK(event.local_port == 8080);
            CHECK(event.peer_port == 50000);
        } else {
            CHECK(event.family == Family::ipv6);
            CHECK(event.peer_port == 443);
        }
    }
    CHECK(total_ack_filter(*probe) == 0);
    // Both stay recorded as reported, so that their retransmissions are recognised.
    CHECK(sweeper.last_entry_count() == 2);
    // Exactly once: a second sweep reports nothing; the same SYNs retransmitted (the client
    // keeps trying for ~127 s) start nothing, and late answers complete nothing.
    CHECK(sweeper.sweep(clock::monotonic_ns()).empty());

    std::vector<HandshakeEvent> delivered;
    auto reader = probe::EventReader::open(probe->ring_buffer_fd(), [&](std::span<const HandshakeEvent> batch) {
        delivered.insert(delivered.end(), batch.begin(), batch.end());
    });
    REQUIRE(reader.ok());
    run(ingress, segment(client4, local4, 50000, 8080, syn, 1000));
    run(egress, segment(local6, client6, 40000, 443, syn, 2000));
    std::this_thread::sleep_for(60ms);
    CHECK(sweeper.sweep(clock::monotonic_ns()).empty());
    run(ingress, segment(client6, local6, 443, 40000, syn | ack, 9000, 2001));
    run(egress, segment(local4, client4, 8080, 50000, syn | ack, 7000, 1001));
    run(ingress, segment(client4, local4, 50000, 8080, ack, 1001, 7001));
    reader.value()->drain();
    CHECK(delivered.empty());
    CHECK(total_ack_filter(*probe) == 0);
    CHECK(probe->read_counters().handshakes_abandoned == 0);

    // A new attempt on the same tuple (a new ISN) is a new handshake, measured as usual.
    run(egress, segment(local6, client6, 40000, 443, syn, 3000));
    run(ingress, segment(client6, local6, 443, 40000, syn | ack, 9000, 3001));
    reader.value()->drain();
    REQUIRE(delivered.size() == 1);
    CHECK(delivered[0].outcome == Outcome::completed);
    CHECK(delivered[0].retransmits == 0);
    CHECK(delivered[0].rtt_ns);
}

TEST_CASE("records of reported timeouts give way when the flow table is half full", "[root][bpf]")
{
    auto probe = load(50'000'000); // 50 ms, in a 1,024-entry table
    const int egress = probe->egress_program_fd();
    using namespace tcp_flag;

    // 600 unanswered SYNs: past half the table.
    for (std::uint16_t i = 0; i < 600; ++i)
        run(egress, segment(local4, client4, static_cast<std::uint16_t>(20000 + i), 443, syn, 100u + i));
    probe::TimeoutSweeper sweeper(*probe);
    std::this_thread::sleep_for(60ms);
    CHECK(sweeper.sweep(clock::monotonic_ns()).size() == 600);
    // Under pressure nothing is kept: the table is free for new handshakes at once.
    CHECK(sweeper.last_entry_count() == 0);

    // 100 more, below half: these are kept as records after their timeout.
    for (std::uint16_t i = 0; i < 100; ++i)
        run(egress, segment(local4, client4, static_cast<std::uint16_t>(30000 + i), 443, syn, 100u + i));
    std::this_thread::sleep_for(60ms);
    CHECK(sweeper.sweep(clock::monotonic_ns()).size() == 100);
    CHECK(sweeper.last_entry_count() == 100);
    CHECK(probe->read_counters().flow_table_full == 0);
}

TEST_CASE("the reader delivers completed handshakes in one batch, with the counters the daemon exports",
          "[root][bpf]")
{
    auto probe = load(10'000'000'000ull);
    const int ingress = probe->ingress_program_fd();
    const int egress = probe->egress_program_fd();
    using namespace tcp_flag;

    std::vector<std::size_t> batch_sizes;
    std::vector<HandshakeEvent> delivered;
    auto reader = probe::EventReader::open(probe->ring_buffer_fd(), [&](std::span<const HandshakeEvent> batch) {
        batch_sizes.push_back(batch.size());
        delivered.insert(delivered.end(), batch.begin(), batch.end());
    });
    REQUIRE(reader.ok());
    constexpr std::uint16_t handshakes = 100;
    for (std::uint16_t i = 0; i < handshakes; ++i) {
        run(egress, segment(local4, client4, static_cast<std::uint16_t>(30000 + i), 443, syn, 100u + i));
        run(ingress, segment(client4, local4, 443, static_cast<std::uint16_t>(30000 + i), syn | ack, 5, 101u + i));
    }
    // A truncated TCP header is counted, not parsed.
    PacketBuilder truncated = segment(local4, client4, 1, 2, syn, 1);
    truncated.truncate_at(Layer::transport, 10);
    run(egress, truncated);

    CHECK(reader.value()->drain() == handshakes);
    REQUIRE(batch_sizes.size() == 1);
    CHECK(batch_sizes[0] == handshakes);
    for (const auto& event : delivered) {
        CHECK(event.outcome == Outcome::completed);
        CHECK(event.direction == Direction::outbound);
        REQUIRE(event.rtt_ns);
        CHECK(*event.rtt_ns == event.handshake_ns);
    }
    const auto counters = probe->read_counters();
    CHECK(counters.events_lost == 0);
    CHECK(counters.flow_table_full == 0);
    CHECK(counters.packets_malformed == 1);
    CHECK(reader.value()->malformed_records() == 0);
}

TEST_CASE("the sweep derives the LRU table's evictions and repairs the filter buckets they leaked", "[root][bpf]")
{
    auto probe = load(50'000'000); // 50 ms; a table of 1024
    const int ingress = probe->ingress_program_fd();
    const int egress = probe->egress_program_fd();
    using namespace tcp_flag;

    // Spoofed SYNs our listener answers: 400 more than the table holds. Each entry holds a
    // counting-filter bucket, and the ones pushed out never give it back.
    constexpr std::uint32_t flood = 1024 + 400;
    for (std::uint32_t i = 0; i < flood; ++i) {
        const auto port = static_cast<std::uint16_t>(20000 + i);
        run(ingress, segment(client4, local4, port, 8080, syn, 1000 + i));
        run(egress, segment(local4, client4, 8080, port, syn | ack, 7000, 1001 + i));
    }
    CHECK(probe->ack_epoch() == 0);
    const std::uint64_t inserts = probe->read_counters().flow_inserts;
    CHECK(inserts == flood);
    std::uint64_t entries = 0;
    {
        flowlat_flow_key key{}, next{};
        for (bool first = true; bpf_map_get_next_key(probe->flow_table_fd(), first ? nullptr : &key, &next) == 0;
             first = false, key = next)
            ++entries;
    }
    REQUIRE(entries < flood);
    const std::uint32_t leaked = total_ack_filter(*probe) - static_cast<std::uint32_t>(entries);
    CHECK(leaked > 0);

    // Every pending entry times out and gives its bucket back; the leaked counts stay, and the
    // evictions are derived exactly (nothing moved during the walk).
    probe::TimeoutSweeper sweeper(*probe);
    const std::uint64_t t0 = clock::monotonic_ns() + 60'000'000;
    CHECK(sweeper.sweep(t0).size() == entries);
    CHECK(sweeper.evictions_total() == inserts - entries);
    CHECK(total_ack_filter(*probe) == leaked);

    // After a period the other (empty) epoch becomes current; after a second one the leaked
    // epoch is zeroed and current again.
    const std::uint64_t period = probe::TimeoutSweeper::ack_epoch_period_ns(50'000'000);
    CHECK(sweeper.sweep(t0 + period).empty());
    CHECK(probe->ack_epoch() == 1);
    CHECK(total_ack_filter(*probe) == leaked);
    CHECK(sweeper.sweep(t0 + 2 * period).empty());
    CHECK(probe->ack_epoch() == 0);
    CHECK(total_ack_filter(*probe) == 0);
    // Evictions only grow.
    CHECK(sweeper.evictions_total() == inserts - entries);

    // A flow armed in the new epoch is counted there and completes as usual.
    run(ingress, segment(client4, local4, 60000, 8080, syn, 5000));
    run(egress, segment(local4, client4, 8080, 60000, syn | ack, 7000, 5001));
    CHECK(total_ack_filter(*probe) == 1);
    run(ingress, segment(client4, local4, 60000, 8080, ack, 5001, 7001));
    CHECK(total_ack_filter(*probe) == 0);
}

TEST_CASE("the sweep forgets accept-overflow records silently, never as timeouts", "[root][bpf]")
{
    auto probe = load(50'000'000); // 50 ms
    const int ingress = probe->ingress_program_fd();
    const int egress = probe->egress_program_fd();
    using namespace tcp_flag;

    run(ingress, segment(client4, local4, 50001, 8080, syn, 1000));
    run(egress, segment(local4, client4, 8080, 50001, syn | ack, 7000, 1001));
    run(ingress, segment(client4, local4, 50001, 8080, ack, 1001, 7001));
    probe::TimeoutSweeper sweeper(*probe);
    const std::uint64_t now = clock::monotonic_ns();
    // Past handshake_timeout: the completed handshake's record is no timeout.
    CHECK(sweeper.sweep(now + 1'000'000'000).empty());
    CHECK(sweeper.last_entry_count() == 1);
    // Past FLOWLAT_ACKED_KEPT_NS: forgotten, with no event.
    CHECK(sweeper.sweep(now + FLOWLAT_ACKED_KEPT_NS + 1'000'000'000).empty());
    CHECK(sweeper.last_entry_count() == 0);
}
