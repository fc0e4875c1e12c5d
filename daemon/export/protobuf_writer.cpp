#include "export/protobuf_writer.hpp"

#include <io/prometheus/client/metrics.pb.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace flowlat::exposition {

namespace pb = io::prometheus::client;

// A family is written as its header fields (a MetricFamily without metrics) followed by each
// metric as field 4; a message's serialization is the concatenation of its fields', so this is
// the MetricFamily's own bytes. One Metric object is filled and serialized per sample and
// reused: Clear() keeps its buckets, labels and strings allocated, so a scrape of 10,000
// label sets allocates almost nothing, where a whole MetricFamily of Metric objects allocated
// and freed every bucket, label and exemplar of every scrape (4-5 times slower).
struct ProtobufWriter::State {
    pb::MetricFamily header;
    pb::Metric metric;
    // The family's serialized field-4 entries, in pieces of about kPieceBytes: one growing
    // string would copy the 20 MB RTT family of 10,000 label sets again at every doubling.
    std::vector<std::string> pieces;
    std::size_t used{0}; // pieces in use (the rest keep their capacity for the next family)
    std::size_t bytes{0};
    std::string out;
};

namespace {

void append_varint(std::string& out, std::uint64_t n)
{
    do {
        auto byte = static_cast<char>(n & 0x7f);
        n >>= 7;
        if (n != 0) byte = static_cast<char>(byte | 0x80);
        out += byte;
    } while (n != 0);
}

// Field 4 (metric) of MetricFamily, wire type 2 (length-delimited).
constexpr char kMetricFieldTag = (4 << 3) | 2;

constexpr std::size_t kPieceBytes = 256 * 1024;

void append_metric(ProtobufWriter::State& st, const pb::Metric& metric)
{
    const std::size_t size = metric.ByteSizeLong();
    if (st.used == 0 || st.pieces[st.used - 1].size() >= kPieceBytes) {
        if (st.used == st.pieces.size()) st.pieces.emplace_back();
        st.pieces[st.used].clear();
        st.pieces[st.used].reserve(kPieceBytes + 4096);
        ++st.used;
    }
    std::string& out = st.pieces[st.used - 1];
    const std::size_t before = out.size();
    out += kMetricFieldTag;
    append_varint(out, size);
    const std::size_t at = out.size();
    out.resize(at + size);
    metric.SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t*>(out.data() + at));
    st.bytes += out.size() - before;
}

template <typename Labels>
void add_labels(pb::Metric& metric, const Labels& labels)
{
    for (const auto& l : labels) {
        auto* pair = metric.add_label();
        pair->set_name(std::string(l.name));
        pair->set_value(std::string(l.value));
    }
}

