// Tier 2: the real probe run through BPF_PROG_TEST_RUN, no attach, as data tables.
//
// Each case is a description, an ordered list of packets (ingress or egress), and what
// must be true afterwards: every verdict TC_ACT_UNSPEC with the frame unchanged, exactly
// the listed events (produced by the listed step, with timings that fit the measured
// clock windows), exactly the listed flow-table entries, and every counter. After every
// step the counting filter must match the flows that hold a bucket. Each case loads a
// fresh skeleton, so cases are independent.
#include "os/clock.hpp"
#include "packet_builder.hpp"

#include "flow/flowlat_abi.hpp"
#include "flowlat_probe.skel.h"
#include "flow/handshake_event.hpp"
#include "probe/probe.hpp"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <cstdlib>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace flowlat::test;
using namespace std::chrono_literals;
using flowlat::Direction;
using flowlat::Family;
using flowlat::HandshakeEvent;
using flowlat::Outcome;

// BPF_PROG_TEST_RUN gives the skb the loopback device unless the context names another.
constexpr std::uint32_t loopback_ifindex = 1;
// bpf_ktime_get_ns() and clock_gettime(CLOCK_MONOTONIC) read the same clock through
// different accessors; allow for the fast accessor's lag at a timekeeping update.
constexpr std::uint64_t clock_slack_ns = 50'000;
// Long enough that the windows of two transmissions cannot overlap in an rtt check.
constexpr auto karn_gap = 20ms;

// ---------------------------------------------------------------------------------------
// The probe under test.

struct ProbeOptions {
    std::uint32_t flow_table_size{FLOWLAT_DEFAULT_FLOW_TABLE_SIZE};
    std::uint32_t ring_buffer_size{FLOWLAT_DEFAULT_RING_BUFFER_SIZE};
};

enum class Hook { ingress, egress };

const char* hook_name(Hook hook)
{
    return hook == Hook::ingress ? "ingress" : "egress";
}

struct Window {
    std::uint64_t start_ns{0}; // CLOCK_MONOTONIC just before the test run
    std::uint64_t end_ns{0};   // and just after it
};

struct RunResult {
    int error{0}; // bpf_prog_test_run_opts(): 0 or -errno
    int verdict{0};
    Bytes frame_out;
    Window window;
};

struct SkeletonDeleter {
    void operator()(flowlat_probe* skeleton) const { flowlat_probe__destroy(skeleton); }
};
struct RingBufferDeleter {
    void operator()(ring_buffer* ring) const { ring_buffer__free(ring); }
};

// The skeleton and a ring buffer reader on its events map. The reader's callback points
// at this object, so it neither copies nor moves.
class LoadedProbe {
public:
    explicit LoadedProbe(const ProbeOptions& options)
    {
        skeleton_.reset(flowlat_probe__open());
        if (!skeleton_) throw std::runtime_error("flowlat_probe__open: " + std::string(std::strerror(errno)));
        if (bpf_map__set_max_entries(skeleton_->maps.flows, options.flow_table_size) != 0 ||
            bpf_map__set_max_entries(skeleton_->maps.events, options.ring_buffer_size) != 0)
            throw std::runtime_error("bpf_map__set_max_entries failed");
        if (int err = flowlat_probe__load(skeleton_.get()); err != 0)
            throw std::runtime_error("flowlat_probe__load: " + std::string(std::strerror(-err)));
        ring_.reset(ring_buffer__new(bpf_map__fd(skeleton_->maps.events), &LoadedProbe::on_record, this, nullptr));
        if (!ring_) throw std::runtime_error("ring_buffer__new: " + std::string(std::strerror(errno)));
    }
    LoadedProbe(const LoadedProbe&) = delete;
    LoadedProbe& operator=(const LoadedProbe&) = delete;

    RunResult run(Hook hook, const Packet& packet, std::uint32_t ifindex = loopback_ifindex)
    {
        __sk_buff context{};
        context.ifindex = ifindex;
        RunResult result;
        result.frame_out.resize(packet.bytes.size() + 256);

        bpf_test_run_opts opts{};
        opts.sz = sizeof(opts);
        opts.data_in = packet.bytes.data();
        opts.data_size_in = static_cast<__u32>(packet.bytes.size());
        opts.data_out = result.frame_out.data();
        opts.data_size_out = static_cast<__u32>(result.frame_out.size());
        opts.ctx_in = &context;
        opts.ctx_size_in = sizeof(context);
        opts.repeat = 1;
        bpf_program* program =
            hook == Hook::ingress ? skeleton_->progs.flowlat_ingress : skeleton_->progs.flowlat_egress;

        result.window.start_ns = flowlat::clock::monotonic_ns();
        result.error = bpf_prog_test_run_opts(bpf_program__fd(program), &opts);
        result.window.end_ns = flowlat::clock::monotonic_ns();
        result.verdict = static_cast<int>(opts.retval);
        result.frame_out.resize(result.error == 0 ? opts.data_size_out : 0);
        return result;
    }

    // Every record the ring holds, decoded; nullopt for a record decode_event() rejects.
    std::vector<std::optional<HandshakeEvent>> consume()
    {
        records_.clear();
        const int consumed = ring_buffer__consume(ring_.get());
        if (consumed < 0) throw std::runtime_error("ring_buffer__consume: " + std::string(std::strerror(-consumed)));
        return std::move(records_);
    }

    std::uint64_t counter(flowlat_counter index) const
    {
        const int cpus = libbpf_num_possible_cpus();
        std::vector<__u64> per_cpu(static_cast<std::size_t>(cpus > 0 ? cpus : 1));
        const __u32 key = index;
        if (bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.counters), &key, per_cpu.data()) != 0)
            throw std::runtime_error("counters lookup: " + std::string(std::strerror(errno)));
        std::uint64_t total = 0;
        for (auto value : per_cpu) total += value;
        return total;
    }

    std::vector<std::pair<flowlat_flow_key, flowlat_flow>> flows() const
    {
        std::vector<std::pair<flowlat_flow_key, flowlat_flow>> entries;
        const int fd = bpf_map__fd(skeleton_->maps.flows);
        flowlat_flow_key key{};
        bool first = true;
        while (true) {
            flowlat_flow_key next{};
            if (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) != 0) break;
            first = false;
            key = next;
            flowlat_flow value{};
            if (bpf_map_lookup_elem(fd, &key, &value) == 0) entries.emplace_back(key, value);
        }
        return entries;
    }

    // Both epochs' counts of a bucket (flowlat.h: struct flowlat_ack_bucket).
    std::uint32_t ack_filter(std::size_t bucket) const
    {
        return ack_filter(bucket, 0) + ack_filter(bucket, 1);
    }

    std::uint32_t ack_filter(std::size_t bucket, std::uint32_t epoch) const
    {
        return __atomic_load_n(&skeleton_->bss->ack_filter[bucket].count[epoch & 1], __ATOMIC_RELAXED);
    }

    std::uint64_t ack_filter_total() const
    {
        std::uint64_t total = 0;
        for (std::size_t bucket = 0; bucket < FLOWLAT_ACK_FILTER_BUCKETS; ++bucket) total += ack_filter(bucket);
        return total;
    }

private:
    static int on_record(void* self, void* data, std::size_t size)
    {
        auto* probe = static_cast<LoadedProbe*>(self);
        probe->records_.push_back(size == sizeof(flowlat_event) ? flowlat::decode_event(data, size) : std::nullopt);
        return 0;
    }

    std::unique_ptr<flowlat_probe, SkeletonDeleter> skeleton_;
    std::unique_ptr<ring_buffer, RingBufferDeleter> ring_; // freed before the skeleton
    std::vector<std::optional<HandshakeEvent>> records_;
};

// The kernel's test run sets skb->pkt_type as a receiving device would (eth_type_trans):
// PACKET_HOST only when the destination MAC is the device's own. Loopback's address is all
// zeros; the scratch veth is given one. Ingress frames are addressed to their device.
using Mac = std::array<std::uint8_t, 6>;
constexpr Mac loopback_mac{0, 0, 0, 0, 0, 0};
constexpr Mac scratch_veth_mac{0x02, 0, 0, 0, 0, 0x02};
constexpr const char* scratch_veth_mac_text = "02:00:00:00:00:02";
constexpr Mac other_host_mac{0x02, 0, 0, 0, 0, 0x99};
constexpr Mac broadcast_mac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

Packet addressed_to(Packet packet, const Mac& mac)
{
    std::copy(mac.begin(), mac.end(), packet.bytes.begin());
    return packet;
}

// A network namespace of our own with a veth pair, for the length of one test.
// Test runs resolve ctx.ifindex in the calling task's namespace, so this switches the
// whole (single-threaded) test process and switches back in the destructor.
class ScratchNamespace {
public:
    ScratchNamespace()
    {
        original_ = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (original_ < 0) throw std::runtime_error("open /proc/self/ns/net: " + std::string(std::strerror(errno)));
        if (::unshare(CLONE_NEWNET) != 0) {
            ::close(original_);
            throw std::runtime_error("unshare(CLONE_NEWNET): " + std::string(std::strerror(errno)));
        }
    }
    ~ScratchNamespace()
    {
        ::setns(original_, CLONE_NEWNET);
        ::close(original_);
    }
    ScratchNamespace(const ScratchNamespace&) = delete;
    ScratchNamespace& operator=(const ScratchNamespace&) = delete;

    // Adds a veth pair (the end-to-end tests need veth anyway) and returns the first end's index.
    std::uint32_t add_veth(const std::string& name, const std::string& peer_name)
    {
        const std::string command =
            "ip link add " + name + " address " + scratch_veth_mac_text + " type veth peer name " + peer_name;
        if (std::system(command.c_str()) != 0) throw std::runtime_error(command + " failed");
        const unsigned index = if_nametoindex(name.c_str());
        if (index == 0) throw std::runtime_error("if_nametoindex " + name + ": " + std::strerror(errno));
        return index;
    }

private:
    int original_{-1};
};

// ---------------------------------------------------------------------------------------
// The vocabulary of the tables.

// A connection from the host's point of view.
struct Tuple {
    Address local;
    Address peer;
    std::uint16_t local_port;
    std::uint16_t peer_port;
    std::uint32_t ifindex{loopback_ifindex}; // the interface the packets pass

    Tuple with_ifindex(std::uint32_t index) const
    {
        Tuple other = *this;
        other.ifindex = index;
        return other;
    }
    Tuple with_local_port(std::uint16_t port) const
    {
        Tuple other = *this;
        other.local_port = port;
        return other;
    }
    Tuple with_peer_port(std::uint16_t port) const
    {
        Tuple other = *this;
        other.peer_port = port;
        return other;
    }
};

const Address local4 = Address::parse("198.18.0.1");
const Address peer4 = Address::parse("198.19.0.2");
const Address client4_addr = Address::parse("198.19.0.3");
const Address local6 = Address::parse("fd00::1");
const Address peer6 = Address::parse("fd00::2");
const Address client6_addr = Address::parse("fd00:0:0:1::3");

// We connect out (outbound) ...
const Tuple client4{local4, peer4, 40000, 443};
const Tuple client6{local6, peer6, 40000, 443};
// ... or a client connects to us (inbound).
const Tuple server4{local4, client4_addr, 8080, 50000};
const Tuple server6{local6, client6_addr, 8080, 50000};

constexpr std::uint32_t client_isn = 1000;
constexpr std::uint32_t server_isn = 700000;

