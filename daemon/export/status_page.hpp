// The status page at GET /: what a person wants during an incident, as one HTML document
// with no external assets and no script. Rendered from the aggregator's snapshot (the same
// copy a scrape renders), the daemon's operational state, and a short per-series history
// that the daemon samples on its event loop (History).
#pragma once

#include "aggregate/aggregator.hpp"
#include "aggregate/label_policy.hpp"
#include "export/metrics_exposition.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flowlat::status {

// The quantile q (0..1) of a histogram with Prometheus' histogram_quantile() rule: linear
// interpolation inside the bucket that holds rank q*count, from 0 for the first bucket;
// the highest finite bound when the rank falls in +Inf. `counts` is per bucket (not
// cumulative), bounds.size() + 1 long. NaN when the histogram is empty.
double estimate_quantile(double q, std::span<const double> bounds, std::span<const std::uint64_t> counts);

// Recent latency per series, for the sparkline and the rate: sampled every few seconds, a
// ring of kIntervals entries per series, for at most as many series as the snapshot holds
// (series that leave the snapshot leave the history). Thread safe.
class History {
public:
    static constexpr std::size_t kIntervals = 60;

    struct Recent {
        std::vector<double> p50;               // per interval, oldest first; NaN: no RTT sample in it
        std::vector<std::uint64_t> samples;    // RTT samples per interval, same order
        std::vector<std::uint64_t> handshakes; // handshakes of every outcome per interval
        double seconds{0};                     // time the intervals cover
    };
    using Copy = std::unordered_map<labels::SeriesKey, Recent, labels::SeriesKeyHash>;

    // Folds the counts since the previous call into each series' ring. `now_seconds` is
    // any monotonic clock in seconds.
    void record(const aggregation::Snapshot& snapshot, double now_seconds);
    Copy copy() const;

private:
    // About 0.9 KB a series with the 18 default buckets: rings in float and 32 bits.
    struct Entry {
        std::vector<std::uint64_t> rtt_buckets; // cumulative totals at the previous record()
        std::uint64_t handshakes{0};            // every outcome, at the previous record()
        std::array<float, kIntervals> p50{};    // rings, indexed like `next`
        std::array<std::uint32_t, kIntervals> samples{};
        std::array<std::uint32_t, kIntervals> handshake_counts{};
        std::size_t next{0};
        std::size_t filled{0};
    };
    mutable std::mutex mutex_;
    std::unordered_map<labels::SeriesKey, Entry, labels::SeriesKeyHash> entries_;
    double last_seconds_{-1};
    // Every series gets a slot at each timed record(), so one ring of interval lengths
    // serves all: an entry's `filled` slots are the last `filled` intervals.
    std::array<double, kIntervals> seconds_{};
    std::size_t seconds_next_{0};
};

struct InterfaceState {
    std::string name;
    bool attached{false};
    std::string mode;    // "tcx" or "clsact" when attached
    bool healing{false}; // its hook was lost or its attach failed; retried every few seconds
    std::string problem; // why it is not attached, when known
};

// Everything on the page that is not a series.
struct PageInfo {
    std::string version;
    double uptime_seconds{0};
    std::string config_file;
    double now_unix_seconds{0};
    std::string health; // "ok" or why /healthz says 503
    std::vector<InterfaceState> interfaces;
    exposition::OperationalSnapshot operational;
    std::size_t max_series{0};
    std::string telemetry_path{"/metrics"};
};

// ?sort=KEY&order=asc|desc&limit=N. KEY: a label name (interface, direction, ...), rate,
// completed, refused, timeout, retransmits, p50, p90 or p99. limit 0: every series.
struct Query {
    std::string sort{"rate"};
    bool ascending{false};
    std::size_t limit{100};
};
Query parse_query(std::string_view query_string);

// One table row: a rendered label set (series with equal labels summed, as on /metrics).
struct Row {
    std::vector<std::string> labels; // in labels::kLabelNames order
    aggregation::SeriesCounters counters;
    std::vector<std::uint64_t> rtt_buckets; // per bucket, bounds.size() + 1
    double rate{0};                         // handshakes/s (every outcome) over the recent history
    double p50{0}, p90{0}, p99{0};          // seconds; NaN without RTT samples
    const History::Recent* recent{nullptr}; // into the History::Copy given to build_rows
};
// The rows of `snapshot`, sorted as `query` asks (ties by labels), before the limit.
std::vector<Row> build_rows(const aggregation::Snapshot& snapshot,
                            const std::unordered_map<std::uint32_t, std::string>& interfaces,
                            const History::Copy& history, const Query& query);

std::string render_page(const PageInfo& info, const aggregation::Snapshot& snapshot,
                        const std::unordered_map<std::uint32_t, std::string>& interfaces,
                        const History::Copy& history, const Query& query);

// Exposed for tests. The SVG functions append to `out`.
std::string html_escape(std::string_view text);
void histogram_svg(std::string& out, std::span<const double> bounds, std::span<const std::uint64_t> counts);
// `values` oldest first, drawn right-aligned on `slots` positions (0: as many as values).
void sparkline_svg(std::string& out, const std::vector<double>& values, std::size_t slots = 0);

} // namespace flowlat::status
