// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The kernel primitives under the probe's slow paths, alone: what any design that keeps
 * one hash entry per pending handshake and reports it through a ring must pay, without
 * the probe's own logic (parsing, TCP option walk, Karn's rule, ACK filter, wakeup policy).
 * bench_kernel times them exactly as it times the probe's "SYN, new entry" and completing
 * rows, so the difference between the two rows is the probe's own share.
 *
 * The maps have the probe's shapes (bpf/flowlat.bpf.c): a BPF_MAP_TYPE_HASH without map
 * flags (preallocated), the 44-byte flowlat_flow_key, the 104-byte flowlat_flow and the
 * default 65,536 entries; a ring buffer of the default size holding 88-byte flowlat_events.
 * bench_kernel resizes both, between open and load, to what the probe it compares against
 * was loaded with.
 *
 * Parsing is reduced to one bounds check and the loads of build_key at fixed offsets
 * (primitives.h): the frames are known to be Ethernet + IPv4 without options + TCP.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

#include "flowlat.h"
#include "primitives.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FLOWLAT_DEFAULT_FLOW_TABLE_SIZE);
	__type(key, struct flowlat_flow_key);
	__type(value, struct flowlat_flow);
} prim_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FLOWLAT_DEFAULT_RING_BUFFER_SIZE);
} prim_events SEC(".maps");

/*
 * The key as the probe's build_key writes it: zeroed, then the IPv4 addresses in the
 * first four bytes of the 16-byte fields, ports in network byte order, ifindex, family.
 * egress: we sent the packet, so its source is the local side.
 */
static __always_inline int read_key(struct __sk_buff *skb, bool egress, struct flowlat_flow_key *key)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + BENCH_PRIM_IP_OFF;
	struct tcphdr *tcp = data + BENCH_PRIM_TCP_OFF;

	/* One check covers both headers: the TCP header ends last. */
	if ((void *)(tcp + 1) > data_end)
		return -1;
	__builtin_memset(key, 0, sizeof(*key));
	key->ifindex = skb->ifindex;
	key->family = FLOWLAT_FAMILY_IPV4;
	key->local_port_be = egress ? tcp->source : tcp->dest;
	key->peer_port_be = egress ? tcp->dest : tcp->source;
	__builtin_memcpy(key->local_addr, egress ? &ip->saddr : &ip->daddr, 4);
	__builtin_memcpy(key->peer_addr, egress ? &ip->daddr : &ip->saddr, 4);
	return 0;
}

/* A new handshake: the clock and one insert of a fresh entry, as on_syn's common case. */
SEC("tc")
int prim_insert(struct __sk_buff *skb)
{
	struct flowlat_flow_key key;
	struct flowlat_flow fresh = {};

	if (read_key(skb, true, &key))
		return TC_ACT_UNSPEC;
	fresh.first_syn_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&prim_flows, &key, &fresh, BPF_NOEXIST);
	return TC_ACT_UNSPEC;
}

/*
 * A completing answer: the clock, the lookup that finds the entry, the delete (a BPF
 * program has no delete-by-pointer, so the key is hashed twice, as in the probe), then
 * one event reserved, filled from the key and the entry, and submitted. The record is
 * filled completely so that the daemon's EventReader decodes it (the benchmark counts
 * them). BPF_RB_NO_WAKEUP on every record: the probe's daemon-mode policy
 * (ring_wakeup_bytes) is its own logic, a bpf_ringbuf_query plus a forced wakeup once per
 * 64 KiB, and is left out here.
 */
SEC("tc")
int prim_complete(struct __sk_buff *skb)
{
	struct flowlat_flow_key key;
	struct flowlat_flow *flow;
	struct flowlat_event *event;
	__u64 now = bpf_ktime_get_ns();
	__u64 first_syn_ns;

	if (read_key(skb, false, &key))
		return TC_ACT_UNSPEC;
	flow = bpf_map_lookup_elem(&prim_flows, &key);
	if (!flow)
		return TC_ACT_UNSPEC;
	/* Read before the delete: the element's memory may be reused at once. */
	first_syn_ns = flow->first_syn_ns;
	if (bpf_map_delete_elem(&prim_flows, &key))
		return TC_ACT_UNSPEC;
	event = bpf_ringbuf_reserve(&prim_events, sizeof(*event), 0);
	if (!event)
		return TC_ACT_UNSPEC;
	event->header.ts_ns = now;
	event->header.type = FLOWLAT_EVENT_HANDSHAKE;
	event->header.ifindex = key.ifindex;
	event->rtt_ns = now - first_syn_ns;
	event->handshake_ns = now - first_syn_ns;
	__builtin_memcpy(event->local_addr, key.local_addr, 16);
	__builtin_memcpy(event->peer_addr, key.peer_addr, 16);
	event->local_port_be = key.local_port_be;
	event->peer_port_be = key.peer_port_be;
	event->retransmits = 0;
	event->family = key.family;
	event->direction = FLOWLAT_DIRECTION_OUTBOUND;
	event->outcome = FLOWLAT_OUTCOME_COMPLETED;
	event->flags = FLOWLAT_EVENT_F_RTT_VALID;
	__builtin_memset(event->reserved, 0, sizeof(event->reserved));
	bpf_ringbuf_submit(event, BPF_RB_NO_WAKEUP);
	return TC_ACT_UNSPEC;
}
