// The process's capability sets, and dropping all but a few once the probes are attached.
//
// Loading the probe needs CAP_BPF and CAP_PERFMON; attaching it needs CAP_NET_ADMIN. After the
// first attach the daemon still re-attaches (healing, hot-plugged interfaces, reloads that
// change the interfaces: CAP_NET_ADMIN) and calls bpf(2) on its own maps and links (counters,
// the timeout sweeper, link checks: CAP_BPF, which kernels before 6.5 demand for every bpf(2)
// command while unprivileged BPF is disabled, Debian's default). It never loads a program
// again, so CAP_PERFMON goes, with everything else a root start brought along, from the
// effective, permitted, inheritable, ambient and (with CAP_SETPCAP) bounding sets.
// Capabilities are per thread: call this before any other thread exists; threads made later
// inherit the reduced sets. docs/install.md explains each capability.
#pragma once

#include "os/result.hpp"

#include <cstdint>
#include <string>

namespace flowlat::capabilities {

// A set of capabilities as a bit mask: bit N is capability N (linux/capability.h).
using Mask = std::uint64_t;

constexpr Mask bit(int capability) { return Mask{1} << capability; }

struct Sets {
    Mask effective{0};
    Mask permitted{0};
    Mask inheritable{0};
    Mask bounding{0};
    Mask ambient{0};
    bool operator==(const Sets&) const = default;
};

// What the daemon keeps after attaching: CAP_BPF, CAP_NET_ADMIN, and CAP_NET_BIND_SERVICE
// (only a start as root has it: a reload may move the listener to a port below 1024, as the
// start could).
Mask kept_after_attach();

// The calling thread's sets (capget(2), PR_CAPBSET_READ, PR_CAP_AMBIENT_IS_SET).
Result<Sets> read_current();

// The sets that keep only `keep` of what `current` has: effective = permitted = permitted &
// keep; no inheritable and no ambient capability; the bounding set reduced to `keep` when
// CAP_SETPCAP is effective (dropping from it needs that), else unchanged.
Sets plan(const Sets& current, Mask keep);

// Applies plan(read_current(), keep) to the calling thread and returns the sets it now has.
Result<Sets> keep_only(Mask keep);

// "CAP_BPF,CAP_NET_ADMIN", lowest number first; "none" for 0; unknown bits as "cap_63".
std::string names(Mask mask);

} // namespace flowlat::capabilities
