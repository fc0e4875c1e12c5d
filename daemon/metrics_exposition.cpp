#include "metrics_exposition.hpp"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <sstream>

namespace flowlat::exposition {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// One exported label set: the snapshot series that render to it (normally exactly one).
struct Row {
    labels::LabelValues labels;
    aggregation::SeriesCounters counters;
    std::vector<std::uint64_t> rtt;      // non-cumulative, last is +Inf
    std::vector<std::uint64_t> duration;
};

void add_into(std::vector<std::uint64_t>& into, std::span<const std::uint64_t> from)
{
    for (std::size_t i = 0; i < from.size(); ++i) into[i] += from[i];
}

std::vector<Row> merge_rows(const aggregation::Snapshot& snap, const labels::InterfaceNames& interfaces)
{
    const auto names = interfaces.copy();
    std::vector<labels::LabelValues> values;
    values.reserve(snap.series.size());
    for (const auto& series : snap.series)
        values.push_back(labels::render_labels(series.key, snap.group_names, names));

    std::vector<std::size_t> order(snap.series.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return values[a] < values[b]; });

    std::vector<Row> rows;
    rows.reserve(order.size());
    for (const std::size_t i : order) {
        const auto& s = snap.series[i];
        if (rows.empty() || rows.back().labels != values[i]) {
            Row row{std::move(values[i]), s, {}, {}};
            const auto rtt = snap.rtt_buckets(i);
            const auto dur = snap.duration_buckets(i);
            row.rtt.assign(rtt.begin(), rtt.end());
            row.duration.assign(dur.begin(), dur.end());
            rows.push_back(std::move(row));
            continue;
        }
        auto& row = rows.back();
        for (std::size_t o = 0; o < row.counters.handshakes.size(); ++o)
            row.counters.handshakes[o] += s.handshakes[o];
        row.counters.syn_retransmits += s.syn_retransmits;
        row.counters.rtt_count += s.rtt_count;
        row.counters.rtt_sum_ns += s.rtt_sum_ns;
        row.counters.duration_count += s.duration_count;
        row.counters.duration_sum_ns += s.duration_sum_ns;
        add_into(row.rtt, snap.rtt_buckets(i));
        add_into(row.duration, snap.duration_buckets(i));
    }
    return rows;
}

std::vector<ClientMetric::Label> label_vector(const labels::LabelValues& values)
{
    return {{labels::kLabelNames[0], values.interface}, {labels::kLabelNames[1], values.direction},
            {labels::kLabelNames[2], values.family},    {labels::kLabelNames[3], values.peer},
            {labels::kLabelNames[4], values.port}};
}

MetricFamily family(std::string name, std::string help, MetricType type)
{
    MetricFamily f;
    f.name = std::move(name);
    f.help = std::move(help);
    f.type = type;
    return f;
}

ClientMetric value_metric(MetricType type, double value, std::vector<ClientMetric::Label> labels = {})
{
    ClientMetric m;
    m.label = std::move(labels);
    if (type == MetricType::Counter) {
        m.counter.value = value;
    } else {
        m.gauge.value = value;
    }
    return m;
}

void add_single(std::vector<MetricFamily>& out, std::string name, std::string help, MetricType type,
                double value)
{
    auto f = family(std::move(name), std::move(help), type);
    f.metric.push_back(value_metric(type, value));
    out.push_back(std::move(f));
}

ClientMetric histogram_metric(std::vector<ClientMetric::Label> labels, const std::vector<double>& bounds,
                              const std::vector<std::uint64_t>& counts, std::uint64_t count,
                              std::uint64_t sum_ns)
{
    ClientMetric m;
    m.label = std::move(labels);
    m.histogram.sample_count = count;
    m.histogram.sample_sum = static_cast<double>(sum_ns) / 1e9;
    m.histogram.bucket.reserve(counts.size());
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < counts.size(); ++b) {
        cumulative += counts[b];
        const double bound = b < bounds.size() ? bounds[b] : std::numeric_limits<double>::infinity();
        m.histogram.bucket.push_back({cumulative, bound});
    }
    return m;
}

