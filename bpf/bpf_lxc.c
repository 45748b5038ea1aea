// SPDX-License-Identifier: Apache-2.0
/*
 * Programs on a pod's host-side veth.
 *   from_container  tc ingress of the veth: packets leaving the pod (its egress);
 *                   service addresses are translated to a backend here
 *   to_container    tc egress of the veth: packets entering the pod (its ingress);
 *                   replies from a service's backend get the service address back
 * Both decide on ports, so both handle later IP fragments (lib/frag.h) and
 * ICMP errors about tracked connections (lib/icmp.h).
 * Each handler returns a verdict or a negative drop code; the entry function
 * is the one place that turns a drop code into a flow event and TC_ACT_SHOT.
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/policy.h"
#include "lib/events.h"
#include "lib/ct.h"
#include "lib/lb.h"
#include "lib/frag.h"
#include "lib/icmp.h"

static __always_inline int handle_from_container(struct __sk_buff *skb, struct flow_ctx *c)
{
	int ret = parse_packet(skb, &c->t);

	if (ret <= 0)
		return ret; /* ARP passes; malformed drops */

	/* Anti-spoofing: the source must be the endpoint behind this very veth. */
	struct endpoint_key sk = { .ip = c->t.saddr };
	struct endpoint_info *ep = bpf_map_lookup_elem(&weft_endpoints, &sk);

	if (!ep || ep->ifindex != skb->ifindex)
		return -WEFT_DROP_UNKNOWN_SOURCE;
	c->ep_id = ep->ep_id;
	c->src_identity = ep->identity & IDENTITY_MASK;
	if (ep->flags & EP_F_FAIL_CLOSED)
		return -WEFT_DROP_FAIL_CLOSED;

	if (c->t.flags & TUPLE_F_FRAG_LATER) {
		/* Its first fragment's ports and backend. */
		ret = frag_later(skb, c, 1);
	} else if (c->t.flags & TUPLE_F_ICMP_ERROR) {
		/* Related to one of the pod's connections? (May send it on to a service's backend.) */
		ret = icmp_error_from_endpoint(skb, c, ep);
	} else {
		/* A service address becomes one of its backends; policy and routing see the backend. */
		ret = lb_egress(skb, c);
		if (ret >= 0 && (c->t.flags & TUPLE_F_FRAG_FIRST))
			frag_record(c);
	}
	if (ret < 0)
		return ret;

	struct ipcache_value *dst_info = NULL;
	struct node_config *cfg = node_config();

	c->dst_identity = ipcache_identity(c->t.daddr, &dst_info);
	c->remote_inexact = !dst_info || !(dst_info->flags & IPCACHE_F_EXACT);

	/* Where it goes, decided first so the new-connection event says so. */
	struct endpoint_key dk = { .ip = c->t.daddr };
	struct endpoint_info *dst_ep = bpf_map_lookup_elem(&weft_endpoints, &dk);
	/* Not into a tunnel when encryption carries it: the kernel routes it into WireGuard or ESP. */
	int tunnel = !dst_ep && dst_info && dst_info->tunnel_ip && !(dst_info->flags & IPCACHE_F_ENCRYPTED) &&
		     cfg && cfg->routing_mode == ROUTING_TUNNEL;

	/* Strict encryption: a pod on another node whose key we lack is not sent to in the clear. */
	if (!dst_ep && dst_info) {
		if (dst_info->flags & IPCACHE_F_ENCRYPT_MISSING)
			return -WEFT_DROP_UNENCRYPTED;
		if (dst_info->flags & IPCACHE_F_ENCRYPTED)
			c->flags |= FLOW_F_ENCRYPTED;
	}

	if (tunnel) {
		if (!cfg->tunnel_ifindex)
			return -WEFT_DROP_REDIRECT; /* no tunnel device configured */
		c->flags |= FLOW_F_TUNNELED;
	}

	if (c->flags & FLOW_F_RELATED) {
		emit_flow(skb, c, VERDICT_FORWARDED, 0);
	} else {
		ret = conntrack_policy(skb, c, ep, CT_EGRESS);
		if (ret < 0)
			return ret;
	}

	skb->mark = MARK_MAGIC_IDENTITY | c->src_identity;

	/* A pod on this node: straight to its veth; its to_container enforces ingress. */
	if (dst_ep) {
		__u32 ifindex = dst_ep->ifindex;

		if (set_eth_addrs(skb, dst_ep) < 0)
			return -WEFT_DROP_REDIRECT;
		return bpf_redirect(ifindex, 0);
	}

	/* Another node, tunnel mode: the source identity rides in the VNI. */
	if (tunnel) {
		struct bpf_tunnel_key key = {};

		key.remote_ipv4 = bpf_ntohl(dst_info->tunnel_ip);
		key.tunnel_id = c->src_identity;
		key.tunnel_ttl = 64;
		if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
			return -WEFT_DROP_REDIRECT;
		return bpf_redirect(cfg->tunnel_ifindex, 0);
	}

	/* Direct routing, WireGuard, nodes, the world: the kernel routes it. */
	return TC_ACT_OK;
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct flow_ctx c = {};
	int ret;

	c.point = FLOW_POINT_FROM_ENDPOINT;
	ret = handle_from_container(skb, &c);
	if (ret >= 0)
		return ret;
	emit_flow(skb, &c, VERDICT_DROPPED, (__u8)-ret);
	return TC_ACT_SHOT;
}

