// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * flowlatd's TC probe: matches SYN, SYN-ACK, ACK and RST per flow and emits
 * one flowlat_event per finished handshake. It is a guest on the interface:
 * every path returns TC_ACT_UNSPEC and nothing is written to the packet.
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "flowlat.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Set by the loader between open and load: wake the reader only once this much is queued
 * (0: on every event); it also polls on a timer.
 */
const volatile __u32 ring_wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FLOWLAT_DEFAULT_FLOW_TABLE_SIZE);
	__type(key, struct flowlat_flow_key);
	__type(value, struct flowlat_flow);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, FLOWLAT_DEFAULT_RING_BUFFER_SIZE);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOWLAT_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * Counting filter of flows awaiting their final ACK (see flowlat.h). A global
 * array compiles to a direct load, so the established-flow ACK path costs no
 * map call. User space decrements a bucket when its sweep times out a flow, and
 * zeroes an epoch's counts before making it current again (ack_epoch).
 */
struct flowlat_ack_bucket ack_filter[FLOWLAT_ACK_FILTER_BUCKETS] __attribute__((aligned(8)));
__u32 ack_epoch;

/* A ring record as the queue counts it: the event plus the ring's 8-byte record header. */
#define FLOWLAT_RING_RECORD_BYTES (sizeof(struct flowlat_event) + BPF_RINGBUF_HDR_SZ)

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT_HEADERS 6
#define MAX_TCP_OPTIONS 12

/* Kernel-internal TCP option constants, not exported by the UAPI. */
#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_TIMESTAMP 8
#define TCPOLEN_TIMESTAMP 10

/*
 * What parse_ipv6 finds on its walk that makes the host's stack keep the packet from TCP
 * (struct tcp_packet.ipv6_drop). answer_accepted refuses such an answer; nothing else reads it.
 */
#define IPV6_DROP_MORE_FRAGMENTS 0x1 /* a fragment header with M: a first fragment, reassembly first */
#define IPV6_DROP_HOP_BY_HOP_LATE 0x2 /* hop-by-hop options not right after the fixed header */

/* Not in the UAPI headers. */
struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct ipv6_fragment_header {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in the top 13 bits, M flag in the lowest */
	__be32 identification;
};

/* What the fast path extracts from one TCP packet. */
struct tcp_packet {
	void *l3;     /* IPv4 or IPv6 header */
	__u32 l3_off; /* its offset from skb->data */
	__u32 l4_off; /* offset of the TCP header from skb->data */
	__u8 family;
	__u8 flags;
	/* IPv6: why the stack will not hand the packet to TCP as it is (IPV6_DROP_*), 0 if no reason. */
	__u8 ipv6_drop;
	__u16 sport_be;
	__u16 dport_be;
	/* Ingress ACK filter inputs, read while the headers are in hand (see on_ack_received). */
	__u32 addr_fold; /* saddr ^ daddr, folded to 32 bits as in fold_key_addresses */
	__u32 ports_in;  /* dport_be << 16 | sport_be: the key's local << 16 | peer, ingress */
	__u32 seq;
	__u32 ack;
	__u32 doff_bytes;
};

static __always_inline void count(__u32 counter);

/* Every insert into and delete from the flow table by the probe is counted (see flowlat.h). */
static __always_inline long insert_flow(const struct flowlat_flow_key *key, const struct flowlat_flow *flow);
static __always_inline long delete_flow(const struct flowlat_flow_key *key);

static __always_inline void count(__u32 counter)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &counter);

	if (value)
		*value += 1;
}

static __always_inline long insert_flow(const struct flowlat_flow_key *key, const struct flowlat_flow *flow)
{
	long err = bpf_map_update_elem(&flows, key, flow, BPF_NOEXIST);

	if (err == 0)
		count(FLOWLAT_COUNTER_FLOW_INSERTS);
	return err;
}

static __always_inline long delete_flow(const struct flowlat_flow_key *key)
{
	long err = bpf_map_delete_elem(&flows, key);

	if (err == 0)
		count(FLOWLAT_COUNTER_FLOW_DELETES);
	return err;
}

/*
 * The verifier accepts a packet access at data + off only after a comparison with data_end,
 * and it takes that comparison as proof only while the largest value off may hold is below
 * 64 KiB (MAX_PACKET_OFF). Offsets here come from header fields (IHL, IPv6 extension
 * lengths), grow in a loop, or come back from struct tcp_packet on the stack, and clang is
 * free to widen, spill or merge that arithmetic: the verifier may then see no upper bound and
 * reject the access. Masking every such offset just before it is added to data gives the
 * bound back, with room below 64 KiB for the header sizes added after it. 0x3fff is larger
 * than any header chain the probe walks (at most Ethernet, two tags, IPv6 and six extension
 * headers of up to 2 KiB: 12,350 bytes), so at run time the mask never changes an offset.
 */
#define PACKET_OFF_BOUND 0x3fff

static __always_inline __u32 bounded_off(__u32 off)
{
	return off & PACKET_OFF_BOUND;
}

/* How a header parser ends: go on, leave the packet alone, or leave it and count it. */
enum parse_result {
	PARSE_OK = 0,
	PARSE_SKIP,
	PARSE_MALFORMED,
	PARSE_ICMP, /* an ICMP or ICMPv6 message: pkt->l3_off, l4_off and family are set */
};

/* Where the parsers are in the packet. */
struct cursor {
	void *data;
	void *data_end;
	__u32 off; /* of the next header from data */
};

/* Ethernet and up to MAX_VLAN_TAGS in-band tags; *proto is the ethertype of what follows. */
static __always_inline enum parse_result parse_link(struct __sk_buff *skb, struct cursor *c, bool ethernet,
						    __be16 *proto)
{
	struct ethhdr *eth = c->data;

	if (!ethernet) {
		/* Raw-IP devices (tun, WireGuard, ip tunnels) have no link header at TC. */
		*proto = (__be16)skb->protocol;
		return PARSE_OK;
	}
	if ((void *)(eth + 1) > c->data_end)
		return PARSE_SKIP;
	*proto = eth->h_proto;
	c->off = sizeof(*eth);

	/* In-band tags. A tag the kernel already moved into skb metadata is simply absent here. */
#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_tag *tag;

		if (*proto != bpf_htons(ETH_P_8021Q) && *proto != bpf_htons(ETH_P_8021AD))
			break;
		tag = c->data + c->off;
		if ((void *)(tag + 1) > c->data_end)
			return PARSE_MALFORMED;
		*proto = tag->encapsulated_proto;
		c->off += sizeof(*tag);
	}
	return PARSE_OK;
}

/*
 * Records the network header at the cursor in pkt->l3; false when the packet ends inside its
 * first `size` bytes. (A bool, not a pointer that may be NULL: that would cost a test.)
 */
static __always_inline bool network_header(const struct cursor *c, struct tcp_packet *pkt, __u32 size,
					   __u8 family)
{
	void *l3 = c->data + c->off;

	if (l3 + size > c->data_end)
		return false;
	pkt->l3 = l3;
	pkt->l3_off = c->off;
	pkt->family = family;
	pkt->ipv6_drop = 0;
	return true;
}

