// Reading one cls_bpf filter of a clsact hook over rtnetlink, to tell flowlatd's own filter
// from someone else's without a program fd: BPF_PROG_GET_FD_BY_ID needs CAP_SYS_ADMIN, which
// the systemd unit does not grant, while RTM_GETTFILTER needs no capability at all.
#pragma once

#include "os/result.hpp"

#include <linux/types.h>

#include <optional>
#include <string>

namespace flowlat::probe {

struct ClsBpfFilter {
    __u32 program_id{0};
    std::string name; // TCA_BPF_NAME as the attaching tool set it; libbpf writes "flowlat_ingress:[42]"
};

// The cls_bpf filter at (handle, priority, protocol all) on the ingress or egress hook of the
// clsact qdisc of ifindex; nullopt when that slot is empty or there is no clsact qdisc.
Result<std::optional<ClsBpfFilter>> query_cls_bpf_filter(unsigned ifindex, bool ingress, __u32 handle,
                                                         __u32 priority);

// The program name inside a TCA_BPF_NAME: "flowlat_ingress:[42]" -> "flowlat_ingress".
std::string program_name_of(const std::string& tca_bpf_name);

} // namespace flowlat::probe
