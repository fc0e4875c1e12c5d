// The text writers behind /metrics: Prometheus text format 0.0.4 (the default) and
// OpenMetrics 1.0 text. Both write straight into a string and hand it on in pieces.
#pragma once

#include "export/metric_writer.hpp"

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace flowlat::exposition {

enum class TextFlavour { prometheus_0_0_4, openmetrics_1_0 };

// Whole body in one string (`write` null) or streamed: whenever `piece_bytes` have gathered they
// go to `write` and the buffer is reused. finish() ends the body (OpenMetrics: "# EOF").
class TextWriter final : public MetricWriter {
public:
    TextWriter(TextFlavour flavour, std::size_t reserve);
    TextWriter(TextFlavour flavour, const std::function<void(std::string_view)>& write, std::size_t piece_bytes);

    void family(std::string_view name, std::string_view help, MetricType type) override;
    void value(std::initializer_list<Label> labels, std::span<const Label> more, double v, double created) override;
    void histogram(std::span<const Label> labels, const HistogramPoint& point) override;
    std::string finish();

private:
    void maybe_flush();
    void header();
    void cache_le(const std::vector<double>& bounds);
    void sample(std::string_view suffix, std::string_view inner, std::string_view extra_label);
    void exemplar(const aggregation::Exemplar& e);

    TextFlavour flavour_;
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

// Number formats shared with the protobuf writer's tests: %.16g as prometheus-cpp, "+Inf", "NaN".
void append_double(std::string& out, double v);

} // namespace flowlat::exposition
