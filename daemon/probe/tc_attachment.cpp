#include "probe/tc_attachment.hpp"

#include "os/abstract_lock.hpp"
#include "probe/probe.hpp"
#include "probe/tc_filter_query.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace flowlat::probe {

namespace {

// Values from the kernel's enum bpf_attach_type (6.6+); libbpf 1.1's headers predate them.
constexpr int attach_tcx_ingress = 46;
constexpr int attach_tcx_egress = 47;
// BPF_F_BEFORE (6.6+) with no relative program: the link goes first in the hook's chain. A
// program ahead of it that ends the chain (TCX_PASS, TCX_DROP, as Cilium's do) would blind the
// probe; the probe returns TCX_NEXT, so whatever runs after it still sees every packet.
constexpr __u32 tcx_first = 1u << 3;

// The head of the kernel's struct bpf_link_info with its tcx member (6.6+), which libbpf 1.1's and
// Debian 12's UAPI headers lack: type, id, prog_id, then the union at offset 16 (it holds
// __aligned_u64 members), whose tcx member is { __u32 ifindex; __u32 attach_type; }. The kernel
// fills only what fits in the length passed, so a short buffer is fine.
struct TcxLinkInfo {
    __u32 type;
    __u32 id;
    __u32 prog_id;
    __u32 padding;
    __u32 ifindex; // 0 once the link is detached (bpftool link detach, device gone)
    __u32 attach_type;
};
static_assert(offsetof(TcxLinkInfo, ifindex) == 16);
constexpr __u32 link_type_tcx = 11; // BPF_LINK_TYPE_TCX

// Whether a TCX link of ours is detached; false when that cannot be read.
bool tcx_link_detached(int link_fd)
{
    TcxLinkInfo info{};
    __u32 length = sizeof(info);
    if (bpf_obj_get_info_by_fd(link_fd, &info, &length) != 0) return false;
    return info.type == link_type_tcx && info.ifindex == 0;
}

// Each slot's fixed clsact handle, so a restart finds and replaces what a killed instance of the
// same slot left. Priority 1 runs before other filters: a filter that classifies a packet ends
// classic tc's walk, so running later would blind the probe. It returns TC_ACT_UNSPEC, so they
// (and the other slot's filter, at the same priority) still run.
constexpr __u32 clsact_priority = 1;

__u32 clsact_handle(AttachSlot slot)
{
    return slot == AttachSlot::daemon ? 0xf10a : 0xf10b;
}

std::string slot_description(AttachSlot slot)
{
    char text[48];
    std::snprintf(text, sizeof(text), "clsact handle %#x priority %u", clsact_handle(slot), clsact_priority);
    return text;
}

// The names of the probe's four programs (both link layers). Reading our own fds needs no privilege.
std::vector<std::string> program_names(const Probe& probe)
{
    std::vector<std::string> names;
    for (LinkLayer link : {LinkLayer::ethernet, LinkLayer::raw_ip})
        for (int fd : {probe.ingress_program_fd(link), probe.egress_program_fd(link)}) {
            bpf_prog_info info{};
            __u32 length = sizeof(info);
            if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0) names.emplace_back(info.name);
        }
    return names;
}

bool is_flowlat_filter(const ClsBpfFilter& filter, const std::vector<std::string>& names)
{
    return std::find(names.begin(), names.end(), program_name_of(filter.name)) != names.end();
}

// What sits in flowlatd's slot of one hook; an error only when rtnetlink itself fails.
Result<std::optional<ClsBpfFilter>> query_slot(unsigned ifindex, bpf_tc_attach_point point, AttachSlot slot)
{
    return query_cls_bpf_filter(ifindex, point == BPF_TC_INGRESS, clsact_handle(slot), clsact_priority);
}

// The interface's liveness lock: see TcAttachment in the header.
Result<UniqueFd> lock_interface(const std::string& interface, unsigned ifindex, AttachSlot slot)
{
    const std::string name =
        (slot == AttachSlot::daemon ? "flowlatd/attach/" : "flowlatd/print/") + std::to_string(ifindex);
    auto lock = take_abstract_lock(name);
    if (lock) return lock;
    if (lock.error().errno_value == EBUSY)
        return Error{"attach to " + interface + ": another flowlatd" +
                         (slot == AttachSlot::daemon ? " daemon" : " --print") +
                         " is already attached there (it holds @" + name + ")",
                     EBUSY};
    return Error{"attach to " + interface + ": " + lock.error().what, lock.error().errno_value};
}

bpf_tc_hook make_hook(unsigned ifindex, bpf_tc_attach_point point)
{
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = static_cast<int>(ifindex);
    hook.attach_point = point;
    return hook;
}

bpf_tc_opts make_opts(AttachSlot slot, int program_fd = 0)
{
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.handle = clsact_handle(slot);
    opts.priority = clsact_priority;
    opts.prog_fd = program_fd;
    return opts;
}

} // namespace

