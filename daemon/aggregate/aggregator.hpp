// Aggregator: folds handshake events into per-series counters and histograms.
// The event loop calls add(); scrapes call snapshot() from other threads. Both take one
// mutex: add() for a batch, snapshot() only to copy the table. Rendering happens outside.
#pragma once

#include "config/config.hpp"
#include "flow/handshake_event.hpp"
#include "aggregate/label_policy.hpp"
#include "aggregate/native_histogram.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace flowlat::aggregation {

struct Settings {
    std::vector<double> buckets;        // upper bounds in seconds, strictly increasing; +Inf implicit
    std::size_t max_series{2000};       // label sets before new ones fold into peer="other"
    std::chrono::seconds series_ttl{3600}; // idle series are dropped by expire(); 0: never

    static Settings from(const config::Config& config); // empty buckets: default_buckets()
};

// Counters of one series. Sums are integer nanoseconds: exact and never decreasing.
struct SeriesCounters {
    labels::SeriesKey key;
    // Indexed by Outcome; [accept_overflow] counts accept-queue overflows, not handshakes.
    std::array<std::uint64_t, 5> handshakes{};
    std::uint64_t syn_retransmits{0};
    std::uint64_t rtt_count{0};
    std::uint64_t rtt_sum_ns{0};
    std::uint64_t duration_count{0};
    std::uint64_t duration_sum_ns{0};
    std::uint64_t last_update_ns{0}; // CLOCK_MONOTONIC of the newest event
    std::uint64_t created_unix_ns{0}; // wall clock when the series was created (OpenMetrics _created)

    // Adds another series' counts (two keys that become one label set); the key stays.
    void add(const SeriesCounters& other);
};

// A copy of the series table, safe to render without any lock.
struct Snapshot {
    std::vector<double> bounds;            // seconds, without +Inf
    std::vector<std::string> group_names;  // indexed by SeriesKey::group
    std::vector<std::string> workload_names; // indexed by SeriesKey::workload; [0] is "" (no label)
    std::vector<SeriesCounters> series;
    // Per series i, non-cumulative: rtt at [i*stride, +bounds+1), then duration. Last is +Inf.
    std::vector<std::uint64_t> buckets;
    // Per series i: the RTT exemplar of each classic bucket at [i*(bounds+1), +bounds+1).
    std::vector<Exemplar> exemplars;
    // Per series i: the native RTT histogram at 2*i, the duration one at 2*i+1.
    std::vector<NativeHistogram> native;
    int native_top_index{0};               // the highest native bucket (values above it are counted there)
    std::uint64_t series_overflow{0};      // events folded into peer="other"

    std::size_t stride() const { return 2 * (bounds.size() + 1); }
    std::span<const std::uint64_t> rtt_buckets(std::size_t i) const;
    std::span<const std::uint64_t> duration_buckets(std::size_t i) const;
    std::span<const Exemplar> rtt_exemplars(std::size_t i) const;
    const NativeHistogram& rtt_native(std::size_t i) const { return native[2 * i]; }
    const NativeHistogram& duration_native(std::size_t i) const { return native[2 * i + 1]; }
};

// Index of the bucket a value lands in, with Prometheus `le` semantics: the first bound
// >= value; bounds.size() means +Inf only.
std::size_t bucket_index(const std::vector<std::uint64_t>& bounds_ns, std::uint64_t value_ns);

class Aggregator {
public:
    Aggregator(labels::LabelPolicy policy, Settings settings);

    // Counts a batch of events. Not reentrant with itself; safe against snapshot().
    void add(std::span<const HandshakeEvent> events);
    // The same with the wall clock given (tests): unix time = monotonic_ns + unix_minus_monotonic_ns.
    void add(std::span<const HandshakeEvent> events, std::uint64_t unix_minus_monotonic_ns);

    // Removes series whose newest event is older than now - series_ttl. Returns the number
    // removed. `now_ns` is CLOCK_MONOTONIC, the clock of HandshakeEvent::monotonic_ns.
    std::size_t expire(std::uint64_t now_ns);

