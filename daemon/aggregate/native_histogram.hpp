// Native (sparse exponential) histogram cells of one series, and the exemplar kept per
// classic bucket of the RTT histogram. Both are exported by export/ in the OpenMetrics and
// protobuf formats; the text format 0.0.4 has room for neither.
#pragma once

#include "flow/handshake_event.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace flowlat::aggregation {

// Schema 3: every power of two is split into 8 buckets, each 2^(1/8) = 1.0905 times the one
// below, so a value's bucket midpoint is within 4.4 % of it (the issue asks for 5 %).
inline constexpr int kNativeSchema = 3;
// Values at or below 2^-20 s (0.954 µs) fall into the zero bucket. The threshold sits on a
// bucket boundary, so the first regular bucket (index -159) starts where the zero bucket ends.
inline constexpr double kNativeZeroThreshold = 0x1p-20;
inline constexpr int kNativeFirstIndex = -159;

// Bucket index k of a value in seconds: the bucket (2^((k-1)/8), 2^(k/8)]. Values at or below
// kNativeZeroThreshold are not given one (the zero bucket takes them).
int native_index(double seconds);
// The index of the bucket that holds `largest_bound` seconds: the top of the range. A value
// above it is counted in that top bucket (see docs/metrics.md, "Native histograms").
int native_top_index(double largest_bound);
// Upper bound of bucket k in seconds.
double native_upper_bound(int index);

// The populated buckets of one histogram as a dense window [offset, offset + counts.size()):
// the window only grows to the lowest and highest bucket seen, so a label set whose latency
// stays within a few percent costs a few words, and at most top - first + 1 words.
struct NativeHistogram {
    std::int32_t offset{0};
    std::uint64_t zero_count{0};
    std::vector<std::uint64_t> counts;

    void observe_index(int index);
    void add(const NativeHistogram& other);
    std::size_t heap_bytes() const { return counts.capacity() * sizeof(std::uint64_t); }
};

// One handshake that fell into a bucket, for the exemplar of that bucket: who (the real peer,
// not the folded label), how slow, and when.
struct Exemplar {
    IpAddress peer{};
    std::uint64_t value_ns{0};
    std::uint64_t unix_ns{0}; // wall clock when the handshake ended; 0: the bucket has none
    std::uint16_t peer_port{0};
    std::uint16_t local_port{0};
    Family family{Family::ipv4};

    bool empty() const { return unix_ns == 0; }
};

// How long an exemplar counts as recent: within it a slower handshake replaces a faster one
// and a faster one is ignored; an older exemplar gives way to the next handshake of its bucket.
inline constexpr std::uint64_t kExemplarRecentNs = 60'000'000'000ull;

// Whether `candidate` should replace `current` as the exemplar of one bucket.
bool prefer_exemplar(const Exemplar& candidate, const Exemplar& current);

// Two series' exemplars, bucket by bucket, into one (series merged): each bucket keeps the one
// prefer_exemplar() chooses. `into` and `from` have the same number of buckets.
void merge_exemplars(std::span<Exemplar> into, std::span<const Exemplar> from);

} // namespace flowlat::aggregation
