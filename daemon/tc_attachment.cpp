#include "tc_attachment.hpp"

#include "probe.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <array>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <string_view>
#include <cstring>
#include <tuple>

namespace flowlat::probe {

namespace {

// Values from the kernel's enum bpf_attach_type (6.6+); libbpf 1.1's headers predate them.
constexpr int attach_tcx_ingress = 46;
constexpr int attach_tcx_egress = 47;

// flowlatd's fixed clsact slot, so a restart finds and replaces what a killed instance left.
// Priority 1 runs before other filters: a filter that classifies a packet ends classic tc's
// walk, so running later would blind the probe. It returns TC_ACT_UNSPEC, so they still run.
constexpr __u32 clsact_handle = 0xf10a;
constexpr __u32 clsact_priority = 1;

bool is_flowlat_program_id(__u32 program_id)
{
    const int fd = bpf_prog_get_fd_by_id(program_id);
    if (fd < 0) return false;
    bpf_prog_info info{};
    __u32 length = sizeof(info);
    // flowlat_ingress, flowlat_egress and their raw-IP twins flowlat_ingr_ip, flowlat_egr_ip.
    const bool ours = bpf_obj_get_info_by_fd(fd, &info, &length) == 0 &&
                      std::strncmp(info.name, "flowlat_", 8) == 0 &&
                      (std::strstr(info.name, "gress") != nullptr || std::strstr(info.name, "_ip") != nullptr);
    ::close(fd);
    return ours;
}

bpf_tc_hook make_hook(unsigned ifindex, bpf_tc_attach_point point)
{
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = static_cast<int>(ifindex);
    hook.attach_point = point;
    return hook;
}

bpf_tc_opts make_opts(int program_fd = 0)
{
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.handle = clsact_handle;
    opts.priority = clsact_priority;
    opts.prog_fd = program_fd;
    return opts;
}

// Another live flowlatd already holds a TCX link here: two probes would double-count.
int count_flowlat_tcx_programs(unsigned ifindex, int attach_type)
{
    std::array<__u32, 64> ids{};
    __u32 count = ids.size();
    __u32 flags = 0;
    if (bpf_prog_query(static_cast<int>(ifindex), static_cast<bpf_attach_type>(attach_type), 0, &flags,
                       ids.data(), &count) != 0)
        return 0;
    int ours = 0;
    for (__u32 i = 0; i < count && i < ids.size(); ++i) ours += is_flowlat_program_id(ids[i]) ? 1 : 0;
    return ours;
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

int remove_stale_clsact_filters(unsigned ifindex)
{
    QuietLibbpf quiet;
    int removed = 0;
    for (auto point : {BPF_TC_INGRESS, BPF_TC_EGRESS}) {
        bpf_tc_hook hook = make_hook(ifindex, point);
        bpf_tc_opts query = make_opts();
        if (bpf_tc_query(&hook, &query) != 0) continue; // no clsact, or nothing in our slot
        if (!is_flowlat_program_id(query.prog_id)) continue;
        bpf_tc_opts detach = make_opts();
        if (bpf_tc_detach(&hook, &detach) == 0) ++removed;
    }
    return removed;
}

Result<std::unique_ptr<TcAttachment>> TcAttachment::attach(const Probe& probe, const std::string& interface,
                                                           unsigned ifindex)
{
    auto link = link_layer_of(interface);
    if (!link) return link.error();
    std::unique_ptr<TcAttachment> attachment(new TcAttachment(interface, ifindex));
    attachment->link_ = link.value();
    if (int removed = remove_stale_clsact_filters(ifindex); removed > 0)
        spdlog::warn("{}: removed {} clsact filter(s) left by an earlier flowlatd", interface, removed);

    if (count_flowlat_tcx_programs(ifindex, attach_tcx_ingress) > 0 ||
        count_flowlat_tcx_programs(ifindex, attach_tcx_egress) > 0)
        return Error{"attach to " + interface + ": another flowlatd process is already attached there", EBUSY};

    // FLOWLATD_ATTACH_MODE=clsact forces the fallback path, e.g. to share hooks with tc tooling
    // or to test it on a kernel that has TCX.
    const char* forced = std::getenv("FLOWLATD_ATTACH_MODE");
    if (forced != nullptr && std::string_view(forced) == "clsact") {
        Status clsact = attachment->attach_clsact(probe);
        if (!clsact) return clsact.error();
        return attachment;
    }
    Status tcx = attachment->attach_tcx(probe);
    if (tcx) return attachment;
    if (tcx.error().errno_value != EINVAL && tcx.error().errno_value != EOPNOTSUPP)
        return tcx.error();
    spdlog::info("{}: TCX not supported by this kernel ({}); using a clsact filter", interface,
                 tcx.error().message());
    Status clsact = attachment->attach_clsact(probe);
    if (!clsact) return clsact.error();
    return attachment;
}

Status TcAttachment::attach_tcx(const Probe& probe)
{
    const int ingress = bpf_link_create(probe.ingress_program_fd(link_), static_cast<int>(ifindex_),
                                        static_cast<bpf_attach_type>(attach_tcx_ingress), nullptr);
    if (ingress < 0) return os_error("attach to " + interface_ + " ingress (tcx)", -ingress);
    ingress_link_.reset(ingress);
    const int egress = bpf_link_create(probe.egress_program_fd(link_), static_cast<int>(ifindex_),
                                       static_cast<bpf_attach_type>(attach_tcx_egress), nullptr);
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
        bool* attached;
        const char* name;
    };
    for (Hook h : {Hook{BPF_TC_INGRESS, probe.ingress_program_fd(link_), &ingress_filter_, "ingress"},
                   Hook{BPF_TC_EGRESS, probe.egress_program_fd(link_), &egress_filter_, "egress"}}) {
        bpf_tc_hook point_hook = make_hook(ifindex_, h.point);
        bpf_tc_opts query = make_opts();
        int queried = 0;
        {
            QuietLibbpf quiet; // "not found" is the usual answer
            queried = bpf_tc_query(&point_hook, &query);
        }
        if (queried == 0 && !is_flowlat_program_id(query.prog_id)) {
            detach_clsact();
            return Error{"attach to " + interface_ + " " + h.name +
                             ": clsact handle 0xf10a priority 1 is held by another program",
                         EBUSY};
        }
        bpf_tc_opts opts = make_opts(h.program_fd);
        opts.flags = BPF_TC_F_REPLACE;
        if (int err = bpf_tc_attach(&point_hook, &opts); err != 0) {
            detach_clsact();
            return os_error("attach to " + interface_ + " " + h.name + " (clsact)", -err);
        }
        *h.attached = true;
    }
    return Ok{};
}

void TcAttachment::detach_clsact()
{
    for (auto [point, attached, name] : {std::tuple{BPF_TC_INGRESS, &ingress_filter_, "ingress"},
                                         std::tuple{BPF_TC_EGRESS, &egress_filter_, "egress"}}) {
        if (!*attached) continue;
        bpf_tc_hook hook = make_hook(ifindex_, point);
        bpf_tc_opts opts = make_opts();
        // ENODEV/ENOENT: the interface (and with it the filter) is already gone.
        if (int err = bpf_tc_detach(&hook, &opts); err != 0 && err != -ENODEV && err != -ENOENT &&
                                                    err != -EINVAL)
            spdlog::warn("{}: detach {} filter: {}", interface_, name, std::strerror(-err));
        *attached = false;
    }
}

TcAttachment::~TcAttachment()
{
    // Closing a TCX link fd detaches it, since flowlatd never pins links.
    ingress_link_.reset();
    egress_link_.reset();
    detach_clsact();
}

} // namespace flowlat::probe
