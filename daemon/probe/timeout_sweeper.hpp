// Finds handshakes that got no answer within handshake_timeout and reports them as timeouts.
// The kernel never sees the absence of a packet, so user space sweeps the flow table.
#pragma once

#include "flow/handshake_event.hpp"

#include <atomic>
#include <chrono>
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
    // Also renews the counting filter's epoch when its period is over.
    std::vector<HandshakeEvent> sweep(std::uint64_t now_ns);
    // Entries left after the last sweep, reported records included: the flow table's fill.
    std::uint64_t last_entry_count() const { return last_entry_count_; }
    // Entries the LRU flow table pushed out to make room (flowlat_flow_table_evictions_total).
    // The table does not report them, so each sweep derives them: what the probe and the sweep
    // inserted, less what they deleted, less what the walk found. Inserts are read before the
    // walk and deletes after it, so entries that come and go during the walk make it too low,
    // never too high; it only grows, and a later sweep makes up what one missed.
    std::uint64_t evictions_total() const { return evictions_total_.load(std::memory_order_relaxed); }

    // How often the session sweeps: often enough that a timeout is reported within ~10 % of
    // handshake_timeout.
    static std::chrono::milliseconds interval(std::uint64_t timeout_ns);
    // How long a counting-filter epoch stays current (Probe::renew_ack_epoch): handshake_timeout
    // plus two sweep intervals, so that every flow counted in the other epoch was timed out by a
    // sweep or ended before its counts are zeroed.
    static std::uint64_t ack_epoch_period_ns(std::uint64_t timeout_ns);

private:
    Probe& probe_;
    std::uint64_t last_entry_count_{0};
    std::atomic<std::uint64_t> evictions_total_{0};
    std::uint64_t own_inserts_{0}; // the sweep's put-backs that went in
    std::uint64_t own_deletes_{0}; // the sweep's deletes that took an entry
    std::uint64_t epoch_started_ns_{0};
};

} // namespace flowlat::probe
