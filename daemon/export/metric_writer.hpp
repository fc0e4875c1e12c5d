// What /metrics contains, apart from how it is written. write_exposition() makes the same
// calls on any MetricWriter: the daemon's writers are the text writers (Prometheus text 0.0.4,
// OpenMetrics 1.0, text_writer.hpp) and the protobuf writer (protobuf_writer.hpp); the unit
// tests hold another one on prometheus-cpp's TextSerializer and check that it and the text
// 0.0.4 writer produce the same bytes (tests/unit/exposition_oracle.hpp).
#pragma once

#include "aggregate/native_histogram.hpp"
#include "export/metrics_exposition.hpp"

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace flowlat::exposition {

enum class MetricType { counter, gauge, histogram };

struct Label {
    std::string_view name;
    std::string_view value;
};

// One histogram of one label set. Formats take what they can carry: text 0.0.4 the classic
// buckets only; OpenMetrics adds `created` and the exemplars; protobuf adds the native buckets
// and the exemplars.
struct HistogramPoint {
    const std::vector<double>& bounds;         // classic upper bounds, without +Inf
    const std::vector<std::uint64_t>& counts;  // per classic bucket (not cumulative), last is +Inf
    std::uint64_t count{0};
    double sum{0};
    const aggregation::NativeHistogram* native{nullptr}; // nullptr: none
    std::span<const aggregation::Exemplar> exemplars;    // per classic bucket; empty: none
    double created{0};                                   // unix seconds; 0: unknown
};

class MetricWriter {
public:
    virtual ~MetricWriter() = default;

    // Starts a family. Its header is written with its first sample, so a family without
    // samples does not appear.
    virtual void family(std::string_view name, std::string_view help, MetricType type) = 0;
    // One counter or gauge sample; its labels are `more`, then `labels`. `created`: unix
    // seconds when a counter started from zero, 0 when not known.
    virtual void value(std::initializer_list<Label> labels, std::span<const Label> more, double v,
                       double created) = 0;
    virtual void histogram(std::span<const Label> labels, const HistogramPoint& point) = 0;

protected:
    MetricWriter() = default;
    MetricWriter(const MetricWriter&) = default;
    MetricWriter& operator=(const MetricWriter&) = default;
};

// Everything render_metrics() writes, in the same order, as calls on `writer`.
void write_exposition(MetricWriter& writer, const aggregation::Snapshot& series,
                      const labels::InterfaceNames& interfaces, const OperationalSnapshot& operational,
                      const std::optional<process::ProcessMetrics>& process);

// The exemplar's labels: the real peer (the `peer` label may be a folded prefix or a group),
// its port and ours. At most 80 characters, inside OpenMetrics' 128.
struct ExemplarLabels {
    std::string peer_address;
    std::string peer_port;
    std::string local_port;
};
ExemplarLabels exemplar_labels(const aggregation::Exemplar& exemplar);
inline constexpr const char* kExemplarLabelNames[] = {"peer_address", "peer_port", "local_port"};

} // namespace flowlat::exposition