constexpr std::uint8_t syn = tcp_flag::syn;
constexpr std::uint8_t syn_ack = tcp_flag::syn | tcp_flag::ack;
constexpr std::uint8_t ack = tcp_flag::ack;
constexpr std::uint8_t rst = tcp_flag::rst;
constexpr std::uint8_t rst_ack = tcp_flag::rst | tcp_flag::ack;
constexpr std::uint8_t psh_ack = tcp_flag::psh | tcp_flag::ack;
constexpr std::uint8_t fin_ack = tcp_flag::fin | tcp_flag::ack;

// A TCP packet our host sends on this tuple, and one it receives.
PacketBuilder sent(const Tuple& t, std::uint8_t flags)
{
    return std::move(PacketBuilder().ip(t.local, t.peer).tcp(t.local_port, t.peer_port).flags(flags));
}

PacketBuilder received(const Tuple& t, std::uint8_t flags)
{
    return std::move(PacketBuilder().ip(t.peer, t.local).tcp(t.peer_port, t.local_port).flags(flags));
}

struct Step {
    Hook hook{Hook::egress};
    Packet packet;
    std::chrono::milliseconds sleep_before{0};
    std::optional<std::uint64_t> ack_filter_total; // sum over all buckets after this step
    std::uint32_t ifindex{loopback_ifindex};
};

Step egress(const PacketBuilder& packet, std::chrono::milliseconds sleep_before = 0ms)
{
    return Step{Hook::egress, packet.build(), sleep_before, std::nullopt, loopback_ifindex};
}

Step ingress(const Packet& packet, std::chrono::milliseconds sleep_before = 0ms)
{
    return Step{Hook::ingress, addressed_to(packet, loopback_mac), sleep_before, std::nullopt, loopback_ifindex};
}

Step ingress(const PacketBuilder& packet, std::chrono::milliseconds sleep_before = 0ms)
{
    return ingress(packet.build(), sleep_before);
}

// An ingress frame exactly as given, destination MAC included.
Step ingress_as_is(const Packet& packet, std::chrono::milliseconds sleep_before = 0ms)
{
    return Step{Hook::ingress, packet, sleep_before, std::nullopt, loopback_ifindex};
}

// The step on the scratch veth (ScratchNamespace::add_veth).
Step on_interface(Step step, std::uint32_t ifindex)
{
    step.ifindex = ifindex;
    if (step.hook == Hook::ingress) step.packet = addressed_to(step.packet, scratch_veth_mac);
    return step;
}

Step with_ack_filter(Step step, std::uint64_t total)
{
    step.ack_filter_total = total;
    return step;
}

struct ExpectedEvent {
    std::size_t step{0}; // the step whose packet produced it
    Outcome outcome{Outcome::completed};
    Direction direction{Direction::outbound};
    Tuple tuple{client4};
    std::uint16_t retransmits{0};
    std::size_t handshake_from{0};         // the step of the first SYN
    std::optional<std::size_t> rtt_from{}; // the answered transmission; empty: rtt must be invalid
    // Karn's rule: the rtt must also be shorter than the time since this (earlier) transmission.
    std::optional<std::size_t> rtt_shorter_than_since{};
};

ExpectedEvent completed(std::size_t step, Direction direction, const Tuple& tuple, std::size_t rtt_from,
                        std::size_t handshake_from = 0)
{
    return ExpectedEvent{step, Outcome::completed, direction, tuple, 0, handshake_from, rtt_from, std::nullopt};
}

ExpectedEvent refused(std::size_t step, Direction direction, const Tuple& tuple, std::uint16_t retransmits = 0)
{
    return ExpectedEvent{step, Outcome::refused, direction, tuple, retransmits, 0, std::nullopt, std::nullopt};
}

struct ExpectedFlow {
    Tuple tuple{client4};
    Direction direction{Direction::outbound};
    flowlat_stage stage{FLOWLAT_STAGE_SYN_SENT};
    std::uint16_t transmissions{1};
    std::uint32_t syn_seq{client_isn};
    std::size_t first_syn_step{0};
};

ExpectedFlow pending_outbound(const Tuple& tuple, std::uint16_t transmissions = 1, std::uint32_t isn = client_isn,
                              std::size_t first_syn_step = 0)
{
    return ExpectedFlow{tuple, Direction::outbound, FLOWLAT_STAGE_SYN_SENT, transmissions, isn, first_syn_step};
}

ExpectedFlow pending_inbound(const Tuple& tuple, flowlat_stage stage, std::uint16_t transmissions,
                             std::uint32_t isn = client_isn, std::size_t first_syn_step = 0)
{
    return ExpectedFlow{tuple, Direction::inbound, stage, transmissions, isn, first_syn_step};
}

struct Case {
    std::string description;
    std::vector<Step> steps;
    std::vector<ExpectedEvent> events{};
    std::vector<ExpectedFlow> flows{};
    flowlat::probe::ProbeCounters counters{}; // what the probe's counters must read afterwards
    ProbeOptions options{};
};

// ---------------------------------------------------------------------------------------
// The runner.

flowlat_flow_key key_of(const Tuple& tuple)
{
    flowlat_flow_key key{};
    std::memcpy(key.local_addr, tuple.local.bytes.data(), sizeof(key.local_addr));
    std::memcpy(key.peer_addr, tuple.peer.bytes.data(), sizeof(key.peer_addr));
    key.local_port_be = htons(tuple.local_port);
    key.peer_port_be = htons(tuple.peer_port);
    key.ifindex = tuple.ifindex;
    key.family = tuple.local.ipv6 ? FLOWLAT_FAMILY_IPV6 : FLOWLAT_FAMILY_IPV4;
    return key;
}

std::string describe(const Tuple& tuple)
{
    return tuple.local.text() + ":" + std::to_string(tuple.local_port) + " <-> " + tuple.peer.text() + ":" +
           std::to_string(tuple.peer_port) + " on ifindex " + std::to_string(tuple.ifindex);
}

// The counting filter holds exactly one count per flow waiting for its final ACK.
void check_ack_filter_matches_flows(const LoadedProbe& probe)
{
    std::vector<std::uint32_t> expected(2 * FLOWLAT_ACK_FILTER_BUCKETS, 0);
    for (const auto& [key, flow] : probe.flows())
        if (flow.stage == FLOWLAT_STAGE_SYNACK_SENT) {
            REQUIRE(flow.ack_filter_bucket < FLOWLAT_ACK_FILTER_BUCKETS);
            REQUIRE(flow.ack_filter_epoch < 2);
            ++expected[2 * flow.ack_filter_bucket + flow.ack_filter_epoch];
        }
    std::size_t mismatched = 0;
    for (std::size_t bucket = 0; bucket < FLOWLAT_ACK_FILTER_BUCKETS; ++bucket)
        for (std::uint32_t epoch = 0; epoch < 2; ++epoch)
            if (probe.ack_filter(bucket, epoch) != expected[2 * bucket + epoch]) ++mismatched;
    CHECK(mismatched == 0);
}

// `value` happened between the two windows: at most from the end of `from` to the start of
// `to`, at least from the start of `from` to the end of `to`.
void check_duration(const char* what, std::uint64_t value, const Window& from, const Window& to)
{
    INFO(what << " = " << value << " ns");
    CHECK(value > 0);
    CHECK(value + clock_slack_ns >= to.start_ns - from.end_ns);
    CHECK(value <= to.end_ns - from.start_ns + clock_slack_ns);
}

void check_event(const HandshakeEvent& actual, const ExpectedEvent& expected, const std::vector<Window>& windows)
{
    INFO("event of step " << expected.step << " for " << describe(expected.tuple));
    CHECK(actual.outcome == expected.outcome);
    CHECK(actual.direction == expected.direction);
    CHECK(actual.family == (expected.tuple.local.ipv6 ? Family::ipv6 : Family::ipv4));
    CHECK(actual.ifindex == expected.tuple.ifindex);
    CHECK(actual.local == expected.tuple.local.bytes);
    CHECK(actual.peer == expected.tuple.peer.bytes);
    CHECK(actual.local_port == expected.tuple.local_port);
    CHECK(actual.peer_port == expected.tuple.peer_port);
    CHECK(actual.retransmits == expected.retransmits);

    const Window& at = windows[expected.step];
    CHECK(actual.monotonic_ns + clock_slack_ns >= at.start_ns);
    CHECK(actual.monotonic_ns <= at.end_ns + clock_slack_ns);
    check_duration("handshake_ns", actual.handshake_ns, windows[expected.handshake_from], at);

    if (!expected.rtt_from) {
        CHECK_FALSE(actual.rtt_ns.has_value());
        return;
    }
    REQUIRE(actual.rtt_ns.has_value());
    check_duration("rtt_ns", *actual.rtt_ns, windows[*expected.rtt_from], at);
    CHECK(*actual.rtt_ns <= actual.handshake_ns);
    if (expected.rtt_shorter_than_since) {
        const Window& earlier = windows[*expected.rtt_shorter_than_since];
        INFO("rtt_ns = " << *actual.rtt_ns << ", time since step " << *expected.rtt_shorter_than_since << " >= "
                         << at.start_ns - earlier.end_ns);
        CHECK(*actual.rtt_ns < at.start_ns - earlier.end_ns);
    }
}

// ACKED records (an inbound handshake reported completed, kept to see its SYN-ACK sent again)
// are checked apart: each must belong to an inbound handshake that completed in the case.
void check_flows(const LoadedProbe& probe, const std::vector<ExpectedFlow>& expected_flows,
                 const std::vector<Window>& windows,
                 const std::vector<std::pair<std::size_t, HandshakeEvent>>& events)
{
    auto flows = probe.flows();
    for (auto it = flows.begin(); it != flows.end();) {
        if (it->second.stage != FLOWLAT_STAGE_ACKED) {
            ++it;
            continue;
        }
        const flowlat_flow_key key = it->first;
        const bool completed_here = std::any_of(events.begin(), events.end(), [&](const auto& event) {
            const HandshakeEvent& e = event.second;
            return e.outcome == Outcome::completed && e.direction == Direction::inbound &&
                   e.local_port == ntohs(key.local_port_be) && e.peer_port == ntohs(key.peer_port_be) &&
                   std::memcmp(e.peer.data(), key.peer_addr, 16) == 0;
        });
        CHECK(completed_here);
        CHECK(it->second.direction == FLOWLAT_DIRECTION_INBOUND);
        it = flows.erase(it);
    }
    CHECK(flows.size() == expected_flows.size());
    for (const auto& expected : expected_flows) {
        INFO("flow " << describe(expected.tuple));
        const flowlat_flow_key key = key_of(expected.tuple);
        const auto found = std::find_if(flows.begin(), flows.end(), [&](const auto& entry) {
            return std::memcmp(&entry.first, &key, sizeof(key)) == 0;
        });
        REQUIRE(found != flows.end());
        const flowlat_flow& flow = found->second;
        CHECK(flow.direction == static_cast<__u8>(expected.direction));
        CHECK(flow.stage == static_cast<__u8>(expected.stage));
        CHECK(flow.transmissions == expected.transmissions);
        CHECK(flow.syn_seq == expected.syn_seq);
        if (expected.direction == Direction::outbound) CHECK(flow.expected_ack == expected.syn_seq + 1);
        const Window& first = windows[expected.first_syn_step];
        CHECK(flow.first_syn_ns + clock_slack_ns >= first.start_ns);
        CHECK(flow.first_syn_ns <= first.end_ns + clock_slack_ns);
    }
}

