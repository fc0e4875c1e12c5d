/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel-path benchmark's primitives (primitives.bpf.c), shared with bench_kernel.cpp.
 * The programs read the key at fixed offsets of the frame bench_common's tcp4_frame()
 * builds: Ethernet, IPv4 without options, TCP. bench_kernel.cpp checks those offsets
 * against the frames it feeds them.
 */
#ifndef FLOWLAT_BENCH_PRIMITIVES_H
#define FLOWLAT_BENCH_PRIMITIVES_H

#define BENCH_PRIM_IP_OFF 14  /* after the Ethernet header */
#define BENCH_PRIM_TCP_OFF 34 /* after an IPv4 header without options */

#endif
