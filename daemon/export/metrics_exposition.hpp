// Metrics exposition: renders an aggregator snapshot, the daemon's operational state and
// the process metrics in one of three formats (negotiation.hpp): Prometheus text 0.0.4,
// OpenMetrics 1.0 text, or delimited protobuf with native histograms. What is written is
// spelt out once, in write_exposition() (metric_writer.hpp); the writers only say how. The
// unit tests run it through prometheus-cpp's TextSerializer too, to prove the text 0.0.4
// bytes identical, and decode the protobuf to compare it with the text.
#pragma once

#include "aggregate/aggregator.hpp"
#include "aggregate/label_policy.hpp"
#include "export/negotiation.hpp"
#include "export/process_metrics.hpp"

#include <cstdint>
#include <functional>
#include <string_view>
#include <optional>
#include <string>
#include <vector>

namespace flowlat::exposition {

struct BuildInfo {
    std::string version;
    std::string revision;
    std::string libbpf_version;
};

struct ProbeState {
    std::string interface;
    bool attached{false};
};

// Everything on /metrics that does not come from the aggregator or /proc. Counters here
// are the probe's own (per-CPU sums) and must only grow while the probe is loaded.
struct OperationalSnapshot {
    std::uint64_t events_lost{0};
    std::uint64_t events_malformed{0}; // ring records that did not decode (user space)
    std::uint64_t flow_table_entries{0};
    std::uint64_t flow_table_size{0};
    std::uint64_t flow_table_full{0};
    std::uint64_t packets_malformed{0};
    std::uint64_t handshakes_abandoned{0};
    std::uint64_t handshakes_aborted{0};
    std::uint64_t answers_rejected{0};
    std::uint64_t flow_table_evictions{0};
    std::uint64_t workload_unresolved{0}; // lookups of a cgroup id that no walk found
    std::uint64_t cgroup_walks{0};
    std::vector<ProbeState> probes;
    bool config_reload_ok{true};
    double config_reload_success_timestamp{0}; // seconds since the Unix epoch
    BuildInfo build;
};

// flowlat_series_overflow_total comes from `series` (the aggregator counts it).
// Series whose rendered labels coincide (an interface re-created under a new ifindex) are
// summed into one. Output is sorted by label values, so it is deterministic.
std::string render_metrics(const aggregation::Snapshot& series,
                           const labels::InterfaceNames& interfaces,
                           const OperationalSnapshot& operational,
                           const std::optional<process::ProcessMetrics>& process);
// The same in any format (the protobuf one is binary).
std::string render_metrics(Format format, const aggregation::Snapshot& series,
                           const labels::InterfaceNames& interfaces, const OperationalSnapshot& operational,
                           const std::optional<process::ProcessMetrics>& process);

// The same text, handed to `write` in pieces of about `piece_bytes` as it is produced, so a
// scrape of 10,000 series never holds its whole (tens of MB) body. What /metrics uses.
void stream_metrics(const std::function<void(std::string_view)>& write, const aggregation::Snapshot& series,
                    const labels::InterfaceNames& interfaces, const OperationalSnapshot& operational,
                    const std::optional<process::ProcessMetrics>& process, std::size_t piece_bytes = 64 * 1024);
// What a scrape in `format` needs of the aggregator: text 0.0.4 carries neither native
// buckets nor exemplars, so it asks for counts only.
inline aggregation::Aggregator::Detail snapshot_detail(Format format)
{
    return format == Format::text ? aggregation::Aggregator::Detail::counts : aggregation::Aggregator::Detail::full;
}

// In `format`. A protobuf body goes out one MetricFamily message at a time (a message is
// written whole, so the largest piece is the RTT histogram family).
void stream_metrics(const std::function<void(std::string_view)>& write, Format format,
                    const aggregation::Snapshot& series, const labels::InterfaceNames& interfaces,
                    const OperationalSnapshot& operational, const std::optional<process::ProcessMetrics>& process,
                    std::size_t piece_bytes = 64 * 1024);

} // namespace flowlat::exposition