void run_case(const Case& c)
{
    LoadedProbe probe(c.options);
    std::vector<Window> windows;
    std::vector<std::pair<std::size_t, HandshakeEvent>> events;

    for (std::size_t i = 0; i < c.steps.size(); ++i) {
        const Step& step = c.steps[i];
        INFO("step " << i << ": " << hook_name(step.hook) << " ifindex " << step.ifindex << " "
                      << step.packet.summary);
        if (step.sleep_before.count() > 0) std::this_thread::sleep_for(step.sleep_before);
        const RunResult result = probe.run(step.hook, step.packet, step.ifindex);
        REQUIRE(result.error == 0);
        CHECK(result.verdict == TC_ACT_UNSPEC);
        CHECK(result.frame_out == step.packet.bytes); // a guest: nothing written to the packet
        windows.push_back(result.window);
        for (auto& record : probe.consume()) {
            REQUIRE(record.has_value());
            events.emplace_back(i, *record);
        }
        check_ack_filter_matches_flows(probe);
        if (step.ack_filter_total) CHECK(probe.ack_filter_total() == *step.ack_filter_total);
    }

    {
        INFO("events: expected " << c.events.size() << ", got " << events.size());
        REQUIRE(events.size() == c.events.size());
    }
    for (std::size_t i = 0; i < events.size(); ++i) {
        CHECK(events[i].first == c.events[i].step);
        check_event(events[i].second, c.events[i], windows);
    }
    check_flows(probe, c.flows, windows, events);

    CHECK(probe.counter(FLOWLAT_COUNTER_EVENTS_LOST) == c.counters.events_lost);
    CHECK(probe.counter(FLOWLAT_COUNTER_FLOW_TABLE_FULL) == c.counters.flow_table_full);
    CHECK(probe.counter(FLOWLAT_COUNTER_PACKETS_MALFORMED) == c.counters.packets_malformed);
    CHECK(probe.counter(FLOWLAT_COUNTER_ABANDONED) == c.counters.handshakes_abandoned);
    CHECK(probe.counter(FLOWLAT_COUNTER_ABORTED) == c.counters.handshakes_aborted);
    CHECK(probe.counter(FLOWLAT_COUNTER_ANSWERS_REJECTED) == c.counters.answers_rejected);
}

void run_table(const std::vector<Case>& table)
{
    for (const Case& c : table) {
        DYNAMIC_SECTION(c.description)
        {
            run_case(c);
        }
    }
}

// The three packets of a handshake, for the tables below.
PacketBuilder out_syn(const Tuple& t, std::uint32_t isn = client_isn)
{
    return std::move(sent(t, syn).seq(isn));
}
PacketBuilder in_syn_ack(const Tuple& t, std::uint32_t acked_isn = client_isn)
{
    return std::move(received(t, syn_ack).seq(server_isn).ack(acked_isn + 1));
}
PacketBuilder in_syn(const Tuple& t, std::uint32_t isn = client_isn)
{
    return std::move(received(t, syn).seq(isn));
}
PacketBuilder out_syn_ack(const Tuple& t, std::uint32_t acked_isn = client_isn, std::uint32_t isn = server_isn)
{
    return std::move(sent(t, syn_ack).seq(isn).ack(acked_isn + 1));
}
PacketBuilder in_ack(const Tuple& t, std::uint32_t acked_isn = server_isn, std::uint32_t seq = client_isn + 1)
{
    return std::move(received(t, ack).seq(seq).ack(acked_isn + 1));
}

} // namespace

// ---------------------------------------------------------------------------------------
// The tables.

TEST_CASE("handshakes complete in both directions and both families", "[root][bpf]")
{
    const auto out = Direction::outbound;
    const auto in = Direction::inbound;
    run_table({
        {"IPv4 outbound: egress SYN, ingress SYN-ACK acking it",
         {egress(out_syn(client4)), ingress(in_syn_ack(client4))},
         {completed(1, out, client4, 0)}},
        {"IPv6 outbound: egress SYN, ingress SYN-ACK acking it",
         {egress(out_syn(client6)), ingress(in_syn_ack(client6))},
         {completed(1, out, client6, 0)}},
        {"IPv4 inbound: ingress SYN, egress SYN-ACK, ingress ACK of the SYN-ACK",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), ingress(in_ack(server4))},
         {completed(2, in, server4, 1)}},
        {"IPv6 inbound: ingress SYN, egress SYN-ACK, ingress ACK of the SYN-ACK",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)), ingress(in_ack(server6))},
         {completed(2, in, server6, 1)}},
        {"outbound with the options Linux sends (timestamp not first)",
         {egress(out_syn(client4).linux_syn_options(100)),
          ingress(in_syn_ack(client4).linux_syn_options(5000, 100))},
         {completed(1, out, client4, 0)}},
        {"inbound with the options Linux sends and a NOP NOP TS final ACK",
         {ingress(in_syn(server6).linux_syn_options(100)), egress(out_syn_ack(server6).linux_syn_options(5000, 100)),
          ingress(in_ack(server6).nop().nop().timestamp(101, 5000))},
         {completed(2, in, server6, 1)}},
        {"outbound ISN 0xffffffff: the SYN-ACK acks 0",
         {egress(out_syn(client4, 0xffffffffu)), ingress(received(client4, syn_ack).seq(server_isn).ack(0))},
         {completed(1, out, client4, 0)}},
        {"inbound server ISN 0xffffffff: the final ACK acks 0",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4, client_isn, 0xffffffffu)),
          ingress(received(server4, ack).seq(client_isn + 1).ack(0))},
         {completed(2, in, server4, 1)}},
        {"ECN setup: SYN with ECE and CWR, SYN-ACK with ECE",
         {egress(sent(client4, syn | tcp_flag::ece | tcp_flag::cwr).seq(client_isn)),
          ingress(received(client4, syn_ack | tcp_flag::ece).seq(server_isn).ack(client_isn + 1))},
         {completed(1, out, client4, 0)}},
        {"inbound: the final ACK carries data (PSH-ACK)",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          ingress(received(server4, psh_ack).seq(client_isn + 1).ack(server_isn + 1).payload(Bytes(100, 0x61)))},
         {completed(2, in, server4, 1)}},
        {"a duplicate SYN-ACK after completion emits nothing more",
         {egress(out_syn(client4)), ingress(in_syn_ack(client4)), ingress(in_syn_ack(client4))},
         {completed(1, out, client4, 0)}},
        {"inbound: client SYN duplicates (before and after our SYN-ACK) change nothing",
         {ingress(in_syn(server4)), ingress(in_syn(server4)), egress(out_syn_ack(server4)), ingress(in_syn(server4)),
          ingress(in_ack(server4))},
         {completed(4, in, server4, 2)}},
        {"two interleaved handshakes, IPv4 outbound and IPv6 inbound",
         {egress(out_syn(client4)), ingress(in_syn(server6)), egress(out_syn_ack(server6)),
          ingress(in_syn_ack(client4)), ingress(in_ack(server6))},
         {completed(3, out, client4, 0), completed(4, in, server6, 2, 1)}},
        {"outbound after the SYN alone: one pending SYN_SENT entry",
         {egress(out_syn(client6))},
         {},
         {pending_outbound(client6)}},
        {"inbound after the SYN alone: SYN_RECEIVED, nothing timed yet",
         {ingress(in_syn(server4))},
         {},
         {pending_inbound(server4, FLOWLAT_STAGE_SYN_RECEIVED, 0)}},
        {"inbound after our SYN-ACK: SYNACK_SENT",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4))},
         {},
         {pending_inbound(server4, FLOWLAT_STAGE_SYNACK_SENT, 1)}},
    });
}

TEST_CASE("the ack filter counts flows awaiting their final ACK", "[root][bpf]")
{
    run_table({
        {"a bucket goes up on the egress SYN-ACK and back to 0 on completion",
         {with_ack_filter(ingress(in_syn(server4)), 0), with_ack_filter(egress(out_syn_ack(server4)), 1),
          with_ack_filter(egress(out_syn_ack(server4)), 1), with_ack_filter(ingress(in_ack(server4)), 0)},
         {ExpectedEvent{3, Outcome::completed, Direction::inbound, server4, 1, 0, std::nullopt, std::nullopt}}},
        {"two pending inbound flows hold two counts; each completion gives one back",
         {ingress(in_syn(server4)), ingress(in_syn(server6)), egress(out_syn_ack(server4)),
          with_ack_filter(egress(out_syn_ack(server6)), 2), with_ack_filter(ingress(in_ack(server6)), 1),
          with_ack_filter(ingress(in_ack(server4)), 0)},
         {completed(4, Direction::inbound, server6, 3, 1), completed(5, Direction::inbound, server4, 2, 0)}},
        {"a refused inbound handshake never takes a bucket",
         {with_ack_filter(ingress(in_syn(server4)), 0),
          with_ack_filter(egress(sent(server4, rst_ack).seq(0).ack(client_isn + 1)), 0)},
         {refused(1, Direction::inbound, server4)}},
    });
}