Result<LinkLayer> link_layer_of(const std::string& interface)
{
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return os_error("open a socket to ask for " + interface + "'s link type");
    ifreq request{};
    if (interface.size() >= sizeof(request.ifr_name)) return Error{"interface name too long: " + interface, EINVAL};
    std::memcpy(request.ifr_name, interface.c_str(), interface.size() + 1);
    if (::ioctl(fd.get(), SIOCGIFHWADDR, &request) != 0) return os_error("read the link type of " + interface);
    switch (request.ifr_hwaddr.sa_family) {
    case ARPHRD_ETHER:
    case ARPHRD_LOOPBACK: // carries an all-zero Ethernet header
        return LinkLayer::ethernet;
    case ARPHRD_NONE:   // tun, WireGuard
    case ARPHRD_RAWIP:
    case ARPHRD_PPP:
    case ARPHRD_TUNNEL: // ipip
    case ARPHRD_TUNNEL6:
    case ARPHRD_SIT:
    case ARPHRD_IPGRE:
    case 823: // ARPHRD_IP6GRE, missing from glibc's net/if_arp.h
        return LinkLayer::raw_ip;
    default:
        return Error{"attach to " + interface + ": unsupported link type " +
                         std::to_string(request.ifr_hwaddr.sa_family) + " (Ethernet and raw-IP devices only)",
                     EOPNOTSUPP};
    }
}

std::string_view to_string(AttachMode mode)
{
    return mode == AttachMode::tcx ? "tcx" : "clsact";
}

int remove_stale_clsact_filters(const Probe& probe, unsigned ifindex, AttachSlot slot)
{
    const auto names = program_names(probe);
    int removed = 0;
    for (auto point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
        auto held = query_slot(ifindex, point, slot);
        if (!held || !held.value() || !is_flowlat_filter(*held.value(), names)) continue;
        bpf_tc_hook hook = make_hook(ifindex, point);
        bpf_tc_opts detach = make_opts(slot);
        if (bpf_tc_detach(&hook, &detach) == 0) ++removed;
    }
    return removed;
}

Result<std::unique_ptr<TcAttachment>> TcAttachment::attach(const Probe& probe, const std::string& interface,
                                                           unsigned ifindex, AttachSlot slot)
{
    auto link = link_layer_of(interface);
    if (!link) return link.error();
    auto lock = lock_interface(interface, ifindex, slot);
    if (!lock) return lock.error();
    std::unique_ptr<TcAttachment> attachment(new TcAttachment(interface, ifindex, slot));
    attachment->link_ = link.value();
    attachment->lock_ = std::move(lock).value();

    // FLOWLATD_ATTACH_MODE=clsact forces the fallback path, e.g. to share hooks with tc tooling
    // or to test it on a kernel that has TCX.
    const char* forced = std::getenv("FLOWLATD_ATTACH_MODE");
    if (forced == nullptr || std::string_view(forced) != "clsact") {
        Status tcx = attachment->attach_tcx(probe);
        if (tcx) {
            // A killed instance that ran in clsact mode may have left filters: probe once, not twice.
            if (int removed = remove_stale_clsact_filters(probe, ifindex, slot); removed > 0)
                spdlog::warn("{}: removed {} clsact filter(s) left by an earlier flowlatd", interface, removed);
            return attachment;
        }
        if (tcx.error().errno_value != EINVAL && tcx.error().errno_value != EOPNOTSUPP)
            return tcx.error();
        spdlog::info("{}: TCX not supported by this kernel ({}); using a clsact filter", interface,
                     tcx.error().message());
    }
    Status clsact = attachment->attach_clsact(probe);
    if (!clsact) return clsact.error();
    return attachment;
}

Status TcAttachment::attach_tcx(const Probe& probe)
{
    LIBBPF_OPTS(bpf_link_create_opts, first, .flags = tcx_first);
    const int ingress = bpf_link_create(probe.ingress_program_fd(link_), static_cast<int>(ifindex_),
                                        static_cast<bpf_attach_type>(attach_tcx_ingress), &first);
    if (ingress < 0) return os_error("attach to " + interface_ + " ingress (tcx)", -ingress);
    ingress_link_.reset(ingress);
    const int egress = bpf_link_create(probe.egress_program_fd(link_), static_cast<int>(ifindex_),
                                       static_cast<bpf_attach_type>(attach_tcx_egress), &first);
    if (egress < 0) {
        ingress_link_.reset();
        return os_error("attach to " + interface_ + " egress (tcx)", -egress);
    }
    egress_link_.reset(egress);
    mode_ = AttachMode::tcx;
    return Ok{};
}

