// The cgroup2 tree behind the workload label: os/cgroup's resolver as the aggregator's
// workload::CgroupPaths, on the mount found in /proc/self/mountinfo. Shared by the daemon
// and --print. Event loop thread only.
#pragma once

#include "aggregate/workload.hpp"
#include "os/cgroup.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace flowlat {

class CgroupPathSource final : public workload::CgroupPaths {
public:
    // Finds the cgroup2 mount now; without one (logged), every id is unresolved. Not
    // called, the first lookup does it (--print logs nothing before its first line).
    void open();

    const std::string* path(std::uint64_t cgroup_id) override;
    // Names `cgroup_id` now (a walk on a miss) without counting it unresolved: path() does
    // that when the aggregator asks.
    void prefetch(std::uint64_t cgroup_id);
    std::uint64_t generation() const override { return resolver_ ? resolver_->generation() : 0; }

    // Walks again to forget removed cgroups (the daemon's timer).
    void refresh();
    cgroup::ResolverStats stats() const { return resolver_ ? resolver_->stats() : cgroup::ResolverStats{}; }

    // The label --print shows: the cgroup path ("/" for the root), "unknown" for id 0 (the
    // packet carried no socket), "unresolved" when no walk found the id.
    std::string describe(std::uint64_t cgroup_id);

private:
    std::optional<cgroup::Resolver> resolver_;
};

} // namespace flowlat
