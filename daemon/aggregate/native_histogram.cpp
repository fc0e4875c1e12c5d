#include "aggregate/native_histogram.hpp"

#include <algorithm>
#include <array>
#include <cmath>

namespace flowlat::aggregation {

namespace {

// The upper bounds of the 8 buckets of one power of two, as fractions of it (as frexp gives
// them): 2^(j/8 - 1) for j = 1..8; the last is 1, the next power's first bound.
const std::array<double, 8>& fraction_bounds()
{
    static const std::array<double, 8> bounds = [] {
        std::array<double, 8> b{};
        for (int j = 1; j <= 8; ++j) b[static_cast<std::size_t>(j - 1)] = std::exp2(j / 8.0 - 1.0);
        b[7] = 1.0;
        return b;
    }();
    return bounds;
}

} // namespace

int native_index(double seconds)
{
    int exponent = 0;
    const double fraction = std::frexp(seconds, &exponent); // seconds = fraction * 2^exponent, fraction in [0.5, 1)
    const auto& bounds = fraction_bounds();
    // The first bound >= fraction; fraction 0.5 exactly is 2^(exponent-1), the top of the
    // bucket below, which is bucket (exponent - 1) * 8.
    if (fraction == 0.5) return (exponent - 1) * 8;
    const auto j = std::lower_bound(bounds.begin(), bounds.end(), fraction) - bounds.begin();
    return (exponent - 1) * 8 + static_cast<int>(j) + 1;
}

int native_top_index(double largest_bound) { return native_index(largest_bound); }

double native_upper_bound(int index) { return std::exp2(index / 8.0); }

void NativeHistogram::observe_index(int index)
{
    if (counts.empty()) {
        offset = index;
        counts.push_back(1);
        return;
    }
    if (index < offset) {
        counts.insert(counts.begin(), static_cast<std::size_t>(offset - index), 0);
        offset = index;
    } else if (index >= offset + static_cast<int>(counts.size())) {
        counts.resize(static_cast<std::size_t>(index - offset + 1), 0);
    }
    ++counts[static_cast<std::size_t>(index - offset)];
}

void NativeHistogram::add(const NativeHistogram& other)
{
    zero_count += other.zero_count;
    for (std::size_t i = 0; i < other.counts.size(); ++i) {
        if (other.counts[i] == 0) continue;
        const int index = other.offset + static_cast<int>(i);
        const std::uint64_t n = other.counts[i];
        observe_index(index);
        counts[static_cast<std::size_t>(index - offset)] += n - 1;
    }
}

bool prefer_exemplar(const Exemplar& candidate, const Exemplar& current)
{
    if (current.empty()) return true;
    // An exemplar that is no longer recent gives way, so a bucket's exemplar never names a flow
    // from long ago just because it was once the slowest.
    if (candidate.unix_ns >= current.unix_ns + kExemplarRecentNs) return true;
    return candidate.value_ns >= current.value_ns;
}

void merge_exemplars(std::span<Exemplar> into, std::span<const Exemplar> from)
{
    for (std::size_t b = 0; b < into.size() && b < from.size(); ++b)
        if (!from[b].empty() && prefer_exemplar(from[b], into[b])) into[b] = from[b];
}

} // namespace flowlat::aggregation
