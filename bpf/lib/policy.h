/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy verdicts: up to three LPM lookups with the full 96-bit prefix (the
 * remote identity; the CIDR identity of the ipBlock the peer's address falls
 * in, when the ipcache gave it another identity; then identity 0 = any), all
 * in the endpoint's policy generation in force (EP_F_POLICY_GEN); a deny from
 * any wins; else an allow from any admits (the exact identity's entry first);
 * else the default-deny of an enforcing direction. The agent guarantees that
 * no allow entry is longer than a deny entry covering it, so the longest
 * match of each lookup is the right one.
 *
 * The CIDR lookup is why an ipBlock selects pod and node addresses too
 * (Kubernetes NetworkPolicy: an ipBlock is addresses, whoever holds them):
 * the ipcache maps a pod's address to the pod's identity, weft_policy_cidrs
 * maps it to the longest policy CIDR containing it (an `except` is a longer
 * CIDR whose identity the rule does not select).
 *
 * Counters: the matching entry's packets/bytes grow by one packet for each
 * new connection it decides (allow or deny; a denied flow is decided again on
 * every packet, since it never gets a conntrack entry). Re-checks of
 * established connections after a policy change are not counted.
 */
#ifndef WEFT_POLICY_H
#define WEFT_POLICY_H

#include "maps.h"

static __always_inline struct policy_value *policy_lookup(__u16 ep_id, __u8 gen, __u8 egress, __u32 identity, __u8 proto, __u16 dport)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.ep_id = ep_id,
		.egress = egress,
		.gen = gen,
		.identity = identity,
		.protocol = proto,
		.dport = policy_port(proto, dport),
	};
	return bpf_map_lookup_elem(&weft_policy_v2, &key);
}

/*
 * The identity of the longest policy CIDR containing `addr` (network order),
 * or 0 when none does or it is `identity` itself (the ipcache already gave
 * the peer that CIDR's identity: one lookup is enough).
 */
static __always_inline __u32 policy_cidr_identity(__u32 addr, __u32 identity)
{
	struct ipcache_key key = { .prefixlen = 32, .ip = addr };
	__u32 *id = bpf_map_lookup_elem(&weft_policy_cidrs, &key);

	return id && *id != identity ? *id : 0;
}

/*
 * 0 when allowed, -WEFT_DROP_POLICY (no entry) or -WEFT_DROP_POLICY_DENY.
 * `cidr_identity` is policy_cidr_identity() of the peer's address (0: none).
 * *rule is the deciding entry's rule id (0 when none). `dport` in network
 * order, as in the packet; `count` adds the packet to the entry's counters.
 */
static __always_inline int policy_check(struct __sk_buff *skb, const struct endpoint_info *ep, __u8 egress, __u32 identity,
					__u32 cidr_identity, __u8 proto, __u16 dport, __u32 *rule, int count)
{
	__u8 gen = (ep->flags & EP_F_POLICY_GEN) ? 1 : 0;
	struct policy_value *exact = policy_lookup(ep->ep_id, gen, egress, identity, proto, dport);
	struct policy_value *cidr = cidr_identity ? policy_lookup(ep->ep_id, gen, egress, cidr_identity, proto, dport) : NULL;
	struct policy_value *any = policy_lookup(ep->ep_id, gen, egress, 0, proto, dport);
	struct policy_value *hit = NULL;
	int ret = 0;

	/*
	 * Written so that `hit` itself is tested before it is read: with three
	 * candidates clang folded an else-if chain into combined flags the
	 * verifier of older kernels (6.1) could not relate to the pointers.
	 */
	if (exact && exact->deny)
		hit = exact;
	else if (cidr && cidr->deny)
		hit = cidr;
	else if (any && any->deny)
		hit = any;
	if (hit)
		ret = -WEFT_DROP_POLICY_DENY;
	else if (exact)
		hit = exact;
	else if (cidr)
		hit = cidr;
	else
		hit = any;
	if (!hit) {
		*rule = 0;
		return -WEFT_DROP_POLICY;
	}
	*rule = hit->rule_id;
	if (count) {
		__sync_fetch_and_add(&hit->packets, 1);
		__sync_fetch_and_add(&hit->bytes, skb->len);
	}
	return ret;
}

#endif /* WEFT_POLICY_H */
