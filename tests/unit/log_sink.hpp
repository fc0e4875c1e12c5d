// Routes spdlog's default logger into a string for a test's lifetime: "<level> <message>" lines.
#pragma once

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>

class LogSink {
public:
    explicit LogSink(spdlog::level::level_enum level = spdlog::level::info) : previous_(spdlog::default_logger())
    {
        auto logger = std::make_shared<spdlog::logger>(
            "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(text_, true));
        logger->set_pattern("%l %v");
        logger->set_level(level);
        spdlog::set_default_logger(logger);
    }
    ~LogSink() { spdlog::set_default_logger(previous_); }
    LogSink(const LogSink&) = delete;
    LogSink& operator=(const LogSink&) = delete;

    std::string text() const { return text_.str(); }
    // Forgets what was logged so far.
    void clear()
    {
        text_.str("");
        text_.clear();
    }

private:
    std::shared_ptr<spdlog::logger> previous_;
    std::ostringstream text_;
};
