/* SPDX-License-Identifier: Apache-2.0 */
/* Includes, constants and bounds-checked packet parsing shared by every program. */
#ifndef WEFT_COMMON_H
#define WEFT_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "weft_types.h"

/* The part of an ICMP header we read (linux/icmp.h drags in libc headers). */
struct icmp_echo_hdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u16 id;
	__u16 sequence;
};
#define ICMP_ECHOREPLY	0
#define ICMP_DEST_UNREACH	3	/* frag-needed (path MTU) is code 4 of this */
#define ICMP_ECHO	8
#define ICMP_TIME_EXCEEDED	11
#define ICMP_PARAMETERPROB	12

/* ip->frag_off, host order (linux/ip.h has no names for them). */
#define IP_MF		0x2000
#define IP_OFFSET	0x1FFF

/* skb->pkt_type for packets addressed to this host (linux/if_packet.h drags in libc headers). */
#ifndef PACKET_HOST
#define PACKET_HOST	0
#endif

#define MARK_MAGIC_IDENTITY	0xAB000000
#define MARK_MAGIC_MASK		0xFF000000
#define IDENTITY_MASK		0x00FFFFFF

#define IDENTITY_WORLD		2

#define TUPLE_F_FRAG_FIRST	0x1	/* the first fragment of a fragmented datagram (MF set, offset 0) */
#define TUPLE_F_FRAG_LATER	0x2	/* a later fragment: no L4 header, ports 0 until frag.h fills them */
#define TUPLE_F_ICMP_ERROR	0x4	/* ICMP destination unreachable, time exceeded or parameter problem (not a fragment) */

/* The parsed 5-tuple of an IPv4 packet; ports in network order. */
struct tuple {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 protocol;
	__u8 flags;	/* TUPLE_F_* */
	__u8 tcp_flags;	/* TCP: the header's flags byte (TH_*); 0 otherwise */
	__u16 l4off;	/* offset of the L4 header in the packet */
	__u16 ip_id;	/* fragments only: the IPv4 identification, network order */
};

/* TCP header flags (the 14th byte of the header; BSD's names: linux/tcp.h's are 32-bit words). */
#define TH_FIN	0x01
#define TH_SYN	0x02
#define TH_RST	0x04
#define TH_ACK	0x10

/*
 * Parses Ethernet + IPv4 + L4 ports. Returns 1 for IPv4 (tuple filled),
 * 0 for ARP (let through), a negative drop code otherwise.
 * ICMP echo uses the echo id as both ports, so a reply matches its request.
 * Fragments and ICMP errors are only flagged (TUPLE_F_*): the programs that
 * decide on ports handle them (frag.h, icmp.h), so an ordinary packet costs
 * nothing more than before.
 */
static __always_inline int parse_packet(struct __sk_buff *skb, struct tuple *t)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -WEFT_DROP_INVALID_PACKET;
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return -WEFT_DROP_UNSUPPORTED_L3;

	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return -WEFT_DROP_INVALID_PACKET;
	if (ip->version != 4 || ip->ihl < 5)
		return -WEFT_DROP_INVALID_PACKET;
	t->saddr = ip->saddr;
	t->daddr = ip->daddr;
	t->protocol = ip->protocol;
	t->sport = 0;
	t->dport = 0;
	t->tcp_flags = 0;

	t->flags = 0;
	t->l4off = sizeof(*eth) + ip->ihl * 4;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) {
		t->ip_id = ip->id;
		/* Later fragments carry no L4 header. */
		if (ip->frag_off & bpf_htons(IP_OFFSET)) {
			t->flags = TUPLE_F_FRAG_LATER;
			return 1;
		}
		t->flags = TUPLE_F_FRAG_FIRST;
	}

	void *l4 = (void *)ip + ip->ihl * 4;
	switch (ip->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > data_end)
			return -WEFT_DROP_INVALID_PACKET;
		t->sport = tcp->source;
		t->dport = tcp->dest;
		t->tcp_flags = ((const __u8 *)tcp)[13];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > data_end)
			return -WEFT_DROP_INVALID_PACKET;
		t->sport = udp->source;
		t->dport = udp->dest;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmp_echo_hdr *icmp = l4;
		if ((void *)(icmp + 1) > data_end)
			return -WEFT_DROP_INVALID_PACKET;
		if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY) {
			t->sport = icmp->id;
			t->dport = icmp->id;
		} else if ((icmp->type == ICMP_DEST_UNREACH || icmp->type == ICMP_TIME_EXCEEDED ||
			    icmp->type == ICMP_PARAMETERPROB) && !t->flags) {
			/* A fragmented error is no error the stack sends (they fit in 576 bytes): not trusted as one. */
			t->flags = TUPLE_F_ICMP_ERROR;
		}
		break;
	}
	default:
		break;
	}
	return 1;
}

/*
 * The destination port a policy sees. ICMP has no ports: parse_packet puts
 * the echo id in both ports for conntrack, but policies match ICMP with
 * dport 0 (entries for ICMP are protocol-only, 80-bit, in practice).
 */
static __always_inline __u16 policy_port(__u8 protocol, __u16 dport)
{
	return protocol == IPPROTO_ICMP ? 0 : dport;
}

/*
 * struct endpoint_info keeps mac and node_mac back to back, in the order of
 * an Ethernet header (destination, source): one store rewrites both.
 */
_Static_assert(__builtin_offsetof(struct endpoint_info, node_mac) ==
	       __builtin_offsetof(struct endpoint_info, mac) + ETH_ALEN,
	       "endpoint_info.mac and node_mac must be adjacent");

/* Ethernet dst = the pod's MAC, src = its host-side veth's, before a redirect into a pod. */
static __always_inline int set_eth_addrs(struct __sk_buff *skb, const struct endpoint_info *ep)
{
	__u8 addrs[2 * ETH_ALEN];

	__builtin_memcpy(addrs, ep->mac, sizeof(addrs));
	if (bpf_skb_store_bytes(skb, 0, addrs, sizeof(addrs), 0) < 0)
		return -WEFT_DROP_REDIRECT;
	return 0;
}

#endif /* WEFT_COMMON_H */
