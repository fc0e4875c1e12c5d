#include "export/metrics_exposition.hpp"
#include "export/metric_writer.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>
#include <string_view>

namespace flowlat::exposition {

namespace {

// One exported label set: the snapshot series that render to it (normally exactly one).
struct Row {
    labels::LabelValues labels;
    aggregation::SeriesCounters counters;
    std::vector<std::uint64_t> rtt; // non-cumulative, last is +Inf
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
        values.push_back(labels::render_labels(series.key, snap.group_names, names, snap.workload_names));

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
        row.counters.add(s);
        add_into(row.rtt, snap.rtt_buckets(i));
        add_into(row.duration, snap.duration_buckets(i));
    }
    return rows;
}

// The fast path: text written straight into one string. Numbers are formatted as
// TextSerializer formats them (%.16g, "+Inf"), so both writers produce the same bytes.
class TextWriter final : public MetricWriter {
public:
    explicit TextWriter(std::size_t reserve) { out_.reserve(reserve); }
    // Streaming: whenever `piece_bytes` have gathered, they go to `write` and the buffer is reused.
    TextWriter(const std::function<void(std::string_view)>& write, std::size_t piece_bytes)
        : write_(&write), piece_bytes_(piece_bytes)
    {
        out_.reserve(piece_bytes + 64 * 1024);
    }

    void family(std::string_view name, std::string_view help, MetricType type) override
    {
        name_ = name;
        help_ = help;
        type_ = type;
        header_written_ = false;
    }

    void value(std::initializer_list<Label> labels, std::span<const Label> more, double v) override
    {
        header();
        out_ += name_;
        label_text_.clear();
        for (const auto& l : more) append_label(label_text_, l);
        for (const auto& l : labels) append_label(label_text_, l);
        if (!label_text_.empty()) {
            out_ += '{';
            out_.append(label_text_, 1); // drop the leading ','
            out_ += '}';
        }
        out_ += ' ';
        append_double(out_, v);
        out_ += '\n';
        maybe_flush();
    }

    void histogram(std::span<const Label> labels, const std::vector<double>& bounds,
                   const std::vector<std::uint64_t>& counts, std::uint64_t count, double sum) override
    {
        header();
        label_text_.clear();
        for (const auto& l : labels) append_label(label_text_, l);
        const std::string_view inner = std::string_view(label_text_).substr(label_text_.empty() ? 0 : 1);
        sample("_count", inner, [&] { append_uint(out_, count); });
        sample("_sum", inner, [&] { append_double(out_, sum); });
        if (le_source_ != bounds) cache_le(bounds);
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < counts.size(); ++b) {
            cumulative += counts[b];
            out_ += name_;
            out_ += "_bucket{";
            out_ += inner;
            if (!inner.empty()) out_ += ',';
            out_ += le_[b];
            out_ += "} ";
            append_uint(out_, cumulative);
            out_ += '\n';
        }
        maybe_flush();
    }

    std::string finish()
    {
        if (write_ == nullptr) return std::move(out_);
        if (!out_.empty()) (*write_)(out_);
        out_.clear();
        return {};
    }

private:
    void maybe_flush()
    {
        if (write_ == nullptr || out_.size() < piece_bytes_) return;
        (*write_)(out_);
        out_.clear();
    }

    template <typename F>
    void sample(std::string_view suffix, std::string_view inner, F&& write_value)
    {
        out_ += name_;
        out_ += suffix;
        if (!inner.empty()) {
            out_ += '{';
            out_ += inner;
            out_ += '}';
        }
        out_ += ' ';
        write_value();
        out_ += '\n';
    }

    void header()
    {
        if (header_written_) return;
        header_written_ = true;
        out_ += "# HELP ";
        out_ += name_;
        out_ += ' ';
        append_escaped(out_, help_, false);
        out_ += "\n# TYPE ";
        out_ += name_;
        out_ += type_ == MetricType::counter ? " counter\n" : type_ == MetricType::gauge ? " gauge\n" : " histogram\n";
    }

    void cache_le(const std::vector<double>& bounds)
    {
        le_source_ = bounds;
        le_.clear();
        for (double bound : bounds) {
            std::string text = "le=\"";
            append_double(text, bound);
            le_.push_back(text + '"');
        }
        le_.push_back("le=\"+Inf\"");
    }

    static void append_label(std::string& out, const Label& label)
    {
        out += ',';
        out += label.name;
        out += "=\"";
        append_escaped(out, label.value, true);
        out += '"';
    }

