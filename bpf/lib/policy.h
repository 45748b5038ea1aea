/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy verdicts: two LPM lookups (the remote identity, then identity 0 =
 * any); a deny from either wins; else an allow from either admits; else the
 * default-deny of an enforcing direction. The agent guarantees that no allow
 * entry is longer than a deny entry covering it, so the longest match of each
 * lookup is the right one.
 */
#ifndef WEFT_POLICY_H
#define WEFT_POLICY_H

#include "maps.h"

static __always_inline struct policy_value *policy_lookup(__u16 ep_id, __u8 egress, __u32 identity, __u8 proto, __u16 dport)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.ep_id = ep_id,
		.egress = egress,
		.identity = identity,
		.protocol = proto,
		.dport = dport,
	};
	return bpf_map_lookup_elem(&weft_policy, &key);
}

/* 0 when allowed (rule id in *rule), or -WEFT_DROP_POLICY / -WEFT_DROP_POLICY_DENY. */
static __always_inline int policy_check(struct __sk_buff *skb, __u16 ep_id, __u8 egress, __u32 identity, __u8 proto, __u16 dport, __u32 *rule)
{
	struct policy_value *exact = policy_lookup(ep_id, egress, identity, proto, dport);
	struct policy_value *any = policy_lookup(ep_id, egress, 0, proto, dport);
	struct policy_value *hit;

	if ((exact && exact->deny) || (any && any->deny)) {
		hit = (exact && exact->deny) ? exact : any;
		*rule = hit->rule_id;
		__sync_fetch_and_add(&hit->packets, 1);
		__sync_fetch_and_add(&hit->bytes, skb->len);
		return -WEFT_DROP_POLICY_DENY;
	}
	hit = exact ? exact : any;
	if (!hit) {
		*rule = 0;
		return -WEFT_DROP_POLICY;
	}
	*rule = hit->rule_id;
	__sync_fetch_and_add(&hit->packets, 1);
	__sync_fetch_and_add(&hit->bytes, skb->len);
	return 0;
}

#endif /* WEFT_POLICY_H */
