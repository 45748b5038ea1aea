/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Who may claim what on the wire. A tunnel packet's VNI is the source
 * identity the sender claims, so it is believed only when
 *   - its outer source is an address of a node of the mesh (weft_nodes);
 *   - the VNI's cluster bits name that node's cluster;
 *   - its inner source is an address the ipcache places on that same node
 *     (the entry's tunnel_ip is the node's node IP or router IP).
 * Reserved identities (cluster bits 0) are never a pod's: the only claim a
 * node may make is to be itself (host or remote-node, from its own address),
 * which becomes remote-node; anything else is refused.
 *
 * On the underlay (no encryption, or a node we exchange clear traffic with),
 * an address is also bound to the machine that owns it at layer 2: the
 * Ethernet source must be the next hop the kernel would use to reach that
 * address (its neighbour entry, found by a FIB lookup on the reverse path).
 * An attacker on the same segment who forges both the address and the MAC
 * (or poisons ARP) is not stopped by this; encryption stops it.
 */
#ifndef WEFT_TRUST_H
#define WEFT_TRUST_H

#include "maps.h"

#ifndef AF_INET
#define AF_INET	2
#endif

#define IDENTITY_HOST		1
#define IDENTITY_REMOTE_NODE	6

/* The node an address belongs to, if it is another node's (this node is not in the map). */
static __always_inline struct node_info *node_of(__u32 addr)
{
	struct node_key k = { .addr = addr };

	return bpf_map_lookup_elem(&weft_nodes, &k);
}

/* Whether `addr` (network order, non-zero) is one of the node's own addresses. */
static __always_inline int is_node_address(const struct node_info *n, __u32 addr)
{
	return addr && (addr == n->node_ip || addr == n->router_ip);
}

/*
 * The source identity of a tunnel packet from `node` with VNI `vni` and inner
 * source `saddr`, or a negative drop code.
 */
static __always_inline int tunnel_source_identity(const struct node_info *node, __u32 vni, __u32 saddr, __u32 *identity)
{
	__u32 cluster = (vni >> 16) & 0xff;

	if (cluster == 0) {
		/* A node claiming itself is a remote node; no other reserved or node-local identity is a sender's. */
		if ((vni == IDENTITY_HOST || vni == IDENTITY_REMOTE_NODE) && is_node_address(node, saddr)) {
			*identity = IDENTITY_REMOTE_NODE;
			return 0;
		}
		return -WEFT_DROP_RESERVED_IDENTITY_CLAIM;
	}
	if (cluster != node->cluster_id)
		return -WEFT_DROP_TUNNEL_CLUSTER_MISMATCH;

	struct ipcache_value *src = NULL;

	ipcache_identity(saddr, &src);
	if (!src || !is_node_address(node, src->tunnel_ip))
		return -WEFT_DROP_INNER_SOURCE_MISMATCH;
	*identity = vni;
	return 0;
}

/*
 * Whether a packet from `saddr` to `daddr` arrived from the next hop toward
 * `saddr`: its Ethernet source is the MAC of the neighbour the reverse route
 * goes through. No route, no neighbour entry, no forwarding on the device:
 * not proven, so no (fails closed).
 */
static __always_inline int from_next_hop(struct __sk_buff *skb, __u32 saddr, __u32 daddr)
{
	struct bpf_fib_lookup fib = {};
	__u8 smac[ETH_ALEN];

	fib.family = AF_INET;
	fib.ipv4_src = daddr;
	fib.ipv4_dst = saddr;
	fib.ifindex = skb->ifindex;
	/* The path, not this packet (a GRO'd one may exceed the MTU): a bare IPv4 header's length. */
	fib.tot_len = sizeof(struct iphdr);
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_ALEN, smac, ETH_ALEN) < 0)
		return 0;
	/* Byte by byte: there is no memcmp to call in BPF. */
	return fib.dmac[0] == smac[0] && fib.dmac[1] == smac[1] && fib.dmac[2] == smac[2] &&
	       fib.dmac[3] == smac[3] && fib.dmac[4] == smac[4] && fib.dmac[5] == smac[5];
}

/* Whether the packet was decrypted by IPsec on its way here (it carries a secpath). */
static __always_inline int decrypted_by_ipsec(struct __sk_buff *skb)
{
	struct bpf_xfrm_state x;

	return bpf_skb_get_xfrm_state(skb, 0, &x, sizeof(x), 0) == 0;
}

#endif /* WEFT_TRUST_H */
