// (a) Kernel path, ns per packet, through BPF_PROG_TEST_RUN.
//
// Stateless paths run one frame with repeat >= 1e6 and take the kernel's mean per repetition;
// the empty TC program, run the same way in the same rounds, is their floor.
//
// Paths that change state cannot be repeated: a repeated SYN is a retransmission after the
// first run, a repeated SYN-ACK finds nothing after the first. They are measured over
// batches of distinct tuples with repeat = 1 each: the kernel times every single run
// (bpf_test_timer: ktime around the program), and the empty program timed the same way over
// the same number of distinct frames is their floor. A round inserts `batch` new flows
// (SYN), then completes all of them (SYN-ACK: lookup, map delete, ring submit), then the
// reader drains the ring. Rounds alternate with the empty program so drift hits both.
//
// The same rounds time bench/bpf/primitives.bpf.c over the same frames: only the clock and
// the map and ring calls those two paths must make, on maps shaped like the probe's. They are
// reference rows: the probe's row minus the primitive's is the probe's own logic.
#include "bench_common.hpp"
#include "bench_empty.skel.h"
#include "bench_primitives.skel.h"
#include "primitives.h"

#include "probe/event_reader.hpp"
#include "flow/flowlat_abi.hpp"
#include "probe/probe.hpp"

#include <bpf/bpf.h>
#include <arpa/inet.h>
#include <linux/pkt_cls.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using namespace flowlat;
using namespace flowlat::bench;

namespace {

struct Samples {
    std::vector<double> values;
    // Mean without the slowest 0.5%: interrupts and preemption land there, not the program.
    double trimmed_mean() const
    {
        if (values.empty()) return 0;
        auto sorted = values;
        std::sort(sorted.begin(), sorted.end());
        const std::size_t keep = std::max<std::size_t>(1, sorted.size() - sorted.size() / 200);
        return std::accumulate(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(keep), 0.0) /
               static_cast<double>(keep);
    }
};

std::string met(double figure, double floor, double budget)
{
    return figure - floor <= budget ? "yes" : "NO";
}

std::string plus(double figure, double floor)
{
    char text[64];
    std::snprintf(text, sizeof(text), "%s (+%.1f)", fmt_ns(figure).c_str(), figure - floor);
    return text;
}

// The primitives read the key at fixed offsets (primitives.h); these are the frames they get.
bool primitive_offsets_hold(const Frame& frame)
{
    return frame.size() >= BENCH_PRIM_TCP_OFF + 20 && frame[12] == 0x08 && frame[13] == 0x00 &&
           frame[BENCH_PRIM_IP_OFF] == 0x45 && frame[BENCH_PRIM_IP_OFF + 9] == 6;
}

using Primitives = std::unique_ptr<bench_primitives, decltype(&bench_primitives__destroy)>;

// Open, give the maps the sizes the probe under test was loaded with, load.
Primitives load_primitives(const probe::ProbeOptions& options)
{
    Primitives prim(bench_primitives__open(), &bench_primitives__destroy);
    if (!prim) return prim;
    if (bpf_map__set_max_entries(prim->maps.prim_flows, options.flow_table_size) != 0 ||
        bpf_map__set_max_entries(prim->maps.prim_events, options.ring_buffer_size) != 0 ||
        bench_primitives__load(prim.get()) != 0)
        prim.reset();
    return prim;
}

std::uint16_t port_of(std::uint32_t i) { return static_cast<std::uint16_t>(10000 + i % 50000); }
std::uint32_t peer_of(std::uint32_t i) { return v4(198, 19, (i / 50000) & 0xff, 1 + (i / 50000 >> 8) % 250); }

} // namespace

