/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Connection tracking plus policy, from one endpoint's point of view.
 * Entries are keyed by the connection's first packet and the direction in
 * which the endpoint saw it (CT_EGRESS: it opened the connection; CT_INGRESS:
 * it accepted it), so two endpoints on one node keep separate entries for the
 * same connection. A later packet is "established" (same tuple, own direction)
 * or a "reply" (reversed tuple, the other direction, same endpoint). Each
 * entry remembers the endpoint's policy revision and the peer's identity:
 * after a policy change, or when the peer's identity changes, the rule that
 * admitted the connection is checked again, so a revoked connection stops
 * within a packet, not when its entry expires.
 *
 * Lifecycle: an entry lives for a timeout after its last packet (by protocol
 * and TCP state: SYN, established once the other side answered, closing
 * after FIN both ways or RST). A dead entry is absent: whoever meets it
 * deletes it, and the packet is a new connection, judged by policy. So is a
 * SYN reusing the tuple of a closed TCP connection, and a packet meeting an
 * entry of another endpoint (a pod since removed had the address). Creating
 * an entry never evicts one: a full table (CT_FULL) or an endpoint at its
 * quota (CT_QUOTA) refuses the new connection, and live connections of
 * other endpoints are untouched.
 */
#ifndef WEFT_CT_H
#define WEFT_CT_H

#include "policy.h"
#include "events.h"

#ifndef EEXIST
#define EEXIST 17
#endif

#define NSEC_PER_SEC	1000000000ULL

/* What a node_config field of 0 means (Cilium's timeouts). */
#define CT_DEFAULT_QUOTA		65536
#define CT_DEFAULT_TCP_SYN		60
#define CT_DEFAULT_TCP_ESTABLISHED	21600
#define CT_DEFAULT_TCP_CLOSE		10
#define CT_DEFAULT_UDP			60
#define CT_DEFAULT_ICMP			60

#define CT_F_CLOSED	(CT_F_TX_CLOSING | CT_F_RX_CLOSING)

static __always_inline __u64 ct_seconds(__u32 configured, __u32 dflt)
{
	return (__u64)(configured ? configured : dflt) * NSEC_PER_SEC;
}

/* How long an entry lives after a packet, from its protocol and state (`flags` after the packet). */
static __always_inline __u64 ct_lifetime(const struct node_config *cfg, __u8 protocol, __u16 flags, __u8 tcp_flags)
{
	if (protocol == IPPROTO_TCP) {
		if ((flags & CT_F_CLOSED) == CT_F_CLOSED)
			return ct_seconds(cfg ? cfg->ct_tcp_close : 0, CT_DEFAULT_TCP_CLOSE);
		if ((flags & CT_F_SEEN_REPLY) && !(tcp_flags & TH_SYN))
			return ct_seconds(cfg ? cfg->ct_tcp_established : 0, CT_DEFAULT_TCP_ESTABLISHED);
		return ct_seconds(cfg ? cfg->ct_tcp_syn : 0, CT_DEFAULT_TCP_SYN);
	}
	if (protocol == IPPROTO_ICMP)
		return ct_seconds(cfg ? cfg->ct_icmp : 0, CT_DEFAULT_ICMP);
	return ct_seconds(cfg ? cfg->ct_udp : 0, CT_DEFAULT_UDP);
}

static __always_inline void ct_count_add(__u16 ep_id, __s32 delta)
{
	__u32 idx = ep_id;
	__u32 *count = bpf_map_lookup_elem(&weft_ct_count, &idx);

	if (count)
		__sync_fetch_and_add(count, delta);
}

static __always_inline void ct_delete(const struct ct_key *key, __u16 ep_id)
{
	/* Only the deleter that removed it uncounts it (two CPUs may race to). */
	if (bpf_map_delete_elem(&weft_ct_v3, key) == 0)
		ct_count_add(ep_id, -1);
}

/*
 * The live entry at `key`, or NULL. A dead entry (expired, or a closed TCP
 * connection whose tuple a new SYN reuses) is deleted on the way.
 */
static __always_inline struct ct_value *ct_lookup(const struct ct_key *key, __u64 now, __u8 tcp_flags)
{
	struct ct_value *e = bpf_map_lookup_elem(&weft_ct_v3, key);

	if (!e)
		return NULL;
	if (now > e->expires ||
	    ((tcp_flags & (TH_SYN | TH_ACK)) == TH_SYN && (e->flags & CT_F_CLOSED) == CT_F_CLOSED)) {
		ct_delete(key, e->ep_id);
		return NULL;
	}
	return e;
}

