// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Benchmark baseline: the original flowlat tool's design. Every TCP packet
 * with SYN set (SYN, SYN-ACK) becomes one perf-buffer record; user space
 * matches SYN to SYN-ACK in a hash table. IPv4 and IPv6, no VLAN tags, no
 * extension headers: enough for the benchmark's frames, not a product.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "baseline.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} records SEC(".maps");

static __always_inline int handle(struct __sk_buff *skb, bool egress)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct baseline_record rec = {};
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > data_end)
		return TC_ACT_UNSPEC;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP || ip->ihl < 5)
			return TC_ACT_UNSPEC;
		tcp = (void *)ip + (ip->ihl & 0xf) * 4;
		__builtin_memcpy(rec.saddr, &ip->saddr, 4);
		__builtin_memcpy(rec.daddr, &ip->daddr, 4);
		rec.family = 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_TCP)
			return TC_ACT_UNSPEC;
		tcp = (void *)(ip6 + 1);
		__builtin_memcpy(rec.saddr, &ip6->saddr, 16);
		__builtin_memcpy(rec.daddr, &ip6->daddr, 16);
		rec.family = 6;
	} else {
		return TC_ACT_UNSPEC;
	}
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_UNSPEC;
	rec.flags = ((__u8 *)tcp)[13];
	if (!(rec.flags & 0x02)) /* SYN */
		return TC_ACT_UNSPEC;
	rec.ts_ns = bpf_ktime_get_ns();
	rec.sport_be = tcp->source;
	rec.dport_be = tcp->dest;
	rec.seq = bpf_ntohl(tcp->seq);
	rec.ack = bpf_ntohl(tcp->ack_seq);
	rec.ifindex = skb->ifindex;
	rec.egress = egress;
	bpf_perf_event_output(skb, &records, BPF_F_CURRENT_CPU, &rec, sizeof(rec));
	return TC_ACT_UNSPEC;
}

SEC("tc")
int baseline_ingress(struct __sk_buff *skb)
{
	return handle(skb, false);
}

SEC("tc")
int baseline_egress(struct __sk_buff *skb)
{
	return handle(skb, true);
}
