// (b) Pipeline throughput and (c) the original design, in the same run.
//
// Driver threads push synthetic handshakes through the real probe with BPF_PROG_TEST_RUN:
// our SYN through the egress program, the peer's SYN-ACK through the ingress program
// (an outbound handshake: one map insert, one lookup + delete + ring record). The daemon's
// own consumer runs on its own thread exactly as flowlatd wires it: EventLoop watching the
// EventReader's epoll fd plus a 100 ms drain timer, the probe loaded with the daemon's
// wakeup threshold (ring/8, at most 64 KiB), every batch folded into the real Aggregator.
// A scrape thread renders /metrics (exposition::render_metrics) every second.
//
// The baseline is the original flowlat design: a perf-buffer record for every SYN-flagged
// packet (libbpf defaults: one wakeup per record), SYN and SYN-ACK matched in a user-space
// hash table, the result folded into the same Aggregator.
//
// Consumer CPU is the consumer thread's own: getrusage(RUSAGE_THREAD) for user and system,
// CLOCK_THREAD_CPUTIME_ID for the total.
#include "bench_common.hpp"
#include "bench_baseline.skel.h"
#include "bench_empty.skel.h"
#include "baseline.h"

#include "aggregator.hpp"
#include "config.hpp"
#include "event_loop.hpp"
#include "event_reader.hpp"
#include "label_policy.hpp"
#include "metrics_exposition.hpp"
#include "probe.hpp"

#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

using namespace flowlat;
using namespace flowlat::bench;

namespace {

constexpr std::uint32_t peers = 1000; // distinct peers: 1,000 outbound /32 series

struct RunConfig {
    bool baseline{false};
    int threads{1};
    std::uint32_t ring_bytes{4u << 20};
    double seconds{5};
    bool empty{false}; // the empty TC program in place of the probe: the driver's own ceiling
};

struct RunResult {
    std::uint64_t handshakes{0};
    double wall_s{0};
    std::uint64_t delivered{0};
    std::uint64_t lost{0};
    std::uint64_t consumer_user_ns{0}, consumer_sys_ns{0}, consumer_cpu_ns{0};
    std::uint64_t kernel_ns{0}; // sum of the probe's test-run durations
    std::uint64_t scrapes{0};
    double scrape_max_ms{0};
    std::size_t series{0};
    double rate() const { return static_cast<double>(handshakes) / wall_s; }
    double user_s_per_million() const
    {
        return handshakes ? static_cast<double>(consumer_user_ns) / 1e9 / (static_cast<double>(handshakes) / 1e6) : 0;
    }
    double cpu_s_per_million() const
    {
        return handshakes ? static_cast<double>(consumer_cpu_ns) / 1e9 / (static_cast<double>(handshakes) / 1e6) : 0;
    }
};

aggregation::Aggregator make_aggregator()
{
    config::Config config = config::embedded_default();
    config.max_series = 20000;
    return aggregation::Aggregator(labels::LabelPolicy(config), aggregation::Settings::from(config));
}

// Generates handshakes on one thread until `stop`. Thread t owns local address 198.18.1.t,
// so tuples never collide across threads; ports cycle, peers cycle over `peers`.
void drive(int t, int syn_fd, int synack_fd, const std::atomic<bool>& stop, std::uint64_t& count,
           std::uint64_t& kernel_ns)
{
    const std::uint32_t local = v4(198, 18, 1, static_cast<unsigned>(t + 1));
    Frame syn = tcp4_frame({.flags = tcp::syn, .linux_syn_options = true, .tsval = 1000});
    Frame synack =
        tcp4_frame({.flags = tcp::syn | tcp::ack, .linux_syn_options = true, .tsval = 5000, .tsecr = 1000});
    std::uint64_t n = 0, ns = 0;
    while (!stop.load(std::memory_order_relaxed)) {
        for (int k = 0; k < 64; ++k, ++n) {
            const auto i = static_cast<std::uint32_t>(n);
            const std::uint32_t peer = v4(198, 19, (i % peers) >> 8, (i % peers) & 0xff);
            const auto port = static_cast<std::uint16_t>(10000 + (i / peers) % 50000);
            patch_tcp4(syn, local, peer, port, 443, i, 0);
            ns += test_run(syn_fd, syn, 1).duration_ns;
            patch_tcp4(synack, peer, local, 443, port, 7, i + 1);
            ns += test_run(synack_fd, synack, 1).duration_ns;
        }
    }
    count = n;
    kernel_ns = ns;
}

// ---- the original design's user-space matcher ------------------------------------------
struct BaselineKey {
    std::uint8_t local[16];
    std::uint8_t peer[16];
    std::uint16_t local_port_be, peer_port_be;
    std::uint32_t ifindex;
    bool operator==(const BaselineKey& o) const { return std::memcmp(this, &o, sizeof(o)) == 0; }
};
struct BaselineKeyHash {
    std::size_t operator()(const BaselineKey& k) const noexcept
    {
        std::uint64_t h = 1469598103934665603ull;
        const auto* p = reinterpret_cast<const std::uint8_t*>(&k);
        for (std::size_t i = 0; i < sizeof(k); ++i) h = (h ^ p[i]) * 1099511628211ull;
        return static_cast<std::size_t>(h);
    }
};
struct Pending {
    std::uint64_t ts_ns;
    std::uint32_t seq;
};

struct BaselineMatcher {
    aggregation::Aggregator* aggregator;
    std::unordered_map<BaselineKey, Pending, BaselineKeyHash> pending;
    std::vector<HandshakeEvent> batch;
    std::uint64_t delivered{0};
    std::uint64_t lost{0};

