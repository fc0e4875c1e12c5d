// Command-line flags, in the Prometheus exporters' style (--config.file, --web.listen-address).
#pragma once

#include "app/print_format.hpp"
#include "os/result.hpp"

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flowlat::cli {

inline constexpr std::string_view default_config_file = "/etc/flowlatd/flowlatd.yaml";

struct Options {
    std::optional<std::string> config_file; // set only when named on the command line
    bool config_check{false};
    std::vector<std::string> listen_addresses;
    std::optional<std::string> web_config_file;
    bool web_systemd_socket{false}; // serve on the sockets systemd passes in, not listen_addresses
    std::string telemetry_path{"/metrics"};
    int max_requests{40};
    std::optional<std::string> log_level;
    std::optional<std::string> log_format;
    std::vector<std::string> interfaces;
    std::optional<print::PrintMode> print;
    std::optional<std::chrono::milliseconds> handshake_timeout;
    bool version{false};
    bool help{false};
};

// Errors name the flag at fault; main prints them and exits 2.
Result<Options> parse_arguments(std::span<const std::string_view> arguments);

std::string usage();

} // namespace flowlat::cli