TEST_CASE("VLAN tags, IPv4 options and fragments, IPv6 extension headers", "[root][bpf]")
{
    using namespace ethertype;
    const auto out = Direction::outbound;
    const auto in = Direction::inbound;
    const Bytes router_alert{0x94, 0x04, 0x00, 0x00};
    const Bytes forty_bytes_of_nops(39, 0x01); // NOPs then EOL
    run_table({
        {"802.1Q tag on both packets (IPv4 outbound)",
         {egress(out_syn(client4).vlan(vlan_8021q, 100)), ingress(in_syn_ack(client4).vlan(vlan_8021q, 100))},
         {completed(1, out, client4, 0)}},
        {"802.1ad outer and 802.1Q inner tag (IPv6 inbound)",
         {ingress(in_syn(server6).vlan(vlan_8021ad, 10).vlan(vlan_8021q, 20)),
          egress(out_syn_ack(server6).vlan(vlan_8021ad, 10).vlan(vlan_8021q, 20)),
          ingress(in_ack(server6).vlan(vlan_8021ad, 10).vlan(vlan_8021q, 20))},
         {completed(2, in, server6, 1)}},
        {"two 802.1Q tags (IPv4 inbound)",
         {ingress(in_syn(server4).vlan(vlan_8021q, 10).vlan(vlan_8021q, 20)),
          egress(out_syn_ack(server4).vlan(vlan_8021q, 10).vlan(vlan_8021q, 20)),
          ingress(in_ack(server4).vlan(vlan_8021q, 10).vlan(vlan_8021q, 20))},
         {completed(2, in, server4, 1)}},
        {"three tags are more than the probe walks: the SYN is left alone",
         {egress(out_syn(client4).vlan(vlan_8021ad, 1).vlan(vlan_8021q, 2).vlan(vlan_8021q, 3))}},
        {"IPv4 options (IHL 6, router alert) on SYN and SYN-ACK",
         {egress(out_syn(client4).ipv4_options(router_alert)), ingress(in_syn_ack(client4).ipv4_options(router_alert))},
         {completed(1, out, client4, 0)}},
        {"IPv4 options (IHL 15) on every inbound packet",
         {ingress(in_syn(server4).ipv4_options(forty_bytes_of_nops)),
          egress(out_syn_ack(server4).ipv4_options(forty_bytes_of_nops)),
          ingress(in_ack(server4).ipv4_options(forty_bytes_of_nops))},
         {completed(2, in, server4, 1)}},
        {"IPv4 first fragment (MF, offset 0) carrying the SYN-ACK waits for reassembly: no answer",
         {egress(out_syn(client4)), ingress(in_syn_ack(client4).ipv4_fragment(0, true))},
         {},
         {pending_outbound(client4)},
         {.answers_rejected = 1}},
        {"IPv4 non-first fragment is ignored even if its bytes look like a SYN-ACK",
         {egress(out_syn(client4)), ingress(in_syn_ack(client4).ipv4_fragment(185, false))},
         {},
         {pending_outbound(client4)}},
        {"IPv4 non-first fragment that looks like a SYN creates nothing",
         {egress(out_syn(client4).ipv4_fragment(1, true))}},
        {"IPv6 hop-by-hop options header",
         {egress(out_syn(client6).ipv6_hop_by_hop()), ingress(in_syn_ack(client6).ipv6_hop_by_hop(3))},
         {completed(1, out, client6, 0)}},
        {"IPv6 routing header",
         {egress(out_syn(client6).ipv6_routing()), ingress(in_syn_ack(client6).ipv6_routing())},
         {completed(1, out, client6, 0)}},
        {"IPv6 destination options header",
         {egress(out_syn(client6).ipv6_destination_options(1)), ingress(in_syn_ack(client6).ipv6_destination_options())},
         {completed(1, out, client6, 0)}},
        {"IPv6 first fragment (offset 0, M) carrying the SYN-ACK waits for reassembly: no answer",
         {egress(out_syn(client6)), ingress(in_syn_ack(client6).ipv6_fragment(0, true))},
         {},
         {pending_outbound(client6)},
         {.answers_rejected = 1}},
        {"IPv6 atomic fragment (offset 0, no M) carries the SYN-ACK",
         {egress(out_syn(client6)), ingress(in_syn_ack(client6).ipv6_fragment(0, false))},
         {completed(1, out, client6, 0)}},
        {"IPv6 hop-by-hop, routing, destination options and first fragment chained (inbound)",
         {ingress(in_syn(server6).ipv6_hop_by_hop().ipv6_routing().ipv6_destination_options().ipv6_fragment(0, true)),
          egress(out_syn_ack(server6).ipv6_hop_by_hop().ipv6_destination_options()),
          ingress(in_ack(server6).ipv6_hop_by_hop(2).ipv6_routing().ipv6_destination_options(1).ipv6_fragment(0, false))},
         {completed(2, in, server6, 1)}},
        {"six IPv6 extension headers are walked",
         {egress(out_syn(client6)),
          ingress(in_syn_ack(client6)
                      .ipv6_hop_by_hop()
                      .ipv6_destination_options()
                      .ipv6_routing()
                      .ipv6_destination_options()
                      .ipv6_fragment(0, false)
                      .ipv6_destination_options())},
         {completed(1, out, client6, 0)}},
        {"seven IPv6 extension headers are more than the probe walks: ignored",
         {egress(out_syn(client6)),
          ingress(in_syn_ack(client6)
                      .ipv6_hop_by_hop()
                      .ipv6_destination_options()
                      .ipv6_routing()
                      .ipv6_destination_options()
                      .ipv6_routing()
                      .ipv6_fragment(0, true)
                      .ipv6_destination_options())},
         {},
         {pending_outbound(client6)}},
        {"IPv6 non-first fragment is ignored even if its bytes look like a SYN-ACK",
         {egress(out_syn(client6)), ingress(in_syn_ack(client6).ipv6_fragment(100, false))},
         {},
         {pending_outbound(client6)}},
        {"IPv6 non-first fragment that looks like a SYN creates nothing",
         {ingress(in_syn(server6).ipv6_hop_by_hop().ipv6_fragment(1, true))}},
    });
}

TEST_CASE("truncated and malformed headers leave no state", "[root][bpf]")
{
    using namespace ethertype;
    run_table({
        {"VLAN tag cut after two bytes",
         {egress(out_syn(client4).vlan(vlan_8021q, 5).truncate_at(Layer::ethernet, 16))},
         {}, {}, {.packets_malformed = 1}},
        {"second VLAN tag cut after two bytes",
         {ingress(in_syn(server4).vlan(vlan_8021ad, 5).vlan(vlan_8021q, 6).truncate_at(Layer::ethernet, 20))},
         {}, {}, {.packets_malformed = 1}},
        // A tag keeps the kernel from checking the IP header itself (see the test below).
        {"IPv4 ethertype and no IP header at all (tagged)",
         {egress(out_syn(client4).vlan(vlan_8021q, 5).truncate_at(Layer::network, 0))},
         {}, {}, {.packets_malformed = 1}},
        {"IPv4 header cut at 10 bytes, on both hooks (tagged)",
         {egress(out_syn(client4).vlan(vlan_8021q, 5).truncate_at(Layer::network, 10)),
          ingress(in_syn(server4).vlan(vlan_8021ad, 5).vlan(vlan_8021q, 6).truncate_at(Layer::network, 19))},
         {}, {}, {.packets_malformed = 2}},
        {"IPv4 IHL 4 (shorter than the fixed header)",
         {egress(out_syn(client4).ipv4_ihl(4))},
         {}, {}, {.packets_malformed = 1}},
        {"IPv4 IHL 15 with the options cut off",
         {ingress(in_syn(server4).ipv4_options(Bytes(40, 0x01)).truncate_at(Layer::network, 40))},
         {}, {}, {.packets_malformed = 1}},
        {"IPv4 IHL 15 claimed but only 20 bytes of header",
         {ingress(in_syn(server4).ipv4_ihl(15).truncate_at(Layer::transport, 20))},
         {}, {}, {.packets_malformed = 1}},
        {"IPv6 header cut at 20 bytes, on both hooks (tagged)",
         {egress(out_syn(client6).vlan(vlan_8021q, 5).truncate_at(Layer::network, 20)),
          ingress(in_syn(server6).vlan(vlan_8021q, 5).truncate_at(Layer::network, 39))},
         {}, {}, {.packets_malformed = 2}},
        {"IPv6 hop-by-hop header cut after one byte",
         {egress(out_syn(client6).ipv6_hop_by_hop().truncate_at(Layer::network, 41))},
         {}, {}, {.packets_malformed = 1}},
        {"IPv6 hop-by-hop header longer than the frame",
         {egress(out_syn(client6).ipv6_hop_by_hop(3).truncate_at(Layer::network, 48))},
         {}, {}, {.packets_malformed = 1}},
        {"IPv6 fragment header cut after four bytes",
         {ingress(in_syn(server6).ipv6_fragment(0, true).truncate_at(Layer::network, 44))},
         {}, {}, {.packets_malformed = 1}},
        {"IPv6 routing header cut after the first eight bytes",
         {ingress(in_syn(server6).ipv6_routing().truncate_at(Layer::network, 48))},
         {}, {}, {.packets_malformed = 1}},
        {"TCP header cut at 12 bytes (IPv4 and IPv6)",
         {egress(out_syn(client4).truncate_at(Layer::transport, 12)),
          ingress(in_syn(server6).truncate_at(Layer::transport, 12))},
         {}, {}, {.packets_malformed = 2}},
        {"TCP header cut after the ports",
         {ingress(in_syn(server4).truncate_at(Layer::transport, 4))},
         {}, {}, {.packets_malformed = 1}},
        {"TCP data offset 4 (shorter than the fixed header)",
         {egress(out_syn(client4).tcp_data_offset(4)), ingress(in_syn(server6).tcp_data_offset(0))},
         {}, {}, {.packets_malformed = 2}},
        {"a truncated SYN-ACK leaves the pending flow as it was",
         {egress(out_syn(client4)), ingress(in_syn_ack(client4).truncate_at(Layer::transport, 16))},
         {}, {pending_outbound(client4)}, {.packets_malformed = 1}},
        {"a truncated final ACK leaves the pending inbound flow as it was",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          ingress(in_ack(server4).truncate_at(Layer::transport, 19))},
         {}, {pending_inbound(server4, FLOWLAT_STAGE_SYNACK_SENT, 1)}, {.packets_malformed = 1}},
        {"options cut off a complete TCP header: the SYN is tracked without a timestamp",
         {egress(out_syn(client4).linux_syn_options(7).truncate_at(Layer::transport, 20))},
         {}, {pending_outbound(client4)}},
        {"a truncated UDP header is not the probe's business",
         {egress(PacketBuilder().ip(local4, peer4).udp(5353, 53).truncate_at(Layer::transport, 3))}},
    });
}

TEST_CASE("frames the kernel's test run may reject are rejected or counted", "[root][bpf]")
{
    // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header, and recent kernels
    // also refuse an untagged IPv4/IPv6 frame whose IP header is cut. Where a kernel lets
    // such a frame through, the probe must count it as malformed and keep nothing.
    const std::vector<std::pair<std::string, Packet>> frames{
        {"runt (13 bytes)", out_syn(client4).truncate_at(Layer::ethernet, 13).build()},
        {"IPv4 ethertype and no IP header", out_syn(client4).truncate_at(Layer::network, 0).build()},
        {"IPv4 header cut at 10 bytes", in_syn(server4).truncate_at(Layer::network, 10).build()},
        {"IPv6 header cut at 20 bytes", out_syn(client6).truncate_at(Layer::network, 20).build()},
    };
    for (const auto& [name, frame] : frames) {
        for (const Hook hook : {Hook::ingress, Hook::egress}) {
            INFO(name << " on " << hook_name(hook));
            LoadedProbe probe(ProbeOptions{});
            const RunResult result = probe.run(hook, frame);
            if (result.error == 0) {
                CHECK(result.verdict == TC_ACT_UNSPEC);
                CHECK(probe.counter(FLOWLAT_COUNTER_PACKETS_MALFORMED) == (frame.bytes.size() < 14 ? 0u : 1u));
            } else {
                CHECK(result.error == -EINVAL);
            }
            CHECK(probe.flows().empty());
            CHECK(probe.consume().empty());
        }
    }
}

TEST_CASE("answers that do not match the pending handshake are ignored", "[root][bpf]")
{
    const auto out = Direction::outbound;
    const auto in = Direction::inbound;
    run_table({
        {"outbound: a SYN-ACK acking the ISN itself (not ISN + 1)",
         {egress(out_syn(client4)), ingress(received(client4, syn_ack).seq(server_isn).ack(client_isn))},
         {}, {pending_outbound(client4)}},
        {"outbound: a SYN-ACK acking ISN + 2",
         {egress(out_syn(client6)), ingress(received(client6, syn_ack).seq(server_isn).ack(client_isn + 2))},
         {}, {pending_outbound(client6)}},
        {"outbound: the right SYN-ACK after a wrong one still completes",
         {egress(out_syn(client4)), ingress(received(client4, syn_ack).seq(server_isn).ack(client_isn)),
          ingress(in_syn_ack(client4))},
         {completed(2, out, client4, 0)}},
        {"outbound: a SYN-ACK from another peer port",
         {egress(out_syn(client4)), ingress(in_syn_ack(client4.with_peer_port(444)))},
         {}, {pending_outbound(client4)}},
        {"outbound: a SYN-ACK seen on egress is not the peer's answer",
         {egress(out_syn(client4)), egress(received(client4, syn_ack).seq(server_isn).ack(client_isn + 1))},
         {}, {pending_outbound(client4)}},
        {"outbound: a pure ACK does not complete it",
         {egress(out_syn(client4)), ingress(received(client4, ack).seq(server_isn).ack(client_isn + 1))},
         {}, {pending_outbound(client4)}},
        {"inbound: our SYN-ACK acking the wrong ISN is not timed",
         {ingress(in_syn(server4)), with_ack_filter(egress(out_syn_ack(server4, client_isn + 5)), 0)},
         {}, {pending_inbound(server4, FLOWLAT_STAGE_SYN_RECEIVED, 0)}},
        {"inbound: a final ACK with the wrong ack number",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          with_ack_filter(ingress(in_ack(server4, server_isn + 7)), 1)},
         {}, {pending_inbound(server4, FLOWLAT_STAGE_SYNACK_SENT, 1)}},
        {"inbound: an ACK before our SYN-ACK",
         {ingress(in_syn(server6)), ingress(in_ack(server6))},
         {}, {pending_inbound(server6, FLOWLAT_STAGE_SYN_RECEIVED, 0)}},
        {"inbound: the right ACK after a wrong one still completes",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)), ingress(in_ack(server6, server_isn + 7)),
          ingress(in_ack(server6))},
         {completed(3, in, server6, 1)}},
        {"inbound: an ACK from another client port",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), ingress(in_ack(server4.with_peer_port(50001)))},
         {}, {pending_inbound(server4, FLOWLAT_STAGE_SYNACK_SENT, 1)}},
    });
}

