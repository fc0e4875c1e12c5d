#include "export/metrics_exposition.hpp"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>
#include <string_view>

namespace flowlat::exposition {

namespace {

enum class Type { counter, gauge, histogram };

struct Label {
    std::string_view name;
    std::string_view value;
};

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
        row.counters.add(s);
        add_into(row.rtt, snap.rtt_buckets(i));
        add_into(row.duration, snap.duration_buckets(i));
    }
    return rows;
}

// ---- Writers. Both take the same calls; a family's header is written with its first sample,
// so a family without samples does not appear.

// The reference: prometheus-cpp's MetricFamily model and TextSerializer.
class FamilyWriter {
public:
    void family(std::string_view name, std::string_view help, Type type)
    {
        prometheus::MetricFamily f;
        f.name = name;
        f.help = help;
        f.type = type == Type::counter   ? prometheus::MetricType::Counter
                 : type == Type::gauge   ? prometheus::MetricType::Gauge
                                         : prometheus::MetricType::Histogram;
        families_.push_back(std::move(f));
    }

    void value(std::initializer_list<Label> labels, std::span<const Label> more, double v)
    {
        auto& m = families_.back().metric.emplace_back();
        m.label = to_labels(labels, more);
        if (families_.back().type == prometheus::MetricType::Counter) {
            m.counter.value = v;
        } else {
            m.gauge.value = v;
        }
    }

    void histogram(std::span<const Label> labels, const std::vector<double>& bounds,
                   const std::vector<std::uint64_t>& counts, std::uint64_t count, double sum)
    {
        auto& m = families_.back().metric.emplace_back();
        m.label = to_labels({}, labels);
        m.histogram.sample_count = count;
        m.histogram.sample_sum = sum;
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < counts.size(); ++b) {
            cumulative += counts[b];
            m.histogram.bucket.push_back(
                {cumulative, b < bounds.size() ? bounds[b] : std::numeric_limits<double>::infinity()});
        }
    }

    std::string finish()
    {
        std::erase_if(families_, [](const prometheus::MetricFamily& f) { return f.metric.empty(); });
        std::ostringstream out;
        prometheus::TextSerializer{}.Serialize(out, families_);
        return std::move(out).str();
    }

private:
    static std::vector<prometheus::ClientMetric::Label> to_labels(std::initializer_list<Label> first,
                                                                  std::span<const Label> more)
    {
        std::vector<prometheus::ClientMetric::Label> out;
        for (const auto& l : more) out.push_back({std::string(l.name), std::string(l.value)});
        for (const auto& l : first) out.push_back({std::string(l.name), std::string(l.value)});
        return out;
    }

    std::vector<prometheus::MetricFamily> families_;
};

// The fast path: text written straight into one string. Numbers are formatted as
// TextSerializer formats them (%.16g, "+Inf"), so both writers produce the same bytes.
class TextWriter {
public:
    explicit TextWriter(std::size_t reserve) { out_.reserve(reserve); }
    // Streaming: whenever `piece_bytes` have gathered, they go to `write` and the buffer is reused.
    TextWriter(const std::function<void(std::string_view)>& write, std::size_t piece_bytes)
        : write_(&write), piece_bytes_(piece_bytes)
    {
        out_.reserve(piece_bytes + 64 * 1024);
    }

    void family(std::string_view name, std::string_view help, Type type)
    {
        name_ = name;
        help_ = help;
        type_ = type;
        header_written_ = false;
    }

    void value(std::initializer_list<Label> labels, std::span<const Label> more, double v)
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
                   const std::vector<std::uint64_t>& counts, std::uint64_t count, double sum)
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
        for (char c : help_) {
            if (c == '\\') {
                out_ += "\\\\";
            } else if (c == '\n') {
                out_ += "\\n";
            } else {
                out_ += c;
            }
        }
        out_ += "\n# TYPE ";
        out_ += name_;
        out_ += type_ == Type::counter ? " counter\n" : type_ == Type::gauge ? " gauge\n" : " histogram\n";
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
        for (char c : label.value) {
            if (c == '\\') {
                out += "\\\\";
            } else if (c == '"') {
                out += "\\\"";
            } else if (c == '\n') {
                out += "\\n";
            } else {
                out += c;
            }
        }
        out += '"';
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
    Type type_{Type::gauge};
    bool header_written_{false};
    std::string label_text_;
    std::vector<double> le_source_;
    std::vector<std::string> le_;
};