static __always_inline enum parse_result parse_ipv4(struct cursor *c, struct tcp_packet *pkt)
{
	struct iphdr *ip;
	__u32 ihl_bytes;

	if (!network_header(c, pkt, sizeof(*ip), FLOWLAT_FAMILY_IPV4))
		return PARSE_MALFORMED;
	ip = pkt->l3;
	if (ip->protocol != IPPROTO_TCP) {
		/* Checked only once the packet is known not to be TCP: the TCP path pays nothing. */
		if (ip->protocol == IPPROTO_ICMP) {
			pkt->l4_off = c->off + ip->ihl * 4;
			return PARSE_ICMP;
		}
		return PARSE_SKIP;
	}
	/* Only the first fragment carries the TCP header. */
	if (ip->frag_off & bpf_htons(0x1fff))
		return PARSE_SKIP;
	ihl_bytes = ip->ihl * 4;
	if (ihl_bytes < sizeof(*ip))
		return PARSE_MALFORMED;
	pkt->addr_fold = ip->saddr ^ ip->daddr;
	c->off += ihl_bytes;
	return PARSE_OK;
}

/* The fixed header, then up to MAX_IPV6_EXT_HEADERS extension headers until TCP. */
static __always_inline enum parse_result parse_ipv6(struct cursor *c, struct tcp_packet *pkt)
{
	struct ipv6hdr *ip6;
	__u8 nexthdr;

	if (!network_header(c, pkt, sizeof(*ip6), FLOWLAT_FAMILY_IPV6))
		return PARSE_MALFORMED;
	ip6 = pkt->l3;
	nexthdr = ip6->nexthdr;
	c->off += sizeof(*ip6);

	for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
		if (nexthdr == IPPROTO_TCP)
			break;
		if (nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING || nexthdr == IPPROTO_DSTOPTS) {
			struct ipv6_opt_hdr *ext = c->data + bounded_off(c->off);

			if ((void *)(ext + 1) > c->data_end)
				return PARSE_MALFORMED;
			/*
			 * ipv6_rcv reads hop-by-hop options only right after the fixed header; met later,
			 * next header 0 names no protocol and the stack drops the packet (parameter problem).
			 * Only flagged here: the walk goes on so that a SYN-ACK, RST or ACK is known as one.
			 */
			if (nexthdr == IPPROTO_HOPOPTS && i != 0)
				pkt->ipv6_drop |= IPV6_DROP_HOP_BY_HOP_LATE;
			nexthdr = ext->nexthdr;
			c->off = bounded_off(c->off) + (ext->hdrlen + 1) * 8;
		} else if (nexthdr == IPPROTO_FRAGMENT) {
			struct ipv6_fragment_header *frag = c->data + bounded_off(c->off);

			if ((void *)(frag + 1) > c->data_end)
				return PARSE_MALFORMED;
			if (frag->frag_off & bpf_htons(0xfff8))
				return PARSE_SKIP;
			/* The M flag is bit 0 of the host-order field: a __u8 of it must test, not truncate. */
			if (frag->frag_off & bpf_htons(1))
				pkt->ipv6_drop |= IPV6_DROP_MORE_FRAGMENTS;
			nexthdr = frag->nexthdr;
			c->off = bounded_off(c->off) + sizeof(*frag);
		} else {
			if (nexthdr == IPPROTO_ICMPV6) {
				pkt->l4_off = c->off;
				return PARSE_ICMP;
			}
			return PARSE_SKIP;
		}
	}
	if (nexthdr != IPPROTO_TCP)
		return PARSE_SKIP;
	pkt->addr_fold = ip6->saddr.in6_u.u6_addr32[0] ^ ip6->saddr.in6_u.u6_addr32[1] ^
			 ip6->saddr.in6_u.u6_addr32[2] ^ ip6->saddr.in6_u.u6_addr32[3] ^
			 ip6->daddr.in6_u.u6_addr32[0] ^ ip6->daddr.in6_u.u6_addr32[1] ^
			 ip6->daddr.in6_u.u6_addr32[2] ^ ip6->daddr.in6_u.u6_addr32[3];
	return PARSE_OK;
}

static __always_inline enum parse_result parse_tcp_header(struct cursor *c, struct tcp_packet *pkt)
{
	__u32 off = bounded_off(c->off);
	struct tcphdr *tcp = c->data + off;

	if ((void *)(tcp + 1) > c->data_end)
		return PARSE_MALFORMED;
	pkt->l4_off = off;
	pkt->flags = ((__u8 *)tcp)[13];
	/* Both ports in one load; the unused halves of pkt are dropped by the compiler per program. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	pkt->ports_in = *(__u32 *)tcp;
#else
	pkt->ports_in = (__u32)tcp->dest << 16 | tcp->source;
#endif
	pkt->sport_be = tcp->source;
	pkt->dport_be = tcp->dest;
	pkt->doff_bytes = tcp->doff * 4;
	if (pkt->doff_bytes < sizeof(*tcp))
		return PARSE_MALFORMED;
	return PARSE_OK;
}

/* PARSE_OK when the packet is TCP and *pkt is filled; anything else means "leave it". */
static __always_inline enum parse_result parse_tcp(struct __sk_buff *skb, struct tcp_packet *pkt, bool ethernet)
{
	struct cursor c = {
		.data = (void *)(long)skb->data,
		.data_end = (void *)(long)skb->data_end,
		.off = 0,
	};
	enum parse_result result;
	__be16 proto;

	result = parse_link(skb, &c, ethernet, &proto);
	if (result == PARSE_OK) {
		if (proto == bpf_htons(ETH_P_IP))
			result = parse_ipv4(&c, pkt);
		else if (proto == bpf_htons(ETH_P_IPV6))
			result = parse_ipv6(&c, pkt);
		else
			result = PARSE_SKIP;
	}
	if (result == PARSE_OK)
		result = parse_tcp_header(&c, pkt);
	if (result == PARSE_MALFORMED)
		count(FLOWLAT_COUNTER_PACKETS_MALFORMED);
	return result;
}

/* Loads seq and ack only for the packets that reach the handshake logic. */
static __always_inline int load_seq_ack(struct __sk_buff *skb, struct tcp_packet *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct tcphdr *tcp = data + bounded_off(pkt->l4_off);

	if ((void *)(tcp + 1) > data_end)
		return -1;
	pkt->seq = bpf_ntohl(tcp->seq);
	pkt->ack = bpf_ntohl(tcp->ack_seq);
	return 0;
}

/* Bytes of TCP payload, from the IP length fields; read only for SYNs (TCP Fast Open). */
static __always_inline __u32 tcp_payload_length(struct __sk_buff *skb, const struct tcp_packet *pkt)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 l3_off = bounded_off(pkt->l3_off);
	__u32 ip_end;

	if (pkt->family == FLOWLAT_FAMILY_IPV4) {
		struct iphdr *ip = data + l3_off;

		if ((void *)(ip + 1) > data_end)
			return 0;
		ip_end = l3_off + bpf_ntohs(ip->tot_len);
	} else {
		struct ipv6hdr *ip6 = data + l3_off;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		ip_end = l3_off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	}
	return ip_end > pkt->l4_off + pkt->doff_bytes ? ip_end - pkt->l4_off - pkt->doff_bytes : 0;
}

