// The kernel/user contract, from bpf/flowlat.h, with its layout pinned.
#pragma once

#include "flowlat.h"

#include <cstddef>

static_assert(sizeof(flowlat_flow_key) == 44);
static_assert(sizeof(flowlat_transmission) == 16);
static_assert(sizeof(flowlat_flow) == 104);
static_assert(sizeof(flowlat_event_header) == 16);
static_assert(sizeof(flowlat_event) == 88);
static_assert(offsetof(flowlat_event, rtt_ns) == 16);
static_assert(offsetof(flowlat_event, local_addr) == 32);
static_assert(offsetof(flowlat_event, local_port_be) == 64);
static_assert(offsetof(flowlat_event, retransmits) == 68);
static_assert(offsetof(flowlat_event, flags) == 73);
static_assert(offsetof(flowlat_event, cgroup_id) == 80);
static_assert(offsetof(flowlat_flow, cgroup_id) == 96);
static_assert((FLOWLAT_ACK_FILTER_BUCKETS & (FLOWLAT_ACK_FILTER_BUCKETS - 1)) == 0);
static_assert(sizeof(flowlat_ack_bucket) == 8);
static_assert(FLOWLAT_OUTCOME_UNREACHABLE == 3 && FLOWLAT_OUTCOME_ACCEPT_OVERFLOW == 4);
static_assert((FLOWLAT_MAX_TRANSMISSIONS & (FLOWLAT_MAX_TRANSMISSIONS - 1)) == 0);
