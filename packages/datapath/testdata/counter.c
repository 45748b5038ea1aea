// Test program: counts packets into an array map and emits one ring buffer record per packet.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} test_counter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} test_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} test_events SEC(".maps");

SEC("tc")
int count_packets(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&test_counter, &zero);
	__u32 *len;

	if (n)
		__sync_fetch_and_add(n, 1);
	len = bpf_ringbuf_reserve(&test_events, sizeof(*len), 0);
	if (len) {
		*len = skb->len;
		bpf_ringbuf_submit(len, 0);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
