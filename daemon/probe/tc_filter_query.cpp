#include "probe/tc_filter_query.hpp"

#include "os/rtnetlink.hpp"

#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace flowlat::probe {

namespace {

using netlink::for_each_attribute;

ClsBpfFilter parse_filter(const nlmsghdr* message)
{
    ClsBpfFilter filter;
    auto* tc = static_cast<const tcmsg*>(NLMSG_DATA(message));
    const std::size_t length = message->nlmsg_len - NLMSG_LENGTH(sizeof(tcmsg));
    for_each_attribute(tc + 1, length, [&](unsigned type, const void* data, std::size_t size) {
        if (type != TCA_OPTIONS) return;
        for_each_attribute(data, size, [&](unsigned bpf_type, const void* value, std::size_t value_size) {
            if (bpf_type == TCA_BPF_ID && value_size >= sizeof(__u32))
                std::memcpy(&filter.program_id, value, sizeof(__u32));
            else if (bpf_type == TCA_BPF_NAME && value_size > 0)
                filter.name.assign(static_cast<const char*>(value), ::strnlen(static_cast<const char*>(value), value_size));
        });
    });
    return filter;
}

} // namespace

std::string program_name_of(const std::string& tca_bpf_name)
{
    return tca_bpf_name.substr(0, tca_bpf_name.find(':'));
}

Result<std::optional<ClsBpfFilter>> query_cls_bpf_filter(unsigned ifindex, bool ingress, __u32 handle,
                                                         __u32 priority)
{
    const std::string what = "query the clsact filter at handle " + std::to_string(handle) + " on ifindex " +
                             std::to_string(ifindex);
    struct {
        nlmsghdr header;
        tcmsg tc;
        std::array<char, 64> attributes;
    } request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
    request.header.nlmsg_type = RTM_GETTFILTER;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    request.header.nlmsg_seq = 1;
    request.tc.tcm_family = AF_UNSPEC;
    request.tc.tcm_ifindex = static_cast<int>(ifindex);
    request.tc.tcm_handle = handle;
    request.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
    request.tc.tcm_info = TC_H_MAKE(priority << 16, htons(ETH_P_ALL));
    // TCA_KIND "bpf": a filter of another kind in our slot answers EINVAL, i.e. "no cls_bpf here".
    auto* kind = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&request) + NLMSG_ALIGN(request.header.nlmsg_len));
    kind->rta_type = TCA_KIND;
    kind->rta_len = RTA_LENGTH(sizeof("bpf"));
    std::memcpy(RTA_DATA(kind), "bpf", sizeof("bpf"));
    request.header.nlmsg_len = NLMSG_ALIGN(request.header.nlmsg_len) + RTA_ALIGN(kind->rta_len);

    std::optional<ClsBpfFilter> found;
    int refused = 0;
    const Status exchanged = netlink::exchange(request.header, [&](const nlmsghdr& message) {
        if (message.nlmsg_type == RTM_NEWTFILTER) {
            found = parse_filter(&message);
            return true;
        }
        if (message.nlmsg_type != NLMSG_ERROR) return true;
        const int error = -static_cast<const nlmsgerr*>(NLMSG_DATA(&message))->error;
        // No such handle (ENOENT), no clsact qdisc, or another protocol or kind at this
        // priority (EINVAL): in every case no cls_bpf filter sits in the slot. 0 is the ACK
        // that ends the answer.
        if (error == ENOENT || error == EINVAL)
            found.reset();
        else
            refused = error;
        return false;
    });
    if (!exchanged) return os_error(what + ": " + exchanged.error().what, exchanged.error().errno_value);
    if (refused != 0) return os_error(what, refused);
    return found;
}

} // namespace flowlat::probe
