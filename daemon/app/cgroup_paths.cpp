#include "app/cgroup_paths.hpp"

#include "os/clock.hpp"

#include <spdlog/spdlog.h>

namespace flowlat {

namespace {

std::string find_root()
{
    auto mount = cgroup::cgroup2_mount();
    if (mount) return std::move(mount).value();
    spdlog::warn("workload labels: {}; every cgroup id is reported as unresolved", mount.error().message());
    return {};
}

} // namespace

void CgroupPathSource::open()
{
    if (!resolver_) resolver_.emplace(find_root());
}

const std::string* CgroupPathSource::path(std::uint64_t cgroup_id)
{
    open();
    return resolver_->resolve(cgroup_id, clock::monotonic_ns());
}

void CgroupPathSource::prefetch(std::uint64_t cgroup_id)
{
    open();
    resolver_->prefetch(cgroup_id, clock::monotonic_ns());
}

void CgroupPathSource::refresh()
{
    if (resolver_) resolver_->refresh(clock::monotonic_ns());
}

std::string CgroupPathSource::describe(std::uint64_t cgroup_id)
{
    if (cgroup_id == 0) return std::string(workload::kUnknown);
    const std::string* found = path(cgroup_id);
    return found != nullptr ? workload::cgroup_label(*found) : std::string(workload::kUnresolved);
}

} // namespace flowlat