static __always_inline int handle_to_container(struct __sk_buff *skb, struct flow_ctx *c)
{
	int ret = parse_packet(skb, &c->t);

	if (ret <= 0)
		return ret;

	struct endpoint_key dk = { .ip = c->t.daddr };
	struct endpoint_info *ep = bpf_map_lookup_elem(&weft_endpoints, &dk);

	if (!ep)
		return -WEFT_DROP_UNKNOWN_ENDPOINT;
	c->ep_id = ep->ep_id;
	c->dst_identity = ep->identity & IDENTITY_MASK;

	/* Identity from the program that redirected it here (mark), else from the ipcache. */
	__u32 mark = skb->mark;

	if ((mark & MARK_MAGIC_MASK) == MARK_MAGIC_IDENTITY) {
		c->src_identity = mark & IDENTITY_MASK;
	} else {
		struct ipcache_value *src_info = NULL;

		c->src_identity = ipcache_identity(c->t.saddr, &src_info);
		c->remote_inexact = !src_info || !(src_info->flags & IPCACHE_F_EXACT);
	}
	skb->mark = 0;
	if (ep->flags & EP_F_FAIL_CLOSED)
		return -WEFT_DROP_FAIL_CLOSED;

	if (c->t.flags & TUPLE_F_FRAG_LATER) {
		ret = frag_later(skb, c, 0);
		if (ret < 0)
			return ret;
	} else if (c->t.flags & TUPLE_F_FRAG_FIRST) {
		frag_record(c);
	} else if (c->t.flags & TUPLE_F_ICMP_ERROR) {
		ret = icmp_error_to_endpoint(skb, c, ep);
		if (ret < 0)
			return ret;
		if (c->flags & FLOW_F_RELATED) {
			emit_flow(skb, c, VERDICT_FORWARDED, 0);
			return TC_ACT_OK;
		}
	}

	ret = conntrack_policy(skb, c, ep, CT_INGRESS);
	if (ret < 0)
		return ret;
	ret = lb_reverse(skb, c);
	if (ret < 0)
		return ret;
	return TC_ACT_OK;
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	struct flow_ctx c = {};
	int ret;

	c.point = FLOW_POINT_TO_ENDPOINT;
	ret = handle_to_container(skb, &c);
	if (ret >= 0)
		return ret;
	emit_flow(skb, &c, VERDICT_DROPPED, (__u8)-ret);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
