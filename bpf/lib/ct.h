/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection tracking plus policy, from one endpoint's point of view.
 * Entries are keyed by the connection's first packet and the direction in
 * which the endpoint saw it (CT_EGRESS: it opened the connection; CT_INGRESS:
 * it accepted it), so two endpoints on one node keep separate entries for the
 * same connection. A later packet is "established" (same tuple, own direction)
 * or a "reply" (reversed tuple, the other direction, same endpoint). Each
 * entry remembers the endpoint's policy revision: after a policy change the
 * rule that admitted the connection is checked again, so a revoked
 * connection stops within a packet, not when its entry expires.
 */
#ifndef WEFT_CT_H
#define WEFT_CT_H

#include "policy.h"
#include "events.h"

static __always_inline int is_audit(const struct endpoint_info *ep, const struct node_config *cfg)
{
	return (ep->flags & EP_F_AUDIT) || (cfg && (cfg->flags & NODE_F_AUDIT));
}

static __always_inline int enforces(const struct endpoint_info *ep, __u8 egress)
{
	return egress ? (ep->flags & EP_F_EGRESS_ENFORCE) : (ep->flags & EP_F_INGRESS_ENFORCE);
}

/*
 * Returns 0 to let the packet through, or a negative drop code.
 * `own_dir` is CT_EGRESS in from_container and CT_INGRESS in to_container;
 * `remote_identity` is the peer's identity (destination on egress, source on
 * ingress). Emits the one flow event of a new connection (FORWARDED or AUDIT);
 * drops are reported by the caller.
 */
static __always_inline int conntrack_policy(struct __sk_buff *skb, struct flow_ctx *c, struct endpoint_info *ep,
					    __u8 own_dir, __u32 remote_identity, const struct node_config *cfg)
{
	__u8 egress = own_dir == CT_EGRESS;
	__u64 now = bpf_ktime_get_ns();
	struct ct_key key = {
		.saddr = c->t.saddr, .daddr = c->t.daddr,
		.sport = c->t.sport, .dport = c->t.dport,
		.protocol = c->t.protocol, .dir = own_dir,
	};
	struct ct_key rkey = {
		.saddr = c->t.daddr, .daddr = c->t.saddr,
		.sport = c->t.dport, .dport = c->t.sport,
		.protocol = c->t.protocol, .dir = egress ? CT_INGRESS : CT_EGRESS,
	};
	struct ct_value *e = bpf_map_lookup_elem(&weft_ct_v2, &key);
	__u32 rev = ep->policy_rev;
	int reply = 0;
	__u32 rule = 0;
	int r;

	if (!e) {
		e = bpf_map_lookup_elem(&weft_ct_v2, &rkey);
		/* The reverse entry must be this endpoint's (both ends may be local). */
		if (e && e->ep_id != ep->ep_id)
			e = NULL;
		reply = e != NULL;
	}
	if (e) {
		if (reply)
			c->flags |= FLOW_F_REPLY;
		c->rule_id = e->rule_id;
		if (reply) {
			if (e->flags & CT_F_DNAT) {
				c->nat_addr = e->nat_addr;
				c->nat_port = e->nat_port;
			}
		} else if (egress && (e->nat_addr != c->nat_addr || e->nat_port != c->nat_port)) {
			/* The tuple was reused, now to or no longer to a service. */
			e->nat_addr = c->nat_addr;
			e->nat_port = c->nat_port;
			e->flags = c->nat_addr ? (e->flags | CT_F_DNAT) : (e->flags & ~CT_F_DNAT);
		}
		if (e->policy_rev != rev) {
			/*
			 * Re-check the rule that admitted the connection: the
			 * direction it was opened in, towards the identity it
			 * was admitted for, on its original destination port.
			 */
			__u8 adm_egress = reply ? !egress : egress;
			__u16 adm_dport = reply ? c->t.sport : c->t.dport;

			r = 0;
			if (enforces(ep, adm_egress))
				r = policy_check(skb, ep, adm_egress, e->remote_identity, c->t.protocol,
						 adm_dport, &rule, 0);
			c->rule_id = rule;
			if (r < 0) {
				if (!is_audit(ep, cfg)) {
					bpf_map_delete_elem(&weft_ct_v2, reply ? &rkey : &key);
					return -WEFT_DROP_POLICY_REVOKED;
				}
				emit_flow(skb, c, VERDICT_AUDIT, WEFT_DROP_POLICY_REVOKED);
			}
			e->rule_id = rule;
			e->policy_rev = rev;
		}
		e->last_seen = now;
		__sync_fetch_and_add(&e->packets, 1);
		__sync_fetch_and_add(&e->bytes, skb->len);
		return 0;
	}

	/* A new connection. */
	c->flags |= FLOW_F_NEW;
	if (enforces(ep, egress)) {
		/* A full ipcache may have made the peer "world" or a CIDR: its identity cannot be trusted. */
		if (c->remote_inexact && cfg && (cfg->flags & NODE_F_IPCACHE_INCOMPLETE))
			r = -WEFT_DROP_IPCACHE_INCOMPLETE;
		else
			r = policy_check(skb, ep, egress, remote_identity, c->t.protocol, c->t.dport, &rule, 1);
		c->rule_id = rule;
		if (r < 0) {
			if (!is_audit(ep, cfg))
				return r;
			emit_flow(skb, c, VERDICT_AUDIT, (__u8)-r);
		} else {
			emit_flow(skb, c, VERDICT_FORWARDED, 0);
		}
	} else {
		emit_flow(skb, c, VERDICT_FORWARDED, 0);
	}

	struct ct_value v = {
		.last_seen = now,
		.packets = 1,
		.bytes = skb->len,
		.policy_rev = rev,
		.remote_identity = remote_identity,
		.ep_id = ep->ep_id,
		.rule_id = rule,
		.flags = c->nat_addr ? CT_F_DNAT : 0,
		.nat_addr = c->nat_addr,
		.nat_port = c->nat_port,
	};
	/* LRU: a full table evicts its oldest entry; that connection's next packet is evaluated as new. */
	bpf_map_update_elem(&weft_ct_v2, &key, &v, BPF_ANY);
	return 0;
}

#endif /* WEFT_CT_H */
