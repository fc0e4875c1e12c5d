// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor of the kernel-path benchmark: a TC program that does nothing.
 * BPF_PROG_TEST_RUN's per-run overhead (loop, timer, context) is all it costs,
 * so every probe path is reported as "this much above the empty program".
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int bench_empty(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}