/*
 * Whether the host's stack will take an ingress packet that is about to end a handshake
 * (never asked on the fast path: only after the flow lookup matched). See answer_accepted.
 *
 * bpf_csum_diff sums at most 512 bytes a call and the segment may lie beyond the linear
 * part, so it is copied chunk by chunk into a per-CPU scratch buffer. 18 chunks cover a
 * 9,000-byte MTU; a longer segment only arrives through GRO or LRO, which verified it.
 */
#define CSUM_CHUNK_BYTES 512
#define CSUM_MAX_CHUNKS 18
#define IPV4_MAX_HEADER_BYTES 60
#define IPV4_MAX_OPTION_STEPS 40 /* 40 bytes of options: at most 40 one-byte NOPs */
#define IP_MF_OR_OFFSET 0x3fff  /* in frag_off, host order: more fragments, or an offset */

/* The scratch buffer: a chunk, and room for the verifier's mask-derived bounds (1023). */
struct answer_scratch {
	__u8 chunk[2 * CSUM_CHUNK_BYTES];
	__u8 header[64]; /* the IP header (IPv4 with options: 60 bytes; IPv6: 40) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct answer_scratch);
} scratch SEC(".maps");

/* A 32-bit one's complement sum folded to 16 bits, in the byte order it was summed in. */
static __always_inline __u16 csum_fold16(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/*
 * The options ip_options_compile() refuses on receive (lengths below 2 or past the header;
 * record-route and timestamp pointers below their minimum or with no room for the next
 * slot; router alert shorter than 4) and the source-route options ip_rcv_options() drops
 * while accept_source_route is 0, the kernel's default. Options start at options_off in the
 * packet and fill options_bytes.
 *
 * A global function of scalars of its own, verified once. Each byte is read with
 * bpf_skb_load_bytes at a run-time offset, so the walk's position never becomes a pointer
 * offset: the verifier does not have to track its exact range, both ways of stepping (a NOP
 * or a whole option) meet at the loop head in states it prunes, and its work grows with the
 * loop's bound instead of exponentially (indexing a copied header made one load exceed the
 * verifier's 1,000,000-instruction budget).
 */
__noinline int ipv4_options_valid(struct __sk_buff *skb, __u32 options_off, __u32 options_bytes)
{
	__u32 i = 0;

	if (!skb)
		return 0;
	for (int step = 0; step < IPV4_MAX_OPTION_STEPS; step++) {
		__u8 option[3];

		if (i >= options_bytes)
			return 1;
		if (bpf_skb_load_bytes(skb, options_off + i, option, 1))
			return 0;
		if (option[0] == IPOPT_END)
			return 1;
		if (option[0] == IPOPT_NOOP) {
			i++;
			continue;
		}
		if (options_bytes - i < 2 || bpf_skb_load_bytes(skb, options_off + i, option, 2))
			return 0;
		if (option[1] < 2 || option[1] > options_bytes - i)
			return 0;
		if (option[0] == IPOPT_LSRR || option[0] == IPOPT_SSRR)
			return 0;
		if (option[0] == IPOPT_RA && option[1] < 4)
			return 0;
		if (option[0] == IPOPT_RR || option[0] == IPOPT_TIMESTAMP) {
			__u8 min_pointer = option[0] == IPOPT_RR ? 4 : 5;

			if (option[1] < min_pointer - 1 || bpf_skb_load_bytes(skb, options_off + i, option, 3))
				return 0;
			if (option[2] < min_pointer || (option[2] <= option[1] && option[2] + 3 > option[1]))
				return 0;
		}
		i += option[1];
	}
	return i >= options_bytes;
}

/*
 * The answer as the host's stack checks it before TCP (or ICMP) sees it: addressed to this
 * host (pkt_type: not another host's MAC, broadcast or multicast); a valid IP header
 * (ip_rcv_core: version, IHL, a right header checksum, total length within the packet, no
 * fragment: reassembly happens after TC, so a fragmented answer never passes the hook
 * whole; ipv6_rcv: version, a payload length within the packet, 0 being a jumbogram without
 * its option; and what parse_ipv6 flagged on the extension headers: a fragment header with M,
 * hop-by-hop options after another header); the transport header inside the segment
 * (l4_min_bytes); and a right checksum, unless the device verified it (CHECKSUM_UNNECESSARY,
 * which bpf_csum_level reports).
 *
 * `info` packs what the callers know: family (bits 0-7), the IPV6_DROP_* flags (bits 8-15),
 * the transport protocol (bits 16-23) and the bytes its header must have (bits 24-31).
 *
 * A global function: the verifier checks it once, on its own, and not at each caller; the
 * callers only pass scalars. Returns 1 when the stack will accept the packet.
 */
__noinline int answer_accepted(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, __u32 info)
{
	__u32 zero = 0, family = info & 0xff, protocol = info >> 16 & 0xff, l4_min = info >> 24;
	__u32 header_bytes, segment, remaining, offset, sum;
	struct answer_scratch *s;
	__be32 tail[2];
	__u16 field;
	__s64 csum;
	__u8 *hdr;

	if (!skb || skb->pkt_type != PACKET_HOST)
		return 0;
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		return 0;
	hdr = s->header;
	if (l4_off <= l3_off)
		return 0;
	if (family == FLOWLAT_FAMILY_IPV4) {
		__u32 total;

		if (bpf_skb_load_bytes(skb, l3_off, hdr, sizeof(struct iphdr)))
			return 0;
		header_bytes = (hdr[0] & 0xf) * 4;
		barrier_var(header_bytes);
		if (hdr[0] >> 4 != 4 || header_bytes < sizeof(struct iphdr) || l4_off - l3_off != header_bytes)
			return 0;
		if (((__u16)hdr[6] << 8 | hdr[7]) & IP_MF_OR_OFFSET)
			return 0;
		total = (__u16)hdr[2] << 8 | hdr[3];
		if (total < header_bytes + l4_min || total > skb->len - l3_off)
			return 0;
		if (header_bytes > sizeof(struct iphdr) && bpf_skb_load_bytes(skb, l3_off, hdr, header_bytes))
			return 0;
		/* header_bytes: a multiple of 4 from 20 to 60, as bpf_csum_diff wants. */
		csum = bpf_csum_diff(NULL, 0, (__be32 *)hdr, header_bytes, 0);
		if (csum < 0 || csum_fold16((__u32)csum) != 0xffff)
			return 0;
		if (header_bytes > sizeof(struct iphdr) &&
		    !ipv4_options_valid(skb, l3_off + sizeof(struct iphdr), header_bytes - sizeof(struct iphdr)))
			return 0;
		segment = total - header_bytes;
		/* The pseudo-header's addresses: saddr and daddr, bytes 12 to 20. */
		csum = protocol == IPPROTO_ICMP ? 0 : bpf_csum_diff(NULL, 0, (__be32 *)(hdr + 12), 8, 0);
	} else {
		__u32 payload, extensions;

		if (info & 0xff00)
			return 0;
		if (bpf_skb_load_bytes(skb, l3_off, hdr, sizeof(struct ipv6hdr)))
			return 0;
		if (hdr[0] >> 4 != 6)
			return 0;
		payload = (__u16)hdr[4] << 8 | hdr[5];
		extensions = l4_off - l3_off - sizeof(struct ipv6hdr);
		if (l4_off - l3_off < sizeof(struct ipv6hdr) || payload < extensions + l4_min ||
		    sizeof(struct ipv6hdr) + payload > skb->len - l3_off)
			return 0;
		segment = payload - extensions;
		csum = bpf_csum_diff(NULL, 0, (__be32 *)(hdr + 8), 32, 0); /* saddr, daddr */
	}
	if (csum < 0)
		return 0;
	if (bpf_csum_level(skb, BPF_CSUM_LEVEL_QUERY) >= 0)
		return 1;
	sum = (__u32)csum;
	if (protocol != IPPROTO_ICMP) {
		tail[0] = bpf_htonl(segment);
		tail[1] = bpf_htonl(protocol);
		csum = bpf_csum_diff(NULL, 0, tail, sizeof(tail), sum);
		if (csum < 0)
			return 0;
		sum = (__u32)csum;
	}
	/*
	 * A TCP segment whose checksum is still to be filled in (CHECKSUM_PARTIAL: sent by
	 * another namespace of this host over a veth) carries the bare pseudo-header sum, and
	 * the stack accepts it unchecked. BPF cannot read ip_summed, so that shape is known by
	 * its value (a corrupted segment that happens to hold it: 1 in 65,536).
	 */
	if (protocol == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, l4_off + offsetof(struct tcphdr, check), &field, sizeof(field)))
			return 0;
		if (field == csum_fold16(sum))
			return 1;
	}
	if (segment > CSUM_MAX_CHUNKS * CSUM_CHUNK_BYTES)
		return 1;
	remaining = segment;
	offset = l4_off;
	for (int chunk = 0; chunk < CSUM_MAX_CHUNKS; chunk++) {
		__u32 bytes = remaining < CSUM_CHUNK_BYTES ? remaining : CSUM_CHUNK_BYTES;
		__u32 words;

		barrier_var(bytes);
		if (bytes == 0 || bytes > CSUM_CHUNK_BYTES)
			break;
		words = (bytes + 3) & ~3u;
		/* An odd tail is summed with zeros after it, as the checksum defines. */
		*(__u32 *)&s->chunk[(words - 4) & (CSUM_CHUNK_BYTES - 4)] = 0;
		if (bpf_skb_load_bytes(skb, offset, s->chunk, bytes))
			return 0;
		csum = bpf_csum_diff(NULL, 0, (__be32 *)s->chunk, words & (2 * CSUM_CHUNK_BYTES - 4), sum);
		if (csum < 0)
			return 0;
		sum = (__u32)csum;
		offset += bytes;
		remaining -= bytes;
	}
	return remaining == 0 && csum_fold16(sum) == 0xffff;
}

