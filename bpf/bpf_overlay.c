// SPDX-License-Identifier: Apache-2.0
/*
 * from_overlay: tc ingress of the node's collect-metadata VXLAN/Geneve device.
 * The VNI carries the sender's security identity; once believed (lib/trust.h:
 * the outer source is a node of the mesh, the VNI is of that node's cluster,
 * the inner source is that node's), it is handed to to_container through
 * skb->mark, which enforces the destination's ingress policy.
 *
 * Every tunnel packet is judged, whether or not its destination is a pod of
 * this node: one handed to the stack is routed on with no identity checked
 * later. The checks do not depend on how the packet arrived (from_underlay
 * has seen it if it crossed the underlay in the clear or through IPsec; one
 * from a WireGuard device is bound to its peer by WireGuard's allowed IPs).
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/events.h"
#include "lib/trust.h"

static __always_inline int handle_from_overlay(struct __sk_buff *skb, struct flow_ctx *c)
{
	int ret = parse_packet(skb, &c->t);

	if (ret <= 0)
		return ret;

	struct bpf_tunnel_key key = {};

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return -WEFT_DROP_INVALID_PACKET;
	c->src_identity = key.tunnel_id & IDENTITY_MASK;

	struct endpoint_key dk = { .ip = c->t.daddr };
	struct endpoint_info *ep = bpf_map_lookup_elem(&weft_endpoints, &dk);

	if (ep) {
		c->ep_id = ep->ep_id;
		c->dst_identity = ep->identity & IDENTITY_MASK;
	}

	struct node_info *node = node_of(bpf_htonl(key.remote_ipv4));

	if (!node)
		return -WEFT_DROP_TUNNEL_SOURCE_NOT_NODE;
	ret = tunnel_source_identity(node, c->src_identity, c->t.saddr, &c->src_identity);
	if (ret < 0)
		return ret;

	/*
	 * Not a pod of this node (a sender with a stale ipcache): hand it to the
	 * stack as addressed to this host, so it is routed on rather than dropped
	 * for carrying the sender's veth MAC.
	 */
	if (!ep) {
		bpf_skb_change_type(skb, PACKET_HOST);
		return TC_ACT_OK;
	}

	__u32 ifindex = ep->ifindex;

	skb->mark = MARK_MAGIC_IDENTITY | c->src_identity;
	if (set_eth_addrs(skb, ep) < 0)
		return -WEFT_DROP_REDIRECT;
	return bpf_redirect(ifindex, 0);
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	struct flow_ctx c = {};
	int ret;

	c.point = FLOW_POINT_FROM_OVERLAY;
	c.flags = FLOW_F_TUNNELED;
	ret = handle_from_overlay(skb, &c);
	if (ret >= 0)
		return ret;
	emit_flow(skb, &c, VERDICT_DROPPED, (__u8)-ret);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
