/* SPDX-License-Identifier: Apache-2.0 */
/*
 * IP fragments, at a pod's veth (the tc hook sees them as they are: nothing
 * reassembles before it). Only a datagram's first fragment carries the L4
 * header, yet conntrack, policy and service translation decide on ports.
 * The first fragment records its ports in weft_frag under (saddr, daddr, IP
 * id, protocol), and at a client's veth also the backend a service gave it;
 * a later fragment takes them from there, so it meets the same conntrack
 * entry, the same policy verdict and the same backend as its first fragment.
 *
 * A later fragment without a record (its first was lost, evicted, older than
 * FRAG_LIFETIME_NS, or comes after it) is dropped and reported as
 * FRAG_NO_FIRST: any ports given to it would be a guess, and ports 0 would
 * put it under whatever a policy says of port 0. Fail closed.
 *
 * Only fragments pay: parse_packet flags them, and an unfragmented packet
 * never touches the map. Only TCP, UDP and ICMP are recorded, the protocols
 * parse_packet reads ports for; the fragments of any other protocol have
 * ports 0 like their first.
 */
#ifndef WEFT_FRAG_H
#define WEFT_FRAG_H

#include "maps.h"
#include "lb.h"

/* The kernel's own reassembly timeout (net.ipv4.ipfrag_time): no receiver keeps a first fragment longer. */
#define FRAG_LIFETIME_NS	(30ULL * 1000 * 1000 * 1000)

static __always_inline int frag_tracked(__u8 protocol)
{
	return protocol == IPPROTO_TCP || protocol == IPPROTO_UDP || protocol == IPPROTO_ICMP;
}

/*
 * A first fragment, after any service translation (from_container) or
 * before any reverse translation (to_container): keyed by the addresses
 * the later fragments will show at the same hook.
 */
static __always_inline void frag_record(const struct flow_ctx *c)
{
	const struct tuple *t = &c->t;

	if (!frag_tracked(t->protocol))
		return;

	struct frag_key k = {
		.saddr = t->saddr,
		.daddr = c->nat_addr ? c->nat_addr : t->daddr,
		.id = t->ip_id,
		.protocol = t->protocol,
	};
	struct frag_value v = {
		.first_seen = bpf_ktime_get_ns(),
		.sport = t->sport,
		.dport = c->nat_addr ? c->nat_port : t->dport,
		.nat_addr = c->nat_addr ? t->daddr : 0,
		.nat_port = c->nat_addr ? t->dport : 0,
	};

	/* A full map evicts its oldest record: that datagram's later fragments are dropped, not misjudged. */
	bpf_map_update_elem(&weft_frag, &k, &v, BPF_ANY);
}

/*
 * A later fragment: its first fragment's ports; with `translate`
 * (from_container) also its backend, the destination rewritten to it.
 * Returns 0 or a negative drop code.
 */
static __always_inline int frag_later(struct __sk_buff *skb, struct flow_ctx *c, int translate)
{
	struct tuple *t = &c->t;

	if (!frag_tracked(t->protocol))
		return 0;

	struct frag_key k = { .saddr = t->saddr, .daddr = t->daddr, .id = t->ip_id, .protocol = t->protocol };
	struct frag_value *v = bpf_map_lookup_elem(&weft_frag, &k);

	if (!v || bpf_ktime_get_ns() - v->first_seen > FRAG_LIFETIME_NS)
		return -WEFT_DROP_FRAG_NO_FIRST;
	t->sport = v->sport;
	t->dport = v->dport;
	if (!translate || !v->nat_addr)
		return 0;

	__u32 addr = v->nat_addr;
	__u16 port = v->nat_port;
	int ret = nat_rewrite(skb, t, 1, t->daddr, addr, t->dport, port);

	if (ret < 0)
		return ret;
	c->nat_addr = t->daddr;
	c->nat_port = t->dport;
	t->daddr = addr;
	t->dport = port;
	return 0;
}

#endif /* WEFT_FRAG_H */