static __always_inline void ct_stat_drop(int full)
{
	__u32 zero = 0;
	struct ct_stats *s = bpf_map_lookup_elem(&weft_ct_stats, &zero);

	if (!s)
		return;
	if (full)
		s->drops_full++;
	else
		s->drops_quota++;
}

/*
 * Adds an entry for endpoint v->ep_id: 0, or -WEFT_DROP_CT_QUOTA when the
 * endpoint holds its quota, -WEFT_DROP_CT_FULL when the table is full. The
 * quota is taken before the insert, so CPUs racing cannot overshoot it.
 */
static __always_inline int ct_create(const struct ct_key *key, const struct ct_value *v, const struct node_config *cfg)
{
	__u32 idx = v->ep_id;
	__u32 *count = bpf_map_lookup_elem(&weft_ct_count, &idx);
	__s32 quota = cfg && cfg->ct_quota ? cfg->ct_quota : CT_DEFAULT_QUOTA;
	int err;

	if (!count)
		return -WEFT_DROP_CT_QUOTA; /* an array lookup in range: cannot happen */
	/* Signed: a count the agent's recount left behind a concurrent delete may dip below 0. */
	if ((__s32)__sync_fetch_and_add(count, 1) >= quota) {
		__sync_fetch_and_add(count, -1);
		ct_stat_drop(0);
		return -WEFT_DROP_CT_QUOTA;
	}
	err = bpf_map_update_elem(&weft_ct_v3, key, v, BPF_NOEXIST);
	if (err == 0)
		return 0;
	__sync_fetch_and_add(count, -1);
	if (err == -EEXIST)
		return 0; /* another CPU created it meanwhile: the connection has its entry */
	ct_stat_drop(1);
	return -WEFT_DROP_CT_FULL;
}

/* A packet of a tracked connection: its state and lifetime. */
static __always_inline void ct_refresh(struct ct_value *e, int reply, __u8 protocol, __u8 tcp_flags,
				       const struct node_config *cfg, __u64 now)
{
	__u16 flags = e->flags;

	if (reply)
		flags |= CT_F_SEEN_REPLY;
	if (protocol == IPPROTO_TCP) {
		if (tcp_flags & TH_RST)
			flags |= CT_F_CLOSED;
		else if (tcp_flags & TH_FIN)
			flags |= reply ? CT_F_RX_CLOSING : CT_F_TX_CLOSING;
	}
	if (flags != e->flags)
		e->flags = flags;
	e->expires = now + ct_lifetime(cfg, protocol, flags, tcp_flags);
}

/*
 * Egress to a service (lb_egress translated the packet, c->nat_addr is the
 * service address): the connection's CT_SERVICE entry lives as long as the
 * connection's own entry (so a connection keeps its backend while it lives,
 * and a closed one frees both), and is created only once the connection was
 * admitted. Looked up again rather than handed over by lb_egress: a pointer
 * or flag carried between the two multiplies the verifier's states.
 */
static __always_inline int ct_service(struct flow_ctx *c, __u16 ep_id, __u64 expires, const struct node_config *cfg)
{
	if (!c->nat_addr)
		return 0;

	struct ct_key sk = {
		.saddr = c->t.saddr, .daddr = c->nat_addr, .sport = c->t.sport, .dport = c->nat_port,
		.protocol = c->t.protocol, .dir = CT_SERVICE,
	};
	struct ct_value *e = bpf_map_lookup_elem(&weft_ct_v3, &sk);

	if (e) {
		e->expires = expires;
		return 0;
	}

	struct ct_value sv = {
		.expires = expires, .ep_id = ep_id, .nat_addr = c->t.daddr, .nat_port = c->t.dport,
	};

	return ct_create(&sk, &sv, cfg);
}

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
 * the peer's identity is c->dst_identity on egress, c->src_identity on
 * ingress. Emits the one flow event of a new connection (FORWARDED or AUDIT);
 * drops are reported by the caller.
 *
 * A global function (not inlined, at most five arguments): the verifier
 * checks it once, not once for every path of every caller that reaches it,
 * which multiplied its work (from_container: 172k instructions verified
 * inlined, 12k so) for one call per packet.
 */