    // The format's escapes: backslash and newline in HELP text, and '"' too in label values.
    static void append_escaped(std::string& out, std::string_view text, bool quote)
    {
        for (char c : text) {
            if (c == '\\') {
                out += "\\\\";
            } else if (c == '\n') {
                out += "\\n";
            } else if (quote && c == '"') {
                out += "\\\"";
            } else {
                out += c;
            }
        }
    }

    static void append_uint(std::string& out, std::uint64_t v)
    {
        char buffer[24];
        const auto end = std::to_chars(buffer, buffer + sizeof(buffer), v).ptr;
        out.append(buffer, end);
    }

    static void append_double(std::string& out, double v)
    {
        if (std::isnan(v)) {
            out += "NaN";
        } else if (std::isinf(v)) {
            out += v > 0 ? "+Inf" : "-Inf";
        } else {
            char buffer[32];
            const auto end = std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::general,
                                           std::numeric_limits<double>::max_digits10 - 1)
                                 .ptr;
            out.append(buffer, end);
        }
    }

    std::string out_;
    const std::function<void(std::string_view)>* write_{nullptr};
    std::size_t piece_bytes_{0};
    std::string_view name_;
    std::string_view help_;
    MetricType type_{MetricType::gauge};
    bool header_written_{false};
    std::string label_text_;
    std::vector<double> le_source_;
    std::vector<std::string> le_;
};

// ---- What is exported. The same calls serve every MetricWriter (see metric_writer.hpp).

// A series' labels; `workload` only when the workload label is on (it is last).
struct SeriesLabels {
    std::array<Label, 6> items;
    std::size_t count;
    operator std::span<const Label>() const { return {items.data(), count}; }
};

SeriesLabels series_labels(const labels::LabelValues& v)
{
    return {{{{labels::kLabelNames[0], v.interface},
              {labels::kLabelNames[1], v.direction},
              {labels::kLabelNames[2], v.family},
              {labels::kLabelNames[3], v.peer},
              {labels::kLabelNames[4], v.port},
              {labels::kLabelNames[5], v.workload}}},
            v.workload.empty() ? 5u : 6u};
}

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

// A histogram family over the rows: where its buckets, count and sum are kept.
struct Histogram {
    std::string_view name;
    std::string_view help;
    std::vector<std::uint64_t> Row::*buckets;
    std::uint64_t aggregation::SeriesCounters::*count;
    std::uint64_t aggregation::SeriesCounters::*sum_ns;
};

constexpr Histogram kRtt{
    "flowlat_handshake_rtt_seconds",
    "Round-trip time of TCP handshakes: SYN to SYN-ACK (outbound) or SYN-ACK to ACK (inbound), only when "
    "unambiguous (Karn's rule).",
    &Row::rtt, &aggregation::SeriesCounters::rtt_count, &aggregation::SeriesCounters::rtt_sum_ns};
constexpr Histogram kDuration{
    "flowlat_handshake_duration_seconds",
    "Time from the first SYN to the SYN-ACK that answers it (outbound) or to the client's ACK of our SYN-ACK "
    "(inbound), completed handshakes only; includes retransmission delays.",
    &Row::duration, &aggregation::SeriesCounters::duration_count, &aggregation::SeriesCounters::duration_sum_ns};

// Rows with no observation in this histogram are left out of it.
void write_histogram(MetricWriter& w, const Histogram& h, const aggregation::Snapshot& snap,
                     const std::vector<Row>& rows)
{
    w.family(h.name, h.help, MetricType::histogram);
    for (const auto& row : rows) {
        const std::uint64_t count = row.counters.*h.count;
        if (count == 0) continue;
        const auto labels = series_labels(row.labels);
        w.histogram(labels, snap.bounds, row.*h.buckets, count, seconds(row.counters.*h.sum_ns));
    }
}