// ---- What is exported, written once for both writers.

std::array<Label, 5> series_labels(const labels::LabelValues& v)
{
    return {{{labels::kLabelNames[0], v.interface},
             {labels::kLabelNames[1], v.direction},
             {labels::kLabelNames[2], v.family},
             {labels::kLabelNames[3], v.peer},
             {labels::kLabelNames[4], v.port}}};
}

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

template <typename Writer>
void write_series(Writer& w, const aggregation::Snapshot& snap, const std::vector<Row>& rows)
{
    w.family("flowlat_handshake_rtt_seconds",
             "Round-trip time of TCP handshakes: SYN to SYN-ACK (outbound) or SYN-ACK to ACK (inbound), "
             "only when unambiguous (Karn's rule).",
             Type::histogram);
    for (const auto& row : rows) {
        if (row.counters.rtt_count == 0) continue;
        const auto labels = series_labels(row.labels);
        w.histogram(labels, snap.bounds, row.rtt, row.counters.rtt_count, seconds(row.counters.rtt_sum_ns));
    }

    w.family("flowlat_handshake_duration_seconds",
             "Time from the first SYN to the SYN-ACK that answers it (outbound) or to the client's ACK of our "
             "SYN-ACK (inbound), completed handshakes only; includes retransmission delays.",
             Type::histogram);
    for (const auto& row : rows) {
        if (row.counters.duration_count == 0) continue;
        const auto labels = series_labels(row.labels);
        w.histogram(labels, snap.bounds, row.duration, row.counters.duration_count,
                    seconds(row.counters.duration_sum_ns));
    }

    w.family("flowlat_handshakes_total", "TCP handshakes observed, by outcome.", Type::counter);
    for (const auto& row : rows) {
        const auto labels = series_labels(row.labels);
        for (const Outcome outcome : {Outcome::completed, Outcome::refused, Outcome::timeout}) {
            w.value({{"outcome", to_string(outcome)}}, labels,
                    static_cast<double>(row.counters.handshakes[static_cast<std::size_t>(outcome)]));
        }
    }

    w.family("flowlat_syn_retransmits_total",
             "Retransmitted SYNs (outbound) or SYN-ACKs (inbound) in observed handshakes.", Type::counter);
    for (const auto& row : rows) {
        const auto labels = series_labels(row.labels);
        w.value({}, labels, static_cast<double>(row.counters.syn_retransmits));
    }
}

template <typename Writer>
void single(Writer& w, std::string_view name, std::string_view help, Type type, double v)
{
    w.family(name, help, type);
    w.value({}, {}, v);
}

