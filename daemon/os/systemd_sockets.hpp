// Socket activation: the listening sockets systemd passes in (LISTEN_PID, LISTEN_FDS,
// LISTEN_FDNAMES; sd_listen_fds(3)), for --web.systemd-socket.
#pragma once

#include "os/result.hpp"
#include "os/unique_fd.hpp"

#include <string>
#include <vector>

namespace flowlat::systemd {

struct ListenSocket {
    UniqueFd fd;         // kept for the process's life: the HTTP server adopts duplicates
    std::string name;    // LISTEN_FDNAMES entry (FileDescriptorName=; "unknown" when unset)
    std::string address; // where it listens, "[::]:10435" or "127.0.0.1:10435"
};

// Takes every socket passed to this process and unsets the LISTEN_* variables (so a child
// does not take them too). Call before any thread starts: it changes the environment.
// Errors: no socket passed (LISTEN_FDS unset, or LISTEN_PID names another process), or one
// that is not a listening TCP socket (the error names its fd and name).
Result<std::vector<ListenSocket>> take_listen_sockets();

} // namespace flowlat::systemd