int main(int argc, char** argv)
{
    const bool smoke = smoke_mode(argc, argv);
    const std::uint32_t repeat = smoke ? 10'000 : 1'000'000;
    const int rounds = smoke ? 1 : 5;

    probe::route_libbpf_logging();
    probe::ProbeOptions options;
    // As the daemon runs it: wake the reader only once 64 KiB are queued.
    options.ring_wakeup_bytes = 64 * 1024;
    // A cold round queues 16,384 records (about 1.4 MiB of 88-byte slots) before the reader
    // drains them; with the daemon's 1 MiB default the ring would fill and the completing
    // paths would time a failed reserve instead of a submit.
    options.ring_buffer_size = 8u * 1024 * 1024;
    auto loaded = probe::Probe::load(options);
    if (!loaded) {
        std::fprintf(stderr, "bench_kernel: %s\n", loaded.error().message().c_str());
        return 2;
    }
    auto probe = std::move(loaded).value();
    std::uint64_t delivered = 0;
    auto reader_result = probe::EventReader::open(probe->ring_buffer_fd(),
                                                  [&](std::span<const HandshakeEvent> b) { delivered += b.size(); });
    if (!reader_result) {
        std::fprintf(stderr, "bench_kernel: %s\n", reader_result.error().message().c_str());
        return 2;
    }
    auto reader = std::move(reader_result).value();

    const std::unique_ptr<bench_empty, decltype(&bench_empty__destroy)> empty(bench_empty__open_and_load(),
                                                                              &bench_empty__destroy);
    if (!empty) {
        std::fprintf(stderr, "bench_kernel: cannot load the empty program\n");
        return 2;
    }
    const int empty_fd = bpf_program__fd(empty->progs.bench_empty);
    const Primitives prim = load_primitives(options);
    if (!prim) {
        std::fprintf(stderr, "bench_kernel: cannot load the primitives program\n");
        return 2;
    }
    const int prim_insert = bpf_program__fd(prim->progs.prim_insert);
    const int prim_complete = bpf_program__fd(prim->progs.prim_complete);
    std::uint64_t prim_delivered = 0;
    auto prim_reader_result = probe::EventReader::open(
        bpf_map__fd(prim->maps.prim_events), [&](std::span<const HandshakeEvent> b) { prim_delivered += b.size(); });
    if (!prim_reader_result) {
        std::fprintf(stderr, "bench_kernel: %s\n", prim_reader_result.error().message().c_str());
        return 2;
    }
    auto prim_reader = std::move(prim_reader_result).value();
    const int ingress = probe->ingress_program_fd();
    const int egress = probe->egress_program_fd();

    // ---- stateless paths, repeat >= 1e6 --------------------------------------------------
    const std::uint32_t local = v4(198, 18, 0, 1), peer = v4(198, 19, 0, 1);
    struct Path {
        std::string name;
        int fd;
        Frame frame;
        double budget; // ns above the floor; 0: informational
        std::vector<double> runs;
    };
    TcpSpec data{.saddr = peer, .daddr = local, .sport = 443, .dport = 40000, .flags = tcp::ack | tcp::psh,
                 .seq = 5000, .ack = 7000, .payload = 1000};
    TcpSpec pure_ack = data;
    pure_ack.flags = tcp::ack;
    pure_ack.payload = 0;
    TcpSpec data_out{.saddr = local, .daddr = peer, .sport = 40000, .dport = 443, .flags = tcp::ack | tcp::psh,
                     .seq = 7000, .ack = 5000, .payload = 1000};
    TcpSpec syn_retx{.saddr = local, .daddr = peer, .sport = 39999, .dport = 443, .flags = tcp::syn, .seq = 1,
                     .linux_syn_options = true, .tsval = 77};

    std::vector<Path> paths;
    paths.push_back({"floor: empty TC program", empty_fd, tcp4_frame(data), 0, {}});
    paths.push_back({"non-IP (ARP), ingress", ingress, arp_frame(), 10, {}});
    paths.push_back({"UDP, ingress", ingress, udp4_frame(peer, local, 53, 40000, 100), 10, {}});
    paths.push_back({"TCP data, established, ingress", ingress, tcp4_frame(data), 10, {}});
    paths.push_back({"TCP data, established, egress", egress, tcp4_frame(data_out), 10, {}});
    paths.push_back({"inbound pure ACK, no pending handshake", ingress, tcp4_frame(pure_ack), 10, {}});
    paths.push_back({"SYN retransmission, egress (repeat of one SYN)", egress, tcp4_frame(syn_retx), 0, {}});

    for (int r = 0; r < rounds; ++r)
        for (auto& p : paths) p.runs.push_back(test_run(p.fd, p.frame, repeat).duration_ns);
    reader->drain();

    const double floor = median(paths[0].runs);
    row("kernel", "floor: empty TC program (repeat " + std::to_string(repeat) + ")", fmt_ns(floor), "-", "-", "-");
    for (std::size_t i = 1; i < paths.size(); ++i) {
        const auto& p = paths[i];
        const double figure = median(p.runs);
        const std::string target = p.budget > 0 ? "floor + " + std::to_string(static_cast<int>(p.budget)) + " ns" : "-";
        row("kernel", p.name, plus(figure, floor), fmt_ns(floor), target,
            p.budget > 0 ? met(figure, floor, p.budget) : "-");
    }

    // ---- state-changing paths: distinct tuples, repeat = 1 each ---------------------------
    // Twice: a small batch whose flows stay in cache, and a large one (16,384 pending flows,
    // as a busy host with long RTTs has) whose map buckets and entries are cache-cold.
    std::uint32_t offset = 0;
    std::uint64_t expected = 0, prim_expected = 0;
    for (const auto& [batch, batch_rounds, label] :
         {std::tuple<std::uint32_t, int, const char*>{smoke ? 64u : 256u, smoke ? 1 : 64, "warm"},
          std::tuple<std::uint32_t, int, const char*>{smoke ? 512u : 16384u, smoke ? 1 : 8, "cold"}}) {
    Samples empty_single, syn_new, synack_done, in_syn_new, in_synack, in_ack_done, prim_new, prim_done;
    Frame syn = tcp4_frame({.flags = tcp::syn, .linux_syn_options = true, .tsval = 1000});
    Frame synack = tcp4_frame({.flags = tcp::syn | tcp::ack, .linux_syn_options = true, .tsval = 5000, .tsecr = 1000});
    Frame ack = tcp4_frame({.flags = tcp::ack});
    if (!primitive_offsets_hold(syn) || !primitive_offsets_hold(synack)) {
        std::fprintf(stderr, "bench_kernel: the frames do not match primitives.h's offsets\n");
        return 2;
    }
    for (int r = 0; r < batch_rounds; ++r) {
        const std::uint32_t base = offset + static_cast<std::uint32_t>(r) * batch * 2;
        for (std::uint32_t i = 0; i < batch; ++i) {
            patch_tcp4(syn, local, peer_of(base + i), port_of(base + i), 443, base + i, 0);
            empty_single.values.push_back(test_run(empty_fd, syn, 1).duration_ns);
        }
        // Outbound: our SYN on egress (new entry), the peer's SYN-ACK on ingress completes it.
        // The primitives take the same frames (their own maps, so the tuples may repeat); which
        // of the two goes first alternates by round, so neither always follows the drain.
        auto outbound = [&](int syn_program, int synack_program, Samples& syn_times, Samples& synack_times,
                            std::uint64_t& events, probe::EventReader& events_reader) {
            for (std::uint32_t i = 0; i < batch; ++i) {
                patch_tcp4(syn, local, peer_of(base + i), port_of(base + i), 443, base + i, 0);
                syn_times.values.push_back(test_run(syn_program, syn, 1).duration_ns);
            }
            for (std::uint32_t i = 0; i < batch; ++i) {
                patch_tcp4(synack, peer_of(base + i), local, 443, port_of(base + i), 900, base + i + 1);
                synack_times.values.push_back(test_run(synack_program, synack, 1).duration_ns);
            }
            events += batch;
            events_reader.drain();
        };
        auto probe_outbound = [&] { outbound(egress, ingress, syn_new, synack_done, expected, *reader); };
        auto primitives = [&] {
            outbound(prim_insert, prim_complete, prim_new, prim_done, prim_expected, *prim_reader);
        };
        if (r % 2 == 0) {
            probe_outbound();
            primitives();
        } else {
            primitives();
            probe_outbound();
        }
        // Inbound: the client's SYN on ingress, our SYN-ACK on egress, the client's ACK completes.
        const std::uint32_t ib = base + batch;
        for (std::uint32_t i = 0; i < batch; ++i) {
            patch_tcp4(syn, peer_of(ib + i), local, port_of(ib + i), 8080, ib + i, 0);
            in_syn_new.values.push_back(test_run(ingress, syn, 1).duration_ns);
        }
        for (std::uint32_t i = 0; i < batch; ++i) {
            patch_tcp4(synack, local, peer_of(ib + i), 8080, port_of(ib + i), 77, ib + i + 1);
            in_synack.values.push_back(test_run(egress, synack, 1).duration_ns);
        }
        for (std::uint32_t i = 0; i < batch; ++i) {
            patch_tcp4(ack, peer_of(ib + i), local, port_of(ib + i), 8080, ib + i + 1, 78);
            in_ack_done.values.push_back(test_run(ingress, ack, 1).duration_ns);
        }
        expected += batch;
        reader->drain();
    }
    const double floor1 = empty_single.trimmed_mean();
    offset += static_cast<std::uint32_t>(batch_rounds) * batch * 2;
    const std::string n = std::to_string(batch) + " x " + std::to_string(batch_rounds) + ", " + label;
    row("kernel", "floor: empty TC program (repeat 1, " + n + " distinct frames)", fmt_ns(floor1), "-", "-", "-");
    auto stateful = [&, label = std::string(label)](const std::string& path, const Samples& s, double budget) {
        const std::string name = path + " [" + label + "]";
        const double figure = s.trimmed_mean();
        row("kernel", name, plus(figure, floor1), fmt_ns(floor1),
            budget > 0 ? "floor + " + std::to_string(static_cast<int>(budget)) + " ns" : "-",
            budget > 0 ? met(figure, floor1, budget) : "-");
    };
    stateful("SYN, new entry (outbound, egress)", syn_new, 200);
    stateful("SYN-ACK completing (outbound: delete + ring submit)", synack_done, 250);
    stateful("SYN, new entry (inbound, ingress)", in_syn_new, 200);
    stateful("SYN-ACK sent (inbound, egress: timed, filter bucket)", in_synack, 0);
    stateful("ACK completing (inbound: delete + ring submit)", in_ack_done, 250);
    stateful("primitive: hash insert + clock", prim_new, 0);
    stateful("primitive: lookup + delete + ring submit", prim_done, 0);
    note("kernel", std::string(label) + " medians of per-call durations (repeat 1): empty " +
                       fmt_ns(median(empty_single.values)) + ", SYN new " + fmt_ns(median(syn_new.values)) +
                       ", SYN-ACK completing " + fmt_ns(median(synack_done.values)) + ", primitive insert " +
                       fmt_ns(median(prim_new.values)) + ", primitive complete " + fmt_ns(median(prim_done.values)));
    }
    const auto counters = probe->read_counters();
    note("kernel", "stateful rounds: " + std::to_string(delivered) + " events delivered of " +
                       std::to_string(expected) + " expected; events_lost " + std::to_string(counters.events_lost) +
                       ", flow_table_full " + std::to_string(counters.flow_table_full));
    {
        // Every primitive insert was found, deleted and reported: none left in its table.
        flowlat_flow_key next{};
        const bool prim_table_empty = bpf_map_get_next_key(bpf_map__fd(prim->maps.prim_flows), nullptr, &next) != 0;
        note("kernel", "primitives: " + std::to_string(prim_delivered) + " events delivered of " +
                           std::to_string(prim_expected) + " expected (" +
                           std::to_string(prim_reader->malformed_records()) + " malformed); their table " +
                           (prim_table_empty ? "empty" : "NOT empty") + " afterwards");
    }
    // ---- SYN with the flow table full ----------------------------------------------------
    {
        // Fill every slot from user space (the daemon's default size), then time a new tuple.
        flowlat_flow_key key{};
        flowlat_flow value{};
        key.family = FLOWLAT_FAMILY_IPV4;
        key.ifindex = 1;
        std::uint32_t filled = 0;
        for (std::uint32_t i = 0; i < options.flow_table_size + 64; ++i) {
            const std::uint8_t addr[4] = {198, static_cast<std::uint8_t>(18 + (i >> 16)),
                                          static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
            std::memcpy(key.peer_addr, addr, 4);
            if (bpf_map_update_elem(probe->flow_table_fd(), &key, &value, BPF_NOEXIST) == 0) ++filled;
        }
        TcpSpec syn_full{.saddr = local, .daddr = peer, .sport = 39998, .dport = 443, .flags = tcp::syn, .seq = 9,
                         .linux_syn_options = true, .tsval = 78};
        Path full{"SYN, flow table full (" + std::to_string(filled) + " entries)", egress, tcp4_frame(syn_full), 200,
                  {}};
        const auto before = probe->read_counters().flow_table_full;
        std::vector<double> floor_runs;
        for (int r = 0; r < rounds; ++r) {
            floor_runs.push_back(test_run(empty_fd, full.frame, repeat).duration_ns);
            full.runs.push_back(test_run(full.fd, full.frame, repeat).duration_ns);
        }
        const auto refused = probe->read_counters().flow_table_full - before;
        note("kernel", "table-full SYN: flow_table_full_total grew by " + std::to_string(refused) + " over " +
                           std::to_string(static_cast<std::uint64_t>(repeat) * static_cast<unsigned>(rounds)) +
                           " runs; its floor was " + fmt_ns(median(floor_runs)));
        const double f = median(floor_runs), figure = median(full.runs);
        row("kernel", full.name + " (repeat " + std::to_string(repeat) + ")", plus(figure, f), fmt_ns(f),
            "floor + 200 ns", met(figure, f, 200));
        // (Not needed afterwards: this section runs last.)
    }

    return 0;
}