    // Moves every series of interface key `from` to `to`, adding its counts to a series
    // that already has the same labels there; with `redirect`, later events of `from` are
    // counted under `to` (see InterfaceNames::set).
    void move_interface(std::uint32_t from, std::uint32_t to, bool redirect);

    // Reload. Existing series keep their counts; new events are classified by `policy`.
    // Series refer to peer groups by a 16-bit id that lives as long as the process, so the
    // distinct group names seen since start are bounded: policy_problem() says, before
    // anything changes, whether `policy` would pass that bound; set_policy() then cannot fail.
    std::optional<std::string> policy_problem(const labels::LabelPolicy& policy) const;
    void set_policy(labels::LabelPolicy policy);

    // Reload of max_series and series_ttl. Buckets cannot change while series hold counts:
    // a different bucket list is ignored until restart and reported in the returned warnings.
    std::vector<std::string> set_settings(const Settings& settings);

    // Where cgroup ids are named when the policy has a workload mode; nullptr (the default):
    // every id is "unresolved". Not owned; it must outlive the aggregator. Called under the
    // aggregator's lock, on the thread that calls add() and expire().
    void set_cgroup_paths(workload::CgroupPaths* paths);

    // `counts`: series, buckets and names only, for readers that use neither native buckets
    // nor exemplars (text 0.0.4, the status page): at 10,000 series those are most of the
    // copy, a heap allocation per native histogram, all made under the lock add() waits on.
    enum class Detail { counts, full };
    Snapshot snapshot(Detail detail = Detail::full) const;
    std::size_t series_count() const;
    // Bytes the series table holds (slots, classic buckets, exemplars, native buckets and the
    // key index), for the benchmark's memory-per-label-set figure.
    std::size_t memory_bytes() const;
    std::uint64_t series_overflow() const;

private:
    // `handshake`: false for an event that is not a handshake of its own (an accept-overflow
    // report), which series_overflow does not count.
    std::uint32_t find_or_create(labels::SeriesKey key, std::uint64_t now_unix_ns, bool handshake);
    void observe_native(NativeHistogram& histogram, std::uint64_t ns) const;
    std::uint16_t intern_group(const std::string& name);
    std::uint32_t workload_of(std::uint64_t cgroup_id);
    std::uint32_t intern_workload(const std::string& name);
    void forget_unused_workloads();

    mutable std::mutex mutex_;
    labels::LabelPolicy policy_;
    std::vector<std::uint16_t> group_ids_;   // policy group index -> interned group id
    std::vector<std::string> group_names_;   // interned group id -> name, append-only
    std::unordered_map<std::string, std::uint16_t> group_index_; // name -> interned group id
    std::vector<double> bounds_;
    std::vector<std::uint64_t> bounds_ns_;
    std::size_t max_series_;
    std::uint64_t ttl_ns_;

    std::unordered_map<labels::SeriesKey, std::uint32_t, labels::SeriesKeyHash> index_;
    std::vector<SeriesCounters> slots_;
    std::vector<bool> live_;
    std::vector<std::uint32_t> free_slots_;
    std::vector<std::uint64_t> buckets_; // slots_.size() * stride
    std::vector<Exemplar> exemplars_;    // slots_.size() * (bounds + 1): RTT only
    std::vector<NativeHistogram> native_; // slots_.size() * 2: RTT, duration
    int native_top_{0};
    std::uint64_t overflow_{0};
    std::unordered_map<std::uint32_t, std::uint32_t> interface_redirects_; // usually empty

    // Workload names are interned: a series key holds a 32-bit id. Ids 1-3 are fixed
    // ("unknown", "unresolved", "other"); the rest are freed when no series uses them.
    workload::CgroupPaths* cgroup_paths_{nullptr};
    std::uint64_t cgroup_paths_generation_{0};
    std::unordered_map<std::uint64_t, std::uint32_t> workload_cache_; // cgroup id -> workload id
    std::vector<std::string> workload_names_;                         // id -> name; "" when free
    std::unordered_map<std::string, std::uint32_t> workload_index_;   // name -> id
    std::vector<std::uint32_t> free_workload_ids_;
};

} // namespace flowlat::aggregation
