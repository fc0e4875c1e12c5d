#include "exposition_oracle.hpp"

#include "export/metric_writer.hpp"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <limits>
#include <sstream>
#include <vector>

namespace flowlat::test {

namespace {

using exposition::Label;
using exposition::MetricType;

class FamilyWriter final : public exposition::MetricWriter {
public:
    void family(std::string_view name, std::string_view help, MetricType type) override
    {
        prometheus::MetricFamily f;
        f.name = name;
        f.help = help;
        f.type = type == MetricType::counter ? prometheus::MetricType::Counter
                 : type == MetricType::gauge ? prometheus::MetricType::Gauge
                                             : prometheus::MetricType::Histogram;
        families_.push_back(std::move(f));
    }

    void value(std::initializer_list<Label> labels, std::span<const Label> more, double v, double) override
    {
        auto& m = families_.back().metric.emplace_back();
        m.label = to_labels(labels, more);
        if (families_.back().type == prometheus::MetricType::Counter) {
            m.counter.value = v;
        } else {
            m.gauge.value = v;
        }
    }

    // Text 0.0.4 has no created timestamps, exemplars or native buckets: only these are written.
    void histogram(std::span<const Label> labels, const exposition::HistogramPoint& point) override
    {
        const auto& bounds = point.bounds;
        const auto& counts = point.counts;
        auto& m = families_.back().metric.emplace_back();
        m.label = to_labels({}, labels);
        m.histogram.sample_count = point.count;
        m.histogram.sample_sum = point.sum;
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

} // namespace

std::string render_metrics_oracle(const aggregation::Snapshot& series, const labels::InterfaceNames& interfaces,
                                  const exposition::OperationalSnapshot& operational,
                                  const std::optional<process::ProcessMetrics>& process)
{
    FamilyWriter writer;
    exposition::write_exposition(writer, series, interfaces, operational, process);
    return writer.finish();
}

} // namespace flowlat::test