void write_series(MetricWriter& w, const aggregation::Snapshot& snap, const std::vector<Row>& rows)
{
    write_histogram(w, kRtt, snap, rows);
    write_histogram(w, kDuration, snap, rows);

    w.family("flowlat_handshakes_total", "TCP handshakes observed, by outcome.", MetricType::counter);
    for (const auto& row : rows) {
        const auto labels = series_labels(row.labels);
        for (const Outcome outcome : {Outcome::completed, Outcome::refused, Outcome::timeout, Outcome::unreachable}) {
            w.value({{"outcome", to_string(outcome)}}, labels,
                    static_cast<double>(row.counters.handshakes[static_cast<std::size_t>(outcome)]));
        }
    }

    w.family("flowlat_handshake_accept_overflows_total",
             "Inbound handshakes whose final ACK the listener dropped because its accept queue was full (seen as "
             "our SYN-ACK sent again after that ACK); each was also counted completed at the dropped ACK.",
             MetricType::counter);
    for (const auto& row : rows) {
        const auto labels = series_labels(row.labels);
        w.value({}, labels,
                static_cast<double>(row.counters.handshakes[static_cast<std::size_t>(Outcome::accept_overflow)]));
    }

    w.family("flowlat_syn_retransmits_total",
             "Retransmitted SYNs (outbound) or SYN-ACKs (inbound) in observed handshakes.", MetricType::counter);
    for (const auto& row : rows) {
        const auto labels = series_labels(row.labels);
        w.value({}, labels, static_cast<double>(row.counters.syn_retransmits));
    }
}

void single(MetricWriter& w, std::string_view name, std::string_view help, MetricType type, double v)
{
    w.family(name, help, type);
    w.value({}, {}, v);
}

// A family of one unlabelled sample, read from a field of `Source`.
template <typename Source, typename Field>
struct Single {
    std::string_view name;
    std::string_view help;
    MetricType type;
    Field Source::*field;
};

template <typename Source, typename Field, std::size_t N>
void singles(MetricWriter& w, const std::array<Single<Source, Field>, N>& table, const Source& source)
{
    for (const auto& s : table) single(w, s.name, s.help, s.type, static_cast<double>(source.*s.field));
}

// The probe's counters and its flow table, in the order they are exported.
using OperationalValue = Single<OperationalSnapshot, std::uint64_t>;
constexpr std::array<OperationalValue, 12> kOperationalValues{{
    {"flowlat_events_lost_total", "Handshake events the probe could not deliver (ring buffer full).",
     MetricType::counter, &OperationalSnapshot::events_lost},
    {"flowlat_events_malformed_total",
     "Ring buffer records that did not decode as a handshake event and were dropped.", MetricType::counter,
     &OperationalSnapshot::events_malformed},
    {"flowlat_flow_table_entries",
     "Entries in the probe's flow table: handshakes in progress, and recent timeouts kept to recognise their "
     "SYN retransmissions.",
     MetricType::gauge, &OperationalSnapshot::flow_table_entries},
    {"flowlat_flow_table_size", "Capacity of the probe's flow table.", MetricType::gauge,
     &OperationalSnapshot::flow_table_size},
    {"flowlat_flow_table_full_total", "SYNs not tracked at all because the flow table had no room.",
     MetricType::counter, &OperationalSnapshot::flow_table_full},
    {"flowlat_flow_table_evictions_total",
     "Pending handshakes pushed out of the full (LRU) flow table by newer SYNs; they are never reported. "
     "Derived at each sweep from the table's inserts, deletes and entries.",
     MetricType::counter, &OperationalSnapshot::flow_table_evictions},
    {"flowlat_packets_malformed_total", "Packets with truncated or invalid TCP/IP headers.", MetricType::counter,
     &OperationalSnapshot::packets_malformed},
    {"flowlat_handshakes_abandoned_total",
     "Pending handshakes replaced by a new SYN with a different initial sequence number.", MetricType::counter,
     &OperationalSnapshot::handshakes_abandoned},
    {"flowlat_handshakes_aborted_total",
     "Inbound handshakes the client reset instead of sending its final ACK (SYN scans, clients that gave up); "
     "they have no outcome.",
     MetricType::counter, &OperationalSnapshot::handshakes_aborted},
    {"flowlat_probe_answers_rejected_total",
     "Ingress answers (SYN-ACK, RST, final ACK) that would have ended a handshake but that the host's stack "
     "drops: not addressed to this host, an invalid IP header, a fragment, a TCP header past the segment, or a "
     "bad checksum. The handshake waits for a valid answer.",
     MetricType::counter, &OperationalSnapshot::answers_rejected},
    {"flowlat_workload_unresolved_total",
     "Handshakes whose socket's cgroup id no walk of the cgroup2 tree found (removed before it was looked up, or "
     "outside the mount); counted under workload=\"unresolved\".",
     MetricType::counter, &OperationalSnapshot::workload_unresolved},
    {"flowlat_workload_cgroup_walks_total", "Walks of the cgroup2 tree to name cgroup ids (misses and refreshes).",
     MetricType::counter, &OperationalSnapshot::cgroup_walks},
}};

