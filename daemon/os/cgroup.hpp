// cgroup v2 ids to paths. The probe records bpf_skb_cgroup_id(), the kernfs id of the
// socket's cgroup, which on cgroup2 is also the inode number of that cgroup's directory; user
// space names it by walking the cgroup2 tree once and caching every id it saw.
//
// open_by_handle_at() with the id as a file handle would name one id without a walk, but it
// needs CAP_DAC_READ_SEARCH, which flowlatd's unit does not grant (CAP_BPF, CAP_NET_ADMIN,
// CAP_PERFMON): so a bounded walk on a miss, at most once per min_walk_interval.
#pragma once

#include "os/result.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace flowlat::cgroup {

// The mount point of the first cgroup2 file system in /proc/self/mountinfo text (octal
// escapes undone); nullopt when there is none. Debian mounts it at /sys/fs/cgroup, hybrid
// systems at /sys/fs/cgroup/unified.
std::optional<std::string> find_cgroup2_mount(std::string_view mountinfo);

// The same, read from `mountinfo_path`. An error names the file or says there is no mount.
Result<std::string> cgroup2_mount(const std::string& mountinfo_path = "/proc/self/mountinfo");

struct Tree {
    std::unordered_map<std::uint64_t, std::string> paths; // id -> path relative to the root ("" = the root)
    std::size_t directories{0};                            // visited
    bool truncated{false};                                 // max_directories or max_depth reached
};

inline constexpr std::size_t kDefaultMaxDirectories = 100'000;
inline constexpr std::size_t kMaxDepth = 64;

// Every directory under `root` with its inode number (the cgroup id on cgroup2), without
// following symbolic links, visiting at most `max_directories`. Directories that vanish
// during the walk are skipped (cgroups come and go); only an unreadable root is an error.
Result<Tree> walk(const std::string& root, std::size_t max_directories = kDefaultMaxDirectories);

struct ResolverStats {
    std::uint64_t walks{0};       // complete walks of the tree
    std::uint64_t walk_errors{0}; // walks that failed (the root unreadable)
    std::uint64_t unresolved{0};  // lookups of an id that no walk found
    std::uint64_t cached{0};      // ids known now
};

// id -> path with a cache. A lookup that misses walks the tree again, at most once per
// min_walk_interval_ns, so an id that will never resolve (a cgroup removed before its first
// lookup, or one outside the mount seen from our cgroup namespace) costs no walk per event.
// Ids are never reused while the system runs, so a cached path never goes stale; refresh()
// drops the ids of removed cgroups. Not thread safe: one thread (the event loop) uses it.
class Resolver {
public:
    struct Options {
        std::uint64_t min_walk_interval_ns{1'000'000'000};
        std::size_t max_directories{kDefaultMaxDirectories};
    };

    // An empty root (no cgroup2 mount) resolves nothing and counts every lookup as unresolved.
    explicit Resolver(std::string root, Options options);
    explicit Resolver(std::string root) : Resolver(std::move(root), Options{}) {}

    const std::string& root() const { return root_; }

    // The path of `id` relative to the root ("" is the root itself), or nullptr. The pointer
    // stays valid until the next call of resolve() or refresh().
    const std::string* resolve(std::uint64_t id, std::uint64_t now_ns);

    // What resolve() does, without counting a miss as unresolved: for a caller that names
    // ids ahead of the lookup that counts (the daemon, before the aggregator's lock).
    void prefetch(std::uint64_t id, std::uint64_t now_ns);

    // Walks again and forgets the ids of cgroups that are gone (the daemon calls it
    // periodically). True when an id was forgotten.
    bool refresh(std::uint64_t now_ns);

    // Incremented whenever refresh() or a walk on a miss forgets an id: users that cache
    // what they derived from a path drop their cache when it changes.
    std::uint64_t generation() const { return generation_; }

    ResolverStats stats() const;

private:
    bool walk_now(std::uint64_t now_ns);
    const std::string* find_or_walk(std::uint64_t id, std::uint64_t now_ns);

    std::string root_;
    Options options_;
    std::unordered_map<std::uint64_t, std::string> paths_;
    std::optional<std::uint64_t> last_walk_ns_;
    std::uint64_t generation_{0};
    ResolverStats stats_;
};

} // namespace flowlat::cgroup
