/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of everything that crosses the kernel/user boundary.
 * Included by bpf/flowlat.bpf.c (clang -target bpf) and by the C++ daemon,
 * which pins every size with static_assert. Multi-byte fields are in host
 * byte order unless their name ends in _be.
 */
#ifndef FLOWLAT_H
#define FLOWLAT_H

#ifdef __cplusplus
#include <linux/types.h>
#endif

/*
 * Default bounds; both can be changed before load (flow_table_size, ring_buffer_size). The
 * flow table is an LRU hash: when it is full a new SYN pushes out the least recently used
 * pending handshakes instead of going untracked (a SYN flood cannot blind the probe).
 */
#define FLOWLAT_DEFAULT_FLOW_TABLE_SIZE 65536u
#define FLOWLAT_DEFAULT_RING_BUFFER_SIZE (1u * 1024u * 1024u)

/*
 * Inbound ACKs of established flows must not each cost a hash lookup, so the
 * probe keeps a counting filter: one counter per bucket of flows whose SYN-ACK
 * went out and whose ACK is awaited. A zero bucket means "no lookup needed".
 *
 * A flow pushed out of the LRU flow table while it held a bucket never gives it back, so each
 * bucket counts in two epochs, packed in one 64-bit word (the fast path tests the whole word
 * in one load). The probe arms a flow in the current epoch (ack_epoch); user space makes the
 * other epoch current every handshake_timeout plus two sweep intervals, after zeroing it: by
 * then every flow armed in it ended or was timed out by the sweep, so what is left is a leak.
 */
#define FLOWLAT_ACK_FILTER_BUCKETS 4096u /* power of two */

struct flowlat_ack_bucket {
	__u32 count[2]; /* flows armed in epoch 0 and in epoch 1 */
};

/* Transmissions of the timed packet (SYN or SYN-ACK) remembered for Karn's rule. */
#define FLOWLAT_MAX_TRANSMISSIONS 4u

enum flowlat_direction {
	FLOWLAT_DIRECTION_OUTBOUND = 0, /* SYN seen on egress: we are the client */
	FLOWLAT_DIRECTION_INBOUND = 1,  /* SYN seen on ingress: we are the server */
};

enum flowlat_outcome {
	FLOWLAT_OUTCOME_COMPLETED = 0,
	FLOWLAT_OUTCOME_REFUSED = 1,
	FLOWLAT_OUTCOME_TIMEOUT = 2,
	/* Outbound: an ICMP or ICMPv6 destination-unreachable error quoting our pending SYN. */
	FLOWLAT_OUTCOME_UNREACHABLE = 3,
	/*
	 * Inbound: our SYN-ACK went out again after the ACK that completed the handshake, so the
	 * listener dropped that ACK (accept queue full). Reported once, after `completed`.
	 */
	FLOWLAT_OUTCOME_ACCEPT_OVERFLOW = 4,
};

enum flowlat_family {
	FLOWLAT_FAMILY_IPV4 = 4,
	FLOWLAT_FAMILY_IPV6 = 6,
};

enum flowlat_event_type {
	FLOWLAT_EVENT_HANDSHAKE = 1,
};

/* flowlat_event.flags */
#define FLOWLAT_EVENT_F_RTT_VALID 0x1u /* rtt_ns is an unambiguous sample */

/* Handshake stages (flowlat_flow.stage). Outbound flows stay in SYN_SENT until reported. */
enum flowlat_stage {
	FLOWLAT_STAGE_SYN_SENT = 0,     /* outbound: our SYN left, awaiting SYN-ACK */
	FLOWLAT_STAGE_SYN_RECEIVED = 1, /* inbound: client SYN arrived, our SYN-ACK not yet seen */
	FLOWLAT_STAGE_SYNACK_SENT = 2,  /* inbound: our SYN-ACK left, awaiting the client's ACK */
	/*
	 * Either direction: already reported as a timeout by user space's sweep, which keeps the
	 * entry (first_syn_ns, syn_seq, direction) so that the initiator's later retransmissions of
	 * the same SYN are recognised instead of starting a second handshake. Nothing completes it.
	 */
	FLOWLAT_STAGE_REPORTED = 3,
	/*
	 * Inbound, already reported `completed` at the client's final ACK: kept (by the probe's
	 * put-back after that report; no counting-filter bucket held) so that our SYN-ACK sent
	 * again for the same ISN reveals that the listener dropped that ACK (accept queue full).
	 * The sweep forgets it after FLOWLAT_ACKED_KEPT_NS, without an event.
	 */
	FLOWLAT_STAGE_ACKED = 4,
};

/*
 * How long an ACKED record is kept, from the first SYN: Linux retransmits the SYN-ACK of a
 * request whose final ACK it dropped ~1 s, 3 s and 7 s after the first; one is enough.
 */
