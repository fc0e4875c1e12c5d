#include "aggregate/aggregator.hpp"

#include "os/clock.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace flowlat::aggregation {

namespace {

std::vector<std::uint64_t> to_ns(const std::vector<double>& bounds)
{
    std::vector<std::uint64_t> ns;
    ns.reserve(bounds.size());
    for (double bound : bounds) {
        if (!(bound > 0) || !std::isfinite(bound) || bound > 1e9)
            throw std::invalid_argument("histogram bucket bounds must be finite, positive seconds");
        ns.push_back(static_cast<std::uint64_t>(std::llround(bound * 1e9)));
    }
    if (!std::is_sorted(ns.begin(), ns.end()) ||
        std::adjacent_find(ns.begin(), ns.end()) != ns.end())
        throw std::invalid_argument("histogram bucket bounds must be strictly increasing (at ns resolution)");
    return ns;
}

std::string join(const std::vector<double>& values)
{
    std::string text;
    for (double value : values) {
        if (!text.empty()) text += ", ";
        text += std::to_string(value);
    }
    return "[" + text + "]";
}

constexpr std::uint32_t kWorkloadUnknown = 1;
constexpr std::uint32_t kWorkloadUnresolved = 2;
constexpr std::uint32_t kWorkloadOther = 3;
constexpr std::uint32_t kFixedWorkloads = 4; // with 0, "no label"
// cgroup ids remembered with their workload: a host with more cgroups than this has the cache
// cleared and refilled from the resolver's own cache, which holds the ids without a walk.
constexpr std::size_t kMaxWorkloadCache = 65'536;

} // namespace

Settings Settings::from(const config::Config& config)
{
    Settings settings;
    settings.buckets = config.buckets.empty() ? config::default_buckets() : config.buckets;
    settings.max_series = config.max_series;
    settings.series_ttl = config.series_ttl;
    return settings;
}

std::span<const std::uint64_t> Snapshot::rtt_buckets(std::size_t i) const
{
    return {buckets.data() + i * stride(), bounds.size() + 1};
}

std::span<const std::uint64_t> Snapshot::duration_buckets(std::size_t i) const
{
    return {buckets.data() + i * stride() + bounds.size() + 1, bounds.size() + 1};
}

std::span<const Exemplar> Snapshot::rtt_exemplars(std::size_t i) const
{
    return {exemplars.data() + i * (bounds.size() + 1), bounds.size() + 1};
}

std::size_t bucket_index(const std::vector<std::uint64_t>& bounds_ns, std::uint64_t value_ns)
{
    return static_cast<std::size_t>(
        std::lower_bound(bounds_ns.begin(), bounds_ns.end(), value_ns) - bounds_ns.begin());
}

void SeriesCounters::add(const SeriesCounters& other)
{
    for (std::size_t i = 0; i < handshakes.size(); ++i) handshakes[i] += other.handshakes[i];
    syn_retransmits += other.syn_retransmits;
    rtt_count += other.rtt_count;
    rtt_sum_ns += other.rtt_sum_ns;
    duration_count += other.duration_count;
    duration_sum_ns += other.duration_sum_ns;
    last_update_ns = std::max(last_update_ns, other.last_update_ns);
    if (other.created_unix_ns != 0 && (created_unix_ns == 0 || other.created_unix_ns < created_unix_ns))
        created_unix_ns = other.created_unix_ns;
}

