// `flowlatd --print`: the foreground mode that prints each handshake outcome as it happens.
#pragma once

#include "cli.hpp"

namespace flowlat {

// Returns the process exit code: 0 after SIGINT/SIGTERM, 2 on a start-up error.
int run_print_mode(const cli::Options& options);

} // namespace flowlat