template <typename Writer>
void write_operational(Writer& w, const aggregation::Snapshot& snap, const OperationalSnapshot& op)
{
    const auto u = [](std::uint64_t v) { return static_cast<double>(v); };
    single(w, "flowlat_series", "RTT label sets currently exported; compare with max_series.", Type::gauge,
           u(snap.series.size()));
    single(w, "flowlat_series_overflow_total",
           "Handshakes counted under peer=\"other\" because max_series label sets existed.", Type::counter,
           u(snap.series_overflow));
    single(w, "flowlat_events_lost_total", "Handshake events the probe could not deliver (ring buffer full).",
           Type::counter, u(op.events_lost));
    single(w, "flowlat_events_malformed_total",
           "Ring buffer records that did not decode as a handshake event and were dropped.", Type::counter,
           u(op.events_malformed));
    single(w, "flowlat_flow_table_entries",
           "Entries in the probe's flow table: handshakes in progress, and recent timeouts kept to recognise "
           "their SYN retransmissions.",
           Type::gauge, u(op.flow_table_entries));
    single(w, "flowlat_flow_table_size", "Capacity of the probe's flow table.", Type::gauge,
           u(op.flow_table_size));
    single(w, "flowlat_flow_table_full_total", "Handshakes not tracked because the flow table was full.",
           Type::counter, u(op.flow_table_full));
    single(w, "flowlat_packets_malformed_total", "Packets with truncated or invalid TCP/IP headers.",
           Type::counter, u(op.packets_malformed));
    single(w, "flowlat_handshakes_abandoned_total",
           "Pending handshakes replaced by a new SYN with a different initial sequence number.", Type::counter,
           u(op.handshakes_abandoned));
    single(w, "flowlat_handshakes_aborted_total",
           "Inbound handshakes the client reset instead of sending its final ACK (SYN scans, clients "
           "that gave up); they have no outcome.",
           Type::counter, u(op.handshakes_aborted));

    w.family("flowlat_probe_attached", "1 when the probe is attached to the interface, else 0.", Type::gauge);
    for (const auto& probe : op.probes) w.value({{"interface", probe.interface}}, {}, probe.attached ? 1 : 0);

    w.family("flowlat_build_info", "flowlatd build information; the value is always 1.", Type::gauge);
    w.value({{"version", op.build.version},
             {"revision", op.build.revision},
             {"libbpf_version", op.build.libbpf_version}},
            {}, 1);

    single(w, "flowlat_config_last_reload_successful", "1 when the last configuration load succeeded, else 0.",
           Type::gauge, op.config_reload_ok ? 1 : 0);
    single(w, "flowlat_config_last_reload_success_timestamp_seconds",
           "Time of the last successful configuration load, seconds since the Unix epoch.", Type::gauge,
           op.config_reload_success_timestamp);
}

template <typename Writer>
void write_process(Writer& w, const process::ProcessMetrics& p)
{
    single(w, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", Type::counter,
           p.cpu_seconds_total);
    single(w, "process_resident_memory_bytes", "Resident memory size in bytes.", Type::gauge,
           p.resident_memory_bytes);
    single(w, "process_virtual_memory_bytes", "Virtual memory size in bytes.", Type::gauge,
           p.virtual_memory_bytes);
    single(w, "process_open_fds", "Number of open file descriptors.", Type::gauge, p.open_fds);
    single(w, "process_max_fds", "Maximum number of open file descriptors.", Type::gauge, p.max_fds);
    single(w, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
           Type::gauge, p.start_time_seconds);
}

template <typename Writer>
std::string render(Writer w, const aggregation::Snapshot& series, const labels::InterfaceNames& interfaces,
                   const OperationalSnapshot& operational, const std::optional<process::ProcessMetrics>& process)
{
    const auto rows = merge_rows(series, interfaces);
    write_series(w, series, rows);
    write_operational(w, series, operational);
    if (process) write_process(w, *process);
    return w.finish();
}

} // namespace

std::string render_metrics(const aggregation::Snapshot& series, const labels::InterfaceNames& interfaces,
                           const OperationalSnapshot& operational,
                           const std::optional<process::ProcessMetrics>& process)
{
    // About 130 bytes a line; 2 * (buckets + 3) + 4 lines a series.
    const std::size_t estimate = 8192 + series.series.size() * (2 * (series.bounds.size() + 3) + 4) * 130;
    return render(TextWriter(estimate), series, interfaces, operational, process);
}

void stream_metrics(const std::function<void(std::string_view)>& write, const aggregation::Snapshot& series,
                    const labels::InterfaceNames& interfaces, const OperationalSnapshot& operational,
                    const std::optional<process::ProcessMetrics>& process, std::size_t piece_bytes)
{
    render(TextWriter(write, piece_bytes), series, interfaces, operational, process);
}

std::string render_metrics_reference(const aggregation::Snapshot& series, const labels::InterfaceNames& interfaces,
                                     const OperationalSnapshot& operational,
                                     const std::optional<process::ProcessMetrics>& process)
{
    return render(FamilyWriter(), series, interfaces, operational, process);
}

} // namespace flowlat::exposition