Aggregator::Aggregator(labels::LabelPolicy policy, Settings settings)
    : policy_(std::move(policy)),
      bounds_(std::move(settings.buckets)),
      bounds_ns_(to_ns(bounds_)),
      max_series_(settings.max_series),
      ttl_ns_(static_cast<std::uint64_t>(settings.series_ttl.count()) * 1'000'000'000ull),
      native_top_(bounds_.empty() ? 0 : native_top_index(bounds_.back()))
{
    for (const auto& name : policy_.group_names()) group_ids_.push_back(intern_group(name));
    workload_names_ = {"", std::string(workload::kUnknown), std::string(workload::kUnresolved),
                       std::string(workload::kOther)};
    for (std::uint32_t id = 1; id < kFixedWorkloads; ++id) workload_index_.emplace(workload_names_[id], id);
    // Enough that a typical table never rehashes on the event path, without committing
    // memory up front for a large max_series that may never fill.
    index_.reserve(std::min<std::size_t>(max_series_, 16'384) + 64);
}

std::uint16_t Aggregator::intern_group(const std::string& name)
{
    // A hash lookup: a reload of 10,000 groups interns each under the mutex that add() takes.
    if (const auto it = group_index_.find(name); it != group_index_.end()) return it->second;
    if (group_names_.size() > std::numeric_limits<std::uint16_t>::max())
        throw std::length_error("too many distinct peer group names");
    group_names_.push_back(name);
    const auto id = static_cast<std::uint16_t>(group_names_.size() - 1);
    group_index_.emplace(name, id);
    return id;
}

std::uint32_t Aggregator::intern_workload(const std::string& name)
{
    if (const auto it = workload_index_.find(name); it != workload_index_.end()) return it->second;
    std::uint32_t id;
    if (!free_workload_ids_.empty()) {
        id = free_workload_ids_.back();
        free_workload_ids_.pop_back();
        workload_names_[id] = name;
    } else {
        id = static_cast<std::uint32_t>(workload_names_.size());
        workload_names_.push_back(name);
    }
    workload_index_.emplace(name, id);
    return id;
}

// One hash lookup per event once an id is known; the path work happens on its first event.
std::uint32_t Aggregator::workload_of(std::uint64_t cgroup_id)
{
    if (cgroup_id == 0) return kWorkloadUnknown;
    if (const auto it = workload_cache_.find(cgroup_id); it != workload_cache_.end()) return it->second;
    const std::string* path = cgroup_paths_ != nullptr ? cgroup_paths_->path(cgroup_id) : nullptr;
    // Unresolved ids are not cached: the resolver retries them after its next walk.
    if (path == nullptr) return kWorkloadUnresolved;
    const std::uint32_t id = intern_workload(policy_.workload_naming().label(path));
    if (workload_cache_.size() >= kMaxWorkloadCache) workload_cache_.clear();
    workload_cache_.emplace(cgroup_id, id);
    return id;
}

// Names no live series uses are freed (cgroups come and go: container ids, sessions), and
// the cache forgets ids that named them. Runs after expiry, so O(series) every few seconds.
void Aggregator::forget_unused_workloads()
{
    std::vector<bool> used(workload_names_.size(), false);
    for (std::uint32_t slot = 0; slot < slots_.size(); ++slot)
        if (live_[slot]) used[slots_[slot].key.workload] = true;
    bool freed = false;
    for (std::uint32_t id = kFixedWorkloads; id < workload_names_.size(); ++id) {
        if (used[id] || workload_names_[id].empty()) continue;
        workload_index_.erase(workload_names_[id]);
        workload_names_[id].clear();
        free_workload_ids_.push_back(id);
        freed = true;
    }
    if (freed) std::erase_if(workload_cache_, [&](const auto& entry) { return workload_names_[entry.second].empty(); });
}

void Aggregator::set_cgroup_paths(workload::CgroupPaths* paths)
{
    std::lock_guard lock(mutex_);
    cgroup_paths_ = paths;
    cgroup_paths_generation_ = paths != nullptr ? paths->generation() : 0;
    workload_cache_.clear();
}

std::uint32_t Aggregator::find_or_create(labels::SeriesKey key, std::uint64_t now_unix_ns, bool handshake)
{
    auto it = index_.find(key);
    if (it != index_.end()) return it->second;

    if (index_.size() >= max_series_ && key.peer_kind != labels::PeerKind::other) {
        // The port goes with the peer: keeping it would let a port scan create one
        // overflow series per port. Interface, direction and family stay, so the overflow
        // adds at most one series per (interface, direction, family). An accept-overflow report
        // is a second event of a handshake already counted, so it is not counted again.
        if (handshake) ++overflow_;
        key.peer_kind = labels::PeerKind::other;
        key.group = 0;
        key.prefix_length = 0;
        key.address = {};
        key.port = 0;
        key.port_other = 1;
        if (key.workload != 0) key.workload = kWorkloadOther;
        it = index_.find(key);
        if (it != index_.end()) return it->second;
    }

    const std::size_t stride = 2 * (bounds_.size() + 1);
    const std::size_t exemplar_stride = bounds_.size() + 1;
    std::uint32_t slot;
    if (!free_slots_.empty()) {
        slot = free_slots_.back();
        free_slots_.pop_back();
        slots_[slot] = SeriesCounters{};
        live_[slot] = true;
        std::fill_n(buckets_.begin() + static_cast<std::ptrdiff_t>(slot * stride), stride, 0);
        std::fill_n(exemplars_.begin() + static_cast<std::ptrdiff_t>(slot * exemplar_stride), exemplar_stride,
                    Exemplar{});
        native_[2 * slot] = NativeHistogram{};
        native_[2 * slot + 1] = NativeHistogram{};
    } else {
        slot = static_cast<std::uint32_t>(slots_.size());
        slots_.emplace_back();
        live_.push_back(true);
        buckets_.resize(buckets_.size() + stride, 0);
        exemplars_.resize(exemplars_.size() + exemplar_stride);
        native_.resize(native_.size() + 2);
    }
    slots_[slot].key = key;
    slots_[slot].created_unix_ns = now_unix_ns;
    index_.emplace(key, slot);
    return slot;
}

void Aggregator::observe_native(NativeHistogram& histogram, std::uint64_t ns) const
{
    const double seconds = static_cast<double>(ns) / 1e9;
    if (seconds <= kNativeZeroThreshold) {
        ++histogram.zero_count;
        return;
    }
    histogram.observe_index(std::min(native_index(seconds), native_top_));
}

void Aggregator::add(std::span<const HandshakeEvent> events)
{
    // Events carry the probe's CLOCK_MONOTONIC; exemplars and _created need the wall clock.
    // One offset per batch: the two clocks do not drift apart within one.
    const std::uint64_t unix_now = clock::realtime_ns();
    const std::uint64_t monotonic_now = clock::monotonic_ns();
    add(events, unix_now - monotonic_now);
}

void Aggregator::add(std::span<const HandshakeEvent> events, std::uint64_t unix_minus_monotonic_ns)
{
    const std::size_t stride = 2 * (bounds_.size() + 1);
    const std::size_t exemplar_stride = bounds_.size() + 1;
    std::lock_guard lock(mutex_);
    const bool workload_enabled = policy_.workload_naming().enabled();
    for (const auto& event : events) {
        auto key = policy_.classify(event);
        if (key.peer_kind == labels::PeerKind::group) key.group = group_ids_[key.group];
        if (workload_enabled) key.workload = workload_of(event.cgroup_id);
        if (!interface_redirects_.empty()) {
            if (const auto it = interface_redirects_.find(key.ifindex); it != interface_redirects_.end())
                key.ifindex = it->second;
        }
        const std::uint64_t unix_ns = event.monotonic_ns + unix_minus_monotonic_ns;
        const auto slot = find_or_create(key, unix_ns, event.outcome != Outcome::accept_overflow);
        auto& series = slots_[slot];
        std::uint64_t* buckets = buckets_.data() + slot * stride;

        ++series.handshakes[static_cast<std::size_t>(event.outcome)];
        // An overflow repeats a handshake already counted completed: nothing else of it counts.
        if (event.outcome == Outcome::accept_overflow) {
            series.last_update_ns = std::max(series.last_update_ns, event.monotonic_ns);
            continue;
        }
        series.syn_retransmits += event.retransmits;
        if (event.rtt_ns) {
            ++series.rtt_count;
            series.rtt_sum_ns += *event.rtt_ns;
            const std::size_t b = bucket_index(bounds_ns_, *event.rtt_ns);
            ++buckets[b];
            observe_native(native_[2 * slot], *event.rtt_ns);
            const Exemplar candidate{event.peer, *event.rtt_ns, unix_ns, event.peer_port, event.local_port, event.family};
            Exemplar& current = exemplars_[slot * exemplar_stride + b];
            if (prefer_exemplar(candidate, current)) current = candidate;
        }
        // Duration observes completed handshakes only: a refusal's SYN-to-RST time and a
        // timeout's configured deadline are different distributions (see docs/metrics.md).
        if (event.outcome == Outcome::completed) {
            ++series.duration_count;
            series.duration_sum_ns += event.handshake_ns;
            ++buckets[bounds_.size() + 1 + bucket_index(bounds_ns_, event.handshake_ns)];
            observe_native(native_[2 * slot + 1], event.handshake_ns);
        }
        series.last_update_ns = std::max(series.last_update_ns, event.monotonic_ns);
    }
}

std::size_t Aggregator::expire(std::uint64_t now_ns)
{
    std::lock_guard lock(mutex_);
    std::size_t removed = 0;
    for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
        if (ttl_ns_ == 0 || !live_[slot] || now_ns <= slots_[slot].last_update_ns + ttl_ns_) continue;
        index_.erase(slots_[slot].key);
        live_[slot] = false;
        free_slots_.push_back(slot);
        ++removed;
    }
    if (cgroup_paths_ != nullptr && cgroup_paths_->generation() != cgroup_paths_generation_) {
        cgroup_paths_generation_ = cgroup_paths_->generation();
        workload_cache_.clear();
    }
    if (removed != 0) forget_unused_workloads();
    return removed;
}

void Aggregator::move_interface(std::uint32_t from, std::uint32_t to, bool redirect)
{
    if (from == to) return;
    const std::size_t stride = 2 * (bounds_.size() + 1);
    std::lock_guard lock(mutex_);
    interface_redirects_.erase(to); // `to` is live: its own events stay
    if (redirect) {
        for (auto& [source, target] : interface_redirects_)
            if (target == from) target = to;
        interface_redirects_[from] = to;
    } else {
        interface_redirects_.erase(from);
    }
    for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
        if (!live_[slot] || slots_[slot].key.ifindex != from) continue;
        index_.erase(slots_[slot].key);
        labels::SeriesKey moved = slots_[slot].key;
        moved.ifindex = to;
        const auto existing = index_.find(moved);
        if (existing == index_.end()) {
            slots_[slot].key = moved;
            index_.emplace(moved, slot);
            continue;
        }
        const std::uint32_t into = existing->second;
        slots_[into].add(slots_[slot]);
        for (std::size_t i = 0; i < stride; ++i)
            buckets_[into * stride + i] += buckets_[slot * stride + i];
        const std::size_t exemplar_stride = bounds_.size() + 1;
        merge_exemplars(std::span(exemplars_).subspan(into * exemplar_stride, exemplar_stride),
                        std::span<const Exemplar>(exemplars_).subspan(slot * exemplar_stride, exemplar_stride));
        native_[2 * into].add(native_[2 * slot]);
        native_[2 * into + 1].add(native_[2 * slot + 1]);
        live_[slot] = false;
        free_slots_.push_back(slot);
    }
}

std::optional<std::string> Aggregator::policy_problem(const labels::LabelPolicy& policy) const
{
    std::lock_guard lock(mutex_);
    std::size_t added = 0;
    for (const auto& name : policy.group_names())
        if (group_index_.count(name) == 0) ++added;
    const std::size_t limit = std::size_t{std::numeric_limits<std::uint16_t>::max()} + 1;
    if (group_names_.size() + added <= limit) return std::nullopt;
    return "too many distinct peer group names since start (" + std::to_string(group_names_.size() + added) +
           ", at most " + std::to_string(limit) + "); restart flowlatd to use these groups";
}

void Aggregator::set_policy(labels::LabelPolicy policy)
{
    std::lock_guard lock(mutex_);
    if (!(policy.workload_naming() == policy_.workload_naming())) workload_cache_.clear();
    policy_ = std::move(policy);
    group_ids_.clear();
    for (const auto& name : policy_.group_names()) group_ids_.push_back(intern_group(name));
}

std::vector<std::string> Aggregator::set_settings(const Settings& settings)
{
    std::vector<std::string> warnings;
    std::lock_guard lock(mutex_);
    max_series_ = settings.max_series;
    ttl_ns_ = static_cast<std::uint64_t>(settings.series_ttl.count()) * 1'000'000'000ull;
    if (settings.buckets != bounds_) {
        warnings.push_back("histogram buckets changed from " + join(bounds_) + " to " +
                           join(settings.buckets) +
                           "; existing counts cannot be re-bucketed, the new buckets apply after a restart");
    }
    return warnings;
}

Snapshot Aggregator::snapshot(Detail detail) const
{
    const bool full = detail == Detail::full;
    Snapshot snap;
    std::lock_guard lock(mutex_);
    const std::size_t stride = 2 * (bounds_.size() + 1);
    snap.bounds = bounds_;
    snap.group_names = group_names_;
    snap.workload_names = workload_names_;
    const std::size_t exemplar_stride = bounds_.size() + 1;
    snap.series_overflow = overflow_;
    snap.native_top_index = native_top_;
    snap.series.reserve(index_.size());
    snap.buckets.reserve(index_.size() * stride);
    if (full) {
        snap.exemplars.reserve(index_.size() * exemplar_stride);
        snap.native.reserve(index_.size() * 2);
    }
    for (std::uint32_t slot = 0; slot < slots_.size(); ++slot) {
        if (!live_[slot]) continue;
        snap.series.push_back(slots_[slot]);
        const auto first = buckets_.begin() + static_cast<std::ptrdiff_t>(slot * stride);
        snap.buckets.insert(snap.buckets.end(), first, first + static_cast<std::ptrdiff_t>(stride));
        if (!full) continue;
        const auto exemplar = exemplars_.begin() + static_cast<std::ptrdiff_t>(slot * exemplar_stride);
        snap.exemplars.insert(snap.exemplars.end(), exemplar, exemplar + static_cast<std::ptrdiff_t>(exemplar_stride));
        snap.native.push_back(native_[2 * slot]);
        snap.native.push_back(native_[2 * slot + 1]);
    }
    return snap;
}

std::size_t Aggregator::series_count() const
{
    std::lock_guard lock(mutex_);
    return index_.size();
}

std::size_t Aggregator::memory_bytes() const
{
    std::lock_guard lock(mutex_);
    std::size_t bytes = slots_.capacity() * sizeof(SeriesCounters) + buckets_.capacity() * sizeof(std::uint64_t) +
                        exemplars_.capacity() * sizeof(Exemplar) + native_.capacity() * sizeof(NativeHistogram) +
                        live_.capacity() / 8 + free_slots_.capacity() * sizeof(std::uint32_t);
    for (const auto& histogram : native_) bytes += histogram.heap_bytes();
    // An unordered_map node: the pair plus a next pointer and the cached hash; and one bucket pointer.
    bytes += index_.size() * (sizeof(labels::SeriesKey) + sizeof(std::uint32_t) + 2 * sizeof(void*)) +
             index_.bucket_count() * sizeof(void*);
    return bytes;
}

std::uint64_t Aggregator::series_overflow() const
{
    std::lock_guard lock(mutex_);
    return overflow_;
}

} // namespace flowlat::aggregation
