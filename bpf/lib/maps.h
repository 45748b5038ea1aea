/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node's maps. Pinned by name under the agent's pin root, so every
 * object (bpf_lxc.o, bpf_overlay.o, bpf_host.o) shares them and a restarted
 * agent finds them again with their contents.
 */
#ifndef WEFT_MAPS_H
#define WEFT_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, 512 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_endpoints SEC(".maps");

/* Node addresses (node IP, router IP) -> the node: who may send tunnel packets (lib/trust.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct node_key);
	__type(value, struct node_info);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_nodes SEC(".maps");

/*
 * The CIDRs policies name (ipBlock, toCIDR), each with its node-local CIDR identity: the
 * ipcache's policy-cidr entries alone. Where the ipcache gives a peer its pod or node identity,
 * this gives the ipBlock its address falls in, so an ipBlock selects pod and node addresses too,
 * as Kubernetes NetworkPolicy expects (lib/policy.h). Holds every CIDR identity there can be
 * (CIDR_IDENTITY_MIN..CIDR_IDENTITY_MAX): it is never full, so no ipBlock is ever missing from it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, __u32);
	__uint(max_entries, CIDR_IDENTITY_MAX - CIDR_IDENTITY_MIN + 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_policy_cidrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(max_entries, 256 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_policy_v2 SEC(".maps");

/* Preallocated (no allocation on the packet path); never evicts: see ct.h. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(max_entries, 256 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_ct_v3 SEC(".maps");

/*
 * Conntrack entries held by each endpoint, by ep_id. The datapath adds and
 * subtracts atomically as it creates and deletes; the agent's garbage
 * collector rewrites each count from a walk of the table, so drift heals.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_ct_count SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct ct_stats);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_ct_stats SEC(".maps");

/*
 * LRU: a datagram whose record is evicted before its last fragment passed
 * loses its later fragments (dropped as FRAG_NO_FIRST), never their verdict.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct frag_key);
	__type(value, struct frag_value);
	__uint(max_entries, 16384);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_frag SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_key);
	__type(value, struct lb_value);
	__uint(max_entries, 256 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_backend_key);
	__type(value, __u32);	/* the backend's slot, for inspection */
	__uint(max_entries, 256 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_lb_backends SEC(".maps");

/* Service addresses, as a bitmap (weft_types.h, LB_VIP_FILTER_WORDS): 8 KiB, one word per lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, LB_VIP_FILTER_WORDS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_lb_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct node_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_config_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_events SEC(".maps");

/*
 * Flow events a full weft_events could not take (one slot per CPU, the agent
 * sums them): a lost event costs no packet, but the observer says how many
 * it missed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_events_lost SEC(".maps");

static __always_inline struct node_config *node_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&weft_config_v2, &zero);
}

/* Identity of an address: its ipcache entry, else world. */
static __always_inline __u32 ipcache_identity(__u32 addr, struct ipcache_value **out)
{
	struct ipcache_key key = { .prefixlen = 32, .ip = addr };
	struct ipcache_value *v = bpf_map_lookup_elem(&weft_ipcache, &key);

	if (out)
		*out = v;
	return v ? v->identity : IDENTITY_WORLD;
}

#endif /* WEFT_MAPS_H */
