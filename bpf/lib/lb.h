/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ClusterIP load balancing, per connection, at the client pod's veth:
 *   lb_egress   (from_container) a packet to a service address gets a backend:
 *               the connection's CT_SERVICE entry if its backend still belongs
 *               to the service, else a random slot. Destination rewritten.
 *               A new connection's CT_SERVICE entry is made by conntrack_policy
 *               once policy admitted it (and counts against the quota).
 *               Only an address weft_lb_vips may hold is looked up at all.
 *   lb_reverse  (to_container) a reply of such a connection gets the service
 *               address back as its source (conntrack_policy found it in the
 *               connection's CT_F_DNAT entry).
 * Checksums are updated incrementally; UDP without a checksum keeps none.
 * Later IP fragments follow their first fragment (frag.h), ICMP errors about
 * a translated connection are translated too (icmp.h).
 */
#ifndef WEFT_LB_H
#define WEFT_LB_H

#include <stddef.h>
#include "maps.h"
#include "events.h"
#include "ct.h"

static __always_inline int l4_csum_off(const struct tuple *t, __u64 *flags)
{
	if (t->protocol == IPPROTO_TCP)
		return t->l4off + offsetof(struct tcphdr, check);
	*flags |= BPF_F_MARK_MANGLED_0;
	return t->l4off + offsetof(struct udphdr, check);
}

/*
 * Rewrites one address (saddr or daddr) and its port, with checksums. A later
 * IP fragment has no L4 header: only its address changes, and the first
 * fragment's L4 checksum (which covers the whole datagram and the
 * pseudo-header) took the address and port change for all of them.
 */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct tuple *t, int dst,
				       __u32 old_addr, __u32 new_addr, __u16 old_port, __u16 new_port)
{
	__u64 flags = 0;
	int csum = l4_csum_off(t, &flags);
	int addr_off = ETH_HLEN + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	int port_off = t->l4off + (dst ? offsetof(struct udphdr, dest) : offsetof(struct udphdr, source));

	if (t->flags & TUPLE_F_FRAG_LATER) {
		if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old_addr, new_addr, sizeof(new_addr)) < 0 ||
		    bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0) < 0)
			return -WEFT_DROP_NAT;
		return 0;
	}
	if (bpf_l4_csum_replace(skb, csum, old_addr, new_addr, flags | BPF_F_PSEUDO_HDR | sizeof(new_addr)) < 0 ||
	    bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), old_addr, new_addr, sizeof(new_addr)) < 0 ||
	    bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0) < 0)
		return -WEFT_DROP_NAT;
	if (old_port == new_port)
		return 0;
	if (bpf_l4_csum_replace(skb, csum, old_port, new_port, flags | sizeof(new_port)) < 0 ||
	    bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0) < 0)
		return -WEFT_DROP_NAT;
	return 0;
}

/* May `vip` (network order) be a service's address? No only when weft_lb_vips proves it. */
static __always_inline int lb_maybe_service(__u32 vip)
{
	__u32 bit = (bpf_ntohl(vip) * LB_VIP_HASH_MUL) >> 16;
	__u32 word = bit >> 6;
	__u64 *w = bpf_map_lookup_elem(&weft_lb_vips, &word);

	return !w || ((*w >> (bit & 63)) & 1);
}

/* Returns 0 (translated or not a service) or a negative drop code; updates c->t and c->nat_*. */
static __always_inline int lb_egress(struct __sk_buff *skb, struct flow_ctx *c)
{
	struct tuple *t = &c->t;

	if (t->protocol != IPPROTO_TCP && t->protocol != IPPROTO_UDP)
		return 0;

	if (!lb_maybe_service(t->daddr))
		return 0;

	struct lb_key sk = { .vip = t->daddr, .dport = t->dport, .protocol = t->protocol };
	struct lb_value *svc = bpf_map_lookup_elem(&weft_lb_services, &sk);

	if (!svc)
		return 0;
	__u32 count = svc->count;
	if (count == 0)
		return -WEFT_DROP_NO_SERVICE_BACKEND;

	struct ct_key ck = {
		.saddr = t->saddr, .daddr = t->daddr, .sport = t->sport, .dport = t->dport,
		.protocol = t->protocol, .dir = CT_SERVICE,
	};
	struct ct_value *e = ct_lookup(&ck, bpf_ktime_get_ns(), t->tcp_flags);
	__u32 addr = 0;
	__u16 port = 0;

	/* Left by a pod since removed that had the client's address. */
	if (e && e->ep_id != c->ep_id) {
		ct_delete(&ck, e->ep_id);
		e = NULL;
	}
	if (e) {
		struct lb_backend_key bk = {
			.vip = t->daddr, .addr = e->nat_addr, .dport = t->dport, .port = e->nat_port, .protocol = t->protocol,
		};

		if (bpf_map_lookup_elem(&weft_lb_backends, &bk)) {
			addr = e->nat_addr;
			port = e->nat_port;
		}
	}
	if (!addr) {
		/* A new connection, or its backend left the service: pick a slot. */
		__u32 slot = bpf_get_prandom_u32() % count + 1;
		struct lb_value *b;

		sk.slot = slot;
		b = bpf_map_lookup_elem(&weft_lb_services, &sk);
		/* Never the client itself while there is another (a pod cannot reach itself by its own address from outside). */
		if (b && b->addr == t->saddr && count > 1) {
			sk.slot = slot % count + 1;
			b = bpf_map_lookup_elem(&weft_lb_services, &sk);
		}
		if (!b)
			return -WEFT_DROP_NO_SERVICE_BACKEND;
		addr = b->addr;
		port = b->port;
		if (e) {
			e->nat_addr = addr;
			e->nat_port = port;
		}
	}
	/* conntrack_policy keeps the entry alive with the connection (ct_service), or creates it once admitted. */

	int ret = nat_rewrite(skb, t, 1, t->daddr, addr, t->dport, port);

	if (ret < 0)
		return ret;
	c->nat_addr = t->daddr;
	c->nat_port = t->dport;
	t->daddr = addr;
	t->dport = port;
	return 0;
}

/* After conntrack_policy on a reply: the service address back as the source. */
static __always_inline int lb_reverse(struct __sk_buff *skb, struct flow_ctx *c)
{
	if (!c->nat_addr)
		return 0;
	return nat_rewrite(skb, &c->t, 0, c->t.saddr, c->nat_addr, c->t.sport, c->nat_port);
}

#endif /* WEFT_LB_H */