TEST_CASE("an RST-ACK answering the SYN refuses it, other resets are ignored", "[root][bpf]")
{
    const auto out = Direction::outbound;
    const auto in = Direction::inbound;
    run_table({
        {"IPv4 outbound: ingress RST-ACK acking the SYN",
         {egress(out_syn(client4)), ingress(received(client4, rst_ack).seq(0).ack(client_isn + 1))},
         {refused(1, out, client4)}},
        {"IPv6 outbound: ingress RST-ACK acking the SYN",
         {egress(out_syn(client6)), ingress(received(client6, rst_ack).seq(0).ack(client_isn + 1))},
         {refused(1, out, client6)}},
        {"IPv4 inbound: our stack's egress RST-ACK to the client's SYN",
         {ingress(in_syn(server4)), egress(sent(server4, rst_ack).seq(0).ack(client_isn + 1))},
         {refused(1, in, server4)}},
        {"IPv6 inbound: our stack's egress RST-ACK to the client's SYN",
         {ingress(in_syn(server6)), egress(sent(server6, rst_ack).seq(0).ack(client_isn + 1))},
         {refused(1, in, server6)}},
        {"outbound refused after one SYN retransmission",
         {egress(out_syn(client4)), egress(out_syn(client4)),
          ingress(received(client4, rst_ack).seq(0).ack(client_isn + 1))},
         {ExpectedEvent{2, Outcome::refused, out, client4, 1, 0, std::nullopt, std::nullopt}}},
        {"outbound: an RST without ACK is ignored",
         {egress(out_syn(client4)), ingress(received(client4, rst).seq(0).ack(client_isn + 1))},
         {}, {pending_outbound(client4)}},
        {"outbound: an RST-ACK with the wrong ack is ignored",
         {egress(out_syn(client4)), ingress(received(client4, rst_ack).seq(0).ack(client_isn))},
         {}, {pending_outbound(client4)}},
        {"inbound: our RST without ACK is ignored",
         {ingress(in_syn(server4)), egress(sent(server4, rst).seq(0).ack(client_isn + 1))},
         {}, {pending_inbound(server4, FLOWLAT_STAGE_SYN_RECEIVED, 0)}},
        {"inbound: our RST-ACK with the wrong ack is ignored",
         {ingress(in_syn(server6)), egress(sent(server6, rst_ack).seq(0).ack(client_isn + 2))},
         {}, {pending_inbound(server6, FLOWLAT_STAGE_SYN_RECEIVED, 0)}},
        {"IPv4 inbound: the client resets instead of its final ACK (a SYN scan): no outcome, counted",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          with_ack_filter(ingress(received(server4, rst).seq(client_isn + 1).ack(0)), 0)},
         {}, {}, {.handshakes_aborted = 1}},
        {"IPv6 inbound: the client's RST-ACK instead of its final ACK is counted too",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)),
          ingress(received(server6, rst_ack).seq(client_isn + 1).ack(server_isn + 1))},
         {}, {}, {.handshakes_aborted = 1}},
        {"IPv4 inbound: the client resets at SYN_RECEIVED (our SYN-ACK not seen yet): aborted, not a timeout",
         {ingress(in_syn(server4)), ingress(received(server4, rst).seq(client_isn + 1).ack(0))},
         {}, {}, {.handshakes_aborted = 1}},
        {"IPv6 inbound: a client RST at SYN_RECEIVED with the ISN itself is aborted too",
         {ingress(in_syn(server6)), ingress(received(server6, rst).seq(client_isn).ack(0))},
         {}, {}, {.handshakes_aborted = 1}},
        {"inbound: a client RST at SYN_RECEIVED with another sequence number is ignored",
         {ingress(in_syn(server4)), ingress(received(server4, rst).seq(client_isn + 7).ack(0))},
         {}, {pending_inbound(server4, FLOWLAT_STAGE_SYN_RECEIVED, 0)}},
        {"inbound: a client RST with another sequence number is ignored",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          ingress(received(server4, rst).seq(client_isn + 5).ack(0))},
         {}, {pending_inbound(server4, FLOWLAT_STAGE_SYNACK_SENT, 1)}},
        {"an RST-ACK after completion finds nothing",
         {egress(out_syn(client4)), ingress(in_syn_ack(client4)),
          ingress(received(client4, rst_ack).seq(server_isn + 1).ack(client_isn + 1))},
         {completed(1, out, client4, 0)}},
    });
}

TEST_CASE("simultaneous open: the peer's SYN on our pending tuple is no new handshake", "[root][bpf]")
{
    // Both sides send a SYN, then each answers the other's with a SYN-ACK (RFC 9293 3.5).
    run_table({
        {"outbound: our SYN, the peer's SYN, our SYN-ACK, the peer's SYN-ACK",
         {egress(out_syn(client4)), ingress(received(client4, syn).seq(server_isn)),
          egress(sent(client4, syn_ack).seq(client_isn).ack(server_isn + 1)),
          ingress(received(client4, syn_ack).seq(server_isn).ack(client_isn + 1))},
         {completed(3, Direction::outbound, client4, 0)},
         {},
         {.handshakes_abandoned = 0}},
    });
}

TEST_CASE("TCP Fast Open: a SYN with data may be acked past ISN + 1", "[root][bpf]")
{
    const auto out = Direction::outbound;
    const auto in = Direction::inbound;
    const Bytes data(100, 0x61);
    run_table({
        {"outbound: the server accepts the SYN's data (ack = ISN + 1 + 100)",
         {egress(sent(client4, syn).seq(client_isn).payload(data)),
          ingress(received(client4, syn_ack).seq(server_isn).ack(client_isn + 101))},
         {completed(1, out, client4, 0)}},
        {"outbound: the server declines the data (ack = ISN + 1)",
         {egress(sent(client6, syn).seq(client_isn).payload(data)),
          ingress(received(client6, syn_ack).seq(server_isn).ack(client_isn + 1))},
         {completed(1, out, client6, 0)}},
        {"outbound: an ack inside the data is no answer",
         {egress(sent(client4, syn).seq(client_isn).payload(data)),
          ingress(received(client4, syn_ack).seq(server_isn).ack(client_isn + 50))},
         {}, {pending_outbound(client4)}},
        {"outbound: without data, ISN + 101 is no answer",
         {egress(out_syn(client4)), ingress(received(client4, syn_ack).seq(server_isn).ack(client_isn + 101))},
         {}, {pending_outbound(client4)}},
        {"inbound: our SYN-ACK accepts the client's data, the final ACK completes",
         {ingress(received(server4, syn).seq(client_isn).payload(data)),
          egress(sent(server4, syn_ack).seq(server_isn).ack(client_isn + 101)),
          ingress(in_ack(server4, server_isn, client_isn + 101))},
         {completed(2, in, server4, 1)}},
        {"inbound: an ack before our ISN + 1 completes nothing",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)),
          ingress(received(server6, ack).seq(client_isn + 1).ack(server_isn))},
         {}, {pending_inbound(server6, FLOWLAT_STAGE_SYNACK_SENT, 1)}},
        {"inbound: our RST-ACK to a SYN with data refuses it",
         {ingress(received(server6, syn).seq(client_isn).payload(data)),
          egress(sent(server6, rst_ack).seq(0).ack(client_isn + 101))},
         {refused(1, in, server6)}},
    });
}

TEST_CASE("Karn's rule: after a retransmission only an echoed timestamp gives an rtt", "[root][bpf]")
{
    const auto out = Direction::outbound;
    const auto in = Direction::inbound;
    // The SYN-ACK's TSecr names the SYN it answers; the final ACK's TSecr names the SYN-ACK.
    auto karn = [](std::size_t step, Direction direction, const Tuple& tuple, std::uint16_t retransmits,
                   std::size_t handshake_from, std::optional<std::size_t> rtt_from,
                   std::optional<std::size_t> shorter_than_since = std::nullopt) {
        return ExpectedEvent{step, Outcome::completed, direction, tuple, retransmits, handshake_from, rtt_from,
                             shorter_than_since};
    };
    run_table({
        {"outbound: the SYN-ACK echoes the retransmitted SYN's TSval",
         {egress(out_syn(client4).timestamp(100, 0)), egress(out_syn(client4).timestamp(200, 0), karn_gap),
          ingress(in_syn_ack(client4).timestamp(9000, 200))},
         {karn(2, out, client4, 1, 0, 1, 0)}},
        {"outbound: the SYN-ACK echoes the first SYN's TSval",
         {egress(out_syn(client6).linux_syn_options(100)), egress(out_syn(client6).linux_syn_options(200), karn_gap),
          ingress(in_syn_ack(client6).linux_syn_options(9000, 100))},
         {karn(2, out, client6, 1, 0, 0)}},
        {"outbound without timestamps: no rtt, handshake_ns still given",
         {egress(out_syn(client4)), egress(out_syn(client4), karn_gap), ingress(in_syn_ack(client4))},
         {karn(2, out, client4, 1, 0, std::nullopt)}},
        {"outbound: the SYN-ACK has no timestamp although the SYNs had",
         {egress(out_syn(client4).timestamp(100, 0)), egress(out_syn(client4).timestamp(200, 0)),
          ingress(in_syn_ack(client4))},
         {karn(2, out, client4, 1, 0, std::nullopt)}},
        {"outbound: the echoed TSval matches no transmission",
         {egress(out_syn(client4).timestamp(100, 0)), egress(out_syn(client4).timestamp(200, 0)),
          ingress(in_syn_ack(client4).timestamp(9000, 150))},
         {karn(2, out, client4, 1, 0, std::nullopt)}},
        {"outbound: two transmissions with the same TSval are ambiguous",
         {egress(out_syn(client4).timestamp(100, 0)), egress(out_syn(client4).timestamp(100, 0)),
          ingress(in_syn_ack(client4).timestamp(9000, 100))},
         {karn(2, out, client4, 1, 0, std::nullopt)}},
        {"outbound: five transmissions; the fifth replaces the fourth and is matched",
         {egress(out_syn(client4).timestamp(100, 0)), egress(out_syn(client4).timestamp(200, 0)),
          egress(out_syn(client4).timestamp(300, 0)), egress(out_syn(client4).timestamp(400, 0)),
          egress(out_syn(client4).timestamp(500, 0), karn_gap), ingress(in_syn_ack(client4).timestamp(9000, 500))},
         {karn(5, out, client4, 4, 0, 4, 3)}},
        {"outbound: five transmissions; the replaced fourth is no longer known",
         {egress(out_syn(client4).timestamp(100, 0)), egress(out_syn(client4).timestamp(200, 0)),
          egress(out_syn(client4).timestamp(300, 0)), egress(out_syn(client4).timestamp(400, 0)),
          egress(out_syn(client4).timestamp(500, 0)), ingress(in_syn_ack(client4).timestamp(9000, 400))},
         {karn(5, out, client4, 4, 0, std::nullopt)}},
        {"inbound: the final ACK echoes the retransmitted SYN-ACK's TSval",
         {ingress(in_syn(server4).timestamp(100, 0)), egress(out_syn_ack(server4).timestamp(500, 100)),
          egress(out_syn_ack(server4).timestamp(600, 100), karn_gap),
          ingress(in_ack(server4).nop().nop().timestamp(101, 600))},
         {karn(3, in, server4, 1, 0, 2, 1)}},
        {"inbound: the final ACK echoes the first SYN-ACK's TSval",
         {ingress(in_syn(server6).linux_syn_options(100)), egress(out_syn_ack(server6).linux_syn_options(500, 100)),
          egress(out_syn_ack(server6).linux_syn_options(600, 100), karn_gap),
          ingress(in_ack(server6).nop().nop().timestamp(101, 500))},
         {karn(3, in, server6, 1, 0, 1)}},
        {"inbound without timestamps: no rtt, retransmits 1",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), egress(out_syn_ack(server4), karn_gap),
          ingress(in_ack(server4))},
         {karn(3, in, server4, 1, 0, std::nullopt)}},
        {"inbound: a retransmitted SYN-ACK with another ISN is not a retransmission",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          egress(out_syn_ack(server4, client_isn, server_isn + 1000)), ingress(in_ack(server4))},
         {karn(3, in, server4, 0, 0, 1)}},
    });
}

