// Test object for the map tests: one map of each kind the datapath uses,
// pinned by name so that two objects opened with one pin root share them.
// Compiled a second time with -DWTDP_HASH_VALUE=__u64 to provoke a pinned
// map definition mismatch, and with -DWTDP_REJECT to make the load fail.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#ifndef WTDP_HASH_VALUE
#define WTDP_HASH_VALUE __u32
#endif

struct wtdp_lpm_key {
	__u32 prefixlen;
	__u32 addr; // network byte order
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, WTDP_HASH_VALUE);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} wtdp_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct wtdp_lpm_key);
	__type(value, __u32);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} wtdp_trie SEC(".maps");

// Deliberately tiny: the third key fails with E2BIG.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} wtdp_small SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 4);
} wtdp_percpu SEC(".maps");

SEC("tc")
int touch_maps(struct __sk_buff *skb)
{
	struct wtdp_lpm_key key = { .prefixlen = 32, .addr = 0 };
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&wtdp_percpu, &zero);
	__u32 *id;

	if (skb->len >= 34)
		bpf_skb_load_bytes(skb, 30, &key.addr, sizeof(key.addr));
#ifdef WTDP_REJECT
	/* Unbounded packet read: the verifier refuses the program (a load that fails after the maps). */
	key.addr = *(__u32 *)(long)skb->data;
#endif
	id = bpf_map_lookup_elem(&wtdp_trie, &key);
	if (n)
		*n += id ? *id : 1;
	skb->mark = 0x5eed;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
