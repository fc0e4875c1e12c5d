#include "os/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

namespace flowlat::logging {

bool is_level(std::string_view level)
{
    return std::find(level_names.begin(), level_names.end(), level) != level_names.end();
}

void setup(std::string_view level)
{
    std::shared_ptr<spdlog::logger> logger;
    if (std::getenv("JOURNAL_STREAM") != nullptr) {
        auto sink = std::make_shared<spdlog::sinks::systemd_sink_mt>("flowlatd");
        logger = std::make_shared<spdlog::logger>("flowlatd", sink);
        logger->set_pattern("%v");
    } else {
        logger = std::make_shared<spdlog::logger>("flowlatd", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v", spdlog::pattern_time_type::utc);
    }
    spdlog::set_default_logger(logger);
    set_level(level);
}

void set_level(std::string_view level)
{
    spdlog::set_level(spdlog::level::from_str(std::string(level)));
    spdlog::flush_on(spdlog::level::trace);
}

} // namespace flowlat::logging
