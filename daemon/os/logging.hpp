// spdlog set-up: the journal when systemd gave us one (JOURNAL_STREAM), stderr otherwise, in
// logfmt or JSON lines as the Prometheus exporters print them (--log.format).
#pragma once

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace flowlat::logging {

// The levels --log.level and log.level accept: spdlog's names, least severe first.
inline constexpr std::array<std::string_view, 7> level_names{"trace", "debug",    "info", "warn",
                                                            "error", "critical", "off"};

// Prometheus's tools spell warn either way; flowlatd accepts both and prints warn.
std::string_view canonical_level(std::string_view level);

// One of level_names, or an accepted spelling of one.
bool is_level(std::string_view level);

// How a line on stderr is written; the journal keeps its own fields whatever this says.
enum class Format { logfmt, json };
inline constexpr std::array<std::string_view, 2> format_names{"logfmt", "json"};
inline constexpr std::string_view default_format = "logfmt";

std::optional<Format> parse_format(std::string_view name);

// One line, newline included:
//   logfmt  ts=2026-12-03T10:00:00.123Z level=info msg="text with \"escapes\""
//   json    {"ts":"2026-12-03T10:00:00.123Z","level":"info","msg":"text with \"escapes\""}
// level is one of level_names. Control characters are escaped, other bytes of valid UTF-8
// pass through, and a byte that is not valid UTF-8 becomes U+FFFD, so every line parses.
std::string format_line(Format format, std::chrono::system_clock::time_point time, std::string_view level,
                        std::string_view message);

void setup(std::string_view level, Format format = Format::logfmt);
void set_level(std::string_view level);
// Changes the format of the stderr logger; a no-op when logging to the journal.
void set_format(Format format);

} // namespace flowlat::logging
