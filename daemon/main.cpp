// flowlatd: wiring and exit codes only; every job lives in its own module.
#include "app/cli.hpp"
#include "app/daemon_mode.hpp"
#include "os/logging.hpp"
#include "app/print_mode.hpp"
#include "probe/probe.hpp"

#include <cstdio>
#include <exception>
#include <string_view>
#include <vector>

#ifndef FLOWLAT_VERSION
#define FLOWLAT_VERSION "0.0.0"
#endif

int main(int argc, char** argv)
{
    std::vector<std::string_view> arguments(argv + 1, argv + argc);
    auto parsed = flowlat::cli::parse_arguments(arguments);
    if (!parsed) {
        std::fprintf(stderr, "flowlatd: %s\n", parsed.error().message().c_str());
        return 2;
    }
    const flowlat::cli::Options& options = parsed.value();
    if (options.help) {
        std::fputs(flowlat::cli::usage().c_str(), stdout);
        return 0;
    }
    if (options.version) {
        std::printf("flowlatd %s (revision %s, libbpf %s)\n", FLOWLAT_VERSION, FLOWLAT_REVISION,
                    flowlat::probe::libbpf_version().c_str());
        return 0;
    }

    // The flag's format from the first line on; daemon mode then applies the config file's.
    flowlat::logging::setup(options.log_level.value_or("info"),
                            flowlat::logging::parse_format(options.log_format.value_or("logfmt"))
                                .value_or(flowlat::logging::Format::logfmt));
    flowlat::probe::route_libbpf_logging();

    // A bug must not abort (no core, no detach, an undefined exit status): unwinding to here
    // runs every destructor, so the probes are detached, and the exit code says what happened.
    try {
        if (options.config_check) return flowlat::run_config_check(options);
        if (options.print) return flowlat::run_print_mode(options);
        return flowlat::run_daemon_mode(options);
    } catch (const std::exception& error) {
        std::fprintf(stderr, "flowlatd: internal error, detached and stopped: %s\n", error.what());
        return 3;
    }
}
