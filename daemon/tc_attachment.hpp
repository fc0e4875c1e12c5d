// Attaching the probe to one interface's ingress and egress hooks, and detaching it.
// TCX links are preferred (they vanish with the process); clsact filters are the fallback.
#pragma once

#include "probe.hpp"
#include "result.hpp"
#include "unique_fd.hpp"

#include <memory>
#include <string>

namespace flowlat::probe {

enum class AttachMode { tcx, clsact };

// Owns both hooks of one interface. Destruction detaches exactly what it attached.
class TcAttachment {
public:
    static Result<std::unique_ptr<TcAttachment>> attach(const Probe& probe, const std::string& interface,
                                                        unsigned ifindex);
    ~TcAttachment();
    TcAttachment(const TcAttachment&) = delete;
    TcAttachment& operator=(const TcAttachment&) = delete;

    const std::string& interface() const { return interface_; }
    unsigned ifindex() const { return ifindex_; }
    AttachMode mode() const { return mode_; }
    LinkLayer link_layer() const { return link_; }

private:
    TcAttachment(std::string interface, unsigned ifindex) : interface_(std::move(interface)), ifindex_(ifindex) {}
    Status attach_tcx(const Probe& probe);
    Status attach_clsact(const Probe& probe);
    void detach_clsact();

    std::string interface_;
    unsigned ifindex_;
    AttachMode mode_{AttachMode::tcx};
    LinkLayer link_{LinkLayer::ethernet};
    UniqueFd ingress_link_;
    UniqueFd egress_link_;
    bool ingress_filter_{false};
    bool egress_filter_{false};
};

std::string_view to_string(AttachMode mode);

// Ethernet or raw IP, from the device's ARPHRD type; other link types are refused.
Result<LinkLayer> link_layer_of(const std::string& interface);

// Removes clsact filters that a killed earlier flowlatd left at flowlatd's handle and priority.
// Filters of other programs are never touched. Returns how many were removed.
int remove_stale_clsact_filters(unsigned ifindex);

} // namespace flowlat::probe
