#include "config/duration.hpp"

#include <cstdint>
#include <limits>

namespace flowlat {

namespace {

struct Unit {
    std::string_view suffix;
    std::int64_t milliseconds;
};

// Longest suffix first, so "ms" is not read as "m".
constexpr Unit units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000},
    {"w", 604'800'000}, {"y", 31'536'000'000},
};

} // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text)
{
    if (text == "0") return std::chrono::milliseconds{0};
    if (text.empty()) return std::nullopt;
    std::int64_t total = 0;
    std::int64_t previous_unit = std::numeric_limits<std::int64_t>::max();
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] < '0' || text[i] > '9') return std::nullopt;
        std::int64_t number = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            if (number > (std::numeric_limits<std::int64_t>::max() - 9) / 10) return std::nullopt;
            number = number * 10 + (text[i] - '0');
            ++i;
        }
        const Unit* unit = nullptr;
        for (const Unit& candidate : units) {
            if (text.substr(i, candidate.suffix.size()) == candidate.suffix) {
                unit = &candidate;
                break;
            }
        }
        // As in Prometheus: largest unit first, each unit once ("1h30m", never "30m1h" or "1s1s").
        if (unit == nullptr || unit->milliseconds >= previous_unit) return std::nullopt;
        previous_unit = unit->milliseconds;
        i += unit->suffix.size();
        if (number > (std::numeric_limits<std::int64_t>::max() - total) / unit->milliseconds)
            return std::nullopt;
        total += number * unit->milliseconds;
    }
    return std::chrono::milliseconds{total};
}

std::string format_duration(std::chrono::milliseconds duration)
{
    std::int64_t left = duration.count();
    if (left == 0) return "0s";
    std::string text;
    for (std::string_view suffix : {"d", "h", "m", "s", "ms"}) {
        for (const Unit& unit : units) {
            if (unit.suffix != suffix) continue;
            if (left >= unit.milliseconds) {
                text += std::to_string(left / unit.milliseconds);
                text += suffix;
                left %= unit.milliseconds;
            }
        }
    }
    return text;
}

} // namespace flowlat
