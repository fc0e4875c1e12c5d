// What /metrics contains, apart from how it is written. write_exposition() makes the same
// calls on any MetricWriter: the daemon's is the direct text writer behind render_metrics();
// the unit tests hold a second one on prometheus-cpp's TextSerializer and check that both
// produce the same bytes (tests/unit/exposition_oracle.hpp).
#pragma once

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

class MetricWriter {
public:
    virtual ~MetricWriter() = default;

    // Starts a family. Its header is written with its first sample, so a family without
    // samples does not appear.
    virtual void family(std::string_view name, std::string_view help, MetricType type) = 0;
    // One counter or gauge sample; its labels are `more`, then `labels`.
    virtual void value(std::initializer_list<Label> labels, std::span<const Label> more, double v) = 0;
    // One histogram: `counts` per bucket (not cumulative), one more than `bounds` (the last is +Inf).
    virtual void histogram(std::span<const Label> labels, const std::vector<double>& bounds,
                           const std::vector<std::uint64_t>& counts, std::uint64_t count, double sum) = 0;

protected:
    MetricWriter() = default;
    MetricWriter(const MetricWriter&) = default;
    MetricWriter& operator=(const MetricWriter&) = default;
};

// Everything render_metrics() writes, in the same order, as calls on `writer`.
void write_exposition(MetricWriter& writer, const aggregation::Snapshot& series,
                      const labels::InterfaceNames& interfaces, const OperationalSnapshot& operational,
                      const std::optional<process::ProcessMetrics>& process);

} // namespace flowlat::exposition