__attribute__((noinline)) int conntrack_policy(struct __sk_buff *skb, struct flow_ctx *c, struct endpoint_info *ep, __u8 own_dir)
{
	/* A global function's pointers may be NULL for all the verifier knows. */
	if (!c || !ep)
		return -WEFT_DROP_INVALID_PACKET;

	const struct node_config *cfg = node_config();
	__u32 remote_identity = own_dir == CT_EGRESS ? c->dst_identity : c->src_identity;
	__u8 egress = own_dir == CT_EGRESS;
	/* The peer's address, in either direction of the connection: the destination on egress. */
	__u32 peer_addr = egress ? c->t.daddr : c->t.saddr;
	__u64 now = bpf_ktime_get_ns();
	__u8 tcp_flags = c->t.tcp_flags;
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
	struct ct_value *e = ct_lookup(&key, now, tcp_flags);
	__u32 rev = ep->policy_rev;
	__u8 verdict = 0; /* set for a new connection: its event */
	__u8 reason = 0;
	__u64 expires;
	int reply = 0;
	__u32 rule = 0;
	int r;

	/* The address belonged to an endpoint since removed: its connections are not this one's. */
	if (e && e->ep_id != ep->ep_id) {
		ct_delete(&key, e->ep_id);
		e = NULL;
	}
	if (!e) {
		e = ct_lookup(&rkey, now, tcp_flags);
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
		/*
		 * The peer's identity is compared in the direction the
		 * connection was opened in only: there it comes from where it
		 * came from when the connection was admitted (the ipcache on
		 * egress; the mark or the ipcache on ingress), while a reply's
		 * comes from the other source, which may lag or lack the peer.
		 */
		__u32 peer = reply ? e->remote_identity : remote_identity;

		if (e->policy_rev != rev || e->remote_identity != peer) {
			/*
			 * Re-check the rule that admitted the connection: the
			 * direction it was opened in, towards the peer's identity
			 * as it is now, on its original destination port.
			 */
			__u8 adm_egress = reply ? !egress : egress;
			__u16 adm_dport = reply ? c->t.sport : c->t.dport;
			__u8 why = e->remote_identity != peer ? WEFT_DROP_IDENTITY_CHANGED : WEFT_DROP_POLICY_REVOKED;

			r = 0;
			if (enforces(ep, adm_egress)) {
				/* As for a new connection: a changed identity from an incomplete ipcache cannot be trusted. */
				if (why == WEFT_DROP_IDENTITY_CHANGED && c->remote_inexact && cfg && (cfg->flags & NODE_F_IPCACHE_INCOMPLETE))
					r = -WEFT_DROP_IPCACHE_INCOMPLETE;
				else
					r = policy_check(skb, ep, adm_egress, peer, policy_cidr_identity(peer_addr, peer), c->t.protocol, adm_dport, &rule, 0);
			}
			c->rule_id = rule;
			if (r < 0) {
				if (!is_audit(ep, cfg)) {
					ct_delete(reply ? &rkey : &key, ep->ep_id);
					return r == -WEFT_DROP_IPCACHE_INCOMPLETE ? r : -why;
				}
				emit_flow(skb, c, VERDICT_AUDIT, r == -WEFT_DROP_IPCACHE_INCOMPLETE ? WEFT_DROP_IPCACHE_INCOMPLETE : why);
			}
			e->rule_id = rule;
			e->policy_rev = rev;
			e->remote_identity = peer;
		}
		ct_refresh(e, reply, c->t.protocol, tcp_flags, cfg, now);
		__sync_fetch_and_add(&e->packets, 1);
		__sync_fetch_and_add(&e->bytes, skb->len);
		expires = e->expires;
	} else {
		/* A new connection. */
		c->flags |= FLOW_F_NEW;
		verdict = VERDICT_FORWARDED;
		if (enforces(ep, egress)) {
			/* A full ipcache may have made the peer "world" or a CIDR: its identity cannot be trusted. */
			if (c->remote_inexact && cfg && (cfg->flags & NODE_F_IPCACHE_INCOMPLETE))
				r = -WEFT_DROP_IPCACHE_INCOMPLETE;
			else
				r = policy_check(skb, ep, egress, remote_identity, policy_cidr_identity(peer_addr, remote_identity), c->t.protocol, c->t.dport, &rule, 1);
			c->rule_id = rule;
			if (r < 0) {
				if (!is_audit(ep, cfg))
					return r;
				verdict = VERDICT_AUDIT;
				reason = (__u8)-r;
			}
		}

		struct ct_value v = {
			.expires = now + ct_lifetime(cfg, c->t.protocol, 0, tcp_flags),
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

		/* Admitted: refused only now, for want of room (never by evicting another entry). */
		r = ct_create(&key, &v, cfg);
		if (r < 0)
			return r;
		expires = v.expires;
	}
	if (egress) {
		r = ct_service(c, ep->ep_id, expires, cfg);
		if (r < 0)
			return r;
	}
	if (verdict)
		emit_flow(skb, c, verdict, reason);
	return 0;
}

#endif /* WEFT_CT_H */
