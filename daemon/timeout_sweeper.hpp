// Finds handshakes that got no answer within handshake_timeout and reports them as timeouts.
// The kernel never sees the absence of a packet, so user space sweeps the flow table.
#pragma once

#include "handshake_event.hpp"

#include <cstdint>
#include <vector>

namespace flowlat::probe {

class Probe;

class TimeoutSweeper {
public:
    explicit TimeoutSweeper(Probe& probe);

    // Removes every entry older than the timeout at monotonic time now_ns and returns its event.
    std::vector<HandshakeEvent> sweep(std::uint64_t now_ns);
    // Entries seen by the last sweep: the flow table's fill.
    std::uint64_t last_entry_count() const { return last_entry_count_; }

private:
    Probe& probe_;
    std::uint64_t last_entry_count_{0};
};

std::uint64_t monotonic_now_ns();

} // namespace flowlat::probe