TEST_CASE("port reuse: a SYN with a new ISN replaces the pending handshake", "[root][bpf]")
{
    constexpr std::uint32_t new_isn = 5'000'000;
    const auto out = Direction::outbound;
    const auto in = Direction::inbound;
    auto timeout = [](std::size_t step, Direction direction, const Tuple& tuple) {
        return ExpectedEvent{step, Outcome::timeout, direction, tuple, 0, 0, std::nullopt, std::nullopt};
    };
    run_table({
        {"outbound: the young old attempt ends as timeout, the new one completes with its own ack",
         {egress(out_syn(client4)), egress(out_syn(client4, new_isn)), ingress(in_syn_ack(client4)),
          ingress(in_syn_ack(client4, new_isn))},
         {timeout(1, out, client4), completed(3, out, client4, 1, 1)},
         {},
         {.handshakes_abandoned = 1}},
        {"outbound: an answer to the old ISN produces no sample",
         {egress(out_syn(client6)), egress(out_syn(client6, new_isn)), ingress(in_syn_ack(client6))},
         {timeout(1, out, client6)},
         {pending_outbound(client6, 1, new_isn, 1)},
         {.handshakes_abandoned = 1}},
        {"outbound: an old attempt not yet swept is reported by the SYN that replaces it",
         {egress(out_syn(client4)), egress(out_syn(client4, new_isn), 20ms), ingress(in_syn_ack(client4, new_isn))},
         {timeout(1, out, client4), completed(2, out, client4, 1, 1)},
         {},
         {.handshakes_abandoned = 1}},
        {"inbound: a new client ISN after our SYN-ACK releases the old bucket",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), with_ack_filter(ingress(in_syn(server4, new_isn)), 0),
          egress(out_syn_ack(server4, new_isn, server_isn + 1000)),
          ingress(in_ack(server4, server_isn, client_isn + 1)),
          with_ack_filter(ingress(in_ack(server4, server_isn + 1000, new_isn + 1)), 0)},
         {timeout(2, in, server4),
          ExpectedEvent{5, Outcome::completed, in, server4, 0, 2, std::size_t{3}, std::nullopt}},
         {},
         {.handshakes_abandoned = 1}},
        {"inbound: a new client ISN before our SYN-ACK",
         {ingress(in_syn(server6)), ingress(in_syn(server6, new_isn))},
         {timeout(1, in, server6)},
         {pending_inbound(server6, FLOWLAT_STAGE_SYN_RECEIVED, 0, new_isn, 1)},
         {.handshakes_abandoned = 1}},
        {"inbound: an old attempt not yet swept is reported by the SYN that replaces it",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)), ingress(in_syn(server6, new_isn), 20ms)},
         {timeout(2, in, server6)},
         {pending_inbound(server6, FLOWLAT_STAGE_SYN_RECEIVED, 0, new_isn, 2)},
         {.handshakes_abandoned = 1}},
    });
}

TEST_CASE("traffic that is not a handshake leaves no state and emits nothing", "[root][bpf]")
{
    run_table({
        {"pure ACKs of unknown flows, both hooks, both families",
         {ingress(in_ack(server4)), egress(sent(server4, ack).seq(1).ack(2)), ingress(in_ack(server6)),
          egress(sent(client6, ack).seq(1).ack(2))}},
        {"data packets of unknown flows",
         {ingress(received(client4, psh_ack).seq(1).ack(2).payload(Bytes(500, 1))),
          egress(sent(client4, psh_ack).seq(1).ack(2).payload(Bytes(1400, 2))),
          ingress(received(server6, psh_ack).seq(1).ack(2).timestamp(1, 2).payload(Bytes(10, 3)))}},
        {"FIN-ACK and a segment without flags",
         {ingress(received(client4, fin_ack).seq(1).ack(2)), egress(sent(client4, 0).seq(1))}},
        {"SYN-ACKs and RST-ACKs of unknown flows",
         {ingress(in_syn_ack(client4)), egress(out_syn_ack(server6)),
          ingress(received(client4, rst_ack).seq(0).ack(client_isn + 1)),
          egress(sent(server6, rst_ack).seq(0).ack(client_isn + 1))}},
        {"UDP on both hooks, both families",
         {egress(PacketBuilder().ip(local4, peer4).udp(40000, 443).payload(Bytes(20, 0))),
          ingress(PacketBuilder().ip(peer6, local6).udp(443, 40000).payload(Bytes(20, 0)))}},
        {"ICMP and non-IP frames (ARP)",
         {ingress(PacketBuilder().ip(peer4, local4).ip_protocol(IPPROTO_ICMP).payload(Bytes(8, 0))),
          egress(PacketBuilder().ethertype(ethertype::arp).payload(Bytes(28, 0))),
          ingress(PacketBuilder().ethertype(ethertype::arp).payload(Bytes(28, 0)))}},
        {"an established flow's ACKs after completion",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), ingress(in_ack(server4)), ingress(in_ack(server4)),
          ingress(received(server4, psh_ack).seq(client_isn + 1).ack(server_isn + 1).payload(Bytes(50, 0)))},
         {completed(2, Direction::inbound, server4, 1)}},
    });
}

TEST_CASE("a full flow table pushes out its oldest pending handshakes, new ones are always tracked", "[root][bpf]")
{
    ProbeOptions small_table;
    small_table.flow_table_size = 1024;
    LoadedProbe probe(small_table);
    // A flood of unanswered outbound SYNs, 400 more than the table holds.
    constexpr std::uint32_t flood = 1024 + 400;
    auto flood_tuple = [](std::uint32_t i) {
        return client4.with_local_port(static_cast<std::uint16_t>(20000 + i));
    };
    for (std::uint32_t i = 0; i < flood; ++i) {
        const RunResult result = probe.run(Hook::egress, out_syn(flood_tuple(i)).build());
        REQUIRE(result.error == 0);
        CHECK(result.verdict == TC_ACT_UNSPEC);
    }
    CHECK(probe.counter(FLOWLAT_COUNTER_FLOW_TABLE_FULL) == 0);
    CHECK(probe.counter(FLOWLAT_COUNTER_FLOW_INSERTS) == flood);
    const auto entries = probe.flows();
    CHECK(entries.size() <= 1024);
    auto present = [&](const Tuple& tuple) {
        const flowlat_flow_key key = key_of(tuple);
        return std::any_of(entries.begin(), entries.end(),
                           [&](const auto& entry) { return std::memcmp(&entry.first, &key, sizeof(key)) == 0; });
    };
    // Oldest first: the first SYNs went, the latest ones (a batch of LRU evictions is at most
    // 128 entries) all stayed.
    CHECK_FALSE(present(flood_tuple(0)));
    std::size_t latest_missing = 0;
    for (std::uint32_t i = flood - 256; i < flood; ++i)
        if (!present(flood_tuple(i))) ++latest_missing;
    CHECK(latest_missing == 0);

    // A real handshake during the flood is tracked and completes, with its RTT.
    const Tuple real = client6.with_local_port(41000);
    REQUIRE(probe.run(Hook::egress, out_syn(real).build()).error == 0);
    REQUIRE(probe.run(Hook::ingress, addressed_to(in_syn_ack(real).build(), loopback_mac)).error == 0);
    const auto records = probe.consume();
    REQUIRE(records.size() == 1);
    REQUIRE(records[0].has_value());
    CHECK(records[0]->outcome == Outcome::completed);
    CHECK(records[0]->local_port == 41000);
    CHECK(records[0]->rtt_ns.has_value());
    CHECK(probe.counter(FLOWLAT_COUNTER_FLOW_TABLE_FULL) == 0);
    CHECK(probe.counter(FLOWLAT_COUNTER_FLOW_DELETES) == 1);
}

TEST_CASE("inbound: answered handshakes are evictable too, and leave their filter bucket counted", "[root][bpf]")
{
    ProbeOptions small_table;
    small_table.flow_table_size = 1024;
    LoadedProbe probe(small_table);
    // Spoofed SYNs that our listener answers: every entry reaches SYNACK_SENT and holds a bucket.
    constexpr std::uint32_t flood = 1024 + 400;
    for (std::uint32_t i = 0; i < flood; ++i) {
        const Tuple tuple = server4.with_peer_port(static_cast<std::uint16_t>(20000 + i));
        REQUIRE(probe.run(Hook::ingress, addressed_to(in_syn(tuple).build(), loopback_mac)).error == 0);
        REQUIRE(probe.run(Hook::egress, out_syn_ack(tuple).build()).error == 0);
    }
    CHECK(probe.counter(FLOWLAT_COUNTER_FLOW_TABLE_FULL) == 0);
    const auto entries = probe.flows();
    CHECK(entries.size() <= 1024);
    // The evicted entries never gave their counts back: the epoch renewal in user space
    // repairs that (bpf_sweeper_test). The latest handshake still completes.
    CHECK(probe.ack_filter_total() > entries.size());
    const Tuple last = server4.with_peer_port(static_cast<std::uint16_t>(20000 + flood - 1));
    REQUIRE(probe.run(Hook::ingress, addressed_to(in_ack(last).build(), loopback_mac)).error == 0);
    const auto records = probe.consume();
    REQUIRE(records.size() == 1);
    REQUIRE(records[0].has_value());
    CHECK(records[0]->outcome == Outcome::completed);
    CHECK(records[0]->direction == Direction::inbound);
}

