// spdlog set-up: the journal when systemd gave us one (JOURNAL_STREAM), stderr otherwise.
#pragma once

#include <array>
#include <string_view>

namespace flowlat::logging {

// The levels --log.level and log.level accept: spdlog's names, least severe first.
inline constexpr std::array<std::string_view, 7> level_names{"trace", "debug",    "info", "warn",
                                                            "error", "critical", "off"};

bool is_level(std::string_view level);

void setup(std::string_view level);
void set_level(std::string_view level);

} // namespace flowlat::logging