// The standard process_* families (client_golang's process collector).
using ProcessValue = Single<process::ProcessMetrics, double>;
constexpr std::array<ProcessValue, 6> kProcessValues{{
    {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", MetricType::counter,
     &process::ProcessMetrics::cpu_seconds_total},
    {"process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::gauge,
     &process::ProcessMetrics::resident_memory_bytes},
    {"process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::gauge,
     &process::ProcessMetrics::virtual_memory_bytes},
    {"process_open_fds", "Number of open file descriptors.", MetricType::gauge, &process::ProcessMetrics::open_fds},
    {"process_max_fds", "Maximum number of open file descriptors.", MetricType::gauge,
     &process::ProcessMetrics::max_fds},
    {"process_start_time_seconds", "Start time of the process since unix epoch in seconds.", MetricType::gauge,
     &process::ProcessMetrics::start_time_seconds},
}};

void write_operational(MetricWriter& w, const aggregation::Snapshot& snap, const OperationalSnapshot& op)
{
    single(w, "flowlat_series", "RTT label sets currently exported; compare with max_series.", MetricType::gauge,
           static_cast<double>(snap.series.size()));
    single(w, "flowlat_series_overflow_total",
           "Handshakes counted under peer=\"other\" because max_series label sets existed.", MetricType::counter,
           static_cast<double>(snap.series_overflow));
    singles(w, kOperationalValues, op);

    w.family("flowlat_probe_attached", "1 when the probe is attached to the interface, else 0.", MetricType::gauge);
    for (const auto& probe : op.probes) w.value({{"interface", probe.interface}}, {}, probe.attached ? 1 : 0);
    // Totals that exist even when nothing is wanted: an empty selection removes every
    // flowlat_probe_attached series, and an alert needs a series that says so.
    const auto attached = std::count_if(op.probes.begin(), op.probes.end(), [](const auto& p) { return p.attached; });
    single(w, "flowlat_probe_interfaces_wanted",
           "Interfaces the configuration selects now (flowlat_probe_attached series).", MetricType::gauge,
           static_cast<double>(op.probes.size()));
    single(w, "flowlat_probe_interfaces_attached", "Interfaces the probe is attached to now.", MetricType::gauge,
           static_cast<double>(attached));

    w.family("flowlat_build_info", "flowlatd build information; the value is always 1.", MetricType::gauge);
    w.value({{"version", op.build.version},
             {"revision", op.build.revision},
             {"libbpf_version", op.build.libbpf_version}},
            {}, 1);

    single(w, "flowlat_config_last_reload_successful", "1 when the last configuration load succeeded, else 0.",
           MetricType::gauge, op.config_reload_ok ? 1 : 0);
    single(w, "flowlat_config_last_reload_success_timestamp_seconds",
           "Time of the last successful configuration load, seconds since the Unix epoch.", MetricType::gauge,
           op.config_reload_success_timestamp);
}

// About 130 bytes a line; 2 * (buckets + 3) + 4 lines a series.
std::size_t estimated_bytes(const aggregation::Snapshot& series)
{
    return 8192 + series.series.size() * (2 * (series.bounds.size() + 3) + 4) * 130;
}

} // namespace

void write_exposition(MetricWriter& writer, const aggregation::Snapshot& series,
                      const labels::InterfaceNames& interfaces, const OperationalSnapshot& operational,
                      const std::optional<process::ProcessMetrics>& process)
{
    const auto rows = merge_rows(series, interfaces);
    write_series(writer, series, rows);
    write_operational(writer, series, operational);
    if (process) singles(writer, kProcessValues, *process);
}

std::string render_metrics(const aggregation::Snapshot& series, const labels::InterfaceNames& interfaces,
                           const OperationalSnapshot& operational,
                           const std::optional<process::ProcessMetrics>& process)
{
    TextWriter writer(estimated_bytes(series));
    write_exposition(writer, series, interfaces, operational, process);
    return writer.finish();
}

void stream_metrics(const std::function<void(std::string_view)>& write, const aggregation::Snapshot& series,
                    const labels::InterfaceNames& interfaces, const OperationalSnapshot& operational,
                    const std::optional<process::ProcessMetrics>& process, std::size_t piece_bytes)
{
    TextWriter writer(write, piece_bytes);
    write_exposition(writer, series, interfaces, operational, process);
    writer.finish();
}

} // namespace flowlat::exposition
