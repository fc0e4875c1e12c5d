// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The pipeline benchmark's packet driver. Run with BPF_PROG_TEST_RUN and a large
 * repeat, it turns one test skb into a stream of handshakes without a syscall per
 * packet: every run rewrites the frame in place and tail-calls the program under
 * test (the real probe's egress or ingress program, or the empty program, or the
 * baseline) through a program array that user space fills.
 *
 * The state lives in the frame itself, which test_run keeps across repeats:
 *   - a SYN (we are 198.18.1.x, the client) becomes the peer's SYN-ACK for the same
 *     tuple: addresses and ports swapped, ack = ISN + 1, TSecr = the SYN's TSval;
 *   - anything else (a SYN-ACK, or the frame user space built) becomes the SYN of
 *     the next handshake i = its ack field, to peer i % PEERS from port
 *     PORT_BASE + i / PEERS % PORTS, with ISN = i and TSval = i.
 * So two threads running the driver at once never share state: each has its own
 * skb and its own local address, and an even repeat starting from a SYN-ACK with
 * ack = n drives handshakes n .. n + repeat / 2 - 1.
 *
 * Checksums are not updated: neither the probe nor the baseline reads them.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "driver.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, BENCH_DRIVER_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BENCH_DRIVER_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} driver_counters SEC(".maps");

static __always_inline void count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&driver_counters, &counter);

	if (value)
		*value += 1;
}

SEC("tc")
int bench_driver(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + BENCH_DRIVER_IP_OFF;
	struct tcphdr *tcp = data + BENCH_DRIVER_TCP_OFF;
	__u8 *flags = (__u8 *)tcp + 13;
	/* TSval and TSecr sit at an offset of 2 mod 4; x86's verifier allows unaligned packet access. */
	__be32 *ts = data + BENCH_DRIVER_TSVAL_OFF;
	__u32 slot;

	if (data + BENCH_DRIVER_FRAME_LEN > data_end) {
		count(BENCH_DRIVER_BAD_FRAME);
		return TC_ACT_SHOT;
	}
	if (*flags == TCP_FLAG_SYN) {
		/* The previous run was handshake i's SYN on egress: the peer answers on ingress. */
		__be32 local = ip->saddr;
		__be16 local_port = tcp->source;
		__u32 isn = bpf_ntohl(tcp->seq);

		ip->saddr = ip->daddr;
		ip->daddr = local;
		tcp->source = tcp->dest;
		tcp->dest = local_port;
		tcp->seq = bpf_htonl(isn ^ 0x5a5a5a5a); /* the peer's ISN: anything */
		tcp->ack_seq = bpf_htonl(isn + 1);
		*flags = TCP_FLAG_SYN | TCP_FLAG_ACK;
		ts[1] = ts[0];                        /* TSecr echoes the SYN's TSval */
		ts[0] = bpf_htonl(isn + 1000);        /* the peer's own TSval */
		slot = BENCH_DRIVER_INGRESS;
		count(BENCH_DRIVER_SYN_ACK);
	} else {
		/* A SYN-ACK (ack = i + 1) or user space's first frame (ack = n): the next SYN. */
		__u32 i = bpf_ntohl(tcp->ack_seq);
		__u32 peer = i % BENCH_DRIVER_PEERS;
		__u16 port = BENCH_DRIVER_PORT_BASE + i / BENCH_DRIVER_PEERS % BENCH_DRIVER_PORTS;

		ip->saddr = ip->daddr; /* the local address, destination of the SYN-ACK */
		ip->daddr = bpf_htonl(BENCH_DRIVER_PEER_NET + peer);
		tcp->source = bpf_htons(port);
		tcp->dest = bpf_htons(BENCH_DRIVER_SERVER_PORT);
		tcp->seq = bpf_htonl(i);
		tcp->ack_seq = 0;
		*flags = TCP_FLAG_SYN;
		ts[0] = bpf_htonl(i);
		ts[1] = 0;
		slot = BENCH_DRIVER_EGRESS;
		count(BENCH_DRIVER_SYN);
	}
	bpf_tail_call(skb, &targets, slot);
	/* Only reached when the slot is empty (or the target was replaced by a wrong type). */
	count(BENCH_DRIVER_NO_TARGET);
	return TC_ACT_SHOT;
}
