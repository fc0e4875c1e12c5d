// The standard process_* metrics, read from /proc (as client_golang's process collector).
#pragma once

#include "os/result.hpp"

#include <string>

namespace flowlat::process {

struct ProcessMetrics {
    double cpu_seconds_total{0};     // user + system
    double resident_memory_bytes{0};
    double virtual_memory_bytes{0};
    double open_fds{0};
    double max_fds{0};               // soft RLIMIT_NOFILE; +Inf when unlimited
    double start_time_seconds{0};    // since the Unix epoch
};

// Reads <self_dir>/stat, /statm, /fd, /limits and the boot time from `proc_stat`.
// The paths exist for tests; the daemon uses the defaults.
Result<ProcessMetrics> read_process_metrics(const std::string& self_dir = "/proc/self",
                                            const std::string& proc_stat = "/proc/stat");

} // namespace flowlat::process
