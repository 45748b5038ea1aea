// SPDX-License-Identifier: Apache-2.0
/*
 * from_underlay: tc ingress of the node's underlay device (the one holding its
 * node IP), in every encryption mode. It sees everything arriving from the
 * underlay before any decapsulation; what IPsec decrypts crosses it a second
 * time, in the clear, carrying a secpath. Two kinds of packet are judged, the
 * rest passes:
 *
 *   1. UDP to the tunnel port (VXLAN or Geneve) not addressed to a local pod:
 *      the tunnel device would decapsulate it and from_overlay would weigh its
 *      VNI. One IPsec decrypted passes (from_overlay judges what it carries).
 *      In the clear it must come from a node of the mesh (else
 *      TUNNEL_SOURCE_NOT_NODE) that may send in the clear: not one flagged
 *      NODE_ADDR_F_ENCRYPTED_ONLY (a peer we exchange encrypted traffic with,
 *      any node under strict encryption, and every router IP: else
 *      UNENCRYPTED_INGRESS), and from that node's own MAC (else
 *      SOURCE_NOT_FROM_OWNER).
 *   2. A packet to a pod of this node whose source the ipcache knows as a pod
 *      or a node: the kernel would forward it and to_container would credit
 *      it with that address's identity.
 *        - a pod of this node: it never arrives from outside (SOURCE_NOT_FROM_OWNER);
 *        - a pod of a node reached encrypted (IPCACHE_F_ENCRYPTED) or of one
 *          strict mode exchanges nothing with (IPCACHE_F_ENCRYPT_MISSING):
 *          only IPsec-decrypted (a WireGuard peer's arrives on its device,
 *          never here), else UNENCRYPTED_INGRESS; the kernel's XFRM forward
 *          policy binds a decrypted one's source to the SA it came through;
 *        - a pod of a node reached in the clear: in tunnel mode never legitimate
 *          (pods of other nodes arrive through the tunnel), in direct routing
 *          only from that node's MAC (SOURCE_NOT_FROM_OWNER);
 *        - a node's address: only from its MAC.
 * Everything else passes untouched: node-to-node traffic (etcd, clustermesh,
 * WireGuard's UDP, ESP, ICMP), the world, pods of other nodes talking to this
 * node's own addresses, non-IPv4 frames, later fragments and malformed
 * packets (the stack judges those). Passing is TC_ACT_UNSPEC, not TC_ACT_OK,
 * so tc filters of others after this one on the device still run.
 *
 * The MAC check (lib/trust.h) is the only binding an unencrypted underlay
 * offers; it costs a FIB lookup, paid only by clear tunnel packets and by
 * clear packets from pods and nodes to local pods.
 *
 * Headers are read with bpf_skb_load_bytes, not direct packet access: on a
 * real NIC they may sit beyond the linear part of the skb.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/events.h"
#include "lib/trust.h"

#define PASS 0

/* A packet to a local pod from an address the ipcache knows (rule 2). */
static __always_inline int judge_to_pod(struct __sk_buff *skb, struct flow_ctx *c, const struct node_config *cfg,
					const struct ipcache_value *src)
{
	c->src_identity = src->identity;
	if (src->flags & IPCACHE_F_LOCAL_ENDPOINT)
		return -WEFT_DROP_SOURCE_NOT_FROM_OWNER;
	if (src->tunnel_ip) {
		if (src->flags & IPCACHE_F_ENCRYPT_MISSING)
			return -WEFT_DROP_UNENCRYPTED_INGRESS;
		if (src->flags & IPCACHE_F_ENCRYPTED)
			return decrypted_by_ipsec(skb) ? PASS : -WEFT_DROP_UNENCRYPTED_INGRESS;
		if (cfg->routing_mode != ROUTING_DIRECT)
			return -WEFT_DROP_SOURCE_NOT_FROM_OWNER;
	} else if (!(src->flags & IPCACHE_F_REMOTE_NODE)) {
		return PASS; /* a CIDR identity: the world */
	}
	return from_next_hop(skb, c->t.saddr, c->t.daddr) ? PASS : -WEFT_DROP_SOURCE_NOT_FROM_OWNER;
}

