/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ICMP errors about a tracked connection pass as related traffic, without a
 * policy lookup: destination unreachable (frag-needed, the path-MTU signal,
 * among its codes), time exceeded, parameter problem. A router's frag-needed
 * comes from an address no policy names; dropping it stalls every connection
 * whose packets are too big for the path.
 *
 * An error quotes the packet it is about (its IPv4 header and the first 8
 * bytes after it). That quoted tuple is looked up in conntrack from the
 * endpoint's own view:
 *   to_container    the quote is a packet the endpoint sent: its own-direction
 *                   CT_EGRESS entry (it opened the connection) or the reverse
 *                   CT_INGRESS one (it accepted it); the error comes from
 *                   anywhere (a router) but goes to the quote's source.
 *   from_container  the quote is a packet the endpoint received: CT_INGRESS,
 *                   or the reverse CT_EGRESS; the error may only go back to
 *                   the quote's source, so a pod cannot aim "related" traffic
 *                   at anyone but the peer of one of its connections.
 * The entry must be the endpoint's (ep_id) and current (policy_rev: after a
 * policy change a connection is re-checked by its next packet, not by an
 * error about it). No match: the error is an ordinary ICMP packet, judged by
 * policy (ports 0) as before. Errors about errors, about later fragments, and
 * fragmented errors are never related.
 *
 * Services: for a connection the endpoint opened to a service, an error from
 * the backend's side gets the service address back (quoted destination and
 * port; the outer source too when the backend itself sent it; a router keeps
 * its address, the client's stack reads only the quote). An error the client
 * sends about a reply it got from the service address goes to the backend
 * (outer destination, quoted source and port). Checksums: outer IPv4, quoted
 * IPv4 and ICMP; the quoted L4 checksum is left as is, as Linux leaves TCP's
 * (8 bytes do not reach it) and no stack checks it in an error.
 *
 * Anyone who knows a connection's 5-tuple can forge an error about it, here
 * as with any stateful firewall (Linux's RELATED): it reaches only that
 * connection's endpoint, as an error about its own packet.
 */
#ifndef WEFT_ICMP_H
#define WEFT_ICMP_H

#include <stddef.h>
#include "maps.h"
#include "events.h"
#include "ct.h"

#define ICMP_HDR_LEN	8	/* type, code, checksum, 4 bytes of rest-of-header */

/* The packet an ICMP error quotes. */
struct icmp_quote {
	struct tuple t;		/* its addresses, protocol and ports; t.l4off: where its L4 header starts */
	__u16 ip_off;		/* where its IPv4 header starts */
};

/* 1 when the quote is a packet conntrack could know, 0 when not. */
static __always_inline int icmp_quote_parse(struct __sk_buff *skb, const struct tuple *outer, struct icmp_quote *q)
{
	struct iphdr ip;
	__u32 off = outer->l4off + ICMP_HDR_LEN;

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
		return 0;
	if (ip.version != 4 || ip.ihl < 5 || (ip.frag_off & bpf_htons(IP_OFFSET)))
		return 0;
	q->ip_off = off;
	q->t.saddr = ip.saddr;
	q->t.daddr = ip.daddr;
	q->t.protocol = ip.protocol;
	q->t.l4off = off + ip.ihl * 4;
	switch (ip.protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP: {
		__u16 ports[2];

		if (bpf_skb_load_bytes(skb, q->t.l4off, ports, sizeof(ports)) < 0)
			return 0;
		q->t.sport = ports[0];
		q->t.dport = ports[1];
		break;
	}
	case IPPROTO_ICMP: {
		struct icmp_echo_hdr h;

		if (bpf_skb_load_bytes(skb, q->t.l4off, &h, sizeof(h)) < 0)
			return 0;
		if (h.type != ICMP_ECHO && h.type != ICMP_ECHOREPLY)
			return 0;
		q->t.sport = h.id;
		q->t.dport = h.id;
		break;
	}
	default:
		break;	/* no ports, as parse_packet gives them */
	}
	return 1;
}

/*
 * The endpoint's current conntrack entry for the quoted packet: `dir` is how
 * the endpoint would have tracked it (CT_EGRESS: it sent it), or the other
 * direction for the reversed tuple. NULL when none.
 */
static __always_inline struct ct_value *icmp_related_ct(const struct tuple *q, const struct endpoint_info *ep, __u8 dir)
{
	__u64 now = bpf_ktime_get_ns();
	struct ct_key key = {
		.saddr = q->saddr, .daddr = q->daddr, .sport = q->sport, .dport = q->dport,
		.protocol = q->protocol, .dir = dir,
	};
	struct ct_value *e = bpf_map_lookup_elem(&weft_ct_v3, &key);

	if (!e || e->ep_id != ep->ep_id) {
		struct ct_key rkey = {
			.saddr = q->daddr, .daddr = q->saddr, .sport = q->dport, .dport = q->sport,
			.protocol = q->protocol, .dir = dir == CT_EGRESS ? CT_INGRESS : CT_EGRESS,
		};

		e = bpf_map_lookup_elem(&weft_ct_v3, &rkey);
		if (e && e->ep_id != ep->ep_id)
			e = NULL;
	}
	/* A dead entry is no connection (ct.h): an error about it is an ordinary packet. */
	if (e && (e->policy_rev != ep->policy_rev || now > e->expires))
		return NULL;
	return e;
}

/* An address of the outer IPv4 header; ICMP has no pseudo-header, so only the IPv4 checksum follows. */
static __always_inline int icmp_outer_addr(struct __sk_buff *skb, int dst, __u32 from, __u32 to)
{
	int off = ETH_HLEN + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));

	if (bpf_l3_csum_replace(skb, ETH_HLEN + offsetof(struct iphdr, check), from, to, sizeof(to)) < 0 ||
	    bpf_skb_store_bytes(skb, off, &to, sizeof(to), 0) < 0)
		return -WEFT_DROP_NAT;
	return 0;
}

