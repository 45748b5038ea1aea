// Test program for the tc and ring buffer tests: counts every packet it sees
// into an ARRAY map and emits one ring buffer record per packet.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

// One record per packet; mirrored by the test's decoder (16 bytes).
struct wtdp_record {
	__u32 len;      // skb->len as the program saw it (L2 header included)
	__u32 ifindex;  // the interface the program is attached to
	__u32 protocol; // skb->protocol, network byte order (0x0008 = IPv4 read little-endian)
	__u32 seq;      // the packet's number in the counter, from 1
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} wtdp_counter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} wtdp_events SEC(".maps");

SEC("tc")
int count_packets(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&wtdp_counter, &zero);
	struct wtdp_record *rec;
	__u64 seq = 0;

	if (n)
		seq = __sync_fetch_and_add(n, 1) + 1;
	rec = bpf_ringbuf_reserve(&wtdp_events, sizeof(*rec), 0);
	if (rec) {
		rec->len = skb->len;
		rec->ifindex = skb->ifindex;
		rec->protocol = skb->protocol;
		rec->seq = (__u32)seq;
		bpf_ringbuf_submit(rec, 0);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