/* Counts what answer_accepted refuses: the flow waits for the valid retransmission. */
static __always_inline bool host_accepts(struct __sk_buff *skb, const struct tcp_packet *pkt)
{
	__u32 info = pkt->family | (__u32)pkt->ipv6_drop << 8 | (__u32)IPPROTO_TCP << 16 |
		     (pkt->doff_bytes & 0xff) << 24;

	if (answer_accepted(skb, pkt->l3_off, pkt->l4_off, info))
		return true;
	count(FLOWLAT_COUNTER_ANSWERS_REJECTED);
	return false;
}

/* The ack that answers the client's SYN: ISN + 1, or past its Fast Open data when accepted. */
static __always_inline bool acks_syn(const struct flowlat_flow *flow, __u32 ack)
{
	return ack == flow->syn_seq + 1 || (flow->syn_data_len && ack == flow->syn_seq + 1 + flow->syn_data_len);
}

/*
 * The generic walk for the TCP timestamp option. Options are copied to the
 * stack because they may lie beyond the linear part of the skb, and the probe
 * must not pull (linearise) packets.
 */
/* The option's two values, written by read_timestamps_walk. */
struct tcp_timestamps {
	__u32 tsval;
	__u32 tsecr;
};

/*
 * The generic walk for the TCP timestamp option over the len bytes of options at
 * options_off. Options are copied to the stack because they may lie beyond the linear part
 * of the skb, and the probe must not pull (linearise) packets. A global function: the
 * verifier checks it once, not at each of the places that read timestamps (inlined there,
 * it made up most of the egress programs' verification).
 */
__noinline int read_timestamps_walk(struct __sk_buff *skb, __u32 options_off, __u32 len, struct tcp_timestamps *ts)
{
	__u8 opts[40] = {};
	__u32 i = 0;

	if (!skb || !ts || len == 0)
		return -1;
	/* Keeps clang from merging the two checks into one the verifier cannot follow. */
	barrier_var(len);
	if (len > sizeof(opts))
		return -1;
	if (bpf_skb_load_bytes(skb, options_off, opts, len))
		return -1;

	for (int n = 0; n < MAX_TCP_OPTIONS; n++) {
		__u8 kind, optlen;

		if (i >= len || i >= sizeof(opts) - 1)
			return -1;
		kind = opts[i];
		if (kind == TCPOPT_EOL)
			return -1;
		if (kind == TCPOPT_NOP) {
			i++;
			continue;
		}
		optlen = opts[i + 1];
		if (kind == TCPOPT_TIMESTAMP && optlen == TCPOLEN_TIMESTAMP) {
			if (i + TCPOLEN_TIMESTAMP > len || i > sizeof(opts) - TCPOLEN_TIMESTAMP)
				return -1;
			ts->tsval = (__u32)opts[i + 2] << 24 | (__u32)opts[i + 3] << 16 | (__u32)opts[i + 4] << 8 |
				    opts[i + 5];
			ts->tsecr = (__u32)opts[i + 6] << 24 | (__u32)opts[i + 7] << 16 | (__u32)opts[i + 8] << 8 |
				    opts[i + 9];
			return 0;
		}
		if (optlen < 2)
			return -1;
		i += optlen;
	}
	return -1;
}

static __always_inline int read_timestamps_slow(struct __sk_buff *skb, const struct tcp_packet *pkt,
						__u32 *tsval, __u32 *tsecr)
{
	struct tcp_timestamps ts = {};

	if (read_timestamps_walk(skb, pkt->l4_off + sizeof(struct tcphdr), pkt->doff_bytes - sizeof(struct tcphdr),
				&ts))
		return -1;
	*tsval = ts.tsval;
	*tsecr = ts.tsecr;
	return 0;
}

/* The first option bytes as one load compares them: a, b, c, d in wire order. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define OPT_WORD(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)
#else
#define OPT_WORD(a, b, c, d) ((__u32)(a) << 24 | (__u32)(b) << 16 | (__u32)(c) << 8 | (__u32)(d))
#endif
#define TCPOPT_MSS 2
#define TCPOLEN_MSS 4
#define TCPOPT_SACK_PERM 4
#define TCPOLEN_SACK_PERM 2

/*
 * Finds the TCP timestamp option. The layouts Linux sends are read in place when the
 * whole option area is in the linear part (the same bytes read_timestamps_slow would see, so
 * the answer is the same): MSS, SACK_PERM or NOP NOP, TS (SYN and SYN-ACK), and
 * NOP NOP TS (every later segment). Anything else takes the generic walk. The word loads
 * may be unaligned, which the verifier accepts for packet data on the architectures with
 * efficient unaligned access (x86-64, arm64).
 */
