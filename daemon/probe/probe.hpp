// The probe's kernel objects: load the embedded BPF skeleton, size its maps, read its counters.
// Open → set rodata and map sizes → load; attaching lives in tc_attachment.hpp.
#pragma once

#include "flowlat.h"
#include "os/result.hpp"

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct flowlat_probe; // the bpftool skeleton (flowlat_probe.skel.h), kept out of this header

namespace flowlat::probe {

// Which instance slot a process attaches in (tc_attachment.hpp): the daemon and `--print`
// each have their own lock and clsact handle, so an operator can watch `flowlatd --print` on
// a host where the service runs, while two of the same kind on one interface are refused.
enum class AttachSlot { daemon, print };

struct ProbeOptions {
    std::uint32_t flow_table_size{FLOWLAT_DEFAULT_FLOW_TABLE_SIZE};
    std::uint32_t ring_buffer_size{FLOWLAT_DEFAULT_RING_BUFFER_SIZE};
    std::uint64_t handshake_timeout_ns{10'000'000'000ull};
    // Wake the reader only when this much is queued; it also drains on a timer. 0: every event.
    std::uint32_t ring_wakeup_bytes{0};
    AttachSlot attach_slot{AttachSlot::daemon};
};

// Where TC finds the IP header: after an Ethernet header, or at once (tun, WireGuard, tunnels).
enum class LinkLayer { ethernet, raw_ip };

struct ProbeCounters {
    std::uint64_t events_lost{0};
    std::uint64_t flow_table_full{0};
    std::uint64_t packets_malformed{0};
    std::uint64_t handshakes_abandoned{0};
    std::uint64_t handshakes_aborted{0};
    std::uint64_t answers_rejected{0}; // ingress answers (and new-ISN SYNs) the host's stack drops
    // The probe's own inserts into and deletes from the flow table (flowlat_flow_table_evictions_total
    // is derived from them: the LRU table does not report what it pushes out).
    std::uint64_t flow_inserts{0};
    std::uint64_t flow_deletes{0};
};

// The end of what libbpf said while a load ran: the verifier log's last lines when the kernel
// rejected a program, else libbpf's last warnings.
struct LogTail {
    bool verifier_log{false}; // lines are the verifier's (between libbpf's PROG LOAD LOG markers)
    std::string program;      // the rejected program, when the verifier log names it
    std::vector<std::string> lines;
    std::size_t total_lines{0}; // lines in the whole log; lines holds the last of them
};

// A failed load as the one Error flowlatd prints before exiting 2: what failed ("loading the BPF
// program flowlat_ingress failed"), the errno, and the log's tail as the Error's detail, titled
// "verifier log (last 25 of 812 lines)" or "libbpf said (last 2 lines)".
Error load_failure(std::string what, int errno_value, const LogTail& log);

// While alive, libbpf's messages on this thread are kept here instead of being printed, so a
// failed load is reported once, with the tail, and not as hundreds of warning lines.
class LogCapture {
public:
    static constexpr std::size_t kept_lines = 200;

    LogCapture();
    ~LogCapture();
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;

    // One libbpf message; it may hold many lines (libbpf hands over the whole verifier log at once).
    void add(bool warning, std::string_view message);
    // At most max_lines of the verifier log if there was one, else of the warnings.
    LogTail tail(std::size_t max_lines = 25) const;
    // Logs the kept warnings at warning level (a load that succeeded may still have warned).
    void replay_warnings() const;

private:
    LogCapture* previous_;
    std::deque<std::string> warnings_;
    std::size_t warning_count_{0};
    std::deque<std::string> verifier_;
    std::size_t verifier_count_{0};
    bool verifier_seen_{false};
    bool inside_verifier_log_{false};
    std::string program_;
};

class Probe {
public:
    // On failure the Error carries the log's tail (load_failure).
    static Result<std::unique_ptr<Probe>> load(const ProbeOptions& options);
    ~Probe();
    Probe(const Probe&) = delete;
    Probe& operator=(const Probe&) = delete;

    const ProbeOptions& options() const { return options_; }
    int ingress_program_fd(LinkLayer link = LinkLayer::ethernet) const;
    int egress_program_fd(LinkLayer link = LinkLayer::ethernet) const;
    int flow_table_fd() const;
    int ring_buffer_fd() const;
    ProbeCounters read_counters() const;
    // The sweep times out a flow that held a counting-filter bucket: give the bucket back to the
    // epoch it was counted in (flowlat_flow.ack_filter_epoch).
    void release_ack_filter_bucket(std::uint32_t bucket, std::uint32_t epoch);
    // Both epochs' counts of a bucket.
    std::uint32_t ack_filter_bucket_value(std::uint32_t bucket) const;
    std::uint32_t ack_filter_count(std::uint32_t bucket, std::uint32_t epoch) const;
    // The epoch new flows are counted in, 0 or 1.
    std::uint32_t ack_epoch() const;
    // Zeroes every count of the epoch that is not current, then makes it current. Call it only
    // when no flow counted in that epoch can still be pending: what is left there are buckets
    // of flows the LRU flow table pushed out, which nothing would ever give back.
    void renew_ack_epoch();

private:
    Probe(::flowlat_probe* skeleton, ProbeOptions options);
    ::flowlat_probe* skeleton_;
    ProbeOptions options_;
};

// Routes libbpf's messages to spdlog; call once at start-up.
void route_libbpf_logging();

// While alive, libbpf's warnings on this thread are logged at debug level: for probing
// calls whose failure is an expected answer (e.g. "is there a clsact qdisc?").
class QuietLibbpf {
public:
    QuietLibbpf();
    ~QuietLibbpf();
    QuietLibbpf(const QuietLibbpf&) = delete;
    QuietLibbpf& operator=(const QuietLibbpf&) = delete;
};

// Which capabilities are missing for loading and attaching (empty when all are there).
std::string missing_capabilities();

// libbpf's version as "1.1".
std::string libbpf_version();

} // namespace flowlat::probe