void add_series_families(std::vector<MetricFamily>& out, const aggregation::Snapshot& snap,
                         const labels::InterfaceNames& interfaces)
{
    const auto rows = merge_rows(snap, interfaces);

    auto rtt = family("flowlat_handshake_rtt_seconds",
                      "Round-trip time of TCP handshakes: SYN to SYN-ACK (outbound) or SYN-ACK to ACK "
                      "(inbound), only when unambiguous (Karn's rule).",
                      MetricType::Histogram);
    auto duration = family("flowlat_handshake_duration_seconds",
                           "Time from the first SYN to the handshake's completion, completed handshakes only "
                           "(includes SYN retransmission delays).",
                           MetricType::Histogram);
    auto handshakes = family("flowlat_handshakes_total", "TCP handshakes seen, by outcome.",
                             MetricType::Counter);
    auto retransmits = family("flowlat_syn_retransmits_total",
                              "Retransmitted SYNs (outbound) or SYN-ACKs (inbound) in observed handshakes.",
                              MetricType::Counter);

    for (const auto& row : rows) {
        const auto& c = row.counters;
        auto labels = label_vector(row.labels);
        if (c.rtt_count > 0)
            rtt.metric.push_back(histogram_metric(labels, snap.bounds, row.rtt, c.rtt_count, c.rtt_sum_ns));
        if (c.duration_count > 0)
            duration.metric.push_back(
                histogram_metric(labels, snap.bounds, row.duration, c.duration_count, c.duration_sum_ns));
        for (const Outcome outcome : {Outcome::completed, Outcome::refused, Outcome::timeout}) {
            auto with_outcome = labels;
            with_outcome.push_back({"outcome", std::string(to_string(outcome))});
            handshakes.metric.push_back(value_metric(
                MetricType::Counter, static_cast<double>(c.handshakes[static_cast<std::size_t>(outcome)]),
                std::move(with_outcome)));
        }
        retransmits.metric.push_back(
            value_metric(MetricType::Counter, static_cast<double>(c.syn_retransmits), std::move(labels)));
    }
    for (auto* f : {&rtt, &duration, &handshakes, &retransmits}) {
        if (!f->metric.empty()) out.push_back(std::move(*f));
    }
}

void add_operational_families(std::vector<MetricFamily>& out, const aggregation::Snapshot& snap,
                              const OperationalSnapshot& op)
{
    const auto counter = MetricType::Counter;
    const auto gauge = MetricType::Gauge;
    add_single(out, "flowlat_series", "RTT label sets currently exported (compare with max_series).", gauge,
               static_cast<double>(snap.series.size()));
    add_single(out, "flowlat_series_overflow_total",
               "Handshakes counted under peer=\"other\" because max_series label sets existed.", counter,
               static_cast<double>(snap.series_overflow));
    add_single(out, "flowlat_events_lost_total", "Handshake events the probe could not deliver (ring buffer full).",
               counter, static_cast<double>(op.events_lost));
    add_single(out, "flowlat_flow_table_entries", "Handshakes in progress in the probe's flow table.", gauge,
               static_cast<double>(op.flow_table_entries));
    add_single(out, "flowlat_flow_table_size", "Capacity of the probe's flow table.", gauge,
               static_cast<double>(op.flow_table_size));
    add_single(out, "flowlat_flow_table_full_total", "Handshakes not tracked because the flow table was full.",
               counter, static_cast<double>(op.flow_table_full));
    add_single(out, "flowlat_packets_malformed_total", "Packets with truncated or invalid TCP/IP headers.",
               counter, static_cast<double>(op.packets_malformed));
    add_single(out, "flowlat_handshakes_abandoned_total",
               "Pending handshakes replaced by a new SYN with a different sequence number.", counter,
               static_cast<double>(op.handshakes_abandoned));

    auto attached = family("flowlat_probe_attached", "1 when the probe is attached to the interface, else 0.",
                           gauge);
    for (const auto& probe : op.probes)
        attached.metric.push_back(value_metric(gauge, probe.attached ? 1 : 0, {{"interface", probe.interface}}));
    if (!attached.metric.empty()) out.push_back(std::move(attached));

    auto build = family("flowlat_build_info", "flowlatd build information; the value is always 1.", gauge);
    build.metric.push_back(value_metric(gauge, 1,
                                        {{"version", op.build.version},
                                         {"revision", op.build.revision},
                                         {"libbpf_version", op.build.libbpf_version}}));
    out.push_back(std::move(build));

    add_single(out, "flowlat_config_last_reload_successful", "1 when the last configuration load succeeded.",
               gauge, op.config_reload_ok ? 1 : 0);
    add_single(out, "flowlat_config_last_reload_success_timestamp_seconds",
               "Time of the last successful configuration load, seconds since the Unix epoch.", gauge,
               op.config_reload_success_timestamp);
}

void add_process_families(std::vector<MetricFamily>& out, const process::ProcessMetrics& p)
{
    add_single(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
               MetricType::Counter, p.cpu_seconds_total);
    add_single(out, "process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
               p.resident_memory_bytes);
    add_single(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
               p.virtual_memory_bytes);
    add_single(out, "process_open_fds", "Number of open file descriptors.", MetricType::Gauge, p.open_fds);
    add_single(out, "process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
               p.max_fds);
    add_single(out, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
               MetricType::Gauge, p.start_time_seconds);
}

} // namespace

std::string render_metrics(const aggregation::Snapshot& series, const labels::InterfaceNames& interfaces,
                           const OperationalSnapshot& operational,
                           const std::optional<process::ProcessMetrics>& process)
{
    std::vector<MetricFamily> families;
    add_series_families(families, series, interfaces);
    add_operational_families(families, series, operational);
    if (process) add_process_families(families, *process);

    std::ostringstream out;
    prometheus::TextSerializer{}.Serialize(out, families);
    return std::move(out).str();
}

} // namespace flowlat::exposition
