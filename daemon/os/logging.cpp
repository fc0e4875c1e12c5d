#include "os/logging.hpp"
#include "os/json_text.hpp"

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>

namespace flowlat::logging {

namespace {

std::atomic<bool> to_journal{false};

// Text inside double quotes with the escapes that JSON defines; logfmt readers (go-logfmt,
// Loki, lnav) unquote the same set.
void append_quoted(std::string& out, std::string_view text)
{
    out += '"';
    json::append_json_escaped(out, text);
    out += '"';
}

// RFC 3339 in UTC with milliseconds, as Prometheus prints ts.
std::string timestamp(std::chrono::system_clock::time_point time)
{
    const auto since_epoch = time.time_since_epoch();
    const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
    const std::time_t whole = static_cast<std::time_t>(seconds.count());
    std::tm utc{};
    ::gmtime_r(&whole, &utc);
    char text[96]; // room for any int year, which -Wformat-truncation asks for
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
    return text;
}

std::string_view level_name(spdlog::level::level_enum level)
{
    const auto index = static_cast<std::size_t>(level);
    return index < level_names.size() ? level_names[index] : std::string_view("info");
}

class LineFormatter final : public spdlog::formatter {
public:
    explicit LineFormatter(Format format) : format_(format) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override
    {
        const std::string line = format_line(format_, msg.time, level_name(msg.level),
                                             std::string_view(msg.payload.data(), msg.payload.size()));
        dest.append(line.data(), line.data() + line.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<LineFormatter>(format_); }

private:
    Format format_;
};

} // namespace

std::string_view canonical_level(std::string_view level)
{
    return level == "warning" ? std::string_view("warn") : level;
}

bool is_level(std::string_view level)
{
    return std::find(level_names.begin(), level_names.end(), canonical_level(level)) != level_names.end();
}

std::optional<Format> parse_format(std::string_view name)
{
    if (name == "logfmt") return Format::logfmt;
    if (name == "json") return Format::json;
    return std::nullopt;
}

std::string format_line(Format format, std::chrono::system_clock::time_point time, std::string_view level,
                        std::string_view message)
{
    std::string line;
    line.reserve(message.size() + 64);
    const std::string ts = timestamp(time);
    if (format == Format::json) {
        line += R"({"ts":")";
        line += ts;
        line += R"(","level":")";
        line += level;
        line += R"(","msg":)";
        append_quoted(line, message);
        line += "}\n";
    } else {
        line += "ts=";
        line += ts;
        line += " level=";
        line += level;
        line += " msg=";
        append_quoted(line, message);
        line += '\n';
    }
    return line;
}

void setup(std::string_view level, Format format)
{
    std::shared_ptr<spdlog::logger> logger;
    if (std::getenv("JOURNAL_STREAM") != nullptr) {
        // The journal stores the priority and the time as fields of its own.
        auto sink = std::make_shared<spdlog::sinks::systemd_sink_mt>("flowlatd");
        logger = std::make_shared<spdlog::logger>("flowlatd", sink);
        logger->set_pattern("%v");
        to_journal = true;
    } else {
        logger = std::make_shared<spdlog::logger>("flowlatd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        logger->set_formatter(std::make_unique<LineFormatter>(format));
        to_journal = false;
    }
    spdlog::set_default_logger(logger);
    set_level(level);
}

void set_level(std::string_view level)
{
    spdlog::set_level(spdlog::level::from_str(std::string(canonical_level(level))));
    spdlog::flush_on(spdlog::level::trace);
}

void set_format(Format format)
{
    if (to_journal) return;
    spdlog::default_logger()->set_formatter(std::make_unique<LineFormatter>(format));
}

} // namespace flowlat::logging