static __always_inline int read_timestamps(struct __sk_buff *skb, const struct tcp_packet *pkt,
					   __u32 *tsval, __u32 *tsecr)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 *opts = data + bounded_off(pkt->l4_off) + sizeof(struct tcphdr);
	__u32 len = pkt->doff_bytes - sizeof(struct tcphdr);

	/* len <= 40 (doff is 4 bits); the second bound is the one the verifier uses. */
	if (len >= 12 && (void *)(opts + (len & 0x3f)) <= data_end && (void *)(opts + 12) <= data_end) {
		__u32 first = *(__u32 *)opts;

		if (first == OPT_WORD(TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP)) {
			*tsval = bpf_ntohl(*(__u32 *)(opts + 4));
			*tsecr = bpf_ntohl(*(__u32 *)(opts + 8));
			return 0;
		}
		if (len >= 16 && (void *)(opts + 16) <= data_end &&
		    (first & OPT_WORD(0xff, 0xff, 0, 0)) == OPT_WORD(TCPOPT_MSS, TCPOLEN_MSS, 0, 0)) {
			__u32 second = *(__u32 *)(opts + 4);

			if (second == OPT_WORD(TCPOPT_SACK_PERM, TCPOLEN_SACK_PERM, TCPOPT_TIMESTAMP,
					       TCPOLEN_TIMESTAMP) ||
			    second == OPT_WORD(TCPOPT_NOP, TCPOPT_NOP, TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP)) {
				*tsval = bpf_ntohl(*(__u32 *)(opts + 8));
				*tsecr = bpf_ntohl(*(__u32 *)(opts + 12));
				return 0;
			}
		}
	}
	return read_timestamps_slow(skb, pkt, tsval, tsecr);
}

/* Keys are written from the host's side so that both directions meet in one entry. */
static __always_inline void build_key(struct __sk_buff *skb, const struct tcp_packet *pkt,
				      bool egress, struct flowlat_flow_key *key)
{
	void *data_end = (void *)(long)skb->data_end;

	__builtin_memset(key, 0, sizeof(*key));
	key->ifindex = skb->ifindex;
	key->family = pkt->family;
	key->local_port_be = egress ? pkt->sport_be : pkt->dport_be;
	key->peer_port_be = egress ? pkt->dport_be : pkt->sport_be;
	if (pkt->family == FLOWLAT_FAMILY_IPV4) {
		struct iphdr *ip = pkt->l3;

		if ((void *)(ip + 1) > data_end)
			return;
		__builtin_memcpy(key->local_addr, egress ? &ip->saddr : &ip->daddr, 4);
		__builtin_memcpy(key->peer_addr, egress ? &ip->daddr : &ip->saddr, 4);
	} else {
		struct ipv6hdr *ip6 = pkt->l3;

		if ((void *)(ip6 + 1) > data_end)
			return;
		__builtin_memcpy(key->local_addr, egress ? &ip6->saddr : &ip6->daddr, 16);
		__builtin_memcpy(key->peer_addr, egress ? &ip6->daddr : &ip6->saddr, 16);
	}
}

static __always_inline __u32 ack_bucket_hash(__u32 h)
{
	return (h * 0x9e3779b1u) >> 20 & (FLOWLAT_ACK_FILTER_BUCKETS - 1);
}

/* The same bucket whichever side the packet travels: addresses are folded symmetrically. */
static __always_inline __u32 ack_bucket_of(__u32 address_fold, __u16 local_port_be,
					   __u16 peer_port_be)
{
	return ack_bucket_hash(address_fold ^ ((__u32)local_port_be << 16 | peer_port_be));
}

static __always_inline __u32 fold_key_addresses(const struct flowlat_flow_key *key)
{
	const __u32 *local = (const __u32 *)key->local_addr;
	const __u32 *peer = (const __u32 *)key->peer_addr;

	return local[0] ^ local[1] ^ local[2] ^ local[3] ^ peer[0] ^ peer[1] ^ peer[2] ^ peer[3];
}

/*
 * What an ending handshake still needs once its entry is deleted (the entry's memory may
 * be reused at once): a few fields instead of a copy of the whole flowlat_flow.
 */
struct flow_end {
	__u64 first_syn_ns;
	__u64 cgroup_id;
	__u32 ack_filter_bucket;
	__u32 ack_filter_epoch;
	__u16 transmissions;
	__u8 direction;
	__u8 stage;
};

static __always_inline void save_end(const struct flowlat_flow *flow, struct flow_end *end)
{
	end->first_syn_ns = flow->first_syn_ns;
	end->cgroup_id = flow->cgroup_id;
	end->ack_filter_bucket = flow->ack_filter_bucket;
	end->ack_filter_epoch = flow->ack_filter_epoch;
	end->transmissions = flow->transmissions;
	end->direction = flow->direction;
	end->stage = flow->stage;
}

static __always_inline void release_ack_filter(const struct flow_end *flow)
{
	if (flow->stage == FLOWLAT_STAGE_SYNACK_SENT)
		__sync_fetch_and_sub(&ack_filter[flow->ack_filter_bucket & (FLOWLAT_ACK_FILTER_BUCKETS - 1)]
					      .count[flow->ack_filter_epoch & 1],
				     1);
}

