#include "app/cli.hpp"

#include "config/duration.hpp"
#include "os/logging.hpp"

#include <array>
#include <charconv>

namespace flowlat::cli {

namespace {

enum class Flag { config_file, config_check, listen_address, log_level, interface, print, handshake_timeout,
                  version, help, web_config_file, telemetry_path, max_requests, log_format, web_systemd_socket };

struct FlagSpec {
    std::string_view name;
    Flag flag;
    bool takes_value;
};

constexpr std::array<FlagSpec, 15> flags{{
    {"--config.file", Flag::config_file, true},
    {"--config.check", Flag::config_check, false},
    {"--web.listen-address", Flag::listen_address, true},
    {"--web.config.file", Flag::web_config_file, true},
    {"--web.systemd-socket", Flag::web_systemd_socket, false},
    {"--web.telemetry-path", Flag::telemetry_path, true},
    {"--web.max-requests", Flag::max_requests, true},
    {"--log.level", Flag::log_level, true},
    {"--log.format", Flag::log_format, true},
    {"--interface", Flag::interface, true},
    {"--print", Flag::print, false}, // optional value, only as --print=MODE
    {"--handshake-timeout", Flag::handshake_timeout, true},
    {"--version", Flag::version, false},
    {"--help", Flag::help, false},
    {"-h", Flag::help, false},
}};

Error bad(std::string message)
{
    return Error{std::move(message) + " (see --help)", 0};
}

} // namespace

Result<Options> parse_arguments(std::span<const std::string_view> arguments)
{
    Options options;
    for (std::size_t i = 0; i < arguments.size(); ++i) {
        const std::string_view argument = arguments[i];
        const std::size_t equals = argument.find('=');
        const std::string_view name = argument.substr(0, equals);
        const FlagSpec* spec = nullptr;
        for (const auto& candidate : flags)
            if (candidate.name == name) spec = &candidate;
        if (spec == nullptr) return bad("unknown argument '" + std::string(argument) + "'");

        std::optional<std::string> value;
        if (equals != std::string_view::npos) {
            if (!spec->takes_value && spec->flag != Flag::print)
                return bad("flag " + std::string(name) + " takes no value");
            value = std::string(argument.substr(equals + 1));
        } else if (spec->takes_value) {
            if (i + 1 >= arguments.size()) return bad("flag " + std::string(name) + " needs a value");
            value = std::string(arguments[++i]);
        }
        if (spec->takes_value && value->empty()) return bad("flag " + std::string(name) + " needs a value");

        switch (spec->flag) {
        case Flag::config_file: options.config_file = *value; break;
        case Flag::config_check: options.config_check = true; break;
        case Flag::listen_address: options.listen_addresses.push_back(*value); break;
        case Flag::log_level:
            if (!logging::is_level(*value)) {
                std::string levels;
                for (const auto known : logging::level_names) levels += (levels.empty() ? "" : ", ") + std::string(known);
                return bad("--log.level: '" + *value + "' is not one of " + levels + " (warn may be spelt warning)");
            }
            options.log_level = logging::canonical_level(*value);
            break;
        case Flag::log_format:
            if (!logging::parse_format(*value)) return bad("--log.format: '" + *value + "' is not logfmt or json");
            options.log_format = *value;
            break;
        case Flag::interface: options.interfaces.push_back(*value); break;
        case Flag::print:
            if (!value || *value == "text")
                options.print = print::PrintMode::text;
            else if (*value == "json")
                options.print = print::PrintMode::json;
            else
                return bad("--print: '" + *value + "' is not text or json");
            break;
        case Flag::handshake_timeout: {
            auto duration = parse_duration(*value);
            if (!duration || duration->count() <= 0)
                return bad("--handshake-timeout: '" + *value + "' is not a positive duration such as 10s or 500ms");
            options.handshake_timeout = *duration;
            break;
        }
        case Flag::web_config_file: options.web_config_file = *value; break;
        case Flag::telemetry_path:
            if (value->front() != '/' || value->find_first_of(" \t\r\n?#") != std::string::npos)
                return bad("--web.telemetry-path: '" + *value + "' is not a path such as /metrics");
            options.telemetry_path = *value;
            break;
        case Flag::max_requests: {
            int parsed = -1;
            const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), parsed);
            if (ec != std::errc{} || end != value->data() + value->size() || parsed < 0)
                return bad("--web.max-requests: '" + *value + "' is not a number of 0 (no limit) or more");
            options.max_requests = parsed;
            break;
        }
        case Flag::web_systemd_socket: options.web_systemd_socket = true; break;
        case Flag::version: options.version = true; break;
        case Flag::help: options.help = true; break;
        }
    }
    if (options.print && options.config_check) return bad("--print and --config.check cannot be combined");
    // Where to listen is the socket unit's ListenStream= then; two sources would leave one ignored.
    if (options.web_systemd_socket && !options.listen_addresses.empty())
        return bad("--web.systemd-socket and --web.listen-address cannot be combined: with socket activation, "
                   "the socket unit's ListenStream= says where to listen");
    if (options.web_systemd_socket && options.print) return bad("--web.systemd-socket and --print cannot be combined: --print serves nothing");
    return options;
}

std::string usage()
{
    return R"(Usage: flowlatd [flags]

Measures the latency of every TCP handshake in the kernel (eBPF on TC) and serves
Prometheus histograms on /metrics.

Flags:
  --config.file=PATH           YAML configuration (default /etc/flowlatd/flowlatd.yaml;
                               when absent and not named, an embedded default is used)
  --config.check               validate the configuration and exit (0 valid, 1 invalid)
  --web.listen-address=ADDR    HOST:PORT to serve /metrics on, repeatable (default :10435,
                               every IPv6 and IPv4 address; [::1]:PORT, 0.0.0.0:PORT too)
  --web.config.file=PATH       TLS, basic auth and response headers for the endpoint, in
                               the Prometheus exporter-toolkit format (re-read on SIGHUP)
  --web.systemd-socket         serve on the listening sockets systemd passes in (socket
                               activation, flowlatd.socket) instead of --web.listen-address
  --web.telemetry-path=PATH    where the metrics are served (default /metrics)
  --web.max-requests=N         scrapes rendered at once (default 40; 0: no limit); one more
                               waits up to 500 ms for a slot, then gets 503
  --log.level=LEVEL            trace, debug, info, warn (or warning), error, critical or off
  --log.format=FORMAT          logfmt or json lines on stderr (default logfmt; under systemd
                               the journal is used and keeps its own fields)
  --interface=IFACE            interface name or glob to probe, repeatable
                               (default: the interfaces of the default route)
  --print[=text|json]          print each handshake in the foreground instead of serving
  --handshake-timeout=DURATION unanswered handshakes end as timeouts after this (default 10s)
  --version                    print the version and exit
  -h, --help                   print this help and exit

Exit codes: 0 success, 1 invalid configuration, 2 usage or start-up error,
3 internal error, 75 a listen address cannot be bound (try again).
)";
}

} // namespace flowlat::cli
