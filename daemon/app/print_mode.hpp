// `flowlatd --print`: the foreground mode that prints each handshake outcome as it happens.
#pragma once

#include "app/cli.hpp"

namespace flowlat {

// Returns the process exit code, always after detaching what it attached:
//   0 after SIGINT, SIGTERM, SIGQUIT, SIGXCPU or SIGHUP (also when one arrives during
//     start-up), or when the reader of stdout has gone (EPIPE: `flowlatd --print | head -1`);
//   2 on a start-up error, or when writing to stdout fails otherwise (ENOSPC, EIO);
//   3 when the event loop itself fails (an internal error), with one line saying why.
// SIGHUP means the terminal hung up: --print has no configuration to reload. Other signals
// that would end the process (USR1, ALRM, ...) are logged and ignored; SIGPIPE is ignored.
int run_print_mode(const cli::Options& options);

} // namespace flowlat
