// The reference for the exposition's direct text writer: the same content (write_exposition)
// written through prometheus-cpp's MetricFamily model and TextSerializer. Tests only; the
// daemon does not link prometheus-cpp.
#pragma once

#include "export/metrics_exposition.hpp"

#include <optional>
#include <string>

namespace flowlat::test {

std::string render_metrics_oracle(const aggregation::Snapshot& series, const labels::InterfaceNames& interfaces,
                                  const exposition::OperationalSnapshot& operational,
                                  const std::optional<process::ProcessMetrics>& process);

} // namespace flowlat::test
