/* SPDX-License-Identifier: Apache-2.0 */
/* Flow events to the agent: one per new connection and one per drop, never per established packet. */
#ifndef WEFT_EVENTS_H
#define WEFT_EVENTS_H

#include "maps.h"

/*
 * Keeps struct flow_event in the object's BTF (events are reserved as raw ring
 * buffer memory, so nothing else names the type), for the layout test.
 */
const volatile struct flow_event weft_flow_event_btf __attribute__((used));

struct flow_ctx {
	struct tuple t;
	__u32 src_identity;
	__u32 dst_identity;
	__u16 ep_id;
	__u16 flags;
	__u8 point;
	__u32 rule_id;
	/*
	 * Egress: the service address the packet was sent to, before translation
	 * (lb_egress, frag_later, icmp_error_from_endpoint). Ingress: the service a
	 * reply's connection was opened to (its CT_F_DNAT entry, or the one
	 * icmp_error_to_endpoint found). The event's svc_addr and svc_port.
	 */
	__u32 nat_addr;
	__u16 nat_port;
	/* The peer's identity is not from an IPCACHE_F_EXACT entry or the identity mark (see NODE_F_IPCACHE_INCOMPLETE). */
	__u8 remote_inexact;
};

static __always_inline void emit_flow(struct __sk_buff *skb, const struct flow_ctx *c, __u8 verdict, __u8 reason)
{
	struct flow_event *e = bpf_ringbuf_reserve(&weft_events, sizeof(*e), 0);

	/* A full ring buffer costs an event, never a packet; the event is counted. */
	if (!e) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&weft_events_lost, &zero);

		if (lost)
			(*lost)++;
		return;
	}
	e->timestamp = bpf_ktime_get_ns();
	e->src_identity = c->src_identity;
	e->dst_identity = c->dst_identity;
	e->saddr = c->t.saddr;
	e->daddr = c->t.daddr;
	e->sport = c->t.sport;
	e->dport = c->t.dport;
	e->protocol = c->t.protocol;
	e->verdict = verdict;
	e->drop_reason = reason;
	e->point = c->point;
	e->ep_id = c->ep_id;
	e->flags = c->flags;
	e->ifindex = skb->ifindex;
	e->length = skb->len;
	e->rule_id = c->rule_id;
	e->tcp_flags = c->t.tcp_flags;
	e->pad = 0;
	e->svc_port = c->nat_port;
	e->svc_addr = c->nat_addr;
	bpf_ringbuf_submit(e, 0);
}

#endif /* WEFT_EVENTS_H */
