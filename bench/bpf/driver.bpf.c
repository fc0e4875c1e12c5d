// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The pipeline benchmark's packet driver. Run with BPF_PROG_TEST_RUN and a large
 * repeat, it turns one test skb into a stream of handshakes without a syscall per
 * packet: every run rewrites the frame in place and tail-calls the program under
 * test (the real probe's egress or ingress program, or the empty program, or the
 * baseline) through a program array that user space fills.
 *
 * The state lives in the frame itself, which test_run keeps across repeats:
 *   - a SYN of handshake j (we are 198.18.1.x, the client) becomes the peer's SYN-ACK
 *     of handshake k = j - pending: ack = k + 1, TSecr = k (SYN k's TSval);
 *   - anything else (a SYN-ACK of k, or the frame user space built) becomes the SYN of
 *     handshake j = ack + pending (= k + 1 + pending).
 * Handshake i goes to peer i % PEERS from port PORT_BASE + i / PEERS % PORTS with
 * ISN = i and TSval = i. With pending = 0 each SYN is answered at once; with
 * pending = W, W flows wait in the flow table, as they would over a real RTT.
 * Two threads running the driver at once never share state: each has its own skb
 * and its own local address, and an even repeat starting from a SYN-ACK with
 * ack = n - pending drives the SYNs of n .. n + repeat / 2 - 1.
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

/* Set by user space between open and load: how many handshakes each SYN-ACK lags behind. */
const volatile __u32 pending = 0;

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
		/* The previous run was handshake j's SYN on egress: the peer of k answers on ingress. */
		__be32 local = ip->saddr;
		__u32 k = bpf_ntohl(tcp->seq) - pending;

		ip->saddr = bpf_htonl(BENCH_DRIVER_PEER_NET + k % BENCH_DRIVER_PEERS);
		ip->daddr = local;
		tcp->source = bpf_htons(BENCH_DRIVER_SERVER_PORT);
		tcp->dest = bpf_htons(BENCH_DRIVER_PORT_BASE + k / BENCH_DRIVER_PEERS % BENCH_DRIVER_PORTS);
		tcp->seq = bpf_htonl(k ^ 0x5a5a5a5a); /* the peer's ISN: anything */
		tcp->ack_seq = bpf_htonl(k + 1);
		*flags = TCP_FLAG_SYN | TCP_FLAG_ACK;
		ts[0] = bpf_htonl(k + 1000);          /* the peer's own TSval */
		ts[1] = bpf_htonl(k);                 /* TSecr echoes SYN k's TSval */
		slot = BENCH_DRIVER_INGRESS;
		count(BENCH_DRIVER_SYN_ACK);
	} else {
		/* A SYN-ACK (ack = k + 1) or user space's first frame: the SYN of j = ack + pending. */
		__u32 j = bpf_ntohl(tcp->ack_seq) + pending;

		ip->saddr = ip->daddr; /* the local address, destination of the SYN-ACK */
		ip->daddr = bpf_htonl(BENCH_DRIVER_PEER_NET + j % BENCH_DRIVER_PEERS);
		tcp->source = bpf_htons(BENCH_DRIVER_PORT_BASE + j / BENCH_DRIVER_PEERS % BENCH_DRIVER_PORTS);
		tcp->dest = bpf_htons(BENCH_DRIVER_SERVER_PORT);
		tcp->seq = bpf_htonl(j);
		tcp->ack_seq = 0;
		*flags = TCP_FLAG_SYN;
		ts[0] = bpf_htonl(j);
		ts[1] = 0;
		slot = BENCH_DRIVER_EGRESS;
		count(BENCH_DRIVER_SYN);
	}
	bpf_tail_call(skb, &targets, slot);
	/* Only reached when the slot is empty (or the target was replaced by a wrong type). */
	count(BENCH_DRIVER_NO_TARGET);
	return TC_ACT_SHOT;
}