TEST_CASE("a full ring buffer counts every event it could not take", "[root][bpf]")
{
    ProbeOptions small_ring;
    small_ring.ring_buffer_size = 4096; // one page, the smallest ring
    LoadedProbe probe(small_ring);
    constexpr std::size_t record_bytes = (sizeof(flowlat_event) + BPF_RINGBUF_HDR_SZ + 7) / 8 * 8;
    constexpr std::size_t capacity = 4096 / record_bytes;
    constexpr std::size_t handshakes = capacity + 20;

    for (std::size_t i = 0; i < handshakes; ++i) {
        const Tuple tuple = client4.with_local_port(static_cast<std::uint16_t>(30000 + i));
        for (const auto& [hook, packet] : {std::pair{Hook::egress, out_syn(tuple).build()},
                                           std::pair{Hook::ingress, addressed_to(in_syn_ack(tuple).build(), loopback_mac)}}) {
            const RunResult result = probe.run(hook, packet);
            REQUIRE(result.error == 0);
            CHECK(result.verdict == TC_ACT_UNSPEC);
        }
    }
    // Nothing was consumed while the handshakes completed: the ring kept the oldest.
    const auto records = probe.consume();
    CHECK(records.size() == capacity);
    CHECK(probe.counter(FLOWLAT_COUNTER_EVENTS_LOST) == handshakes - records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        REQUIRE(records[i].has_value());
        CHECK(records[i]->outcome == Outcome::completed);
        CHECK(static_cast<std::size_t>(records[i]->local_port) == 30000 + i);
    }
    // Lost events still ended their handshakes.
    CHECK(probe.flows().empty());

    // Once drained, the ring takes events again.
    const Tuple later = client6.with_local_port(41000);
    REQUIRE(probe.run(Hook::egress, out_syn(later).build()).error == 0);
    REQUIRE(probe.run(Hook::ingress, addressed_to(in_syn_ack(later).build(), loopback_mac)).error == 0);
    const auto after = probe.consume();
    REQUIRE(after.size() == 1);
    REQUIRE(after[0].has_value());
    CHECK(after[0]->local_port == 41000);
    CHECK(probe.counter(FLOWLAT_COUNTER_EVENTS_LOST) == handshakes - capacity);
}

TEST_CASE("the interface is part of the flow key", "[root][bpf]")
{
    ScratchNamespace netns;
    const std::uint32_t veth = netns.add_veth("flowlat-t0", "flowlat-t1");
    REQUIRE(veth != loopback_ifindex);
    const Tuple on_veth4 = client4.with_ifindex(veth);
    const Tuple on_veth6 = server6.with_ifindex(veth);
    constexpr std::uint32_t other_isn = 90000;
    run_table({
        {"the same tuple on two interfaces is two handshakes, not a port reuse",
         {egress(out_syn(client4)), on_interface(egress(out_syn(client4, other_isn)), veth),
          on_interface(ingress(in_syn_ack(client4, other_isn)), veth)},
         {completed(2, Direction::outbound, on_veth4, 1, 1)},
         {pending_outbound(client4)}},
        {"an answer on another interface does not complete the handshake",
         {on_interface(egress(out_syn(client4)), veth), ingress(in_syn_ack(client4))},
         {},
         {pending_outbound(on_veth4)}},
        {"an inbound handshake on another interface reports its ifindex",
         {on_interface(ingress(in_syn(server6)), veth), on_interface(egress(out_syn_ack(server6)), veth),
          on_interface(ingress(in_ack(server6)), veth)},
         {completed(2, Direction::inbound, on_veth6, 1)}},
    });
}

namespace {

// Byte edits to a built frame, for answers the host's stack would drop.
using Edit = std::function<void(Packet&)>;

void put16_at(Bytes& bytes, std::size_t at, unsigned value)
{
    bytes[at] = static_cast<std::uint8_t>(value >> 8 & 0xff);
    bytes[at + 1] = static_cast<std::uint8_t>(value & 0xff);
}

// Recomputes the IPv4 header checksum, so that an edit is refused for itself alone.
void fix_ipv4_checksum(Packet& p)
{
    const std::size_t start = p.network_offset;
    const std::size_t length = (p.bytes[start] & 0x0fu) * 4u;
    put16_at(p.bytes, start + 10, 0);
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i + 1 < length; i += 2)
        sum += static_cast<std::uint32_t>(p.bytes[start + i] << 8 | p.bytes[start + i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    put16_at(p.bytes, start + 10, ~sum & 0xffff);
}

Packet edited(const PacketBuilder& builder, const Edit& edit)
{
    Packet packet = builder.build();
    edit(packet);
    packet.summary += " (edited)";
    return packet;
}

const Edit bad_tcp_checksum = [](Packet& p) { p.bytes[p.transport_offset + 16] ^= 0x5a; };
const Edit bad_ipv4_checksum = [](Packet& p) { p.bytes[p.network_offset + 10] ^= 0x5a; };
const Edit ip_version_5 = [](Packet& p) {
    p.bytes[p.network_offset] = static_cast<std::uint8_t>(0x50 | (p.bytes[p.network_offset] & 0x0f));
    fix_ipv4_checksum(p);
};
const Edit ipv4_total_length_20 = [](Packet& p) {
    put16_at(p.bytes, p.network_offset + 2, 20);
    fix_ipv4_checksum(p);
};
const Edit ipv4_total_length_past_frame = [](Packet& p) {
    put16_at(p.bytes, p.network_offset + 2, static_cast<unsigned>(p.bytes.size() - p.network_offset + 4));
    fix_ipv4_checksum(p);
};
const Edit ipv6_payload_length_0 = [](Packet& p) { put16_at(p.bytes, p.network_offset + 4, 0); };
const Edit ipv6_version_4 = [](Packet& p) {
    p.bytes[p.network_offset] = static_cast<std::uint8_t>(0x40 | (p.bytes[p.network_offset] & 0x0f));
};
const Edit no_edit = [](Packet&) {};

} // namespace

TEST_CASE("answers the host's stack drops end nothing, the valid retransmission completes", "[root][bpf]")
{
    const auto out = Direction::outbound;
    const auto in = Direction::inbound;
    // Outbound: our SYN, the broken SYN-ACK (the client's stack never sees it, so it
    // retransmits its SYN), then the valid SYN-ACK echoing the retransmission's TSval:
    // completed at step 3, one retransmission, rtt from step 2.
    auto outbound = [&](std::string description, const Tuple& t, const PacketBuilder& broken_builder,
                        const Edit& edit, Mac mac = loopback_mac) {
        PacketBuilder broken = broken_builder;
        broken.timestamp(9000, 100);
        return Case{std::move(description),
                    {egress(out_syn(t).timestamp(100, 0)), ingress_as_is(addressed_to(edited(broken, edit), mac)),
                     egress(out_syn(t).timestamp(200, 0), karn_gap), ingress(in_syn_ack(t).timestamp(9001, 200))},
                    {ExpectedEvent{3, Outcome::completed, out, t, 1, 0, std::size_t{2}, std::size_t{0}}},
                    {},
                    {.answers_rejected = 1}};
    };
    const Bytes record_route_pointing_nowhere{0x07, 0x07, 0x02, 0, 0, 0, 0};
    const Bytes option_past_the_header{0x88, 0x0c, 0, 0};
    const Bytes option_of_length_0{0x44, 0x00, 0, 0};
    run_table({
        outbound("SYN-ACK with a bad TCP checksum (IPv4)", client4, in_syn_ack(client4), bad_tcp_checksum),
        outbound("SYN-ACK with a bad TCP checksum (IPv6)", client6, in_syn_ack(client6), bad_tcp_checksum),
        outbound("SYN-ACK with a bad IPv4 header checksum", client4, in_syn_ack(client4), bad_ipv4_checksum),
        outbound("SYN-ACK with IP version 5", client4, in_syn_ack(client4), ip_version_5),
        outbound("SYN-ACK with IPv4 tot_len 20", client4, in_syn_ack(client4), ipv4_total_length_20),
        outbound("SYN-ACK with IPv4 tot_len past the frame", client4, in_syn_ack(client4),
                 ipv4_total_length_past_frame),
        outbound("SYN-ACK in a first fragment with MF", client4, in_syn_ack(client4).ipv4_fragment(0, true),
                 no_edit),
        outbound("SYN-ACK with a record-route option pointing nowhere", client4,
                 in_syn_ack(client4).ipv4_options(record_route_pointing_nowhere), no_edit),
        outbound("SYN-ACK with an IP option running past the header", client4,
                 in_syn_ack(client4).ipv4_options(option_past_the_header), no_edit),
        outbound("SYN-ACK with an IP option of length 0", client4,
                 in_syn_ack(client4).ipv4_options(option_of_length_0), no_edit),
        outbound("SYN-ACK to another host's MAC (PACKET_OTHERHOST)", client4, in_syn_ack(client4), no_edit,
                 other_host_mac),
        outbound("SYN-ACK to the broadcast MAC (PACKET_BROADCAST)", client6, in_syn_ack(client6), no_edit,
                 broadcast_mac),
        outbound("SYN-ACK with doff 15 past the segment", client4, in_syn_ack(client4).tcp_data_offset(15), no_edit),
        outbound("SYN-ACK with IPv6 payload_len 0", client6, in_syn_ack(client6), ipv6_payload_length_0),
        outbound("SYN-ACK with IP version 4 in an IPv6 frame", client6, in_syn_ack(client6), ipv6_version_4),
        outbound("SYN-ACK in an IPv6 first fragment with M", client6, in_syn_ack(client6).ipv6_fragment(0, true),
                 no_edit),
        outbound("SYN-ACK with IPv6 hop-by-hop options after a destination-options header", client6,
                 in_syn_ack(client6).ipv6_destination_options().ipv6_hop_by_hop(), no_edit),
        outbound("SYN-ACK with IPv6 hop-by-hop options after a routing header and an atomic fragment", client6,
                 in_syn_ack(client6).ipv6_routing().ipv6_fragment(0, false).ipv6_hop_by_hop(1), no_edit),
        {"inbound IPv6: a final ACK with hop-by-hop options second completes nothing; the valid one (them first) does",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)),
          ingress(in_ack(server6).ipv6_destination_options().ipv6_hop_by_hop()),
          ingress(in_ack(server6).ipv6_hop_by_hop().ipv6_destination_options())},
         {completed(3, in, server6, 1)},
         {},
         {.answers_rejected = 1}},
        {"RST-ACK with a bad TCP checksum refuses nothing; the valid one refuses",
         {egress(out_syn(client4)), ingress(edited(received(client4, rst_ack).seq(0).ack(client_isn + 1),
                                                   bad_tcp_checksum)),
          egress(out_syn(client4), karn_gap), ingress(received(client4, rst_ack).seq(0).ack(client_isn + 1))},
         {refused(3, out, client4, 1)},
         {},
         {.answers_rejected = 1}},
        {"inbound: a final ACK with a bad TCP checksum; our SYN-ACK again; the valid ACK completes",
         {ingress(in_syn(server4).timestamp(100, 0)), egress(out_syn_ack(server4).timestamp(500, 100)),
          ingress(edited(in_ack(server4).nop().nop().timestamp(101, 500), bad_tcp_checksum)),
          egress(out_syn_ack(server4).timestamp(600, 100), karn_gap),
          ingress(in_ack(server4).nop().nop().timestamp(102, 600))},
         {ExpectedEvent{4, Outcome::completed, in, server4, 1, 0, std::size_t{3}, std::size_t{1}}},
         {},
         {.answers_rejected = 1}},
        {"inbound IPv6: a final ACK with data and a bad checksum, then the valid one",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)),
          ingress(edited(received(server6, psh_ack).seq(client_isn + 1).ack(server_isn + 1).payload(Bytes(1001, 7)),
                         bad_tcp_checksum)),
          ingress(received(server6, psh_ack).seq(client_isn + 1).ack(server_isn + 1).payload(Bytes(1001, 7)))},
         {completed(3, in, server6, 1)},
         {},
         {.answers_rejected = 1}},
        {"inbound: a final ACK with 1,501 bytes of odd-length data verifies (chunked sum)",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          ingress(received(server4, psh_ack).seq(client_isn + 1).ack(server_isn + 1).payload(Bytes(1501, 0xa5)))},
         {completed(2, in, server4, 1)}},
        {"inbound: a final ACK to another host's MAC completes nothing",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          ingress_as_is(addressed_to(in_ack(server4).build(), other_host_mac))},
         {},
         {pending_inbound(server4, FLOWLAT_STAGE_SYNACK_SENT, 1)},
         {.answers_rejected = 1}},
        {"inbound: a client RST with a bad checksum aborts nothing",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          ingress(edited(received(server4, rst).seq(client_isn + 1), bad_tcp_checksum))},
         {},
         {pending_inbound(server4, FLOWLAT_STAGE_SYNACK_SENT, 1)},
         {.answers_rejected = 1}},
        {"a checksum left to offload (CHECKSUM_PARTIAL over a veth: the pseudo-header sum) is accepted",
         {egress(out_syn(client4)), ingress(edited(in_syn_ack(client4), [](Packet& p) {
              // The pseudo-header sum of 198.19.0.2 > 198.18.0.1, TCP, 20 bytes, folded.
              std::uint32_t sum = 0xc613 + 0x0002 + 0xc612 + 0x0001 + 6 + 20;
              while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
              put16_at(p.bytes, p.transport_offset + 16, sum);
          }))},
         {completed(1, out, client4, 0)}},
    });
}

