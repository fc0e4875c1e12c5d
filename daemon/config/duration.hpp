// Prometheus-style durations: "10s", "500ms", "1h30m", "2d". Used by flags and the config file.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace flowlat {

// nullopt on any syntax error, an empty string, or overflow. "0" alone means zero.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The shortest exact form, e.g. 1h30m, 250ms, 0s.
std::string format_duration(std::chrono::milliseconds duration);

} // namespace flowlat
