// The `workload` label: a handshake's cgroup path (from the probe's cgroup id), folded to
// what an operator names (docs/configuration.md, "workload"), and kept or folded to "other"
// by workload_include. Pure string functions; the paths come from a CgroupPaths, which the
// app backs with os/cgroup's resolver.
#pragma once

#include "config/config.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flowlat::workload {

inline constexpr std::string_view kUnknown = "unknown";       // the packet carried no socket
inline constexpr std::string_view kUnresolved = "unresolved"; // an id no walk of the tree found
inline constexpr std::string_view kOther = "other";           // not in workload_include, or max_series
inline constexpr std::string_view kRoot = "/";                // the root cgroup

// id -> path relative to the cgroup2 root ("" is the root); nullptr when unknown. The
// aggregator asks only for ids it has not cached, on the event loop thread.
class CgroupPaths {
public:
    virtual ~CgroupPaths() = default;
    virtual const std::string* path(std::uint64_t cgroup_id) = 0;
    // Changes when ids were forgotten (cgroups removed): derived caches are dropped then.
    virtual std::uint64_t generation() const = 0;
};

// `cgroup` mode: the path itself, the root as "/".
std::string cgroup_label(std::string_view path);

// `unit` mode: the Kubernetes pod, container or systemd unit that owns the path, by the
// rules in docs/configuration.md (first that applies):
//   kubepods*/.../pod<uid>/...  and  kubepods*.slice/...-pod<uid>.slice/...  -> pod<uid>
//   .../docker-<id>.scope, docker/<id>/...                                   -> docker/<id:12>
//   .../libpod-<id>.scope, libpod_parent/libpod-<id>/...                     -> libpod/<id:12>
//   .../cri-containerd-<id>.scope -> containerd/<id:12>; .../crio-<id>.scope -> crio/<id:12>
//   the deepest *.service or *.scope        (user@1000.service/app.slice/x.service -> x.service)
//   the deepest *.slice                     (system.slice -> system.slice)
//   else the path unchanged; the root is "/".
std::string unit_label(std::string_view path);

// The label of one cgroup under `mode` (not none) and the include patterns (fnmatch(3)
// without flags: `*` also matches '/'); nullptr path -> "unresolved". "unknown" and
// "unresolved" are never folded to "other": they are not workloads.
class Naming {
public:
    Naming() = default;
    Naming(config::WorkloadMode mode, std::vector<std::string> include)
        : mode_(mode), include_(std::move(include))
    {
    }

    config::WorkloadMode mode() const { return mode_; }
    bool enabled() const { return mode_ != config::WorkloadMode::none; }
    std::string label(const std::string* path) const;

    friend bool operator==(const Naming&, const Naming&) = default;

private:
    config::WorkloadMode mode_{config::WorkloadMode::none};
    std::vector<std::string> include_;
};

} // namespace flowlat::workload