Status TcAttachment::attach_clsact(const Probe& probe)
{
    mode_ = AttachMode::clsact;
    bpf_tc_hook hook = make_hook(ifindex_, BPF_TC_INGRESS);
    // EEXIST: a clsact qdisc is already there (maybe someone else's); we share it and never delete it.
    int created = 0;
    {
        QuietLibbpf quiet;
        created = bpf_tc_hook_create(&hook);
    }
    if (created != 0 && created != -EEXIST) return os_error("create clsact qdisc on " + interface_, -created);

    struct Hook {
        bpf_tc_attach_point point;
        int program_fd;
        __u32* program_id;
        const char* name;
    };
    const auto names = program_names(probe);
    int replaced = 0;
    for (Hook h : {Hook{BPF_TC_INGRESS, probe.ingress_program_fd(link_), &ingress_program_id_, "ingress"},
                   Hook{BPF_TC_EGRESS, probe.egress_program_fd(link_), &egress_program_id_, "egress"}}) {
        auto slot = query_slot(ifindex_, h.point, slot_);
        if (!slot) {
            detach_clsact();
            return Error{"attach to " + interface_ + " " + h.name + ": " + slot.error().what,
                         slot.error().errno_value};
        }
        // We hold the interface's lock, so a flowlatd filter here is a killed instance's: replace
        // it in place (no moment without a probe). Anything else in our slot is not ours to touch.
        if (const auto& held = slot.value(); held) {
            if (!is_flowlat_filter(*held, names)) {
                detach_clsact();
                return Error{"attach to " + interface_ + " " + h.name + ": " + slot_description(slot_) +
                                 " is held by another program (" +
                                 (held->name.empty() ? "id " + std::to_string(held->program_id) : held->name) + ")",
                             EBUSY};
            }
            ++replaced;
        }
        bpf_tc_hook point_hook = make_hook(ifindex_, h.point);
        bpf_tc_opts opts = make_opts(slot_, h.program_fd);
        opts.flags = BPF_TC_F_REPLACE;
        if (int err = bpf_tc_attach(&point_hook, &opts); err != 0) {
            detach_clsact();
            return os_error("attach to " + interface_ + " " + h.name + " (clsact)", -err);
        }
        *h.program_id = opts.prog_id;
    }
    if (replaced > 0)
        spdlog::warn("{}: replaced {} clsact filter(s) left by an earlier flowlatd", interface_, replaced);
    return Ok{};
}

void TcAttachment::detach_clsact()
{
    for (auto [point, program_id, name] : {std::tuple{BPF_TC_INGRESS, &ingress_program_id_, "ingress"},
                                           std::tuple{BPF_TC_EGRESS, &egress_program_id_, "egress"}}) {
        if (*program_id == 0) continue;
        const __u32 ours = std::exchange(*program_id, 0);
        // Delete only our own filter: if someone replaced it meanwhile, theirs stays.
        auto slot = query_slot(ifindex_, point, slot_);
        if (!slot) {
            // ENODEV: the interface (and with it the filter) is already gone.
            if (slot.error().errno_value != ENODEV)
                spdlog::warn("{}: detach {} filter: {}", interface_, name, slot.error().message());
            continue;
        }
        if (!slot.value()) continue; // already gone
        if (slot.value()->program_id != ours) {
            spdlog::warn("{}: the {} filter at {} now runs program {} ({}), not ours ({}); leaving it", interface_,
                         name, slot_description(slot_), slot.value()->program_id, slot.value()->name, ours);
            continue;
        }
        bpf_tc_hook hook = make_hook(ifindex_, point);
        bpf_tc_opts opts = make_opts(slot_);
        if (int err = bpf_tc_detach(&hook, &opts); err != 0 && err != -ENODEV && err != -ENOENT && err != -EINVAL)
            spdlog::warn("{}: detach {} filter: {}", interface_, name, std::strerror(-err));
    }
}

std::vector<std::string_view> TcAttachment::lost_hooks() const
{
    std::vector<std::string_view> lost;
    if (mode_ == AttachMode::tcx) {
        if (ingress_link_.valid() && tcx_link_detached(ingress_link_.get())) lost.emplace_back("ingress");
        if (egress_link_.valid() && tcx_link_detached(egress_link_.get())) lost.emplace_back("egress");
        return lost;
    }
    for (auto [point, ours, name] : {std::tuple{BPF_TC_INGRESS, ingress_program_id_, "ingress"},
                                     std::tuple{BPF_TC_EGRESS, egress_program_id_, "egress"}}) {
        if (ours == 0) continue;
        auto slot = query_slot(ifindex_, point, slot_);
        if (!slot) continue;
        if (!slot.value() || slot.value()->program_id != ours) lost.emplace_back(name);
    }
    return lost;
}

TcAttachment::~TcAttachment()
{
    // Closing a TCX link fd detaches it, since flowlatd never pins links.
    ingress_link_.reset();
    egress_link_.reset();
    detach_clsact();
    // lock_ is released last, by its member destructor, once nothing of ours is attached.
}

} // namespace flowlat::probe
