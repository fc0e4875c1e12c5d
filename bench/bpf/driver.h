/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The pipeline benchmark's packet driver (driver.bpf.c), shared with bench_pipeline.cpp.
 * The frame is the one bench_common's tcp4_frame() builds with linux_syn_options:
 * Ethernet, IPv4 without options, TCP with MSS, SACK-permitted, timestamps, NOP,
 * window scale. bench_pipeline.cpp checks those offsets against the frame it builds.
 */
#ifndef FLOWLAT_BENCH_DRIVER_H
#define FLOWLAT_BENCH_DRIVER_H

#define BENCH_DRIVER_FRAME_LEN 74
#define BENCH_DRIVER_IP_OFF 14
#define BENCH_DRIVER_TCP_OFF 34
#define BENCH_DRIVER_TSVAL_OFF 62 /* the timestamp option's TSval; TSecr follows */

/* Handshake i goes to peer 198.19.0.0 + i % PEERS from port PORT_BASE + i / PEERS % PORTS. */
#define BENCH_DRIVER_PEERS 1000
#define BENCH_DRIVER_PORT_BASE 10000
#define BENCH_DRIVER_PORTS 50000
#define BENCH_DRIVER_SERVER_PORT 443
#define BENCH_DRIVER_PEER_NET 0xc6130000u /* 198.19.0.0, host order */

/* Slots of the program array that user space fills with the programs under test. */
enum bench_driver_slot {
	BENCH_DRIVER_EGRESS = 0,  /* our SYN */
	BENCH_DRIVER_INGRESS = 1, /* the peer's SYN-ACK */
	BENCH_DRIVER_SLOTS = 2,
};

/* Indexes into the driver's per-CPU counters. */
enum bench_driver_counter {
	BENCH_DRIVER_SYN = 0,       /* SYNs handed to the egress slot */
	BENCH_DRIVER_SYN_ACK = 1,   /* SYN-ACKs handed to the ingress slot */
	BENCH_DRIVER_NO_TARGET = 2, /* the tail call fell through (empty slot) */
	BENCH_DRIVER_BAD_FRAME = 3, /* the frame is shorter than BENCH_DRIVER_FRAME_LEN */
	BENCH_DRIVER_COUNTERS = 4,
};

#endif