static __always_inline void emit(const struct flowlat_flow_key *key, const struct flow_end *flow,
				 __u8 outcome, __u64 now, __u64 rtt_ns, bool rtt_valid)
{
	struct flowlat_event *event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	__u64 flags = 0;

	if (!event) {
		count(FLOWLAT_COUNTER_EVENTS_LOST);
		return;
	}
	event->header.ts_ns = now;
	event->header.type = FLOWLAT_EVENT_HANDSHAKE;
	event->header.ifindex = key->ifindex;
	event->rtt_ns = rtt_valid ? rtt_ns : 0;
	event->handshake_ns = now - flow->first_syn_ns;
	__builtin_memcpy(event->local_addr, key->local_addr, 16);
	__builtin_memcpy(event->peer_addr, key->peer_addr, 16);
	event->local_port_be = key->local_port_be;
	event->peer_port_be = key->peer_port_be;
	event->retransmits = flow->transmissions > 1 ? flow->transmissions - 1 : 0;
	event->family = key->family;
	event->direction = flow->direction;
	event->outcome = outcome;
	event->flags = rtt_valid ? FLOWLAT_EVENT_F_RTT_VALID : 0;
	__builtin_memset(event->reserved, 0, sizeof(event->reserved));
	event->cgroup_id = flow->cgroup_id;

	/*
	 * Batched wakeups: wake the reader when this record carries the queue across a
	 * multiple of ring_wakeup_bytes, and never otherwise. The kernel's default (flags 0)
	 * wakes only when the reader had consumed everything before this record, which is
	 * never true once earlier records were queued without a wakeup: the reader would
	 * then run on its timer alone and a fast producer overruns the ring. Crossings that
	 * race with another CPU's record can be missed; the next multiple, or the reader's
	 * timer, catches up.
	 */
	if (ring_wakeup_bytes) {
		__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		__u64 before = avail > FLOWLAT_RING_RECORD_BYTES ? avail - FLOWLAT_RING_RECORD_BYTES : 0;

		flags = avail / ring_wakeup_bytes != before / ring_wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										   : BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(event, flags);
}

/*
 * Karn's rule: after a retransmission the answer is ambiguous unless its
 * echoed timestamp names exactly one of the transmissions we remember.
 */
static __always_inline bool answered_transmission(struct __sk_buff *skb, const struct tcp_packet *pkt,
						  const struct flowlat_flow *flow, __u64 *sent_ns)
{
	__u32 tsval, tsecr, matches = 0;

	if (flow->transmissions <= 1) {
		*sent_ns = flow->tx[0].sent_ns;
		return true;
	}
	if (read_timestamps(skb, pkt, &tsval, &tsecr))
		return false;
#pragma unroll
	for (int i = 0; i < FLOWLAT_MAX_TRANSMISSIONS; i++) {
		if (i < flow->transmissions && flow->tx[i].has_tsval && flow->tx[i].tsval == tsecr) {
			*sent_ns = flow->tx[i].sent_ns;
			matches++;
		}
	}
	return matches == 1;
}

/* Ends a handshake. Deleting first makes the outcome exactly-once across CPUs and the sweep. */
static __always_inline bool finish(struct __sk_buff *skb, const struct tcp_packet *pkt,
				   const struct flowlat_flow_key *key, struct flowlat_flow *flow,
				   __u8 outcome)
{
	struct flow_end copy;
	__u64 now = bpf_ktime_get_ns();
	__u64 sent_ns = 0;
	bool rtt_valid = false;

	if (outcome == FLOWLAT_OUTCOME_COMPLETED)
		rtt_valid = answered_transmission(skb, pkt, flow, &sent_ns);
	save_end(flow, &copy);
	if (delete_flow(key))
		return false;
	release_ack_filter(&copy);
	emit(key, &copy, outcome, now, now - sent_ns, rtt_valid);
	return true;
}

static __always_inline void record_transmission(struct __sk_buff *skb, const struct tcp_packet *pkt,
						struct flowlat_flow *flow, __u64 now)
{
	__u32 slot = flow->transmissions < FLOWLAT_MAX_TRANSMISSIONS ? flow->transmissions
								    : FLOWLAT_MAX_TRANSMISSIONS - 1;
	__u32 tsval = 0, tsecr;
	struct flowlat_transmission *tx = &flow->tx[slot & (FLOWLAT_MAX_TRANSMISSIONS - 1)];

	tx->sent_ns = now;
	tx->has_tsval = read_timestamps(skb, pkt, &tsval, &tsecr) == 0;
	tx->tsval = tsval;
	if (flow->transmissions < 0xffff)
		flow->transmissions++;
}

/* A SYN on a tuple with a pending handshake of another ISN: the old attempt was abandoned. */
static __always_inline void abandon(const struct flowlat_flow_key *key, struct flowlat_flow *old, __u64 now)
{
	struct flow_end copy;

	save_end(old, &copy);
	/* Whoever deletes the entry reports it: the sweep, if it got there first, already has. */
	if (delete_flow(key))
		return;
	count(FLOWLAT_COUNTER_ABANDONED);
	release_ack_filter(&copy);
	emit(key, &copy, FLOWLAT_OUTCOME_TIMEOUT, now, 0, false);
}

static __always_inline void on_syn(struct __sk_buff *skb, const struct tcp_packet *pkt, bool egress)
{
	struct flowlat_flow_key key;
	struct flowlat_flow *flow;
	struct flowlat_flow fresh = {};
	__u64 now = bpf_ktime_get_ns();
	__u8 direction = egress ? FLOWLAT_DIRECTION_OUTBOUND : FLOWLAT_DIRECTION_INBOUND;
	long err;

	build_key(skb, pkt, egress, &key);
	fresh.first_syn_ns = now;
	fresh.syn_seq = pkt->seq;
	fresh.syn_data_len = tcp_payload_length(skb, pkt);
	fresh.direction = direction;
	if (egress) {
		fresh.stage = FLOWLAT_STAGE_SYN_SENT;
		fresh.expected_ack = pkt->seq + 1;
		/* Our SYN is owned by the connecting socket: its cgroup names the workload. */
		fresh.cgroup_id = bpf_skb_cgroup_id(skb);
		record_transmission(skb, pkt, &fresh, now);
	} else {
		fresh.stage = FLOWLAT_STAGE_SYN_RECEIVED;
	}
	/*
	 * Insert first: a new handshake, the common case, then costs one hash and one bucket
	 * walk instead of a lookup followed by an insert. Only an existing entry (-EEXIST)
	 * needs the lookup; a full table fails here with -E2BIG.
	 */
	err = insert_flow(&key, &fresh);
	if (err == 0)
		return;
	if (err != -EEXIST) {
		count(FLOWLAT_COUNTER_FLOW_TABLE_FULL);
		return;
	}
	flow = bpf_map_lookup_elem(&flows, &key);
	if (flow) {
		bool same_syn = flow->direction == direction && flow->syn_seq == pkt->seq;
		bool reported = flow->stage == FLOWLAT_STAGE_REPORTED || flow->stage == FLOWLAT_STAGE_ACKED;

		/*
		 * Below, a new attempt replaces the entry: a pending handshake is reported abandoned, a
		 * reported one's record is dropped. A client's SYN does that only if the host's stack
		 * takes it, as for an answer: a forged or broken SYN (another host's MAC, a bad IP
		 * header, a bad checksum) would otherwise end a real handshake the host goes on with.
		 * Our own SYN needs no check. Asked here only, after the insert found the tuple taken:
		 * a new handshake's SYN pays nothing.
		 */
		if (!egress && !same_syn && (reported || flow->direction == direction) && !host_accepts(skb, pkt))
			return;
		if (reported) {
			/* Already reported: its retransmissions start nothing new. */
			if (same_syn)
				return;
			delete_flow(&key); /* a new attempt: the record has served */
		} else if (same_syn) {
			/* A retransmitted SYN. Inbound, the server's SYN-ACK is what gets timed. */
			if (egress) {
				/* Through a copy, for the reason given in on_syn_ack_sent. */
				fresh = *flow;
				record_transmission(skb, pkt, &fresh, now);
				bpf_map_update_elem(&flows, &key, &fresh, BPF_EXIST);
			}
			return;
		} else if (flow->direction != direction) {
			/*
			 * The other side's SYN on our pending handshake's tuple: a simultaneous open
			 * (or a socket connected to itself). The pending one goes on; the peer's
			 * SYN-ACK completes it.
			 */
			return;
		} else {
			abandon(&key, flow, now);
		}
	}
	/* -EEXIST: another CPU inserted this tuple meanwhile; that is not a full table. */
	err = insert_flow(&key, &fresh);
	if (err && err != -EEXIST)
		count(FLOWLAT_COUNTER_FLOW_TABLE_FULL);
}

/* Our SYN-ACK on egress: the timed packet of an inbound handshake. */
static __always_inline void on_syn_ack_sent(struct __sk_buff *skb, const struct tcp_packet *pkt)
{
	struct flowlat_flow_key key;
	struct flowlat_flow *flow;

	build_key(skb, pkt, true, &key);
	flow = bpf_map_lookup_elem(&flows, &key);
	if (!flow || flow->direction != FLOWLAT_DIRECTION_INBOUND || !acks_syn(flow, pkt->ack))
		return;
	/*
	 * The entry may be deleted at any moment (the sweep times it out, a new ISN abandons it)
	 * and its memory reused at once for another flow, so it is never written through this
	 * pointer: a changed copy replaces it with BPF_EXIST, which fails once it was deleted.
	 */
	if (flow->stage == FLOWLAT_STAGE_SYN_RECEIVED) {
		struct flowlat_flow next = *flow;
		__u32 *bucket;

		next.expected_ack = pkt->seq + 1;
		/*
		 * The SYN-ACK is owned by the request socket, whose full socket is the listener; a
		 * SYN cookie's SYN-ACK has none, and the helper returns 0 (unknown).
		 */
		next.cgroup_id = bpf_skb_cgroup_id(skb);
		record_transmission(skb, pkt, &next, bpf_ktime_get_ns());
		next.ack_filter_bucket = ack_bucket_of(fold_key_addresses(&key), key.local_port_be, key.peer_port_be);
		next.ack_filter_epoch = ack_epoch & 1;
		next.stage = FLOWLAT_STAGE_SYNACK_SENT;
		bucket = &ack_filter[next.ack_filter_bucket & (FLOWLAT_ACK_FILTER_BUCKETS - 1)]
				  .count[next.ack_filter_epoch & 1];
		/* Counted before the entry shows SYNACK_SENT, so an ACK that ends it at once releases a count. */
		__sync_fetch_and_add(bucket, 1);
		if (bpf_map_update_elem(&flows, &key, &next, BPF_EXIST))
			__sync_fetch_and_sub(bucket, 1);
	} else if (flow->stage == FLOWLAT_STAGE_SYNACK_SENT && pkt->seq + 1 == flow->expected_ack) {
		struct flowlat_flow next = *flow;

		record_transmission(skb, pkt, &next, bpf_ktime_get_ns());
		bpf_map_update_elem(&flows, &key, &next, BPF_EXIST);
	} else if (flow->stage == FLOWLAT_STAGE_ACKED && pkt->seq + 1 == flow->expected_ack) {
		/*
		 * Our SYN-ACK again after the ACK that completed the handshake: the listener dropped
		 * that ACK (accept queue full, tcp_abort_on_overflow = 0). Deleting the record owns
		 * the report, so it is made once however many retransmissions follow, and on one CPU.
		 */
		struct flow_end copy;

		save_end(flow, &copy);
		if (delete_flow(&key))
			return;
		copy.transmissions = 0; /* the completed event already carried the retransmissions */
		copy.stage = FLOWLAT_STAGE_ACKED; /* holds no filter bucket */
		emit(&key, &copy, FLOWLAT_OUTCOME_ACCEPT_OVERFLOW, bpf_ktime_get_ns(), 0, false);
	}
}

/* The peer's SYN-ACK on ingress completes an outbound handshake. */
static __always_inline void on_syn_ack_received(struct __sk_buff *skb, const struct tcp_packet *pkt)
{
	struct flowlat_flow_key key;
	struct flowlat_flow *flow;

	build_key(skb, pkt, false, &key);
	flow = bpf_map_lookup_elem(&flows, &key);
	if (flow && flow->direction == FLOWLAT_DIRECTION_OUTBOUND && flow->stage == FLOWLAT_STAGE_SYN_SENT &&
	    acks_syn(flow, pkt->ack) && host_accepts(skb, pkt))
		finish(skb, pkt, &key, flow, FLOWLAT_OUTCOME_COMPLETED);
}

/*
 * An RST-ACK that acknowledges the SYN refuses it: on ingress from the peer
 * (outbound), on egress from our own stack (inbound). Other RSTs are ignored,
 * which also keeps blind resets from ending a handshake, except the client's
 * reset of an inbound handshake (below).
 */
static __always_inline void on_rst(struct __sk_buff *skb, const struct tcp_packet *pkt, bool egress)
{
	struct flowlat_flow_key key;
	struct flowlat_flow *flow;

	build_key(skb, pkt, egress, &key);
	flow = bpf_map_lookup_elem(&flows, &key);
	if (!flow)
		return;
	/*
	 * A client that resets instead of sending its final ACK (a SYN scan, or a client that
	 * gave up) ends the handshake with no outcome to report: it is counted, not timed out.
	 * Its RST carries the client's next sequence number, ISN + 1.
	 */
	if (!egress && flow->direction == FLOWLAT_DIRECTION_INBOUND &&
	    ((flow->stage == FLOWLAT_STAGE_SYNACK_SENT && pkt->seq == flow->syn_seq + 1) ||
	     (flow->stage == FLOWLAT_STAGE_SYN_RECEIVED && (pkt->seq == flow->syn_seq + 1 || pkt->seq == flow->syn_seq)))) {
		struct flow_end copy;

		if (!host_accepts(skb, pkt))
			return;
		save_end(flow, &copy);
		if (delete_flow(&key))
			return;
		release_ack_filter(&copy);
		count(FLOWLAT_COUNTER_ABORTED);
		return;
	}
	if (!(pkt->flags & TCP_FLAG_ACK) || !acks_syn(flow, pkt->ack))
		return;
	if (egress ? flow->stage == FLOWLAT_STAGE_SYN_RECEIVED
		   : flow->direction == FLOWLAT_DIRECTION_OUTBOUND && flow->stage == FLOWLAT_STAGE_SYN_SENT &&
			     host_accepts(skb, pkt))
		finish(skb, pkt, &key, flow, FLOWLAT_OUTCOME_REFUSED);
}

/* The client's ACK of our SYN-ACK completes an inbound handshake. */
static __always_inline void on_ack_received(struct __sk_buff *skb, struct tcp_packet *pkt)
{
	struct flowlat_flow_key key;
	struct flowlat_flow *flow;

	/* The fast path: established flows stop here with one load. Same bucket as ack_bucket_of. */
	if (!*(const __u64 *)&ack_filter[ack_bucket_hash(pkt->addr_fold ^ pkt->ports_in)])
		return;
	if (load_seq_ack(skb, pkt))
		return;
	build_key(skb, pkt, false, &key);
	flow = bpf_map_lookup_elem(&flows, &key);
	/*
	 * Exactly our ISN + 1: an ACK with another number is refused by our stack. (A Fast Open
	 * server that sends data before the final ACK gets that data acked with it, and such a
	 * handshake ends as a timeout: the egress data that would explain the larger ack is
	 * never looked up, to keep the established path free of map operations.)
	 */
	if (flow && flow->stage == FLOWLAT_STAGE_SYNACK_SENT && pkt->ack == flow->expected_ack &&
	    host_accepts(skb, pkt)) {
		struct flowlat_flow acked = *flow;

		/*
		 * The RTT is real even if the listener drops this ACK, so `completed` is reported as
		 * always (finish deletes to own the outcome and releases the filter bucket). The
		 * entry then goes back as an ACKED record, so that a SYN-ACK sent again shows the ACK
		 * was dropped (on_syn_ack_sent). A retransmission in the nanoseconds between the
		 * delete and the insert would be missed; Linux sends the first one after ~1 s.
		 */
		if (finish(skb, pkt, &key, flow, FLOWLAT_OUTCOME_COMPLETED)) {
			acked.stage = FLOWLAT_STAGE_ACKED;
			insert_flow(&key, &acked);
		}
	}
}

/*
 * ICMP destination-unreachable codes that make Linux end a connect() in SYN_SENT (tcp_v4_err).
 * (linux/icmp.h and icmpv6.h pull in libc headers, so the two types are spelled here.)
 */
#define ICMP_DEST_UNREACH 3
#define ICMPV6_DEST_UNREACH 1
#define ICMP_FRAG_NEEDED_CODE 4
#define ICMP_MAX_UNREACH_CODE 15

/*
 * An ICMP or ICMPv6 destination-unreachable error on ingress that quotes a pending outbound
 * SYN ends that handshake as `unreachable`, as the host's stack ends the connect() (IPv4:
 * every code up to 15 but "fragmentation needed"; IPv6: every code). The quoted IP header
 * must be ours: TCP, from our address and port to the peer's, and the quoted sequence
 * number our ISN. The message must pass the same checks as any answer (answer_accepted:
 * addressed to this host, valid IP header and extension headers, ICMP checksum). `parsed`
 * is the family (bits 0-7) and parse_ipv6's IPV6_DROP_* flags (bits 8-15).
 *
 * A global function, reached only by ICMP packets on ingress: verified once, and nothing
 * on the TCP paths.
 */
__noinline int on_icmp_error(struct __sk_buff *skb, __u32 l3_off, __u32 l4_off, __u32 parsed)
{
	__u32 family = parsed & 0xff;
	struct flowlat_flow_key key = {};
	struct flowlat_flow *flow;
	/*
	 * The quoted header is done with once the key is built, and the ended flow's copy is made
	 * only after that: one slot for both keeps the deepest call chain (a program, this,
	 * answer_accepted, ipv4_options_valid) within the verifier's 512-byte combined stack.
	 */
	union {
		__u8 quoted[40];
		struct flow_end copy;
	} slot;
	__u8 icmp[8], *quoted = slot.quoted;
	__u32 quoted_l4, min_bytes, seq;
	__u16 ports[2];
	__u8 protocol;

	if (!skb)
		return 0;
	if (bpf_skb_load_bytes(skb, l4_off, icmp, sizeof(icmp)))
		return 0;
	if (family == FLOWLAT_FAMILY_IPV4) {
		if (icmp[0] != ICMP_DEST_UNREACH || icmp[1] == ICMP_FRAG_NEEDED_CODE || icmp[1] > ICMP_MAX_UNREACH_CODE)
			return 0;
		if (bpf_skb_load_bytes(skb, l4_off + 8, quoted, sizeof(struct iphdr)))
			return 0;
		if (quoted[0] >> 4 != 4 || (quoted[0] & 0xf) < 5 || quoted[9] != IPPROTO_TCP)
			return 0;
		quoted_l4 = l4_off + 8 + (quoted[0] & 0xf) * 4;
		__builtin_memcpy(key.local_addr, &quoted[12], 4);
		__builtin_memcpy(key.peer_addr, &quoted[16], 4);
		protocol = IPPROTO_ICMP;
	} else {
		if (icmp[0] != ICMPV6_DEST_UNREACH)
			return 0;
		if (bpf_skb_load_bytes(skb, l4_off + 8, quoted, sizeof(struct ipv6hdr)))
			return 0;
		if (quoted[0] >> 4 != 6 || quoted[6] != IPPROTO_TCP)
			return 0;
		quoted_l4 = l4_off + 8 + sizeof(struct ipv6hdr);
		__builtin_memcpy(key.local_addr, &quoted[8], 16);
		__builtin_memcpy(key.peer_addr, &quoted[24], 16);
		protocol = IPPROTO_ICMPV6;
	}
	/* RFC 792 quotes at least the first 8 bytes of the datagram: both ports and the seq. */
	if (bpf_skb_load_bytes(skb, quoted_l4, ports, sizeof(ports)) ||
	    bpf_skb_load_bytes(skb, quoted_l4 + 4, &seq, sizeof(seq)))
		return 0;
	key.local_port_be = ports[0];
	key.peer_port_be = ports[1];
	key.ifindex = skb->ifindex;
	key.family = family;
	flow = bpf_map_lookup_elem(&flows, &key);
	if (!flow || flow->direction != FLOWLAT_DIRECTION_OUTBOUND || flow->stage != FLOWLAT_STAGE_SYN_SENT ||
	    flow->syn_seq != bpf_ntohl(seq))
		return 0;
	min_bytes = quoted_l4 + 8 - l4_off;
	if (!answer_accepted(skb, l3_off, l4_off,
			     (parsed & 0xff00) | family | (__u32)protocol << 16 | (min_bytes & 0xff) << 24)) {
		count(FLOWLAT_COUNTER_ANSWERS_REJECTED);
		return 0;
	}
	save_end(flow, &slot.copy);
	if (delete_flow(&key))
		return 0;
	emit(&key, &slot.copy, FLOWLAT_OUTCOME_UNREACHABLE, bpf_ktime_get_ns(), 0, false);
	return 1;
}

static __always_inline int handle(struct __sk_buff *skb, bool egress, bool ethernet)
{
	struct tcp_packet pkt;
	enum parse_result result;
	__u8 handshake_flags;

	result = parse_tcp(skb, &pkt, ethernet);
	if (result != PARSE_OK) {
		if (result == PARSE_ICMP && !egress)
			on_icmp_error(skb, pkt.l3_off, pkt.l4_off, pkt.family | (__u32)pkt.ipv6_drop << 8);
		return TC_ACT_UNSPEC;
	}
	handshake_flags = pkt.flags & (TCP_FLAG_SYN | TCP_FLAG_RST | TCP_FLAG_ACK);

	if (handshake_flags == TCP_FLAG_ACK) {
		if (!egress)
			on_ack_received(skb, &pkt);
		return TC_ACT_UNSPEC;
	}
	if (!(handshake_flags & (TCP_FLAG_SYN | TCP_FLAG_RST)))
		return TC_ACT_UNSPEC;
	if (load_seq_ack(skb, &pkt))
		return TC_ACT_UNSPEC;

	if (handshake_flags == TCP_FLAG_SYN)
		on_syn(skb, &pkt, egress);
	else if (handshake_flags == (TCP_FLAG_SYN | TCP_FLAG_ACK))
		egress ? on_syn_ack_sent(skb, &pkt) : on_syn_ack_received(skb, &pkt);
	else if (handshake_flags & TCP_FLAG_RST)
		on_rst(skb, &pkt, egress);
	return TC_ACT_UNSPEC;
}

/* Ethernet devices (and loopback, which carries an Ethernet header). */
SEC("tc")
int flowlat_ingress(struct __sk_buff *skb)
{
	return handle(skb, false, true);
}

SEC("tc")
int flowlat_egress(struct __sk_buff *skb)
{
	return handle(skb, true, true);
}

/* Raw-IP devices: the same probe with the link layer compiled out, chosen per interface. */
SEC("tc")
int flowlat_ingr_ip(struct __sk_buff *skb)
{
	return handle(skb, false, false);
}

SEC("tc")
int flowlat_egr_ip(struct __sk_buff *skb)
{
	return handle(skb, true, false);
}
