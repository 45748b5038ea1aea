// Test program the verifier must reject: it reads packet data without a
// bounds check ("invalid access to packet").
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int unchecked_read(struct __sk_buff *skb)
{
	unsigned char *data = (void *)(long)skb->data;
	return data[20];
}

char LICENSE[] SEC("license") = "GPL";
