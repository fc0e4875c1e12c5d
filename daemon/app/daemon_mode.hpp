// The long-running exporter: config, probe, aggregation, HTTP, reloads and systemd integration.
#pragma once

#include "app/cli.hpp"
#include "config/config.hpp"

#include <optional>
#include <vector>

namespace flowlat {

struct EffectiveConfig {
    std::optional<config::Config> config; // set when diagnostics is empty
    std::vector<config::Diagnostic> diagnostics;
};

// The named file, else /etc/flowlatd/flowlatd.yaml when it exists, else the embedded default;
// then the command-line flags, which override the matching keys.
EffectiveConfig load_effective_config(const cli::Options& options);

// --config.check: 0 when valid, 1 with every error printed as file:line:column: key: message.
int run_config_check(const cli::Options& options);

// Returns the process exit code: 0 after SIGTERM, SIGINT, SIGQUIT or SIGXCPU, 1 for an
// invalid config, 2 on start-up errors (a timer that cannot be armed among them), 3 when the
// event loop fails while running (an internal error, reported with one line). SIGHUP reloads; other signals that would end the
// process (USR1, ALRM, ...) are logged and ignored (signal_policy.hpp).
int run_daemon_mode(const cli::Options& options);

} // namespace flowlat
