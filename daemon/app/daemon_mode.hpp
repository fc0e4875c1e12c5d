// The long-running exporter: config, probe, aggregation, HTTP, reloads and systemd integration.
#pragma once

#include "app/cli.hpp"
#include "app/effective_config.hpp"

namespace flowlat {

// --config.check: 0 when valid, 1 with every error printed as file:line:column: key: message.
int run_config_check(const cli::Options& options);

// Returns the process exit code: 0 after SIGTERM, SIGINT, SIGQUIT or SIGXCPU, 1 for an
// invalid config, 2 on start-up errors (a timer that cannot be armed among them), 3 when the
// event loop fails while running (an internal error, reported with one line). SIGHUP reloads,
// off the event loop (app/config_reloader.hpp); other signals that would end the
// process (USR1, ALRM, ...) are logged and ignored (signal_policy.hpp).
int run_daemon_mode(const cli::Options& options);

} // namespace flowlat
