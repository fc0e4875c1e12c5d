// Attaching the probe to one interface's ingress and egress hooks, and detaching it.
// TCX links are preferred (they vanish with the process); clsact filters are the fallback.
#pragma once

#include "probe/probe.hpp"
#include "os/result.hpp"
#include "os/unique_fd.hpp"

#include <linux/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flowlat::probe {

enum class AttachMode { tcx, clsact };

// Owns both hooks of one interface. Destruction detaches exactly what it attached.
//
// One flowlatd of each slot (AttachSlot: the daemon, `--print`) per interface: attaching first
// takes the interface's liveness lock for the slot, an abstract AF_UNIX socket
// "@flowlatd/attach/<ifindex>" (daemon) or "@flowlatd/print/<ifindex>" (abstract names are per
// network namespace, like ifindexes). The kernel releases it when the process dies, however it
// dies, so a held lock means a live flowlatd of that slot probes the interface and the attach
// fails with EBUSY, in either mode; a free lock means any flowlatd filter in the slot's clsact
// handle (0xf10a daemon, 0xf10b --print, both priority 1) was left by a killed instance of the
// same slot and is replaced. The two slots never touch each other's filters or links.
class TcAttachment {
public:
    static Result<std::unique_ptr<TcAttachment>> attach(const Probe& probe, const std::string& interface,
                                                        unsigned ifindex, AttachSlot slot = AttachSlot::daemon);
    ~TcAttachment();
    TcAttachment(const TcAttachment&) = delete;
    TcAttachment& operator=(const TcAttachment&) = delete;

    const std::string& interface() const { return interface_; }
    unsigned ifindex() const { return ifindex_; }
    AttachMode mode() const { return mode_; }
    LinkLayer link_layer() const { return link_; }

    // The hooks ("ingress", "egress") where our program no longer runs because something outside
    // flowlatd removed it: a clsact slot that is empty or runs another program id (`tc filter del`,
    // `tc qdisc del ... clsact`, a foreign filter put in its place), or a TCX link the kernel reports
    // detached (`bpftool link detach`). One RTM_GETTFILTER or BPF_OBJ_GET_INFO_BY_FD per hook, no
    // capability needed. A hook whose state cannot be read (e.g. the device is going away) counts as
    // present: the link watcher handles vanished interfaces.
    std::vector<std::string_view> lost_hooks() const;

private:
    TcAttachment(std::string interface, unsigned ifindex, AttachSlot slot)
        : interface_(std::move(interface)), ifindex_(ifindex), slot_(slot)
    {
    }
    Status attach_tcx(const Probe& probe);
    Status attach_clsact(const Probe& probe);
    void detach_clsact();

    std::string interface_;
    unsigned ifindex_;
    AttachSlot slot_;
    AttachMode mode_{AttachMode::tcx};
    LinkLayer link_{LinkLayer::ethernet};
    UniqueFd lock_; // declared before the hooks, so it is released after they are detached
    UniqueFd ingress_link_;
    UniqueFd egress_link_;
    __u32 ingress_program_id_{0}; // clsact: the program id our filter runs; 0 when not attached
    __u32 egress_program_id_{0};
};

std::string_view to_string(AttachMode mode);

// Ethernet or raw IP, from the device's ARPHRD type; other link types are refused.
Result<LinkLayer> link_layer_of(const std::string& interface);

// Removes the clsact filters at the slot's handle (priority 1) that run one of the probe's
// programs, recognised by name over rtnetlink (no CAP_SYS_ADMIN needed). Only for a caller that
// holds the interface's lock for that slot: then such filters belong to a killed instance.
// Filters of other programs, and the other slot's, are never touched. Returns how many were removed.
int remove_stale_clsact_filters(const Probe& probe, unsigned ifindex, AttachSlot slot);

} // namespace flowlat::probe
