// SPDX-License-Identifier: Apache-2.0
/*
 * from_underlay: tc ingress of the node's underlay device (the one holding its
 * node IP). Receive-side strictness for WireGuard.
 *
 * With strict WireGuard every pod packet between nodes crosses the underlay
 * inside WireGuard (UDP to a lane's port) and comes out of a WireGuard device
 * decrypted; this hook only ever sees it encrypted. So pod traffic seen here in
 * the clear was never encrypted, and is dropped and reported as
 * UNENCRYPTED_INGRESS:
 *   1. UDP to the tunnel port (VXLAN or Geneve) addressed to the node itself
 *      (not to one of its pods): the tunnel device would decapsulate it and
 *      from_overlay would take its VNI as the source identity, so anyone on
 *      the underlay could claim any identity. Genuine tunnel packets are sent
 *      to the node's router IP through WireGuard and never cross this hook.
 *   2. A packet to a pod of this node whose source the ipcache says is a pod
 *      of another node: IPCACHE_F_ENCRYPTED (we reach it through WireGuard,
 *      so its traffic reaches us that way) or IPCACHE_F_ENCRYPT_MISSING (strict
 *      mode exchanges nothing with it). Without this, the kernel forwards such
 *      a packet (direct routing's path, open in tunnel mode too) and
 *      to_container gives it that pod's identity.
 * Everything else passes untouched: node-to-node traffic (etcd, clustermesh,
 * WireGuard's own UDP, ICMP), the world, pods of other nodes talking to this
 * node's own addresses (routed in the clear by design), non-IPv4 frames, and
 * malformed packets (the stack judges those). Passing is TC_ACT_UNSPEC, not
 * TC_ACT_OK, so tc filters of others after this one on the device still run.
 *
 * Off unless the agent sets NODE_F_STRICT_INGRESS (WireGuard, strict), and the
 * agent attaches it only then. IPsec needs none of this: its XFRM in-policies
 * already refuse clear pod traffic, and a packet it decapsulates is injected
 * on the same device and crosses this hook a second time, in the clear, which
 * rule 1 would wrongly drop.
 *
 * Headers are read with bpf_skb_load_bytes, not direct packet access: on a
 * real NIC they may sit beyond the linear part of the skb.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/events.h"

#define PASS 0

static __always_inline int handle_from_underlay(struct __sk_buff *skb, struct flow_ctx *c)
{
	struct node_config *cfg = node_config();

	if (!cfg || !(cfg->flags & NODE_F_STRICT_INGRESS))
		return PASS;
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
		__u16 ports[2];

		if (bpf_skb_load_bytes(skb, c->t.l4off, ports, sizeof(ports)) < 0)
			return PASS;
		c->t.sport = ports[0];
		c->t.dport = ports[1];
	} else if (first && ip.protocol == IPPROTO_ICMP) {
		struct icmp_echo_hdr icmp;

		if (bpf_skb_load_bytes(skb, c->t.l4off, &icmp, sizeof(icmp)) == 0 &&
		    (icmp.type == ICMP_ECHO || icmp.type == ICMP_ECHOREPLY)) {
			c->t.sport = icmp.id;
			c->t.dport = icmp.id;
		}
	}

	struct ipcache_value *src = NULL;
	struct endpoint_key dk = { .ip = ip.daddr };
	struct endpoint_info *ep = bpf_map_lookup_elem(&weft_endpoints, &dk);

	c->src_identity = ipcache_identity(ip.saddr, &src);

	/* 2: to a pod of this node from a pod of another node, in the clear. */
	if (ep) {
		if (!src || !(src->flags & (IPCACHE_F_ENCRYPTED | IPCACHE_F_ENCRYPT_MISSING)))
			return PASS;
		c->ep_id = ep->ep_id;
		c->dst_identity = ep->identity & IDENTITY_MASK;
		return -WEFT_DROP_UNENCRYPTED_INGRESS;
	}

	/* 1: a tunnel packet to the node itself, outside WireGuard (a pod's own port passed above). */
	if (cfg->tunnel_port && first && ip.protocol == IPPROTO_UDP && c->t.dport == cfg->tunnel_port) {
		c->dst_identity = ipcache_identity(ip.daddr, NULL);
		c->flags |= FLOW_F_TUNNELED;
		return -WEFT_DROP_UNENCRYPTED_INGRESS;
	}
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