#define FLOWLAT_ACKED_KEPT_NS 10000000000ull

/*
 * A flow is keyed from the host's point of view, so both directions of a
 * packet stream hash to the same entry. IPv4 addresses occupy the first four
 * bytes of the 16-byte fields; the rest is zero.
 */
struct flowlat_flow_key {
	__u8 local_addr[16];
	__u8 peer_addr[16];
	__u16 local_port_be;
	__u16 peer_port_be;
	__u32 ifindex;
	__u8 family; /* enum flowlat_family */
	__u8 reserved[3];
};

struct flowlat_transmission {
	__u64 sent_ns; /* bpf_ktime_get_ns() when the timed packet passed the hook */
	__u32 tsval;   /* its TCP timestamp value; meaningful only when has_tsval */
	__u32 has_tsval;
};

/* A handshake in progress. */
struct flowlat_flow {
	__u64 first_syn_ns; /* first SYN seen: the start of handshake_ns */
	struct flowlat_transmission tx[FLOWLAT_MAX_TRANSMISSIONS];
	__u32 syn_seq;      /* the client's ISN */
	__u32 expected_ack; /* ack that completes the handshake: timed packet's seq + 1 */
	/* Payload of the client's first SYN (TCP Fast Open): its answer may ack ISN + 1 + this. */
	__u32 syn_data_len;
	__u16 transmissions; /* how often the timed packet was sent; 0 while SYN_RECEIVED */
	__u8 direction;      /* enum flowlat_direction */
	__u8 stage;          /* enum flowlat_stage */
	__u32 ack_filter_bucket; /* counting-filter bucket held while SYNACK_SENT */
	__u32 ack_filter_epoch;  /* the epoch (0 or 1) that bucket was counted in */
	/*
	 * cgroup v2 id of the local socket (bpf_skb_cgroup_id): from our SYN (outbound) or our
	 * first SYN-ACK, owned by the request socket and so by its listener (inbound). 0: the
	 * packet carried no socket (a SYN cookie's SYN-ACK, a forwarded packet): unknown.
	 */
	__u64 cgroup_id;
};

/* Every ring buffer record starts with this header. */
struct flowlat_event_header {
	__u64 ts_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) of the outcome */
	__u32 type;  /* enum flowlat_event_type */
	__u32 ifindex;
};

struct flowlat_event {
	struct flowlat_event_header header;
	__u64 rtt_ns;       /* valid only when flags & FLOWLAT_EVENT_F_RTT_VALID */
	__u64 handshake_ns; /* first SYN to the answer (or to the sweep, for a timeout) */
	__u8 local_addr[16];
	__u8 peer_addr[16];
	__u16 local_port_be;
	__u16 peer_port_be;
	__u16 retransmits; /* SYN retransmissions (outbound) or SYN-ACK retransmissions (inbound) */
	__u8 family;       /* enum flowlat_family */
	__u8 direction;    /* enum flowlat_direction */
	__u8 outcome;      /* enum flowlat_outcome */
	__u8 flags;        /* FLOWLAT_EVENT_F_* */
	__u8 reserved[6];
	__u64 cgroup_id;   /* flowlat_flow.cgroup_id; 0: unknown */
};

/* Indexes into the per-CPU counters array. */
enum flowlat_counter {
	FLOWLAT_COUNTER_EVENTS_LOST = 0,     /* ring buffer full */
	FLOWLAT_COUNTER_FLOW_TABLE_FULL = 1, /* a new handshake found no room */
	FLOWLAT_COUNTER_PACKETS_MALFORMED = 2, /* headers truncated or invalid */
	FLOWLAT_COUNTER_ABANDONED = 3,       /* pending handshake replaced by a new ISN */
	FLOWLAT_COUNTER_ABORTED = 4,         /* inbound: the client reset instead of its final ACK (or at SYN_RECEIVED) */
	/*
	 * An ingress answer (SYN-ACK, RST, final ACK, ICMP error) or a client's SYN with a new
	 * ISN that would have ended or replaced a handshake but that the host's stack drops: not
	 * for this host, a bad IP header, a fragment, a misplaced IPv6 Hop-by-Hop header, a TCP
	 * header past the segment, a bad checksum. The flow waits on.
	 */
	FLOWLAT_COUNTER_ANSWERS_REJECTED = 5,
	/*
	 * Entries the probe inserted into and deleted from the flow table. The LRU table does not
	 * report what it pushes out; user space derives evictions from these, its own inserts and
	 * deletes, and the entries it finds (flowlat_flow_table_evictions_total).
	 */
	FLOWLAT_COUNTER_FLOW_INSERTS = 6,
	FLOWLAT_COUNTER_FLOW_DELETES = 7,
	FLOWLAT_COUNTER_MAX = 8,
};

#endif /* FLOWLAT_H */