void set_exemplar(pb::Exemplar& out, const aggregation::Exemplar& e)
{
    const ExemplarLabels labels = exemplar_labels(e);
    const std::string* values[] = {&labels.peer_address, &labels.peer_port, &labels.local_port};
    for (std::size_t i = 0; i < 3; ++i) {
        auto* pair = out.add_label();
        pair->set_name(kExemplarLabelNames[i]);
        pair->set_value(*values[i]);
    }
    out.set_value(static_cast<double>(e.value_ns) / 1e9);
    auto* ts = out.mutable_timestamp();
    ts->set_seconds(static_cast<std::int64_t>(e.unix_ns / 1'000'000'000ull));
    ts->set_nanos(static_cast<std::int32_t>(e.unix_ns % 1'000'000'000ull));
}

// Spans and deltas of the native buckets. A run of up to two empty buckets stays inside a span
// (two zero deltas cost less than a new span); longer runs start a new span.
void set_native(pb::Histogram& h, const aggregation::NativeHistogram& native)
{
    h.set_schema(aggregation::kNativeSchema);
    h.set_zero_threshold(aggregation::kNativeZeroThreshold);
    h.set_zero_count(native.zero_count);
    const auto& counts = native.counts;
    std::size_t i = 0;
    std::int64_t previous = 0;
    int next_index = 0; // the bucket after the last span's end
    bool first = true;
    while (i < counts.size()) {
        if (counts[i] == 0) {
            ++i;
            continue;
        }
        // A span from i: extend while the next non-empty bucket is at most 2 empties away.
        std::size_t end = i + 1;
        while (true) {
            std::size_t next = end;
            while (next < counts.size() && counts[next] == 0 && next - end < 3) ++next;
            if (next < counts.size() && counts[next] != 0 && next - end <= 2) {
                end = next + 1;
            } else {
                break;
            }
        }
        const int index = native.offset + static_cast<int>(i);
        auto* span = h.add_positive_span();
        span->set_offset(first ? index : index - next_index);
        span->set_length(static_cast<std::uint32_t>(end - i));
        for (std::size_t b = i; b < end; ++b) {
            const auto count = static_cast<std::int64_t>(counts[b]);
            h.add_positive_delta(count - previous);
            previous = count;
        }
        next_index = native.offset + static_cast<int>(end);
        first = false;
        i = end;
    }
    // A histogram whose every observation is in the zero bucket has no span; Prometheus still
    // needs to see a native histogram, which the schema and zero threshold say.
}

} // namespace

ProtobufWriter::ProtobufWriter(const std::function<void(std::string_view)>& write)
    : write_(write), state_(std::make_unique<State>())
{
}

ProtobufWriter::~ProtobufWriter() = default;

void ProtobufWriter::family(std::string_view name, std::string_view help, MetricType type)
{
    flush_family();
    auto& f = state_->header;
    f.Clear();
    f.set_name(std::string(name));
    f.set_help(std::string(help));
    f.set_type(type == MetricType::counter ? pb::COUNTER : type == MetricType::gauge ? pb::GAUGE : pb::HISTOGRAM);
}

void ProtobufWriter::value(std::initializer_list<Label> labels, std::span<const Label> more, double v, double)
{
    // The client_model this is built on has no created timestamp: _created is OpenMetrics only.
    auto* metric = &state_->metric;
    metric->Clear();
    add_labels(*metric, more);
    add_labels(*metric, labels);
    if (state_->header.type() == pb::COUNTER) {
        metric->mutable_counter()->set_value(v);
    } else {
        metric->mutable_gauge()->set_value(v);
    }
    append_metric(*state_, *metric);
}

void ProtobufWriter::histogram(std::span<const Label> labels, const HistogramPoint& point)
{
    auto* metric = &state_->metric;
    metric->Clear();
    add_labels(*metric, labels);
    auto* h = metric->mutable_histogram();
    h->set_sample_count(point.count);
    h->set_sample_sum(point.sum);
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < point.counts.size(); ++b) {
        cumulative += point.counts[b];
        auto* bucket = h->add_bucket();
        bucket->set_cumulative_count(cumulative);
        // The +Inf bucket is written too (the format allows it): it carries the exemplar of
        // handshakes slower than the last bound.
        bucket->set_upper_bound(b < point.bounds.size() ? point.bounds[b] : std::numeric_limits<double>::infinity());
        if (b < point.exemplars.size() && !point.exemplars[b].empty())
            set_exemplar(*bucket->mutable_exemplar(), point.exemplars[b]);
    }
    if (point.native != nullptr) set_native(*h, *point.native);
    append_metric(*state_, *metric);
}

void ProtobufWriter::flush_family()
{
    auto& st = *state_;
    if (st.bytes > 0) {
        // The varint length prefix of a delimited message (as Go's pbutil.WriteDelimited).
        const std::size_t header = st.header.ByteSizeLong();
        st.out.clear();
        append_varint(st.out, header + st.bytes);
        const std::size_t at = st.out.size();
        st.out.resize(at + header);
        st.header.SerializeWithCachedSizesToArray(reinterpret_cast<std::uint8_t*>(st.out.data() + at));
        write_(st.out);
        for (std::size_t i = 0; i < st.used; ++i) write_(st.pieces[i]);
    }
    st.used = 0;
    st.bytes = 0;
}

void ProtobufWriter::finish() { flush_family(); }

} // namespace flowlat::exposition
