/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The original flowlat design, rebuilt only for the benchmark: one perf-buffer
 * record per SYN-flagged packet (SYN and SYN-ACK), matched in user space.
 * Multi-byte fields are in host byte order unless their name ends in _be.
 */
#ifndef FLOWLAT_BENCH_BASELINE_H
#define FLOWLAT_BENCH_BASELINE_H

#ifdef __cplusplus
#include <linux/types.h>
#endif

struct baseline_record {
	__u64 ts_ns;        /* bpf_ktime_get_ns() at the hook */
	__u8 saddr[16];     /* IPv4 in the first four bytes */
	__u8 daddr[16];
	__u16 sport_be;
	__u16 dport_be;
	__u32 seq;
	__u32 ack;
	__u32 ifindex;
	__u8 flags;         /* TCP flags byte */
	__u8 family;        /* 4 or 6 */
	__u8 egress;        /* 1: egress hook */
	__u8 reserved[5];
};

#endif