/*
 * An address and port of the quote. The quoted IPv4 checksum takes the
 * address change, so the ICMP checksum (over the quote) only takes the port's.
 */
static __always_inline int icmp_quote_rewrite(struct __sk_buff *skb, const struct tuple *outer, const struct icmp_quote *q,
					      int dst, __u32 from, __u32 to, __u16 from_port, __u16 to_port)
{
	int addr_off = q->ip_off + (dst ? offsetof(struct iphdr, daddr) : offsetof(struct iphdr, saddr));
	int port_off = q->t.l4off + (dst ? offsetof(struct udphdr, dest) : offsetof(struct udphdr, source));

	if (bpf_l3_csum_replace(skb, q->ip_off + offsetof(struct iphdr, check), from, to, sizeof(to)) < 0 ||
	    bpf_skb_store_bytes(skb, addr_off, &to, sizeof(to), 0) < 0)
		return -WEFT_DROP_NAT;
	if (from_port == to_port)
		return 0;
	if (bpf_l4_csum_replace(skb, outer->l4off + offsetof(struct icmp_echo_hdr, checksum), from_port, to_port, sizeof(to_port)) < 0 ||
	    bpf_skb_store_bytes(skb, port_off, &to_port, sizeof(to_port), 0) < 0)
		return -WEFT_DROP_NAT;
	return 0;
}

/*
 * to_container: an ICMP error to the endpoint. Related (FLOW_F_RELATED) when
 * it is about one of the endpoint's connections; translated back to the
 * service address for a connection it opened to a service. Returns 0
 * (related or not) or a negative drop code.
 */
static __always_inline int icmp_error_to_endpoint(struct __sk_buff *skb, struct flow_ctx *c, const struct endpoint_info *ep)
{
	struct icmp_quote q = {};

	if (!icmp_quote_parse(skb, &c->t, &q) || q.t.saddr != c->t.daddr)
		return 0;

	struct ct_value *e = icmp_related_ct(&q.t, ep, CT_EGRESS);

	if (!e)
		return 0;
	c->flags |= FLOW_F_RELATED;
	c->rule_id = e->rule_id;
	if (!(e->flags & CT_F_DNAT))
		return 0;

	__u32 vip = e->nat_addr;
	__u16 vport = e->nat_port;
	int ret = icmp_quote_rewrite(skb, &c->t, &q, 1, q.t.daddr, vip, q.t.dport, vport);

	if (ret < 0)
		return ret;
	if (c->t.saddr == q.t.daddr) {
		ret = icmp_outer_addr(skb, 0, c->t.saddr, vip);
		if (ret < 0)
			return ret;
		c->t.saddr = vip;
	}
	/* For the event: the service, as for a reply of the connection. */
	c->nat_addr = vip;
	c->nat_port = vport;
	return 0;
}

/*
 * from_container: an ICMP error from the endpoint. Related when it is about
 * a packet of one of its connections and goes back to that packet's sender;
 * sent on to the backend when that sender was a service address. Returns 0
 * (related or not) or a negative drop code; c->t.daddr is where it goes.
 */
static __always_inline int icmp_error_from_endpoint(struct __sk_buff *skb, struct flow_ctx *c, const struct endpoint_info *ep)
{
	struct icmp_quote q = {};

	if (!icmp_quote_parse(skb, &c->t, &q) || q.t.daddr != c->t.saddr || q.t.saddr != c->t.daddr)
		return 0;

	struct ct_value *e = icmp_related_ct(&q.t, ep, CT_INGRESS);

	if (e) {
		c->flags |= FLOW_F_RELATED;
		c->rule_id = e->rule_id;
		return 0;
	}
	if (q.t.protocol != IPPROTO_TCP && q.t.protocol != IPPROTO_UDP)
		return 0;

	/* A reply from a service address: which backend the connection has (lb_egress's CT_SERVICE entry). */
	struct ct_key sk = {
		.saddr = q.t.daddr, .daddr = q.t.saddr, .sport = q.t.dport, .dport = q.t.sport,
		.protocol = q.t.protocol, .dir = CT_SERVICE,
	};
	struct ct_value *s = bpf_map_lookup_elem(&weft_ct_v3, &sk);

	if (!s || s->ep_id != ep->ep_id || bpf_ktime_get_ns() > s->expires)
		return 0;

	struct tuple b = q.t;

	b.saddr = s->nat_addr;
	b.sport = s->nat_port;
	e = icmp_related_ct(&b, ep, CT_INGRESS);
	/* The client's own entry for the translated connection must name this very service address. */
	if (!e || !(e->flags & CT_F_DNAT) || e->nat_addr != q.t.saddr || e->nat_port != q.t.sport)
		return 0;
	c->flags |= FLOW_F_RELATED;
	c->rule_id = e->rule_id;

	int ret = icmp_quote_rewrite(skb, &c->t, &q, 0, q.t.saddr, b.saddr, q.t.sport, b.sport);

	if (ret < 0)
		return ret;
	ret = icmp_outer_addr(skb, 1, c->t.daddr, b.saddr);
	if (ret < 0)
		return ret;
	/* For the event: the service address it was sent to, as for any translated packet. */
	c->nat_addr = c->t.daddr;
	c->nat_port = q.t.sport;
	c->t.daddr = b.saddr;
	return 0;
}

#endif /* WEFT_ICMP_H */