/* A tunnel packet to the node (rule 1). */
static __always_inline int judge_tunnel(struct __sk_buff *skb, struct flow_ctx *c)
{
	if (decrypted_by_ipsec(skb))
		return PASS;

	struct node_info *node = node_of(c->t.saddr);
	int ret = PASS;

	if (!node)
		ret = -WEFT_DROP_TUNNEL_SOURCE_NOT_NODE;
	else if (node->flags & NODE_ADDR_F_ENCRYPTED_ONLY)
		ret = -WEFT_DROP_UNENCRYPTED_INGRESS;
	else if (!from_next_hop(skb, c->t.saddr, c->t.daddr))
		ret = -WEFT_DROP_SOURCE_NOT_FROM_OWNER;
	if (ret < 0) {
		/* The event names the tunnel packet's own ends (identities looked up only for it). */
		c->src_identity = ipcache_identity(c->t.saddr, NULL);
		c->dst_identity = ipcache_identity(c->t.daddr, NULL);
		c->flags |= FLOW_F_TUNNELED;
	}
	return ret;
}

static __always_inline int handle_from_underlay(struct __sk_buff *skb, struct flow_ctx *c)
{
	struct node_config *cfg = node_config();

	if (!cfg)
		return PASS; /* not configured yet: the agent attaches this only after writing the config */
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return PASS; /* ARP, IPv6, LLDP...: not ours to judge */

	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.version != 4 || ip.ihl < 5)
		return PASS;
	c->t.saddr = ip.saddr;
	c->t.daddr = ip.daddr;
	c->t.protocol = ip.protocol;
	c->t.l4off = ETH_HLEN + ip.ihl * 4;

	/* Later fragments carry no L4 header; a dropped first fragment never reassembles. */
	int first = !(ip.frag_off & bpf_htons(0x1FFF));

	if (first && (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP)) {
		/* The TCP header up to its flags byte (for the event). */
		struct {
			__u16 ports[2];
			__u8 seq_ack_off[9];
			__u8 flags;
		} l4;

		/* One load for TCP; a TCP header too short for its flags is judged on its ports as before. */
		if (ip.protocol == IPPROTO_TCP && bpf_skb_load_bytes(skb, c->t.l4off, &l4, sizeof(l4)) == 0)
			c->t.tcp_flags = l4.flags;
		else if (bpf_skb_load_bytes(skb, c->t.l4off, l4.ports, sizeof(l4.ports)) < 0)
			return PASS;
		c->t.sport = l4.ports[0];
		c->t.dport = l4.ports[1];
	} else if (first && ip.protocol == IPPROTO_ICMP) {
		struct icmp_echo_hdr icmp;

		if (bpf_skb_load_bytes(skb, c->t.l4off, &icmp, sizeof(icmp)) == 0 &&
		    (icmp.type == ICMP_ECHO || icmp.type == ICMP_ECHOREPLY)) {
			c->t.sport = icmp.id;
			c->t.dport = icmp.id;
		}
	}

	/* 2: to a pod of this node, from an address the ipcache knows. The node's own address is no
	 * pod's: what most underlay packets carry (WireGuard, ESP, tunnels) is spared the lookup. */
	struct endpoint_key dk = { .ip = ip.daddr };
	struct endpoint_info *ep = ip.daddr == cfg->node_ip ? NULL : bpf_map_lookup_elem(&weft_endpoints, &dk);

	if (ep) {
		struct ipcache_value *src = NULL;

		ipcache_identity(ip.saddr, &src);
		if (!src)
			return PASS; /* the world */
		c->ep_id = ep->ep_id;
		c->dst_identity = ep->identity & IDENTITY_MASK;
		return judge_to_pod(skb, c, cfg, src);
	}

	/* 1: a tunnel packet to the node itself (a pod's own port passed above). */
	if (cfg->tunnel_port && first && ip.protocol == IPPROTO_UDP && c->t.dport == cfg->tunnel_port)
		return judge_tunnel(skb, c);
	return PASS;
}

SEC("tc")
int from_underlay(struct __sk_buff *skb)
{
	struct flow_ctx c = {};
	int ret;

	c.point = FLOW_POINT_FROM_UNDERLAY;
	ret = handle_from_underlay(skb, &c);
	if (ret >= 0)
		return TC_ACT_UNSPEC;
	emit_flow(skb, &c, VERDICT_DROPPED, (__u8)-ret);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
