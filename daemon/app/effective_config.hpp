// What the daemon and --config.check run on: the configuration file, then the flags.
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
// then the command-line flags, which override the matching keys. A bad flag value is
// reported as the flag's ("--handshake-timeout: must be between ..."), not as the file's.
// Reads no state but its argument, so a reload may call it on any thread.
EffectiveConfig load_effective_config(const cli::Options& options);

} // namespace flowlat
