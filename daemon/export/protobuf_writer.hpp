// The protobuf exposition: length-delimited io.prometheus.client.MetricFamily messages, as
// Prometheus asks for them when native histograms are enabled. Histograms carry their classic
// buckets (with exemplars) and the native buckets side by side. The generated classes stay in
// protobuf_writer.cpp; this header names none of them.
#pragma once

#include "export/metric_writer.hpp"

#include <functional>
#include <memory>
#include <string_view>

namespace flowlat::exposition {

class ProtobufWriter final : public MetricWriter {
public:
    // Each family is handed to `write` once complete (a message is written whole).
    explicit ProtobufWriter(const std::function<void(std::string_view)>& write);
    ~ProtobufWriter() override;
    ProtobufWriter(const ProtobufWriter&) = delete;
    ProtobufWriter& operator=(const ProtobufWriter&) = delete;

    void family(std::string_view name, std::string_view help, MetricType type) override;
    void value(std::initializer_list<Label> labels, std::span<const Label> more, double v, double created) override;
    void histogram(std::span<const Label> labels, const HistogramPoint& point) override;
    void finish();

    struct State;

private:
    void flush_family();
    const std::function<void(std::string_view)>& write_;
    std::unique_ptr<State> state_;
};

} // namespace flowlat::exposition
