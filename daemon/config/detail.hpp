// Helpers shared by validation (config.cpp) and the YAML parser (yaml_parser.cpp): bounds,
// value checks and the text of their messages. Not for other modules.
#pragma once

#include "config/config.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace flowlat::config::detail {

// Each series holds two histograms; a million of them is already gigabytes of exposition.
inline constexpr long long kMaxSeries = 1'000'000;
inline constexpr long long kMaxFlowTableSize = 1LL << 24;
inline constexpr std::uint64_t kMaxRingBufferSize = 1ULL << 30;

// `text` in double quotes, with quotes, backslashes and control characters escaped.
std::string quote(std::string_view text);
std::string join_path(const std::string& parent, std::string_view key);   // "web.listen_addresses"
std::string index_path(const std::string& parent, std::size_t index);     // "buckets[3]"

std::optional<long long> parse_integer(std::string_view text);
std::optional<double> parse_number(std::string_view text); // finite only

// "must be between 1 and 10, got 0", or "must be at least 1, got 0" when max is empty.
std::optional<std::string> check_range(long long value, long long min, std::optional<long long> max);
std::optional<std::string> check_ring_buffer_size(std::uint64_t bytes);

// Like parse_cidr() but keeps host bits (so validate() can point at them) and says why
// the text is not a prefix.
std::variant<Cidr, std::string> parse_cidr_keeping_host_bits(std::string_view text);

} // namespace flowlat::config::detail