    void on_record(const baseline_record& r)
    {
        BaselineKey key{};
        const bool syn_only = (r.flags & 0x12) == 0x02;
        // Keyed from the host's side: egress SYN (we are the client), ingress SYN-ACK answers it.
        if (r.egress && syn_only) {
            std::memcpy(key.local, r.saddr, 16);
            std::memcpy(key.peer, r.daddr, 16);
            key.local_port_be = r.sport_be;
            key.peer_port_be = r.dport_be;
            key.ifindex = r.ifindex;
            pending[key] = Pending{r.ts_ns, r.seq};
            return;
        }
        if (r.egress || syn_only) return; // inbound handshakes: not driven by this benchmark
        std::memcpy(key.local, r.daddr, 16);
        std::memcpy(key.peer, r.saddr, 16);
        key.local_port_be = r.dport_be;
        key.peer_port_be = r.sport_be;
        key.ifindex = r.ifindex;
        auto it = pending.find(key);
        if (it == pending.end() || r.ack != it->second.seq + 1) return;
        HandshakeEvent e;
        e.monotonic_ns = r.ts_ns;
        e.ifindex = r.ifindex;
        e.direction = Direction::outbound;
        e.outcome = Outcome::completed;
        e.family = r.family == 4 ? Family::ipv4 : Family::ipv6;
        std::memcpy(e.local.data(), key.local, 16);
        std::memcpy(e.peer.data(), key.peer, 16);
        e.local_port = ntohs(key.local_port_be);
        e.peer_port = ntohs(key.peer_port_be);
        e.rtt_ns = r.ts_ns - it->second.ts_ns;
        e.handshake_ns = r.ts_ns - it->second.ts_ns;
        pending.erase(it);
        batch.push_back(e);
        if (batch.size() >= 4096) flush();
    }
    void flush()
    {
        if (batch.empty()) return;
        aggregator->add(batch);
        delivered += batch.size();
        batch.clear();
    }
};

RunResult run(const RunConfig& rc, bool smoke)
{
    RunResult result;
    auto aggregator = make_aggregator();
    labels::InterfaceNames names;
    names.set(1, "lo");
    std::atomic<bool> stop_drivers{false}, stop_consumer{false}, stop_scrape{false};
    std::atomic<std::uint64_t> delivered{0};

    std::unique_ptr<probe::Probe> probe;
    bench_baseline* baseline = nullptr;
    int syn_fd = -1, synack_fd = -1;
    if (rc.baseline) {
        baseline = bench_baseline__open_and_load();
        if (baseline == nullptr) throw std::runtime_error("cannot load the baseline program");
        syn_fd = bpf_program__fd(baseline->progs.baseline_egress);
        synack_fd = bpf_program__fd(baseline->progs.baseline_ingress);
    } else {
        probe::ProbeOptions options;
        options.ring_buffer_size = rc.ring_bytes;
        options.ring_wakeup_bytes = std::min<std::uint32_t>(rc.ring_bytes / 8, 64u * 1024u); // as the daemon
        auto loaded = probe::Probe::load(options, nullptr);
        if (!loaded) throw std::runtime_error(loaded.error().message());
        probe = std::move(loaded).value();
        syn_fd = probe->egress_program_fd();
        synack_fd = probe->ingress_program_fd();
    }
    bench_empty* empty = nullptr;
    if (rc.empty) {
        empty = bench_empty__open_and_load();
        if (empty == nullptr) throw std::runtime_error("cannot load the empty program");
        syn_fd = synack_fd = bpf_program__fd(empty->progs.bench_empty);
    }

    // Consumer thread.
    std::atomic<bool> consumer_ready{false};
    std::thread consumer([&] {
        const auto user0 = thread_user_ns(), sys0 = thread_sys_ns(), cpu0 = thread_cpu_ns();
        if (rc.baseline) {
            BaselineMatcher matcher{&aggregator, {}, {}, 0, 0};
            matcher.pending.reserve(65536);
            perf_buffer_opts opts{};
            opts.sz = sizeof(opts);
            auto* pb = perf_buffer__new(
                bpf_map__fd(baseline->maps.records), 512 /* pages per CPU: 2 MiB, 4 MiB in all */,
                [](void* ctx, int, void* data, __u32 size) {
                    if (size >= sizeof(baseline_record)) {
                        baseline_record r;
                        std::memcpy(&r, data, sizeof(r));
                        static_cast<BaselineMatcher*>(ctx)->on_record(r);
                    }
                },
                [](void* ctx, int, __u64 count) { static_cast<BaselineMatcher*>(ctx)->lost += count; }, &matcher,
                &opts);
            if (pb == nullptr) std::abort();
            consumer_ready = true;
            while (!stop_consumer.load()) {
                perf_buffer__poll(pb, 100);
                matcher.flush();
            }
            perf_buffer__consume(pb);
            matcher.flush();
            perf_buffer__free(pb);
            delivered = matcher.delivered;
            result.lost = matcher.lost;
        } else {
            auto loop = EventLoop::create().value();
            auto reader = probe::EventReader::open(probe->ring_buffer_fd(), [&](std::span<const HandshakeEvent> b) {
                              aggregator.add(b);
                              delivered.fetch_add(b.size(), std::memory_order_relaxed);
                          }).value();
            probe::EventReader* r = reader.get();
            EventLoop* l = loop.get();
            (void)loop->watch(reader->epoll_fd(), [r] { r->drain(); });
            (void)loop->every(std::chrono::milliseconds(100), [r] { r->drain(); });
            (void)loop->every(std::chrono::milliseconds(10), [&, r, l] {
                if (stop_consumer.load()) {
                    r->drain();
                    l->stop();
                }
            });
            consumer_ready = true;
            loop->run();
        }
        result.consumer_user_ns = thread_user_ns() - user0;
        result.consumer_sys_ns = thread_sys_ns() - sys0;
        result.consumer_cpu_ns = thread_cpu_ns() - cpu0;
    });
    while (!consumer_ready.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

    // Scrape thread: render /metrics once a second, as Prometheus would.
    std::thread scraper([&] {
        while (!stop_scrape.load()) {
            const auto t0 = monotonic_ns();
            exposition::OperationalSnapshot op;
            if (probe) {
                const auto c = probe->read_counters();
                op.events_lost = c.events_lost;
            }
            const auto text = exposition::render_metrics(aggregator.snapshot(), names, op, std::nullopt);
            const double ms = static_cast<double>(monotonic_ns() - t0) / 1e6;
            result.scrape_max_ms = std::max(result.scrape_max_ms, ms);
            ++result.scrapes;
            for (int i = 0; i < 100 && !stop_scrape.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    });

    std::vector<std::thread> drivers;
    std::vector<std::uint64_t> counts(static_cast<std::size_t>(rc.threads)), kns(static_cast<std::size_t>(rc.threads));
    const auto start = monotonic_ns();
    for (int t = 0; t < rc.threads; ++t)
        drivers.emplace_back(drive, t, syn_fd, synack_fd, std::cref(stop_drivers),
                             std::ref(counts[static_cast<std::size_t>(t)]), std::ref(kns[static_cast<std::size_t>(t)]));
    std::this_thread::sleep_for(std::chrono::duration<double>(smoke ? 0.3 : rc.seconds));
    stop_drivers = true;
    for (auto& d : drivers) d.join();
    result.wall_s = static_cast<double>(monotonic_ns() - start) / 1e9;
    for (std::size_t t = 0; t < counts.size(); ++t) {
        result.handshakes += counts[t];
        result.kernel_ns += kns[t];
    }
    stop_consumer = true;
    consumer.join();
    stop_scrape = true;
    scraper.join();
    result.delivered = delivered.load();
    if (probe) result.lost = probe->read_counters().events_lost;
    result.series = aggregator.series_count();
    if (baseline) bench_baseline__destroy(baseline);
    if (empty) bench_empty__destroy(empty);
    return result;
}

std::string describe(const RunConfig& rc, const RunResult& r)
{
    char text[512];
    std::snprintf(text, sizeof(text),
                  "%s, %d driver thread(s), %s: %.3f M handshakes/s (%llu in %.2f s), delivered %llu, lost %llu, "
                  "consumer user %.3f s/M, sys %.3f s/M, total %.3f s/M, kernel %.0f ns/handshake, "
                  "%llu scrapes (max %.1f ms), %zu series",
                  rc.baseline ? "baseline perf buffer" : "flowlat ring buffer", rc.threads,
                  rc.baseline ? "2 x 2 MiB perf buffers" : (std::to_string(rc.ring_bytes / 1024) + " KiB ring").c_str(),
                  r.rate() / 1e6, static_cast<unsigned long long>(r.handshakes), r.wall_s,
                  static_cast<unsigned long long>(r.delivered), static_cast<unsigned long long>(r.lost),
                  r.user_s_per_million(), static_cast<double>(r.consumer_sys_ns) / 1e9 / (static_cast<double>(r.handshakes) / 1e6),
                  r.cpu_s_per_million(), static_cast<double>(r.kernel_ns) / static_cast<double>(std::max<std::uint64_t>(r.handshakes, 1)),
                  static_cast<unsigned long long>(r.scrapes), r.scrape_max_ms, r.series);
    return text;
}

// The consumer alone: fill a large ring with the consumer stopped, then time one drain.
void consumer_capacity(bool smoke)
{
    probe::ProbeOptions options;
    options.ring_buffer_size = 32u << 20;
    options.ring_wakeup_bytes = 64 * 1024;
    auto probe = probe::Probe::load(options, nullptr).value();
    auto aggregator = make_aggregator();
    std::uint64_t delivered = 0;
    auto reader = probe::EventReader::open(probe->ring_buffer_fd(), [&](std::span<const HandshakeEvent> b) {
                      aggregator.add(b);
                      delivered += b.size();
                  }).value();
    const std::uint64_t n = smoke ? 20000 : 300000; // 300k x 88 B = 26 MB: fits in 32 MiB
    Frame syn = tcp4_frame({.flags = tcp::syn, .linux_syn_options = true, .tsval = 1000});
    Frame synack =
        tcp4_frame({.flags = tcp::syn | tcp::ack, .linux_syn_options = true, .tsval = 5000, .tsecr = 1000});
    for (std::uint32_t i = 0; i < n; ++i) {
        const std::uint32_t peer = v4(198, 19, (i % peers) >> 8, (i % peers) & 0xff);
        const auto port = static_cast<std::uint16_t>(10000 + (i / peers) % 50000);
        patch_tcp4(syn, v4(198, 18, 1, 1), peer, port, 443, i, 0);
        test_run(probe->egress_program_fd(), syn, 1);
        patch_tcp4(synack, peer, v4(198, 18, 1, 1), 443, port, 7, i + 1);
        test_run(probe->ingress_program_fd(), synack, 1);
    }
    const auto u0 = thread_user_ns(), c0 = thread_cpu_ns(), t0 = monotonic_ns();
    reader->drain();
    const auto wall = monotonic_ns() - t0, user = thread_user_ns() - u0, cpu = thread_cpu_ns() - c0;
    char text[256];
    std::snprintf(text, sizeof(text),
                  "consumer alone: drained %llu queued events (lost %llu) in %.1f ms: %.0f ns/event wall, "
                  "%.3f s user per M (%.2f M events/s capacity)",
                  static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(probe->read_counters().events_lost),
                  static_cast<double>(wall) / 1e6, static_cast<double>(wall) / static_cast<double>(std::max<std::uint64_t>(delivered, 1)),
                  static_cast<double>(user) / 1e9 / (static_cast<double>(delivered) / 1e6),
                  static_cast<double>(delivered) / (static_cast<double>(cpu) / 1e9) / 1e6);
    note("pipeline", text);
    row("pipeline", "consumer alone: user CPU per M events (drain of a full ring)",
        std::to_string(static_cast<double>(user) / 1e9 / (static_cast<double>(delivered) / 1e6)).substr(0, 5) + " s",
        "-", "<= 0.5 s", static_cast<double>(user) / 1e9 / (static_cast<double>(delivered) / 1e6) <= 0.5 ? "yes" : "NO");
}

} // namespace

int main(int argc, char** argv)
{
    const bool smoke = smoke_mode(argc, argv);
    const double seconds = std::stod(flag(argc, argv, "seconds", smoke ? "0.3" : "5"));
    probe::route_libbpf_logging();
    try {
        // The driver's ceiling: the same two test runs per handshake into the empty program.
        double ceiling = 0;
        int ceiling_threads = 1;
        for (int threads : {1, 2}) {
            RunConfig rc{false, threads, 4u << 20, seconds, true};
            auto r = run(rc, smoke);
            note("pipeline", "driver ceiling (empty program for SYN and SYN-ACK, no events): " +
                                 std::to_string(threads) + " thread(s): " + fmt_rate(r.rate()));
            if (r.rate() > ceiling) ceiling = r.rate(), ceiling_threads = threads;
        }
        // Throughput: one and two driver threads (the machine has two cores).
        std::optional<std::pair<RunConfig, RunResult>> best;
        std::vector<std::pair<RunConfig, RunResult>> flowlat_runs;
        for (int threads : {1, 2}) {
            RunConfig rc{false, threads, 4u << 20, seconds};
            auto r = run(rc, smoke);
            note("pipeline", describe(rc, r));
            flowlat_runs.push_back({rc, r});
            if (!best || r.rate() > best->second.rate()) best = {rc, r};
        }
        std::optional<std::pair<RunConfig, RunResult>> best_base;
        for (int threads : {1, 2}) {
            RunConfig rc{true, threads, 0, seconds};
            auto r = run(rc, smoke);
            note("pipeline", describe(rc, r));
            if (!best_base || r.rate() > best_base->second.rate()) best_base = {rc, r};
        }
        const auto& [bc, br] = *best;
        const auto& [xc, xr] = *best_base;
        row("pipeline", "driver ceiling: 2 test runs/handshake into the empty program, " +
                            std::to_string(ceiling_threads) + " thread(s)", fmt_rate(ceiling), "-", "-", "-");
        row("pipeline", "handshakes/s, " + std::to_string(bc.threads) + " driver(s), 4 MiB ring, scrape 1/s",
            fmt_rate(br.rate()), fmt_rate(ceiling) + " (driver)", ">= 1.5 M/s", br.rate() >= 1.5e6 ? "yes" : "NO");
        row("pipeline", "lost events in that run", std::to_string(br.lost) + " of " + std::to_string(br.handshakes), "-",
            "0", br.lost == 0 && br.delivered == br.handshakes ? "yes" : "NO");
        row("pipeline", "consumer user CPU per M handshakes", std::to_string(br.user_s_per_million()).substr(0, 5) + " s",
            "-", "<= 0.5 s", br.user_s_per_million() <= 0.5 ? "yes" : "NO");
        consumer_capacity(smoke);
        char ratio[128];
        std::snprintf(ratio, sizeof(ratio), "%.2fx rate, %.1fx less consumer CPU/M",
                      br.rate() / xr.rate(), xr.cpu_s_per_million() / std::max(br.cpu_s_per_million(), 1e-9));
        row("baseline", "original design (perf buffer per SYN, user-space match)", fmt_rate(xr.rate()), "-", "report ratio", "-");
        row("baseline", "flowlat / original", ratio, "-", "report ratio", "-");
        char cpu[160];
        std::snprintf(cpu, sizeof(cpu), "consumer CPU (user+sys) per M handshakes: flowlat %.3f s, original %.3f s; kernel ns/handshake: flowlat %.0f, original %.0f",
                      br.cpu_s_per_million(), xr.cpu_s_per_million(),
                      static_cast<double>(br.kernel_ns) / static_cast<double>(std::max<std::uint64_t>(br.handshakes, 1)),
                      static_cast<double>(xr.kernel_ns) / static_cast<double>(std::max<std::uint64_t>(xr.handshakes, 1)));
        note("baseline", cpu);

        // Where loss begins: two drivers (both cores busy producing) against ring sizes.
        for (std::uint32_t ring : {64u << 10, 256u << 10, 1u << 20, 4u << 20, 16u << 20}) {
            RunConfig rc{false, 2, ring, smoke ? 0.3 : std::max(2.0, seconds / 2)};
            auto r = run(rc, smoke);
            note("loss", describe(rc, r));
            char fig[96];
            std::snprintf(fig, sizeof(fig), "%llu lost of %llu (%.4f%%)", static_cast<unsigned long long>(r.lost),
                          static_cast<unsigned long long>(r.handshakes),
                          100.0 * static_cast<double>(r.lost) / static_cast<double>(std::max<std::uint64_t>(r.handshakes, 1)));
            row("loss", "ring " + std::to_string(ring / 1024) + " KiB, 2 drivers, " + fmt_rate(r.rate()), fig, "-", "0",
                r.lost == 0 ? "yes" : "NO");
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_pipeline: %s\n", e.what());
        return 2;
    }
    return 0;
}
