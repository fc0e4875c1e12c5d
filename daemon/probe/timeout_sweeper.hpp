// Finds handshakes that got no answer within handshake_timeout and reports them as timeouts.
// The kernel never sees the absence of a packet, so user space sweeps the flow table.
#pragma once

#include "flow/handshake_event.hpp"

#include <cstdint>
#include <vector>

namespace flowlat::probe {

class Probe;

class TimeoutSweeper {
public:
    explicit TimeoutSweeper(Probe& probe);

    // Reports every pending entry older than the timeout at monotonic time now_ns (the returned
    // events) and keeps it as FLOWLAT_STAGE_REPORTED, so that the initiator's retransmissions
    // of the same SYN (Linux sends them for ~127 s) are not counted as new handshakes. Those
    // records are dropped 130 s after the timeout, or at once while the table is half full.
    std::vector<HandshakeEvent> sweep(std::uint64_t now_ns);
    // Entries left after the last sweep, reported records included: the flow table's fill.
    std::uint64_t last_entry_count() const { return last_entry_count_; }

private:
    Probe& probe_;
    std::uint64_t last_entry_count_{0};
};

} // namespace flowlat::probe