TEST_CASE("a client's SYN with a new ISN replaces a pending handshake only if the host's stack takes it", "[root][bpf]")
{
    constexpr std::uint32_t new_isn = 5'000'000;
    const auto in = Direction::inbound;
    // The client's stack knows nothing of a forged or broken SYN, and neither does ours: the
    // pending handshake goes on, its final ACK completes it with the rtt of our SYN-ACK.
    auto goes_on = [&](std::string description, const Tuple& t, const PacketBuilder& broken_builder, const Edit& edit,
                       Mac mac = loopback_mac) {
        return Case{std::move(description),
                    {ingress(in_syn(t)), egress(out_syn_ack(t)),
                     ingress_as_is(addressed_to(edited(broken_builder, edit), mac)), ingress(in_ack(t))},
                    {completed(3, in, t, 1)},
                    {},
                    {.answers_rejected = 1}};
    };
    const ExpectedEvent abandoned{3, Outcome::timeout, in, server4, 0, 0, std::nullopt, std::nullopt};
    const ExpectedEvent overflow{4, Outcome::accept_overflow, in, server6, 0, 0, std::nullopt, std::nullopt};
    run_table({
        goes_on("bad TCP checksum (IPv4)", server4, in_syn(server4, new_isn), bad_tcp_checksum),
        goes_on("bad TCP checksum (IPv6)", server6, in_syn(server6, new_isn), bad_tcp_checksum),
        goes_on("bad IPv4 header checksum", server4, in_syn(server4, new_isn), bad_ipv4_checksum),
        goes_on("IP version 5", server4, in_syn(server4, new_isn), ip_version_5),
        goes_on("IPv4 first fragment with MF", server4, in_syn(server4, new_isn).ipv4_fragment(0, true), no_edit),
        goes_on("another host's MAC (PACKET_OTHERHOST)", server4, in_syn(server4, new_isn), no_edit, other_host_mac),
        goes_on("IPv6 payload_len 0", server6, in_syn(server6, new_isn), ipv6_payload_length_0),
        goes_on("IPv6 hop-by-hop options after a destination-options header", server6,
                in_syn(server6, new_isn).ipv6_destination_options().ipv6_hop_by_hop(), no_edit),
        {"before our SYN-ACK: a broken SYN leaves SYN_RECEIVED with the first ISN",
         {ingress(in_syn(server4)), ingress(edited(in_syn(server4, new_isn), bad_tcp_checksum))},
         {},
         {pending_inbound(server4, FLOWLAT_STAGE_SYN_RECEIVED, 0)},
         {.answers_rejected = 1}},
        {"the valid SYN with the new ISN after the broken one replaces the handshake as before",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)),
          ingress(edited(in_syn(server4, new_isn), bad_tcp_checksum)),
          with_ack_filter(ingress(in_syn(server4, new_isn)), 0)},
         {abandoned},
         {pending_inbound(server4, FLOWLAT_STAGE_SYN_RECEIVED, 0, new_isn, 3)},
         {.handshakes_abandoned = 1, .answers_rejected = 1}},
        {"a completed handshake's record survives a broken SYN: our SYN-ACK again is still an overflow",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)), ingress(in_ack(server6)),
          ingress(edited(in_syn(server6, new_isn), bad_tcp_checksum)), egress(out_syn_ack(server6))},
         {completed(2, in, server6, 1), overflow},
         {},
         {.answers_rejected = 1}},
    });
}

namespace {

// An ICMP destination-unreachable (IPv4) or ICMPv6 destination-unreachable error from the peer
// that quotes `quoted` (its IP header and the first 8 bytes of TCP), with a right checksum
// unless `corrupt`.
Packet icmp_unreachable(const Tuple& t, const Packet& quoted, std::uint8_t code, bool corrupt = false,
                        const std::function<void(PacketBuilder&)>& extension_headers = {})
{
    const bool v6 = quoted.bytes[quoted.network_offset] >> 4 == 6;
    Bytes message{static_cast<std::uint8_t>(v6 ? 1 : 3), code, 0, 0, 0, 0, 0, 0};
    message.insert(message.end(), quoted.bytes.begin() + static_cast<std::ptrdiff_t>(quoted.network_offset),
                   quoted.bytes.begin() + static_cast<std::ptrdiff_t>(quoted.transport_offset + 8));
    PacketBuilder builder;
    builder.ip(t.peer, t.local).ip_protocol(v6 ? 58 : 1).payload(message);
    if (extension_headers) extension_headers(builder);
    Packet p = builder.build();
    const std::size_t at = p.transport_offset;
    const std::size_t length = p.bytes.size() - at;
    std::uint32_t sum = 0;
    auto add = [&](std::size_t from, std::size_t to) {
        for (std::size_t i = from; i + 1 < to; i += 2) sum += static_cast<std::uint32_t>(p.bytes[i] << 8 | p.bytes[i + 1]);
        if ((to - from) % 2) sum += static_cast<std::uint32_t>(p.bytes[to - 1] << 8);
    };
    if (v6) {
        add(p.network_offset + 8, p.network_offset + 40); // source and destination
        sum += static_cast<std::uint32_t>(length) + 58;
    }
    add(at, at + length);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    put16_at(p.bytes, at + 2, ~sum & 0xffff);
    if (corrupt) p.bytes[at + 2] ^= 0x5a;
    p.summary += " (ICMP unreachable)";
    return p;
}

ExpectedEvent unreachable(std::size_t step, const Tuple& tuple, std::uint16_t retransmits = 0)
{
    return ExpectedEvent{step, Outcome::unreachable, Direction::outbound, tuple, retransmits, 0, std::nullopt,
                         std::nullopt};
}

} // namespace

TEST_CASE("ICMP errors quoting a pending SYN end it as unreachable", "[root][bpf]")
{
    const auto syn4 = out_syn(client4).build();
    const auto syn6 = out_syn(client6).build();
    const auto other_isn4 = out_syn(client4, client_isn + 100).build();
    run_table({
        {"IPv4 port unreachable", {egress(out_syn(client4)), ingress(icmp_unreachable(client4, syn4, 3))},
         {unreachable(1, client4)}},
        {"IPv4 administratively prohibited, after a retransmission",
         {egress(out_syn(client4)), egress(out_syn(client4)), ingress(icmp_unreachable(client4, syn4, 13))},
         {unreachable(2, client4, 1)}},
        {"IPv6 port unreachable", {egress(out_syn(client6)), ingress(icmp_unreachable(client6, syn6, 4))},
         {unreachable(1, client6)}},
        {"IPv6 administratively prohibited", {egress(out_syn(client6)), ingress(icmp_unreachable(client6, syn6, 1))},
         {unreachable(1, client6)}},
        {"IPv4 fragmentation needed does not end a connect()",
         {egress(out_syn(client4)), ingress(icmp_unreachable(client4, syn4, 4))},
         {},
         {pending_outbound(client4)}},
        {"an error quoting another ISN ends nothing",
         {egress(out_syn(client4)), ingress(icmp_unreachable(client4, other_isn4, 3))},
         {},
         {pending_outbound(client4)}},
        {"an error with a bad ICMP checksum ends nothing and is counted",
         {egress(out_syn(client4)), ingress(icmp_unreachable(client4, syn4, 3, true))},
         {},
         {pending_outbound(client4)},
         {.answers_rejected = 1}},
        {"an ICMPv6 error with a bad checksum ends nothing and is counted",
         {egress(out_syn(client6)), ingress(icmp_unreachable(client6, syn6, 4, true))},
         {},
         {pending_outbound(client6)},
         {.answers_rejected = 1}},
        {"an ICMPv6 error with hop-by-hop options second ends nothing; one with them first does",
         {egress(out_syn(client6)),
          ingress(icmp_unreachable(client6, syn6, 4, false,
                                   [](PacketBuilder& b) { b.ipv6_destination_options().ipv6_hop_by_hop(); })),
          ingress(icmp_unreachable(client6, syn6, 4, false,
                                   [](PacketBuilder& b) { b.ipv6_hop_by_hop().ipv6_destination_options(); }))},
         {unreachable(2, client6)},
         {},
         {.answers_rejected = 1}},
        {"an error on egress (our own) ends nothing",
         {egress(out_syn(client4)), Step{Hook::egress, icmp_unreachable(client4, syn4, 3), 0ms, std::nullopt,
                                         loopback_ifindex}},
         {},
         {pending_outbound(client4)}},
    });
}

TEST_CASE("inbound: our SYN-ACK sent again after the completing ACK is an accept-queue overflow", "[root][bpf]")
{
    const auto in = Direction::inbound;
    const ExpectedEvent overflow4{3, Outcome::accept_overflow, in, server4, 0, 0, std::nullopt, std::nullopt};
    const ExpectedEvent overflow6{3, Outcome::accept_overflow, in, server6, 0, 0, std::nullopt, std::nullopt};
    run_table({
        {"IPv4: completed at the ACK (its RTT is real), then one overflow however often the SYN-ACK repeats",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), with_ack_filter(ingress(in_ack(server4)), 0),
          egress(out_syn_ack(server4)), egress(out_syn_ack(server4)), ingress(in_ack(server4))},
         {completed(2, in, server4, 1), overflow4}},
        {"IPv6 likewise",
         {ingress(in_syn(server6)), egress(out_syn_ack(server6)), ingress(in_ack(server6)),
          egress(out_syn_ack(server6))},
         {completed(2, in, server6, 1), overflow6}},
        {"a SYN-ACK of another ISN on the record is no overflow; the record stays",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), ingress(in_ack(server4)),
          egress(out_syn_ack(server4, client_isn, server_isn + 5))},
         {completed(2, in, server4, 1)}},
        {"a new SYN (new ISN) on the record starts a new handshake, with no timeout for the old one",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), ingress(in_ack(server4)),
          ingress(in_syn(server4, client_isn + 1000))},
         {completed(2, in, server4, 1)},
         {ExpectedFlow{server4, in, FLOWLAT_STAGE_SYN_RECEIVED, 0, client_isn + 1000, 3}}},
        {"the client's own ACKs after completion change nothing (filter bucket released)",
         {ingress(in_syn(server4)), egress(out_syn_ack(server4)), ingress(in_ack(server4)),
          with_ack_filter(ingress(in_ack(server4)), 0)},
         {completed(2, in, server4, 1)}},
    });
}
