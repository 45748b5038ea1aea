#!/usr/bin/env bash
# Datapath self-test, no network needed: loads bpf/build/bpf_lxc.o,
# bpf_overlay.o and bpf_host.o through the real verifier with ONE throwaway pin
# root (so the objects share the maps, as in the agent), then runs crafted packets through
# the programs with BPF_PROG_TEST_RUN and checks verdicts, flow events,
# conntrack and policy counters. Needs root, clang (or cc) and libbpf-dev.
# Leaves nothing behind: the pin root under /sys/fs/bpf and the scratch
# directory are removed on every exit path. Takes about a second.
#
#   hack/bpf-selftest.sh            # builds first (hack/build-bpf.sh)
#   hack/bpf-selftest.sh --no-build # tests the objects already in bpf/build
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "[bpf-selftest] needs root (BPF_PROG_LOAD, bpffs)" >&2; exit 1; }
[ "${1:-}" = "--no-build" ] || "$root/hack/build-bpf.sh"

scratch="" pins=""
cleanup() { rm -rf ${pins:+"$pins"} ${scratch:+"$scratch"}; }
trap cleanup EXIT
trap 'exit 130' INT TERM
scratch="$(mktemp -d /tmp/weft-bpf-selftest.XXXXXX)"
pins="$(mktemp -d /sys/fs/bpf/weft-selftest-XXXXXX)" # bpffs refuses names with a dot

cat >"$scratch/selftest.c" <<'EOF'
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/tcp.h> /* TH_FIN, TH_SYN, ... */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "weft_types.h"

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; printf("  FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* ---- objects and maps ---- */
static struct bpf_object *lxc, *ovl, *host;
static int prog_from, prog_to, prog_ovl, prog_ul;
static int m_ipcache, m_endpoints, m_policy, m_ct, m_config, m_lb, m_lb_backends, m_lb_vips, m_nodes, m_ct_count, m_ct_stats, m_events_lost;
static struct ring_buffer *rb;

#define MAX_EV 32
static struct flow_event evs[MAX_EV];
static int nev;

static int on_event(void *ctx, void *data, size_t len)
{
	if (len == sizeof(struct flow_event) && nev < MAX_EV)
		memcpy(&evs[nev++], data, len);
	return 0;
}

static void drain(void) { nev = 0; ring_buffer__consume(rb); }

static int print_libbpf(enum libbpf_print_level lvl, const char *fmt, va_list ap)
{
	return lvl == LIBBPF_DEBUG ? 0 : vfprintf(stderr, fmt, ap);
}

static struct bpf_object *load(const char *path, const char *pin_root)
{
	LIBBPF_OPTS(bpf_object_open_opts, o, .pin_root_path = pin_root);
	struct bpf_object *obj = bpf_object__open_file(path, &o);

	if (!obj) { fprintf(stderr, "open %s: %s\n", path, strerror(errno)); exit(1); }
	if (bpf_object__load(obj)) { fprintf(stderr, "load %s: verifier or map error (log above)\n", path); exit(1); }
	return obj;
}

static int prog_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_program *p = bpf_object__find_program_by_name(obj, name);
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd;

	if (!p) { fprintf(stderr, "no program %s\n", name); exit(1); }
	fd = bpf_program__fd(p);
	bpf_obj_get_info_by_fd(fd, &info, &len);
	printf("verifier: %-15s OK  type sched_cls  xlated %u insns  verified %u insns  jited %u bytes\n",
	       name, info.xlated_prog_len / 8, info.verified_insns, info.jited_prog_len);
	return fd;
}

static int map_fd(struct bpf_object *obj, const char *name, __u32 *id)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, name);
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd;

	if (!m) { fprintf(stderr, "no map %s\n", name); exit(1); }
	fd = bpf_map__fd(m);
	bpf_obj_get_info_by_fd(fd, &info, &len);
	*id = info.id;
	return fd;
}

/* ---- packets ---- */
static const __u8 MAC_A[6] = {2, 0, 0, 0, 0, 0x0a}, NODE_A[6] = {2, 0, 0, 0, 0, 0xa0};
static const __u8 MAC_B[6] = {2, 0, 0, 0, 0, 0x0b}, NODE_B[6] = {2, 0, 0, 0, 0, 0xb0};

struct pkt { __u8 b[128]; __u32 len; };

static struct pkt ipv4(const char *src, const char *dst, __u8 proto, __u16 sport, __u16 dport)
{
	struct pkt p = {};
	__u8 *ip = p.b + 14, *l4 = ip + 20;
	__u32 s = inet_addr(src), d = inet_addr(dst);
	__u16 l4len = proto == IPPROTO_TCP ? 20 : 8;

	memcpy(p.b, NODE_A, 6);		/* dst: the gateway (host-side veth) */
	memcpy(p.b + 6, MAC_A, 6);
	p.b[12] = 0x08; p.b[13] = 0x00;
	ip[0] = 0x45; ip[8] = 64; ip[9] = proto;
	ip[2] = (20 + l4len) >> 8; ip[3] = (20 + l4len) & 0xff;
	memcpy(ip + 12, &s, 4); memcpy(ip + 16, &d, 4);
	if (proto == IPPROTO_ICMP) {
		l4[0] = sport; /* type */
		l4[4] = dport >> 8; l4[5] = dport & 0xff; /* echo id */
	} else {
		l4[0] = sport >> 8; l4[1] = sport & 0xff; l4[2] = dport >> 8; l4[3] = dport & 0xff;
		if (proto == IPPROTO_TCP) l4[12] = 0x50;
	}
	p.len = 14 + 20 + l4len;
	return p;
}

struct run { int ret; __u32 mark; __u8 out[128]; };

static struct run run(int fd, struct pkt *p, __u32 mark)
{
	struct __sk_buff ctx_in = { .mark = mark }, ctx_out = {};
	struct run r = {};
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = p->b, .data_size_in = p->len,
		.data_out = r.out, .data_size_out = sizeof(r.out),
		.ctx_in = &ctx_in, .ctx_size_in = sizeof(ctx_in),
		.ctx_out = &ctx_out, .ctx_size_out = sizeof(ctx_out),
		.repeat = 1);

	if (bpf_prog_test_run_opts(fd, &o)) { fprintf(stdout, "BPF_PROG_TEST_RUN (%u bytes): %s\n", p->len, strerror(errno)); exit(1); }
	r.ret = o.retval;
	r.mark = ctx_out.mark;
	return r;
}

/* ---- checksums (RFC 1071), to check what the NAT rewrote ---- */
static __u32 sum16(const __u8 *b, int len, __u32 sum)
{
	for (int i = 0; i + 1 < len; i += 2) sum += (b[i] << 8) | b[i + 1];
	if (len & 1) sum += b[len - 1] << 8;
	return sum;
}

static __u16 fold(__u32 sum)
{
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

static __u16 l4_sum(const __u8 *frame, __u32 len)
{
	const __u8 *ip = frame + 14;
	__u8 pseudo[12];
	__u16 l4len = len - 34;

	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0; pseudo[9] = ip[9]; pseudo[10] = l4len >> 8; pseudo[11] = l4len & 0xff;
	return fold(sum16(ip + 20, l4len, sum16(pseudo, 12, 0)));
}

/* Fills valid IPv4 and L4 checksums (the NAT updates them incrementally). */
static void fill_csums(struct pkt *p)
{
	__u8 *ip = p->b + 14;
	int off = ip[9] == IPPROTO_TCP ? 16 : 6;
	__u16 c;

	ip[10] = ip[11] = 0;
	c = fold(sum16(ip, 20, 0)); ip[10] = c >> 8; ip[11] = c & 0xff;
	ip[20 + off] = ip[20 + off + 1] = 0;
	c = l4_sum(p->b, p->len); ip[20 + off] = c >> 8; ip[20 + off + 1] = c & 0xff;
}

static int csums_ok(const __u8 *frame, __u32 len)
{
	return fold(sum16(frame + 14, 20, 0)) == 0 && l4_sum(frame, len) == 0;
}

static __u32 out_daddr(const struct run *r) { __u32 a; memcpy(&a, r->out + 30, 4); return a; }
static __u32 out_saddr(const struct run *r) { __u32 a; memcpy(&a, r->out + 26, 4); return a; }
static __u16 out_port(const struct run *r, int dst) { return (r->out[34 + 2 * dst] << 8) | r->out[35 + 2 * dst]; }

/* ---- map helpers ---- */
/* The agent's order: the address's bit in weft_lb_vips (as lib/lb.h computes it) before the frontend. */
static void set_service(const char *vip, __u16 port, __u8 proto, int n, const char **backends, __u16 bport)
{
	struct lb_key k = { .vip = inet_addr(vip), .dport = htons(port), .protocol = proto };
	struct lb_value v = { .count = n };
	__u32 bit = (ntohl(k.vip) * LB_VIP_HASH_MUL) >> 16, word = bit >> 6;
	__u64 bits = 0;

	bpf_map_lookup_elem(m_lb_vips, &word, &bits);
	bits |= 1ULL << (bit & 63);
	if (bpf_map_update_elem(m_lb_vips, &word, &bits, BPF_ANY)) { perror("lb_vips update"); exit(1); }

	for (int i = 0; i < n; i++) {
		struct lb_key bk = k;
		struct lb_value bv = { .addr = inet_addr(backends[i]), .port = htons(bport) };
		struct lb_backend_key m = { .vip = k.vip, .addr = bv.addr, .dport = k.dport, .port = bv.port, .protocol = proto };
		__u32 slot = i + 1;

		bk.slot = slot;
		if (bpf_map_update_elem(m_lb, &bk, &bv, BPF_ANY) || bpf_map_update_elem(m_lb_backends, &m, &slot, BPF_ANY)) { perror("lb update"); exit(1); }
	}
	if (bpf_map_update_elem(m_lb, &k, &v, BPF_ANY)) { perror("lb update"); exit(1); }
}

static void drop_backend(const char *vip, __u16 port, __u8 proto, const char *backend, __u16 bport)
{
	struct lb_backend_key m = { .vip = inet_addr(vip), .addr = inet_addr(backend), .dport = htons(port), .port = htons(bport), .protocol = proto };

	bpf_map_delete_elem(m_lb_backends, &m);
}
static void set_endpoint(const char *ip, __u32 ifindex, __u16 ep_id, __u16 flags, __u32 identity, __u32 rev, const __u8 *mac, const __u8 *node_mac)
{
	struct endpoint_key k = { .ip = inet_addr(ip) };
	struct endpoint_info v = { .ifindex = ifindex, .ep_id = ep_id, .flags = flags, .identity = identity, .policy_rev = rev };

	memcpy(v.mac, mac, 6); memcpy(v.node_mac, node_mac, 6);
	if (bpf_map_update_elem(m_endpoints, &k, &v, BPF_ANY)) { perror("endpoints update"); exit(1); }
}

static void set_ipcache(const char *ip, __u32 prefixlen, __u32 identity, const char *tunnel, __u16 flags)
{
	struct ipcache_key k = { .prefixlen = prefixlen, .ip = inet_addr(ip) };
	struct ipcache_value v = { .identity = identity, .tunnel_ip = tunnel ? inet_addr(tunnel) : 0, .flags = flags };

	if (bpf_map_update_elem(m_ipcache, &k, &v, BPF_ANY)) { perror("ipcache update"); exit(1); }
}

static struct policy_key pkey(__u32 prefixlen, __u16 ep_id, __u8 egress, __u32 identity, __u8 proto, __u16 dport)
{
	struct policy_key k = { .prefixlen = prefixlen, .ep_id = ep_id, .egress = egress, .identity = identity, .protocol = proto, .dport = htons(dport) };
	return k;
}

static void set_policy(struct policy_key k, __u8 deny, __u32 rule_id)
{
	struct policy_value v = { .deny = deny, .rule_id = rule_id };

	if (bpf_map_update_elem(m_policy, &k, &v, BPF_ANY)) { perror("policy update"); exit(1); }
}

static struct policy_value get_policy(struct policy_key k)
{
	struct policy_value v = {};

	bpf_map_lookup_elem(m_policy, &k, &v);
	return v;
}

static int get_ct(const char *s, const char *d, __u16 sp, __u16 dp, __u8 proto, __u8 dir, struct ct_value *v)
{
	struct ct_key k = { .saddr = inet_addr(s), .daddr = inet_addr(d), .sport = htons(sp), .dport = htons(dp), .protocol = proto, .dir = dir };

	return bpf_map_lookup_elem(m_ct, &k, v) == 0;
}

static void expect_event(const char *what, __u8 verdict, __u8 reason, __u8 point, __u16 flags, __u32 rule_id)
{
	CHECK(nev == 1, "%s: want 1 flow event, got %d", what, nev);
	if (nev < 1) return;
	struct flow_event *e = &evs[0];
	CHECK(e->verdict == verdict, "%s: verdict %u, want %u", what, e->verdict, verdict);
	CHECK(e->drop_reason == reason, "%s: drop_reason %u, want %u", what, e->drop_reason, reason);
	CHECK(e->point == point, "%s: point %u, want %u", what, e->point, point);
	CHECK(e->flags == flags, "%s: flags 0x%x, want 0x%x", what, e->flags, flags);
	CHECK(e->rule_id == rule_id, "%s: rule_id %u, want %u", what, e->rule_id, rule_id);
	CHECK(e->timestamp != 0 && e->ifindex == 1 && e->length != 0, "%s: timestamp/ifindex/length not filled", what);
}

/* ---- ICMP errors and IP fragments ---- */
static int m_frag;

static void ip_csum(__u8 *ip)
{
	__u16 c;

	ip[10] = ip[11] = 0;
	c = fold(sum16(ip, 20, 0)); ip[10] = c >> 8; ip[11] = c & 0xff;
}

/* An ICMP error from src to dst quoting q (its IPv4 header and first 8 L4 bytes); every checksum valid. */
static struct pkt icmp_error(const char *src, const char *dst, __u8 type, __u8 code, struct pkt q)
{
	struct pkt p = ipv4(src, dst, IPPROTO_ICMP, type, 0);
	__u8 *ip = p.b + 14, *icmp = ip + 20;
	__u16 c;

	icmp[1] = code;
	if (type == 3 && code == 4) { icmp[6] = 1400 >> 8; icmp[7] = 1400 & 0xff; } /* frag-needed: the next hop's MTU */
	ip_csum(q.b + 14);
	memcpy(icmp + 8, q.b + 14, 28);
	p.len = 14 + 20 + 8 + 28;
	ip[2] = 0; ip[3] = 20 + 8 + 28;
	icmp[2] = icmp[3] = 0;
	c = fold(sum16(icmp, 8 + 28, 0)); icmp[2] = c >> 8; icmp[3] = c & 0xff;
	ip_csum(ip);
	return p;
}

/* Outer IPv4, quoted IPv4 and ICMP checksums of an ICMP error in a program's output. */
static int icmp_csums_ok(const struct run *r, __u32 len)
{
	const __u8 *ip = r->out + 14;

	return fold(sum16(ip, 20, 0)) == 0 && fold(sum16(ip + 28, 20, 0)) == 0 && fold(sum16(ip + 20, len - 34, 0)) == 0;
}

static __u32 quoted_addr(const struct run *r, int dst) { __u32 a; memcpy(&a, r->out + 54 + 4 * dst, 4); return a; }
static __u16 quoted_port(const struct run *r, int dst) { return (r->out[62 + 2 * dst] << 8) | r->out[63 + 2 * dst]; }

/* One fragment of a datagram: offset8 in 8-byte units, more = MF. A later one carries payload where ipv4() put ports. */
static struct pkt fragment(const char *src, const char *dst, __u8 proto, __u16 sport, __u16 dport, __u16 id, __u16 offset8, int more)
{
	struct pkt p = ipv4(src, dst, proto, sport, dport);
	__u8 *ip = p.b + 14;
	__u16 fo = (more ? 0x2000 : 0) | offset8;

	ip[4] = id >> 8; ip[5] = id & 0xff; ip[6] = fo >> 8; ip[7] = fo & 0xff;
	if (offset8) memset(ip + 20, 0x5a, p.len - 34);
	ip_csum(ip);
	return p;
}

static int frag_entries(void)
{
	struct frag_key k, next;
	int n = 0;

	for (int err = bpf_map_get_next_key(m_frag, NULL, &next); !err; err = bpf_map_get_next_key(m_frag, &k, &next)) { k = next; n++; }
	return n;
}

static __u64 monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* bpf_ktime_get_ns's clock */
	return (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void icmp_errors_and_fragments(void)
{
	const char *C = "10.0.0.3", *R1 = "10.0.1.5", *R2 = "10.0.1.6", *R3 = "10.0.1.7", *ROUTER = "172.16.9.9";
	const char *VIP = "10.96.0.20", *VIP2 = "10.96.0.21";
	__u32 zero = 0, id_lxc, id_other;
	struct node_config cfg = { .node_ip = inet_addr("192.168.0.1"), .tunnel_ifindex = 99, .routing_mode = ROUTING_DIRECT };
	struct ct_value ct;
	struct pkt p, q;
	struct run r;

	m_frag = map_fd(lxc, "weft_frag", &id_lxc);
	map_fd(ovl, "weft_frag", &id_other);
	CHECK(id_lxc == id_other, "weft_frag: bpf_lxc.o has map id %u, bpf_overlay.o %u (not shared)", id_lxc, id_other);
	map_fd(host, "weft_frag", &id_other);
	CHECK(id_lxc == id_other, "weft_frag: bpf_lxc.o has map id %u, bpf_host.o %u (not shared)", id_lxc, id_other);
	CHECK(frag_entries() == 0, "unfragmented packets left %d records in weft_frag", frag_entries());

	/* C (ep 3) enforces both directions: R1 and R3 are identity 2000, R2 2001; the router is the world. */
	bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
	set_ipcache(R1, 32, 2000, "192.168.0.2", 0);
	set_ipcache(R2, 32, 2001, "192.168.0.2", 0);
	set_ipcache(R3, 32, 2000, "192.168.0.3", 0);
	set_ipcache(C, 32, 1003, NULL, IPCACHE_F_LOCAL_ENDPOINT);
	set_endpoint(C, 1, 3, EP_F_INGRESS_ENFORCE | EP_F_EGRESS_ENFORCE, 1003, 1, MAC_A, NODE_A);
	set_policy(pkey(POLICY_PREFIX_FULL, 3, 1, 2000, IPPROTO_UDP, 53), 0, 301);
	set_policy(pkey(POLICY_PREFIX_FULL, 3, 1, 2000, IPPROTO_UDP, 5353), 0, 302);
	set_policy(pkey(POLICY_PREFIX_PROTO, 3, 1, 2000, IPPROTO_ICMP, 0), 0, 303);
	set_policy(pkey(POLICY_PREFIX_FULL, 3, 0, 2000, IPPROTO_TCP, 8080), 0, 304);
	set_policy(pkey(POLICY_PREFIX_FULL, 3, 0, 2001, IPPROTO_UDP, 9000), 0, 305);
	set_policy(pkey(POLICY_PREFIX_FULL, 3, 0, 2000, IPPROTO_UDP, 8080), 0, 306);

	printf("ICMP errors to an endpoint: related through the quoted packet\n");
	p = ipv4(C, R1, IPPROTO_UDP, 40000, 53);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "C's UDP to R1:53: ret %d", r.ret);
	q = ipv4(C, R1, IPPROTO_UDP, 40000, 53);
	const struct { const char *what; __u8 type, code; } errors[] = {
		{ "frag-needed", 3, 4 }, { "port unreachable", 3, 3 }, { "host unreachable", 3, 1 }, { "time exceeded", 11, 0 }, { "parameter problem", 12, 0 },
	};
	for (unsigned i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		p = icmp_error(ROUTER, C, errors[i].type, errors[i].code, q);
		r = run(prog_to, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "%s from a router about C's connection (ingress enforced): ret %d, want pass", errors[i].what, r.ret);
		expect_event(errors[i].what, VERDICT_FORWARDED, 0, FLOW_POINT_TO_ENDPOINT, FLOW_F_RELATED, 301);
		CHECK(nev < 1 || (evs[0].saddr == inet_addr(ROUTER) && evs[0].daddr == inet_addr(C) && evs[0].protocol == IPPROTO_ICMP &&
				  evs[0].src_identity == 2 && evs[0].dst_identity == 1003 && evs[0].ep_id == 3), "%s: event of the error itself", errors[i].what);
		CHECK(!memcmp(r.out, p.b, p.len), "%s: a related error of an untranslated connection is not rewritten", errors[i].what);
	}
	CHECK(!get_ct(ROUTER, C, 0, 0, IPPROTO_ICMP, CT_INGRESS, &ct), "a related error makes no conntrack entry");
	CHECK(get_ct(C, R1, 40000, 53, IPPROTO_UDP, CT_EGRESS, &ct) && ct.packets == 1, "nor counts as a packet of the connection");

	p = icmp_error(ROUTER, C, 3, 4, ipv4(C, R1, IPPROTO_UDP, 40001, 53));
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "error about no connection: ret %d, want the policy's drop", r.ret);
	expect_event("error about no connection", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 0);
	p = icmp_error(ROUTER, C, 3, 4, ipv4("10.0.0.1", "8.8.8.8", IPPROTO_UDP, 1000, 53));
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "error to C about another pod's connection: ret %d, want drop", r.ret);
	expect_event("error about another pod's connection", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 0);
	p = icmp_error(ROUTER, C, 3, 4, ipv4(C, R1, IPPROTO_UDP, 40000, 53));
	p.len = 14 + 20 + 8 + 20 + 2; /* the quote cut inside its ports */
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "truncated quote: ret %d, want the policy's drop", r.ret);
	p = icmp_error(ROUTER, C, 3, 4, ipv4(C, R1, IPPROTO_UDP, 40000, 53));
	p.b[14 + 6] |= 0x20; ip_csum(p.b + 14); /* MF: the first fragment of an error */
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "fragmented error: ret %d, want the policy's drop (never related)", r.ret);
	bpf_map_delete_elem(m_frag, &(struct frag_key){ .saddr = inet_addr(ROUTER), .daddr = inet_addr(C), .protocol = IPPROTO_ICMP });

	/* A connection C accepted, an error about C's reply; an echo C sent. */
	p = ipv4(R1, C, IPPROTO_TCP, 5000, 8080);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "R1 -> C:8080: ret %d", r.ret);
	p = icmp_error(ROUTER, C, 3, 4, ipv4(C, R1, IPPROTO_TCP, 8080, 5000));
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "frag-needed about C's reply on a connection it accepted: ret %d", r.ret);
	expect_event("error about a reply", VERDICT_FORWARDED, 0, FLOW_POINT_TO_ENDPOINT, FLOW_F_RELATED, 304);
	p = ipv4(C, R1, IPPROTO_ICMP, 8, 0x4242);
	r = run(prog_from, &p, 0); drain();
	p = icmp_error(ROUTER, C, 3, 1, ipv4(C, R1, IPPROTO_ICMP, 8, 0x4242));
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "host unreachable about C's echo request: ret %d", r.ret);
	expect_event("error about an echo", VERDICT_FORWARDED, 0, FLOW_POINT_TO_ENDPOINT, FLOW_F_RELATED, 303);

	/* After a policy change, the connection's next packet re-checks it; an error about it waits for that. */
	set_endpoint(C, 1, 3, EP_F_INGRESS_ENFORCE | EP_F_EGRESS_ENFORCE, 1003, 2, MAC_A, NODE_A);
	p = icmp_error(ROUTER, C, 3, 4, q);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "error about a connection not re-checked since a policy change: ret %d, want drop", r.ret);
	p = ipv4(C, R1, IPPROTO_UDP, 40000, 53);
	r = run(prog_from, &p, 0); drain();
	p = icmp_error(ROUTER, C, 3, 4, q);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "the same error once the connection was re-checked: ret %d", r.ret);

	printf("ICMP errors from an endpoint: only back to the quoted packet's sender\n");
	p = ipv4(R2, C, IPPROTO_UDP, 6000, 9000);
	r = run(prog_to, &p, 0xAB000000 | 2001); drain();
	CHECK(r.ret == TC_ACT_OK, "R2 -> C:9000: ret %d", r.ret);
	q = ipv4(R2, C, IPPROTO_UDP, 6000, 9000);
	p = icmp_error(C, R2, 3, 3, q);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "C's port unreachable to R2 (egress enforced, no ICMP rule): ret %d, want pass", r.ret);
	expect_event("port unreachable from C", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_RELATED, 305);
	p = icmp_error(C, "8.8.4.4", 3, 3, q);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "the same quote aimed at a third party: ret %d, want the policy's drop", r.ret);
	expect_event("error aimed elsewhere", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
	p = icmp_error(C, R2, 3, 3, ipv4(R2, C, IPPROTO_UDP, 6001, 9000));
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "error about no connection from C: ret %d, want drop", r.ret);

	printf("ICMP errors of service connections: translated like the connection\n");
	set_service(VIP, 53, IPPROTO_UDP, 1, &R1, 5353);
	p = ipv4(C, VIP, IPPROTO_UDP, 41000, 53);
	fill_csums(&p);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && out_daddr(&r) == inet_addr(R1) && out_port(&r, 1) == 5353, "C -> service: to R1:5353");
	CHECK(nev == 1 && evs[0].svc_addr == inet_addr(VIP) && evs[0].svc_port == htons(53) && evs[0].daddr == inet_addr(R1),
	      "C -> service: the event names the service and the backend (%d events)", nev);
	q = ipv4(C, R1, IPPROTO_UDP, 41000, 5353);
	p = icmp_error(R1, C, 3, 3, q);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "port unreachable from the backend: ret %d", r.ret);
	expect_event("backend's error", VERDICT_FORWARDED, 0, FLOW_POINT_TO_ENDPOINT, FLOW_F_RELATED, 302);
	CHECK(nev < 1 || (evs[0].svc_addr == inet_addr(VIP) && evs[0].svc_port == htons(53)), "backend's error: the event names the service");
	CHECK(out_saddr(&r) == inet_addr(VIP), "backend's error: outer source the service address (%08x)", out_saddr(&r));
	CHECK(quoted_addr(&r, 1) == inet_addr(VIP) && quoted_port(&r, 1) == 53 && quoted_addr(&r, 0) == inet_addr(C) && quoted_port(&r, 0) == 41000,
	      "backend's error: quote C:41000 -> service:53 (%08x:%u)", quoted_addr(&r, 1), quoted_port(&r, 1));
	CHECK(icmp_csums_ok(&r, p.len), "backend's error: outer IPv4, quoted IPv4 and ICMP checksums valid");
	p = icmp_error(ROUTER, C, 3, 4, q);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && out_saddr(&r) == inet_addr(ROUTER) && quoted_addr(&r, 1) == inet_addr(VIP) && quoted_port(&r, 1) == 53,
	      "a router's frag-needed: the router stays the source, the quote names the service");
	CHECK(icmp_csums_ok(&r, p.len), "router's error: checksums valid");
	q = ipv4(VIP, C, IPPROTO_UDP, 53, 41000); /* C saw the backend's reply come from the service */
	p = icmp_error(C, VIP, 3, 3, q);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "C's port unreachable about the service's reply: ret %d", r.ret);
	expect_event("C's error to the service", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_RELATED, 302);
	CHECK(nev < 1 || (evs[0].svc_addr == inet_addr(VIP) && evs[0].svc_port == htons(53) && evs[0].daddr == inet_addr(R1)),
	      "C's error to the service: the event names the service and the backend");
	CHECK(out_daddr(&r) == inet_addr(R1) && quoted_addr(&r, 0) == inet_addr(R1) && quoted_port(&r, 0) == 5353,
	      "C's error goes to the backend, quoting it (%08x, %08x:%u)", out_daddr(&r), quoted_addr(&r, 0), quoted_port(&r, 0));
	CHECK(icmp_csums_ok(&r, p.len), "C's error: checksums valid");

	printf("IP fragments: later ones follow their first\n");
	p = fragment(C, R1, IPPROTO_UDP, 42000, 53, 0x1001, 0, 1);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "first fragment to R1:53: ret %d", r.ret);
	expect_event("first fragment", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 301);
	for (int off = 1; off <= 2; off++) {
		p = fragment(C, R1, IPPROTO_UDP, 42000, 53, 0x1001, off, off < 2);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK && nev == 0, "later fragment %d (egress enforced, port 53 only): ret %d events %d, want pass", off, r.ret, nev);
		CHECK(!memcmp(r.out, p.b, p.len), "later fragment %d: untouched", off);
	}
	CHECK(get_ct(C, R1, 42000, 53, IPPROTO_UDP, CT_EGRESS, &ct) && ct.packets == 3, "all three fragments on the datagram's connection");
	CHECK(!get_ct(C, R1, 0, 0, IPPROTO_UDP, CT_EGRESS, &ct), "no entry with ports 0");
	p = fragment(C, R1, IPPROTO_UDP, 42000, 53, 0x1002, 2, 0);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "later fragment without its first: ret %d, want drop", r.ret);
	expect_event("no first fragment", VERDICT_DROPPED, WEFT_DROP_FRAG_NO_FIRST, FLOW_POINT_FROM_ENDPOINT, 0, 0);
	p = fragment(C, R1, IPPROTO_UDP, 42001, 54, 0x1003, 0, 1);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "first fragment to a denied port: ret %d", r.ret);
	p = fragment(C, R1, IPPROTO_UDP, 42001, 54, 0x1003, 1, 0);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "its later fragment: ret %d, want drop", r.ret);
	expect_event("later fragment of a denied datagram", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
	CHECK(nev < 1 || (evs[0].sport == htons(42001) && evs[0].dport == htons(54)), "the drop names the first fragment's ports");
	{
		struct frag_key k = { .saddr = inet_addr(C), .daddr = inet_addr(R1), .id = htons(0x1004), .protocol = IPPROTO_UDP };
		struct frag_value v = { .first_seen = monotonic_ns() - 31000000000ull, .sport = htons(42000), .dport = htons(53) };

		bpf_map_update_elem(m_frag, &k, &v, BPF_ANY);
		p = fragment(C, R1, IPPROTO_UDP, 42000, 53, 0x1004, 1, 0);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "later fragment of a first seen 31 s ago: ret %d, want drop", r.ret);
		expect_event("expired first fragment", VERDICT_DROPPED, WEFT_DROP_FRAG_NO_FIRST, FLOW_POINT_FROM_ENDPOINT, 0, 0);
		v.first_seen = monotonic_ns() - 1000000000ull;
		bpf_map_update_elem(m_frag, &k, &v, BPF_ANY);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "and of one seen 1 s ago: ret %d, want pass", r.ret);
	}
	p = fragment(C, R1, IPPROTO_ICMP, 8, 0x4343, 0x1005, 0, 1);
	r = run(prog_from, &p, 0); drain();
	p = fragment(C, R1, IPPROTO_ICMP, 8, 0x4343, 0x1005, 1, 0);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0 && get_ct(C, R1, 0x4343, 0x4343, IPPROTO_ICMP, CT_EGRESS, &ct) && ct.packets == 2,
	      "a fragmented echo request: ret %d events %d", r.ret, nev);
	p = fragment(R1, C, IPPROTO_UDP, 7000, 8080, 0x2001, 0, 1);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "ingress first fragment to C:8080: ret %d", r.ret);
	expect_event("ingress first fragment", VERDICT_FORWARDED, 0, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 306);
	p = fragment(R1, C, IPPROTO_UDP, 7000, 8080, 0x2001, 1, 0);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0, "ingress later fragment (ingress enforced, port 8080 only): ret %d events %d, want pass", r.ret, nev);
	p = fragment(R1, C, IPPROTO_UDP, 7000, 8080, 0x2002, 1, 0);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "ingress later fragment without its first: ret %d", r.ret);
	expect_event("ingress, no first fragment", VERDICT_DROPPED, WEFT_DROP_FRAG_NO_FIRST, FLOW_POINT_TO_ENDPOINT, 0, 0);

	printf("IP fragments to a service: the first fragment's backend, both ways\n");
	{
		const char *both[] = { R1, R3 };
		int seen_r1 = 0, seen_r3 = 0;
		__u32 backend = 0;

		set_service(VIP2, 53, IPPROTO_UDP, 2, both, 5353);
		for (int i = 0; i < 16; i++) {
			p = fragment(C, VIP2, IPPROTO_UDP, 43000 + i, 53, 0x3000 + i, 0, 1);
			fill_csums(&p);
			r = run(prog_from, &p, 0); drain();
			backend = out_daddr(&r);
			CHECK(r.ret == TC_ACT_OK && (backend == inet_addr(R1) || backend == inet_addr(R3)) && out_port(&r, 1) == 5353,
			      "first fragment %d to the service: ret %d backend %08x", i, r.ret, backend);
			CHECK(csums_ok(r.out, p.len), "first fragment %d: IPv4 and UDP checksums valid after DNAT", i);
			seen_r1 += backend == inet_addr(R1);
			seen_r3 += backend == inet_addr(R3);
			p = fragment(C, VIP2, IPPROTO_UDP, 43000 + i, 53, 0x3000 + i, 1, 0);
			r = run(prog_from, &p, 0); drain();
			CHECK(r.ret == TC_ACT_OK && nev == 0, "later fragment %d to the service: ret %d events %d", i, r.ret, nev);
			CHECK(out_daddr(&r) == backend, "later fragment %d: to its first's backend %08x, not %08x", i, backend, out_daddr(&r));
			CHECK(fold(sum16(r.out + 14, 20, 0)) == 0 && !memcmp(r.out + 34, p.b + 34, p.len - 34), "later fragment %d: IPv4 checksum valid, payload untouched", i);
		}
		CHECK(seen_r1 > 0 && seen_r3 > 0, "16 datagrams spread over both backends (%d/%d)", seen_r1, seen_r3);
		const char *b = backend == inet_addr(R1) ? R1 : R3;
		p = fragment(b, C, IPPROTO_UDP, 5353, 43015, 0x4000, 0, 1);
		fill_csums(&p);
		r = run(prog_to, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK && out_saddr(&r) == inet_addr(VIP2) && out_port(&r, 0) == 53 && csums_ok(r.out, p.len),
		      "first fragment of the reply: from the service address, checksums valid (ret %d)", r.ret);
		p = fragment(b, C, IPPROTO_UDP, 5353, 43015, 0x4000, 1, 0);
		r = run(prog_to, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK && nev == 0, "later fragment of the reply (ingress enforced): ret %d events %d", r.ret, nev);
		CHECK(out_saddr(&r) == inet_addr(VIP2) && fold(sum16(r.out + 14, 20, 0)) == 0 && !memcmp(r.out + 34, p.b + 34, p.len - 34),
		      "later fragment of the reply: from the service address too (%08x), IPv4 checksum valid", out_saddr(&r));
	}
}

#define A "10.0.0.1"
#define B "10.0.0.2"
#define REMOTE "10.0.1.5"
#define WORLD "8.8.8.8"

/* ---- conntrack lifecycle ---- */
#define FLOODER "10.0.2.1"
#define VICTIM "10.0.2.2"
#define PEER "10.0.2.9"
#define DNS "8.8.4.4"
#define FLOOD_FLOWS 300000
#define NS 1000000000ULL

static struct node_config ct_cfg;

static void set_ct_config(void)
{
	__u32 zero = 0;

	ct_cfg.node_ip = inet_addr("192.168.0.1");
	ct_cfg.routing_mode = ROUTING_DIRECT;
	bpf_map_update_elem(m_config, &zero, &ct_cfg, BPF_ANY);
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * NS + ts.tv_nsec;
}

static __u32 ct_count(__u16 ep_id)
{
	__u32 k = ep_id, v = 0;

	bpf_map_lookup_elem(m_ct_count, &k, &v);
	return v;
}

static struct ct_stats ct_stats_sum(void)
{
	int ncpu = libbpf_num_possible_cpus();
	struct ct_stats per[ncpu], sum = {};
	__u32 zero = 0;

	memset(per, 0, sizeof(per));
	bpf_map_lookup_elem(m_ct_stats, &zero, per);
	for (int i = 0; i < ncpu; i++) {
		sum.drops_full += per[i].drops_full;
		sum.drops_quota += per[i].drops_quota;
	}
	return sum;
}

static struct ct_key ct_key_of(const char *s, const char *d, __u16 sp, __u16 dp, __u8 proto, __u8 dir)
{
	struct ct_key k = { .saddr = inet_addr(s), .daddr = inet_addr(d), .sport = htons(sp), .dport = htons(dp), .protocol = proto, .dir = dir };
	return k;
}

static void del_endpoint(const char *ip)
{
	struct endpoint_key k = { .ip = inet_addr(ip) };

	bpf_map_delete_elem(m_endpoints, &k);
}

/* Runs a packet and checks that its expiry is `secs` after the run (bounded by clock reads, not timing). */
static void expect_lifetime(const char *what, const struct ct_value *v, __u64 before, __u64 after, __u64 secs)
{
	CHECK(v->expires >= before + secs * NS && v->expires <= after + secs * NS,
	      "%s: expires %+.3f s after the packet, want %llu s", what, ((double)v->expires - (double)after) / NS, (unsigned long long)secs);
}

static struct pkt tcp(const char *src, const char *dst, __u16 sport, __u16 dport, __u8 flags)
{
	struct pkt p = ipv4(src, dst, IPPROTO_TCP, sport, dport);

	p.b[14 + 20 + 13] = flags;
	return p;
}

/*
 * A pod is replaced: the new pod at the same address (another endpoint, the
 * agent never hands out a just-freed id) enforces default deny, and a packet
 * of the old pod's connection, same 5-tuple, must be judged as new.
 */
static void ct_replaced_pod(void)
{
	struct ct_value ct;
	struct pkt p;
	struct run r;

	printf("conntrack: the same 5-tuple after a pod is replaced\n");
	memset(&ct_cfg, 0, sizeof(ct_cfg));
	set_ct_config();
	set_ipcache(PEER, 32, 3000, NULL, IPCACHE_F_LOCAL_ENDPOINT);
	set_endpoint(VICTIM, 1, 21, 0, 3001, 1, MAC_B, NODE_B);
	p = ipv4(PEER, VICTIM, IPPROTO_UDP, 7000, 9000);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "old pod accepts the flow: ret %d", r.ret);
	CHECK(ct_count(21) == 1, "old pod holds 1 entry, count %u", ct_count(21));
	del_endpoint(VICTIM);
	set_endpoint(VICTIM, 1, 22, EP_F_INGRESS_ENFORCE, 3002, 1, MAC_B, NODE_B);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "new pod under default deny got the old pod's flow: ret %d, want drop", r.ret);
	expect_event("old flow to the new pod", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 0);
	CHECK(!get_ct(PEER, VICTIM, 7000, 9000, IPPROTO_UDP, CT_INGRESS, &ct), "the old pod's entry is deleted");
	CHECK(ct_count(21) == 0 && ct_count(22) == 0, "counts after: old %u new %u, want 0/0", ct_count(21), ct_count(22));
	/* The new pod's own connection on the same tuple, once allowed, is its own. */
	set_policy(pkey(POLICY_PREFIX_IDENTITY, 22, 0, 3000, 0, 0), 0, 55);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "allowed: ret %d", r.ret);
	CHECK(get_ct(PEER, VICTIM, 7000, 9000, IPPROTO_UDP, CT_INGRESS, &ct) && ct.ep_id == 22 && ct.rule_id == 55, "the new pod's entry");
	del_endpoint(VICTIM);
}

/*
 * One pod floods with 300k two-packet UDP flows; another pod's live
 * connection (its reply admitted only by conntrack: default deny on ingress)
 * must survive it. The flood stops at the flooder's quota, reported.
 */
static void ct_flood(void)
{
	struct ct_stats before = ct_stats_sum(), after;
	struct pkt p, reply;
	struct run r;
	int forwarded = 0, last_ret = 0;

	printf("conntrack: a flood against another pod's entry\n");
	memset(&ct_cfg, 0, sizeof(ct_cfg)); /* the default quota */
	set_ct_config();
	set_endpoint(FLOODER, 1, 20, 0, 3010, 1, MAC_A, NODE_A);
	set_endpoint(VICTIM, 1, 21, EP_F_INGRESS_ENFORCE, 3011, 1, MAC_B, NODE_B);
	p = ipv4(VICTIM, DNS, IPPROTO_UDP, 5353, 53);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "victim opens a flow: ret %d", r.ret);
	reply = ipv4(DNS, VICTIM, IPPROTO_UDP, 53, 5353);
	r = run(prog_to, &reply, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "victim's reply before the flood: ret %d", r.ret);
	for (int i = 0; i < FLOOD_FLOWS; i++) {
		p = ipv4(FLOODER, DNS, IPPROTO_UDP, 1024 + (i & 0x7fff), 1000 + (i >> 15));
		run(prog_from, &p, 0);
		r = run(prog_from, &p, 0);
		forwarded += r.ret == TC_ACT_OK;
		last_ret = r.ret;
		if ((i & 0x3ff) == 0) drain();
	}
	drain();
	r = run(prog_to, &reply, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "victim's reply after %d flood flows got through: ret %d, want 0 (its entry must survive)", forwarded, r.ret);
	CHECK(forwarded == 65536, "the flooder got %d flows, want its quota 65536", forwarded);
	CHECK(ct_count(20) == 65536 && ct_count(21) == 1, "counts: flooder %u victim %u", ct_count(20), ct_count(21));
	after = ct_stats_sum();
	CHECK(after.drops_quota - before.drops_quota == 2ULL * (FLOOD_FLOWS - 65536) && after.drops_full == before.drops_full,
	      "quota drops %llu, want %d", (unsigned long long)(after.drops_quota - before.drops_quota), 2 * (FLOOD_FLOWS - 65536));
	CHECK(last_ret == TC_ACT_SHOT, "a flow over the quota: ret %d", last_ret);
	p = ipv4(FLOODER, DNS, IPPROTO_UDP, 999, 999);
	r = run(prog_from, &p, 0); drain();
	expect_event("over the quota", VERDICT_DROPPED, WEFT_DROP_CT_QUOTA, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
	/* The victim's own new flows are not the flooder's problem. */
	p = ipv4(VICTIM, DNS, IPPROTO_UDP, 5354, 53);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "victim's new flow during the flood: ret %d", r.ret);

	/* A lower quota applies at once; the flooder's entries stay (they expire). */
	ct_cfg.ct_quota = 10;
	set_ct_config();
	p = ipv4(VICTIM, DNS, IPPROTO_UDP, 5355, 53);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "victim under a quota of 10 with 2 entries: ret %d", r.ret);

	/* A full table: a new connection is refused (CT_FULL), nobody's entry is evicted. */
	{
		struct ct_value dummy = { .expires = ~0ULL, .ep_id = 30 };
		struct ct_key k = ct_key_of("10.9.0.0", DNS, 0, 0, IPPROTO_UDP, CT_EGRESS);
		int added = 0;

		ct_cfg.ct_quota = 1u << 30;
		set_ct_config();
		for (__u32 i = 0; ; i++) {
			k.saddr = htonl(0x0a090000 + i);
			if (bpf_map_update_elem(m_ct, &k, &dummy, BPF_NOEXIST))
				break;
			added++;
		}
		CHECK(errno == E2BIG, "filling the table ended with %s", strerror(errno));
		before = ct_stats_sum();
		p = ipv4(VICTIM, DNS, IPPROTO_UDP, 5356, 53);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "new flow, full table: ret %d, want drop", r.ret);
		expect_event("full table", VERDICT_DROPPED, WEFT_DROP_CT_FULL, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
		after = ct_stats_sum();
		CHECK(after.drops_full - before.drops_full == 1, "full drops %llu, want 1", (unsigned long long)(after.drops_full - before.drops_full));
		CHECK(ct_count(21) == 3, "a refused flow is not counted: %u", ct_count(21));
		r = run(prog_to, &reply, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "victim's established flow with a full table: ret %d", r.ret);
		for (int i = 0; i < added; i++) {
			k.saddr = htonl(0x0a090000 + i);
			bpf_map_delete_elem(m_ct, &k);
		}
	}

	/* Cleanup: the flooder's entries (an agent would flush them with the endpoint). */
	for (int i = 0; i < 65536; i++) {
		struct ct_key k = ct_key_of(FLOODER, DNS, 1024 + (i & 0x7fff), 1000 + (i >> 15), IPPROTO_UDP, CT_EGRESS);
		bpf_map_delete_elem(m_ct, &k);
	}
	del_endpoint(FLOODER);
}

/* Timeouts: per protocol and TCP state, configurable; a dead entry is a new connection. */
static void ct_timeouts(void)
{
	struct ct_key key;
	struct ct_value ct;
	struct pkt p;
	struct run r;
	__u64 t0, t1;

	printf("conntrack: timeouts and TCP states\n");
	memset(&ct_cfg, 0, sizeof(ct_cfg));
	set_ct_config();
	set_endpoint(VICTIM, 1, 21, EP_F_INGRESS_ENFORCE, 3011, 1, MAC_B, NODE_B);

	/* Defaults: UDP 60 s, ICMP 60 s. */
	p = ipv4(VICTIM, DNS, IPPROTO_UDP, 6000, 53);
	t0 = mono_ns(); r = run(prog_from, &p, 0); t1 = mono_ns(); drain();
	CHECK(get_ct(VICTIM, DNS, 6000, 53, IPPROTO_UDP, CT_EGRESS, &ct), "UDP entry");
	expect_lifetime("UDP", &ct, t0, t1, 60);
	p = ipv4(VICTIM, DNS, IPPROTO_ICMP, 8, 0x99);
	t0 = mono_ns(); r = run(prog_from, &p, 0); t1 = mono_ns(); drain();
	CHECK(get_ct(VICTIM, DNS, 0x99, 0x99, IPPROTO_ICMP, CT_EGRESS, &ct), "ICMP entry");
	expect_lifetime("ICMP", &ct, t0, t1, 60);

	/* Configured. */
	ct_cfg.ct_udp = 7; ct_cfg.ct_icmp = 3; ct_cfg.ct_tcp_syn = 11; ct_cfg.ct_tcp_established = 1234; ct_cfg.ct_tcp_close = 2;
	set_ct_config();
	p = ipv4(VICTIM, DNS, IPPROTO_UDP, 6000, 53);
	t0 = mono_ns(); r = run(prog_from, &p, 0); t1 = mono_ns(); drain();
	get_ct(VICTIM, DNS, 6000, 53, IPPROTO_UDP, CT_EGRESS, &ct);
	expect_lifetime("UDP, configured", &ct, t0, t1, 7);
	p = ipv4(VICTIM, DNS, IPPROTO_ICMP, 8, 0x99);
	t0 = mono_ns(); r = run(prog_from, &p, 0); t1 = mono_ns(); drain();
	get_ct(VICTIM, DNS, 0x99, 0x99, IPPROTO_ICMP, CT_EGRESS, &ct);
	expect_lifetime("ICMP, configured", &ct, t0, t1, 3);

	/* TCP: SYN until the other side answered, established, closing. */
	struct { const char *what; int reply; __u8 flags; __u64 secs; __u16 ct_flags; } steps[] = {
		{ "SYN", 0, TH_SYN, 11, 0 },
		{ "SYN-ACK", 1, TH_SYN | TH_ACK, 11, CT_F_SEEN_REPLY },
		{ "ACK", 0, TH_ACK, 1234, CT_F_SEEN_REPLY },
		{ "data", 1, TH_ACK, 1234, CT_F_SEEN_REPLY },
		{ "FIN from the opener", 0, TH_FIN | TH_ACK, 1234, CT_F_SEEN_REPLY | CT_F_TX_CLOSING },
		{ "FIN back", 1, TH_FIN | TH_ACK, 2, CT_F_SEEN_REPLY | CT_F_TX_CLOSING | CT_F_RX_CLOSING },
		{ "last ACK", 0, TH_ACK, 2, CT_F_SEEN_REPLY | CT_F_TX_CLOSING | CT_F_RX_CLOSING },
	};
	for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		p = steps[i].reply ? tcp(DNS, VICTIM, 443, 40000, steps[i].flags) : tcp(VICTIM, DNS, 40000, 443, steps[i].flags);
		t0 = mono_ns(); r = run(steps[i].reply ? prog_to : prog_from, &p, 0); t1 = mono_ns(); drain();
		CHECK(r.ret == TC_ACT_OK, "TCP %s: ret %d", steps[i].what, r.ret);
		CHECK(get_ct(VICTIM, DNS, 40000, 443, IPPROTO_TCP, CT_EGRESS, &ct) && ct.flags == steps[i].ct_flags,
		      "TCP %s: flags 0x%x, want 0x%x", steps[i].what, ct.flags, steps[i].ct_flags);
		expect_lifetime(steps[i].what, &ct, t0, t1, steps[i].secs);
	}
	/* A SYN reusing the closed connection's tuple is a new connection (its event says so). */
	p = tcp(VICTIM, DNS, 40000, 443, TH_SYN);
	r = run(prog_from, &p, 0); drain();
	expect_event("SYN on a closed tuple", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
	CHECK(get_ct(VICTIM, DNS, 40000, 443, IPPROTO_TCP, CT_EGRESS, &ct) && ct.flags == 0 && ct.packets == 1, "fresh entry after reuse");
	/* RST closes both ways at once. */
	p = tcp(DNS, VICTIM, 443, 40000, TH_RST);
	t0 = mono_ns(); r = run(prog_to, &p, 0); t1 = mono_ns(); drain();
	get_ct(VICTIM, DNS, 40000, 443, IPPROTO_TCP, CT_EGRESS, &ct);
	CHECK((ct.flags & (CT_F_TX_CLOSING | CT_F_RX_CLOSING)) == (CT_F_TX_CLOSING | CT_F_RX_CLOSING), "RST: flags 0x%x", ct.flags);
	expect_lifetime("RST", &ct, t0, t1, 2);

	/* Expired: the reply of a dead connection is a new connection, and ingress is default deny. */
	__u32 count = ct_count(21);
	key = ct_key_of(VICTIM, DNS, 6000, 53, IPPROTO_UDP, CT_EGRESS);
	bpf_map_lookup_elem(m_ct, &key, &ct);
	ct.expires = mono_ns() - 1;
	bpf_map_update_elem(m_ct, &key, &ct, BPF_EXIST);
	p = ipv4(DNS, VICTIM, IPPROTO_UDP, 53, 6000);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "reply of an expired flow: ret %d, want drop", r.ret);
	expect_event("reply of an expired flow", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 0);
	CHECK(!get_ct(VICTIM, DNS, 6000, 53, IPPROTO_UDP, CT_EGRESS, &ct), "the expired entry is deleted by the datapath");
	CHECK(ct_count(21) == count - 1, "and uncounted: %u, want %u", ct_count(21), count - 1);
	del_endpoint(VICTIM);
}

/* The peer's identity changes in the ipcache: the next packet is judged for the new identity. */
static void ct_identity_change(void)
{
	struct ct_value ct;
	struct pkt p;
	struct run r;

	printf("conntrack: the peer's identity changes\n");
	memset(&ct_cfg, 0, sizeof(ct_cfg));
	set_ct_config();
	set_endpoint(VICTIM, 1, 21, EP_F_INGRESS_ENFORCE | EP_F_EGRESS_ENFORCE, 3011, 1, MAC_B, NODE_B);
	set_ipcache(PEER, 32, 3000, NULL, 0);
	set_policy(pkey(POLICY_PREFIX_PROTO, 21, 0, 3000, IPPROTO_UDP, 0), 0, 61);
	set_policy(pkey(POLICY_PREFIX_PROTO, 21, 0, 3003, IPPROTO_UDP, 0), 0, 63);
	set_policy(pkey(POLICY_PREFIX_PROTO, 21, 1, 3000, IPPROTO_TCP, 0), 0, 71);

	/* Ingress: the source identity is the ipcache's (no mark). */
	p = ipv4(PEER, VICTIM, IPPROTO_UDP, 7100, 9000);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "allowed peer: ret %d", r.ret);
	set_ipcache(PEER, 32, 3003, NULL, 0);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0, "peer now 3003, also allowed: ret %d events %d", r.ret, nev);
	CHECK(get_ct(PEER, VICTIM, 7100, 9000, IPPROTO_UDP, CT_INGRESS, &ct) && ct.remote_identity == 3003 && ct.rule_id == 63,
	      "entry follows the new identity (%u, rule %u)", ct.remote_identity, ct.rule_id);
	set_ipcache(PEER, 32, 3004, NULL, 0);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "peer now 3004, not allowed: ret %d, want drop", r.ret);
	expect_event("identity changed", VERDICT_DROPPED, WEFT_DROP_IDENTITY_CHANGED, FLOW_POINT_TO_ENDPOINT, 0, 0);
	CHECK(!get_ct(PEER, VICTIM, 7100, 9000, IPPROTO_UDP, CT_INGRESS, &ct), "its entry is deleted");
	/* A changed identity from an incomplete ipcache (no exact entry) is not trusted, even if allowed. */
	set_ipcache(PEER, 32, 3000, NULL, 0);
	p = ipv4(PEER, VICTIM, IPPROTO_UDP, 7200, 9000);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "allowed peer, complete ipcache: ret %d", r.ret);
	ct_cfg.flags = NODE_F_IPCACHE_INCOMPLETE;
	set_ct_config();
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0, "incomplete ipcache, identity unchanged: ret %d", r.ret);
	set_ipcache(PEER, 32, 3003, NULL, 0);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "incomplete ipcache, identity changed to an allowed one without an exact entry: ret %d, want drop", r.ret);
	expect_event("identity changed, incomplete ipcache", VERDICT_DROPPED, WEFT_DROP_IPCACHE_INCOMPLETE, FLOW_POINT_TO_ENDPOINT, 0, 0);
	ct_cfg.flags = 0;
	set_ct_config();
	p = ipv4(PEER, VICTIM, IPPROTO_UDP, 7100, 9000);

	/* The identity in the mark (a local pod, the tunnel) counts the same way. */
	set_ipcache(PEER, 32, 3000, NULL, 0);
	r = run(prog_to, &p, 0x00000000); drain();
	CHECK(r.ret == TC_ACT_OK, "allowed again: ret %d", r.ret);
	r = run(prog_to, &p, 0xAB000000 | 3004); drain();
	CHECK(r.ret == TC_ACT_SHOT, "marked 3004: ret %d, want drop", r.ret);
	expect_event("identity changed (mark)", VERDICT_DROPPED, WEFT_DROP_IDENTITY_CHANGED, FLOW_POINT_TO_ENDPOINT, 0, 0);

	/* Egress: the pod's next packet to a peer whose identity changed is judged for the new identity. */
	p = tcp(VICTIM, PEER, 41000, 80, TH_SYN);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "egress to 3000 allowed: ret %d", r.ret);
	set_ipcache(PEER, 32, 3004, NULL, 0);
	/* A reply is judged in the direction the connection was opened in (its identity may come from elsewhere). */
	p = tcp(PEER, VICTIM, 80, 41000, TH_SYN | TH_ACK);
	r = run(prog_to, &p, 0xAB000000 | 3004); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0, "reply from the peer, now 3004: ret %d events %d, want 0/0", r.ret, nev);
	p = tcp(VICTIM, PEER, 41000, 80, TH_ACK);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "egress to a peer now 3004: ret %d, want drop", r.ret);
	expect_event("identity changed (egress)", VERDICT_DROPPED, WEFT_DROP_IDENTITY_CHANGED, FLOW_POINT_FROM_ENDPOINT, 0, 0);
	CHECK(nev < 1 || (evs[0].dst_identity == 3004 && evs[0].rule_id == 0), "the drop names the new identity: %u", evs[0].dst_identity);
	CHECK(!get_ct(VICTIM, PEER, 41000, 80, IPPROTO_TCP, CT_EGRESS, &ct), "its entry is deleted");
	/* Audit mode reports it and lets it through, following the new identity. */
	set_ipcache(PEER, 32, 3000, NULL, 0);
	p = tcp(VICTIM, PEER, 41001, 80, TH_SYN);
	r = run(prog_from, &p, 0); drain();
	set_endpoint(VICTIM, 1, 21, EP_F_INGRESS_ENFORCE | EP_F_EGRESS_ENFORCE | EP_F_AUDIT, 3011, 1, MAC_B, NODE_B);
	set_ipcache(PEER, 32, 3004, NULL, 0);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "audit: ret %d", r.ret);
	expect_event("identity changed (audit)", VERDICT_AUDIT, WEFT_DROP_IDENTITY_CHANGED, FLOW_POINT_FROM_ENDPOINT, 0, 0);
	CHECK(get_ct(VICTIM, PEER, 41001, 80, IPPROTO_TCP, CT_EGRESS, &ct) && ct.remote_identity == 3004, "audit: the entry follows");
	del_endpoint(VICTIM);
}

/* Services: the CT_SERVICE entry is made once policy admitted the connection, lives as long as it, and counts. */
static void ct_service_entries(void)
{
	const char *backend[] = { PEER };
	struct ct_value ct, svc;
	struct pkt p;
	struct run r;
	__u32 count;

	printf("conntrack: service entries follow their connection\n");
	memset(&ct_cfg, 0, sizeof(ct_cfg));
	set_ct_config();
	set_ipcache(PEER, 32, 3020, NULL, 0);
	set_service("10.96.1.1", 80, IPPROTO_TCP, 1, backend, 8080);
	set_endpoint(VICTIM, 1, 21, EP_F_EGRESS_ENFORCE, 3011, 1, MAC_B, NODE_B);
	count = ct_count(21);
	p = tcp(VICTIM, "10.96.1.1", 42000, 80, TH_SYN);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "service, backend not allowed: ret %d", r.ret);
	CHECK(!get_ct(VICTIM, "10.96.1.1", 42000, 80, IPPROTO_TCP, CT_SERVICE, &svc), "a refused connection leaves no service entry");
	CHECK(ct_count(21) == count, "nor a count");
	set_policy(pkey(POLICY_PREFIX_PROTO, 21, 1, 3020, IPPROTO_TCP, 0), 0, 72);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "service, allowed: ret %d", r.ret);
	CHECK(get_ct(VICTIM, "10.96.1.1", 42000, 80, IPPROTO_TCP, CT_SERVICE, &svc) && svc.ep_id == 21 && svc.nat_addr == inet_addr(PEER),
	      "service entry made once admitted");
	CHECK(ct_count(21) == count + 2, "both entries count: %u, want %u", ct_count(21), count + 2);
	p = tcp(PEER, VICTIM, 8080, 42000, TH_SYN | TH_ACK);
	r = run(prog_to, &p, 0); drain();
	p = tcp(VICTIM, "10.96.1.1", 42000, 80, TH_ACK);
	r = run(prog_from, &p, 0); drain();
	CHECK(get_ct(VICTIM, PEER, 42000, 8080, IPPROTO_TCP, CT_EGRESS, &ct) && get_ct(VICTIM, "10.96.1.1", 42000, 80, IPPROTO_TCP, CT_SERVICE, &svc) &&
	      ct.expires == svc.expires && ct.expires > mono_ns() + 1000 * NS, "the service entry lives as long as the established connection");
	del_endpoint(VICTIM);
}

int main(int argc, char **argv)
{
	__u32 id_lxc, id_ovl, id_host;
	struct ct_value ct;
	struct run r;
	struct pkt p;

	if (argc != 5) { fprintf(stderr, "usage: %s bpf_lxc.o bpf_overlay.o bpf_host.o PIN_ROOT\n", argv[0]); return 2; }
	setvbuf(stdout, NULL, _IOLBF, 0);
	libbpf_set_print(print_libbpf);
	lxc = load(argv[1], argv[4]);
	ovl = load(argv[2], argv[4]);
	host = load(argv[3], argv[4]);
	prog_from = prog_fd(lxc, "from_container");
	prog_to = prog_fd(lxc, "to_container");
	prog_ovl = prog_fd(ovl, "from_overlay");
	prog_ul = prog_fd(host, "from_underlay");

	const char *names[] = { "weft_ipcache", "weft_endpoints", "weft_policy_v2", "weft_ct_v3", "weft_config_v2", "weft_lb_services", "weft_lb_backends", "weft_lb_vips", "weft_nodes", "weft_ct_count", "weft_ct_stats", "weft_events_lost", "weft_events" };
	int *fds[] = { &m_ipcache, &m_endpoints, &m_policy, &m_ct, &m_config, &m_lb, &m_lb_backends, &m_lb_vips, &m_nodes, &m_ct_count, &m_ct_stats, &m_events_lost, NULL };
	const int nmaps = sizeof(names) / sizeof(names[0]);
	for (int i = 0; i < nmaps; i++) {
		int fd = map_fd(lxc, names[i], &id_lxc);
		map_fd(ovl, names[i], &id_ovl);
		map_fd(host, names[i], &id_host);
		CHECK(id_lxc == id_ovl, "%s: bpf_lxc.o has map id %u, bpf_overlay.o %u (not shared)", names[i], id_lxc, id_ovl);
		CHECK(id_lxc == id_host, "%s: bpf_lxc.o has map id %u, bpf_host.o %u (not shared)", names[i], id_lxc, id_host);
		if (fds[i]) *fds[i] = fd;
		else rb = ring_buffer__new(fd, on_event, NULL, NULL);
	}
	if (!rb) { perror("ring_buffer__new"); return 1; }
	printf("maps: the three objects share the %d pinned maps\n", nmaps);

	__u32 zero = 0;
	struct node_config cfg = { .node_ip = inet_addr("192.168.0.1"), .tunnel_ifindex = 99, .routing_mode = ROUTING_TUNNEL };
	bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
	set_ipcache(REMOTE, 32, 2000, "192.168.0.2", 0);
	set_ipcache(B, 32, 1001, NULL, IPCACHE_F_LOCAL_ENDPOINT);
	set_ipcache(A, 32, 1000, NULL, IPCACHE_F_LOCAL_ENDPOINT);
	/* test_run gives the skb the loopback device: ifindex 1 */
	set_endpoint(A, 1, 1, 0, 1000, 1, MAC_A, NODE_A);
	set_endpoint(B, 77, 2, 0, 1001, 1, MAC_B, NODE_B);

	printf("from_container: parsing and anti-spoofing\n");
	p = ipv4(A, WORLD, IPPROTO_UDP, 1000, 53);
	p.b[12] = 0x08; p.b[13] = 0x06; /* ARP */
	drain(); r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0, "ARP: ret %d events %d, want 0/0", r.ret, nev);
	p.b[12] = 0x86; p.b[13] = 0xdd; /* IPv6 (test_run wants a whole IPv6 header) */
	p.len = 14 + 40 + 8;
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "IPv6: ret %d", r.ret);
	expect_event("IPv6", VERDICT_DROPPED, WEFT_DROP_UNSUPPORTED_L3, FLOW_POINT_FROM_ENDPOINT, 0, 0);
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40000, 80);
	p.len = 14 + 20 + 10; /* truncated TCP header */
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "truncated: ret %d", r.ret);
	expect_event("truncated", VERDICT_DROPPED, WEFT_DROP_INVALID_PACKET, FLOW_POINT_FROM_ENDPOINT, 0, 0);
	p = ipv4("10.0.0.9", REMOTE, IPPROTO_TCP, 40000, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "unknown source: ret %d, want 2", r.ret);
	expect_event("unknown source", VERDICT_DROPPED, WEFT_DROP_UNKNOWN_SOURCE, FLOW_POINT_FROM_ENDPOINT, 0, 0);
	set_endpoint(A, 5, 1, 0, 1000, 1, MAC_A, NODE_A);
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40000, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "source on another veth: ret %d, want 2", r.ret);
	expect_event("source on another veth", VERDICT_DROPPED, WEFT_DROP_UNKNOWN_SOURCE, FLOW_POINT_FROM_ENDPOINT, 0, 0);

	printf("from_container: no enforcement\n");
	set_endpoint(A, 1, 1, 0, 1000, 1, MAC_A, NODE_A);
	p = ipv4(A, WORLD, IPPROTO_UDP, 1000, 53);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "world: ret %d, want 0", r.ret);
	expect_event("world, new", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
	CHECK(nev < 1 || (evs[0].dst_identity == 2 && evs[0].src_identity == 1000 && evs[0].ep_id == 1),
	      "world event identities %u -> %u", evs[0].src_identity, evs[0].dst_identity);
	CHECK(r.mark == (0xAB000000 | 1000), "mark 0x%x, want 0xab0003e8", r.mark);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0, "world, established: ret %d events %d, want 0/0", r.ret, nev);
	CHECK(get_ct(A, WORLD, 1000, 53, IPPROTO_UDP, CT_EGRESS, &ct) && ct.packets == 2, "ct entry with 2 packets");

	printf("from_container: egress enforcement\n");
	set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE, 1000, 1, MAC_A, NODE_A);
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40000, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "no policy entry: ret %d, want 2", r.ret);
	expect_event("no policy entry", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW | FLOW_F_TUNNELED, 0);
	CHECK(nev < 1 || (evs[0].src_identity == 1000 && evs[0].dst_identity == 2000 && evs[0].saddr == inet_addr(A) &&
			  evs[0].daddr == inet_addr(REMOTE) && evs[0].sport == htons(40000) && evs[0].dport == htons(80) &&
			  evs[0].protocol == IPPROTO_TCP && evs[0].ep_id == 1 && evs[0].length == p.len),
	      "drop event fields");
	CHECK(!get_ct(A, REMOTE, 40000, 80, IPPROTO_TCP, CT_EGRESS, &ct), "a dropped packet made a ct entry");

	struct policy_key allow = pkey(POLICY_PREFIX_PROTO, 1, 1, 2000, IPPROTO_TCP, 0);
	set_policy(allow, 0, 42);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT, "allowed, tunnel: ret %d, want 7", r.ret);
	expect_event("allowed", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW | FLOW_F_TUNNELED, 42);
	CHECK(get_policy(allow).packets == 1 && get_policy(allow).bytes == p.len, "allow counters %llu/%llu, want 1/%u",
	      (unsigned long long)get_policy(allow).packets, (unsigned long long)get_policy(allow).bytes, p.len);
	CHECK(get_ct(A, REMOTE, 40000, 80, IPPROTO_TCP, CT_EGRESS, &ct) && ct.rule_id == 42 && ct.policy_rev == 1 &&
	      ct.remote_identity == 2000 && ct.ep_id == 1, "ct entry of the allowed connection");
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT && nev == 0, "established: ret %d events %d, want 7/0", r.ret, nev);
	CHECK(get_policy(allow).packets == 1, "established packets must not count on the rule");
	CHECK(get_ct(A, REMOTE, 40000, 80, IPPROTO_TCP, CT_EGRESS, &ct) && ct.packets == 2, "ct packets %llu, want 2", (unsigned long long)ct.packets);

	struct policy_key deny = pkey(POLICY_PREFIX_IDENTITY, 1, 1, 0, 0, 0);
	set_policy(deny, 1, 99);
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40001, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "deny for identity 0 vs allow for 2000: ret %d, want 2", r.ret);
	expect_event("deny beats allow", VERDICT_DROPPED, WEFT_DROP_POLICY_DENY, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW | FLOW_F_TUNNELED, 99);
	CHECK(get_policy(allow).packets == 1 && get_policy(deny).packets == 1, "counters allow %llu deny %llu, want 1/1",
	      (unsigned long long)get_policy(allow).packets, (unsigned long long)get_policy(deny).packets);

	printf("from_container: policy revision\n");
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40000, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT && nev == 0, "established, same revision, skips policy: ret %d", r.ret);
	set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE, 1000, 2, MAC_A, NODE_A);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "revoked: ret %d, want 2", r.ret);
	expect_event("revoked", VERDICT_DROPPED, WEFT_DROP_POLICY_REVOKED, FLOW_POINT_FROM_ENDPOINT, FLOW_F_TUNNELED, 99);
	CHECK(!get_ct(A, REMOTE, 40000, 80, IPPROTO_TCP, CT_EGRESS, &ct), "the revoked ct entry is deleted");

	printf("from_container: audit\n");
	set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE | EP_F_AUDIT, 1000, 2, MAC_A, NODE_A);
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40002, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT, "audit: ret %d, want 7", r.ret);
	expect_event("audit", VERDICT_AUDIT, WEFT_DROP_POLICY_DENY, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW | FLOW_F_TUNNELED, 99);
	CHECK(get_ct(A, REMOTE, 40002, 80, IPPROTO_TCP, CT_EGRESS, &ct), "audit creates the ct entry");
	set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE, 1000, 2, MAC_A, NODE_A);
	cfg.flags = NODE_F_AUDIT;
	bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40003, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT, "node audit: ret %d, want 7", r.ret);
	expect_event("node audit", VERDICT_AUDIT, WEFT_DROP_POLICY_DENY, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW | FLOW_F_TUNNELED, 99);
	cfg.flags = 0;
	bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
	bpf_map_delete_elem(m_policy, &deny);

	printf("from_container/to_container: ICMP echo and replies\n");
	struct policy_key icmp = pkey(POLICY_PREFIX_FULL, 1, 1, 2000, IPPROTO_ICMP, 0);
	set_policy(icmp, 0, 7);
	set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE | EP_F_INGRESS_ENFORCE, 1000, 2, MAC_A, NODE_A);
	p = ipv4(A, REMOTE, IPPROTO_ICMP, 8, 0x1234);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT, "echo request, ICMP rule with dport 0: ret %d, want 7", r.ret);
	expect_event("echo request", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW | FLOW_F_TUNNELED, 7);
	p = ipv4(REMOTE, A, IPPROTO_ICMP, 0, 0x1234);
	r = run(prog_to, &p, 0xAB000000 | 2000); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0, "echo reply (ingress enforced, no ingress rule): ret %d events %d, want 0/0", r.ret, nev);
	CHECK(r.mark == 0, "to_container clears the mark (0x%x)", r.mark);

	printf("to_container: ingress enforcement\n");
	p = ipv4(REMOTE, A, IPPROTO_TCP, 5555, 8080);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "ingress, no rule: ret %d, want 2", r.ret);
	expect_event("ingress, no rule", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 0);
	CHECK(nev < 1 || (evs[0].src_identity == 2000 && evs[0].dst_identity == 1000), "identity from the ipcache: %u", evs[0].src_identity);
	struct policy_key in = pkey(POLICY_PREFIX_FULL, 1, 0, 3000, IPPROTO_TCP, 8080);
	set_policy(in, 0, 55);
	r = run(prog_to, &p, 0xAB000000 | 3000); drain();
	CHECK(r.ret == TC_ACT_OK, "ingress, identity from the mark, allowed: ret %d, want 0", r.ret);
	expect_event("ingress allowed", VERDICT_FORWARDED, 0, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 55);
	CHECK(get_ct(REMOTE, A, 5555, 8080, IPPROTO_TCP, CT_INGRESS, &ct) && ct.remote_identity == 3000, "ct ingress entry");
	p = ipv4(A, REMOTE, IPPROTO_TCP, 8080, 5555);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT && nev == 0, "the pod's reply (egress enforced, no rule): ret %d events %d, want 7/0", r.ret, nev);
	set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE | EP_F_INGRESS_ENFORCE, 1000, 3, MAC_A, NODE_A);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT && nev == 0, "reply after a revision bump, ingress rule still there: ret %d", r.ret);
	bpf_map_delete_elem(m_policy, &in);
	set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE | EP_F_INGRESS_ENFORCE, 1000, 4, MAC_A, NODE_A);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "reply after the ingress rule went: ret %d, want 2", r.ret);
	expect_event("reply revoked", VERDICT_DROPPED, WEFT_DROP_POLICY_REVOKED, FLOW_POINT_FROM_ENDPOINT, FLOW_F_REPLY | FLOW_F_TUNNELED, 0);
	CHECK(!get_ct(REMOTE, A, 5555, 8080, IPPROTO_TCP, CT_INGRESS, &ct), "the revoked ingress entry is deleted");
	p = ipv4(REMOTE, "10.0.0.50", IPPROTO_TCP, 5555, 8080);
	r = run(prog_to, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "unknown endpoint: ret %d", r.ret);
	expect_event("unknown endpoint", VERDICT_DROPPED, WEFT_DROP_UNKNOWN_ENDPOINT, FLOW_POINT_TO_ENDPOINT, 0, 0);

	printf("from_container: delivery\n");
	struct policy_key to_b = pkey(POLICY_PREFIX_IDENTITY, 1, 1, 1001, 0, 0);
	set_policy(to_b, 0, 8);
	p = ipv4(A, B, IPPROTO_TCP, 40100, 443);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_REDIRECT, "local endpoint: ret %d, want 7", r.ret);
	expect_event("local endpoint", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 8);
	CHECK(!memcmp(r.out, MAC_B, 6) && !memcmp(r.out + 6, NODE_B, 6), "Ethernet addresses rewritten to B's");
	set_endpoint(A, 1, 1, 0, 1000, 4, MAC_A, NODE_A);
	cfg.tunnel_ifindex = 0;
	bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40300, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "tunnel mode without a tunnel device: ret %d, want 2", r.ret);
	expect_event("no tunnel device", VERDICT_DROPPED, WEFT_DROP_REDIRECT, FLOW_POINT_FROM_ENDPOINT, 0, 0);
	CHECK(!get_ct(A, REMOTE, 40300, 80, IPPROTO_TCP, CT_EGRESS, &ct), "no ct entry for an undeliverable packet");
	cfg.tunnel_ifindex = 99;
	cfg.routing_mode = ROUTING_DIRECT;
	bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
	p = ipv4(A, REMOTE, IPPROTO_TCP, 40200, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "remote pod, direct routing: ret %d, want 0", r.ret);
	expect_event("direct routing", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);

	printf("encryption: strict mode and the encrypted flag\n");
	set_ipcache("10.0.7.5", 32, 2100, "192.168.0.7", IPCACHE_F_ENCRYPT_MISSING);
	p = ipv4(A, "10.0.7.5", IPPROTO_TCP, 47000, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "node without a key: ret %d, want drop", r.ret);
	expect_event("unencrypted", VERDICT_DROPPED, WEFT_DROP_UNENCRYPTED, FLOW_POINT_FROM_ENDPOINT, 0, 0);
	CHECK(!get_ct(A, "10.0.7.5", 47000, 80, IPPROTO_TCP, CT_EGRESS, &ct), "no ct entry for a packet refused for lack of a key");
	set_ipcache("10.0.7.6", 32, 2100, "10.0.7.1", IPCACHE_F_ENCRYPTED);
	p = ipv4(A, "10.0.7.6", IPPROTO_TCP, 47001, 80);
	r = run(prog_from, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK, "encrypted peer, direct routing: ret %d", r.ret);
	expect_event("encrypted", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW | FLOW_F_ENCRYPTED, 0);

	printf("services: load balancing and reverse translation\n");
	{
		const char *both[] = { B, REMOTE };
		__u32 vip = inet_addr("10.96.0.10");
		int seen_b = 0, seen_remote = 0;

		set_service("10.96.0.10", 80, IPPROTO_TCP, 2, both, 8080);
		for (int i = 0; i < 40; i++) {
			p = ipv4(A, "10.96.0.10", IPPROTO_TCP, 41000 + i, 80);
			fill_csums(&p);
			r = run(prog_from, &p, 0); drain();
			__u32 d = out_daddr(&r);
			CHECK(d == inet_addr(B) || d == inet_addr(REMOTE), "service: translated to a backend (got %08x)", d);
			CHECK(out_port(&r, 1) == 8080, "service: backend port %u, want 8080", out_port(&r, 1));
			CHECK(csums_ok(r.out, p.len), "service: IPv4 and TCP checksums valid after DNAT");
			CHECK(r.ret == (d == inet_addr(B) ? TC_ACT_REDIRECT : TC_ACT_OK), "service: ret %d for backend %08x", r.ret, d);
			seen_b += d == inet_addr(B);
			seen_remote += d == inet_addr(REMOTE);
		}
		CHECK(seen_b > 5 && seen_remote > 5, "service: 40 connections spread over both backends (%d/%d)", seen_b, seen_remote);

		/* One connection: every packet to the same backend; the reply comes back from the service address. */
		p = ipv4(A, "10.96.0.10", IPPROTO_TCP, 42000, 80);
		fill_csums(&p);
		r = run(prog_from, &p, 0); drain();
		__u32 first = out_daddr(&r);
		CHECK(get_ct(A, "10.96.0.10", 42000, 80, IPPROTO_TCP, CT_SERVICE, &ct) && ct.nat_addr == first && ct.nat_port == htons(8080), "service: CT_SERVICE entry holds the backend");
		CHECK(get_ct(A, first == inet_addr(B) ? B : REMOTE, 42000, 8080, IPPROTO_TCP, CT_EGRESS, &ct) && (ct.flags & CT_F_DNAT) && ct.nat_addr == vip && ct.nat_port == htons(80), "service: CT_EGRESS entry remembers the service address");
		for (int i = 0; i < 10; i++) {
			r = run(prog_from, &p, 0); drain();
			CHECK(out_daddr(&r) == first, "service: packet %d of the connection went to another backend", i);
		}
		struct pkt reply = ipv4(first == inet_addr(B) ? B : REMOTE, A, IPPROTO_TCP, 8080, 42000);
		fill_csums(&reply);
		r = run(prog_to, &reply, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "service reply: ret %d", r.ret);
		CHECK(out_saddr(&r) == vip && out_port(&r, 0) == 80, "service reply: source rewritten to the service address (%08x:%u)", out_saddr(&r), out_port(&r, 0));
		CHECK(csums_ok(r.out, reply.len), "service reply: checksums valid after reverse translation");
		/* A reply of a connection not opened to a service is left alone. */
		p = ipv4(A, B, IPPROTO_TCP, 43000, 8080);
		r = run(prog_from, &p, 0); drain();
		reply = ipv4(B, A, IPPROTO_TCP, 8080, 43000);
		r = run(prog_to, &reply, 0); drain();
		CHECK(out_saddr(&r) == inet_addr(B), "direct connection: reply source untouched");

		/* The backend leaves the service: the connection moves to the one left. */
		const char *other = first == inet_addr(B) ? REMOTE : B;
		drop_backend("10.96.0.10", 80, IPPROTO_TCP, first == inet_addr(B) ? B : REMOTE, 8080);
		set_service("10.96.0.10", 80, IPPROTO_TCP, 1, &other, 8080);
		p = ipv4(A, "10.96.0.10", IPPROTO_TCP, 42000, 80);
		r = run(prog_from, &p, 0); drain();
		CHECK(out_daddr(&r) == inet_addr(other), "service: connection failed over to the remaining backend");

		/* No backend at all: dropped and reported. */
		set_service("10.96.0.10", 80, IPPROTO_TCP, 0, NULL, 8080);
		p = ipv4(A, "10.96.0.10", IPPROTO_TCP, 44000, 80);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "service without backends: ret %d", r.ret);
		expect_event("no backend", VERDICT_DROPPED, WEFT_DROP_NO_SERVICE_BACKEND, FLOW_POINT_FROM_ENDPOINT, 0, 0);
		CHECK(nev < 1 || (evs[0].svc_addr == 0 && evs[0].svc_port == 0 && evs[0].daddr == vip), "no backend: untranslated, the service is the destination");

		/* The client is itself a backend: it is never given itself while another exists. */
		const char *self_and_b[] = { A, B };
		set_service("10.96.0.11", 53, IPPROTO_UDP, 2, self_and_b, 5353);
		for (int i = 0; i < 20; i++) {
			p = ipv4(A, "10.96.0.11", IPPROTO_UDP, 45000 + i, 53);
			r = run(prog_from, &p, 0); drain();
			CHECK(out_daddr(&r) == inet_addr(B), "service: client %d was given itself", i);
			CHECK(r.out[34 + 6] == 0 && r.out[34 + 7] == 0, "UDP without checksum keeps none");
		}
		/* Not a service port: untouched. */
		p = ipv4(A, "10.96.0.11", IPPROTO_UDP, 46000, 54);
		r = run(prog_from, &p, 0); drain();
		CHECK(out_daddr(&r) == inet_addr("10.96.0.11"), "other port of a service address: not translated");
	}

	printf("from_overlay\n");
	p = ipv4(REMOTE, A, IPPROTO_TCP, 5555, 8080);
	p.b[12] = 0x08; p.b[13] = 0x06;
	r = run(prog_ovl, &p, 0); drain();
	CHECK(r.ret == TC_ACT_OK && nev == 0, "ARP: ret %d", r.ret);
	p = ipv4(REMOTE, A, IPPROTO_TCP, 5555, 8080);
	p.len = 14 + 20 + 10; /* truncated TCP (test_run insists on a whole IPv4 header) */
	r = run(prog_ovl, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "truncated: ret %d", r.ret);
	expect_event("overlay truncated", VERDICT_DROPPED, WEFT_DROP_INVALID_PACKET, FLOW_POINT_FROM_OVERLAY, FLOW_F_TUNNELED, 0);
	/* test_run attaches no tunnel metadata, so a full packet is dropped as invalid too */
	p.len = 14 + 20 + 20;
	r = run(prog_ovl, &p, 0); drain();
	CHECK(r.ret == TC_ACT_SHOT, "no tunnel metadata: ret %d", r.ret);
	expect_event("overlay without metadata", VERDICT_DROPPED, WEFT_DROP_INVALID_PACKET, FLOW_POINT_FROM_OVERLAY, FLOW_F_TUNNELED, 0);

	printf("from_underlay: the underlay, every encryption mode\n");
	{
		/*
		 * Nodes: peer (cluster 1, reached in the clear), encpeer (its tunnel packets must arrive
		 * decrypted) and encpeer's router IP. Pods: A (local, ep 1, identity 1000), B (local);
		 * 10.0.7.6 (another node's, reached encrypted); 10.0.7.5 (a node without a key, strict);
		 * REMOTE (flags 0: reached in the clear). 10.0.9.0/24: a CIDR identity.
		 *
		 * test_run gives the skb the loopback device of this namespace, where no neighbour is
		 * the MAC of these frames: every check that needs the sender's MAC fails here, which is
		 * what these cases assert (the namespace tests in packages/agent prove the passing side).
		 */
		const char *node = "192.168.0.1", *peer = "192.168.0.2", *encpeer = "192.168.0.3", *encrouter = "10.0.7.1";
		const int UNSPEC = TC_ACT_UNSPEC;
		struct node_key nk;
		struct node_info ni = { .node_ip = inet_addr(peer), .cluster_id = 1 };

		set_ipcache(node, 32, 1, NULL, IPCACHE_F_REMOTE_NODE);
		set_ipcache(peer, 32, 6, NULL, IPCACHE_F_REMOTE_NODE);
		set_ipcache(encpeer, 32, 6, NULL, IPCACHE_F_REMOTE_NODE);
		set_ipcache("10.0.9.0", 24, 300, NULL, 0);
		set_endpoint(A, 1, 1, 0, 1000, 4, MAC_A, NODE_A);
		nk.addr = inet_addr(peer);
		bpf_map_update_elem(m_nodes, &nk, &ni, BPF_ANY);
		ni.node_ip = inet_addr(encpeer); ni.router_ip = inet_addr(encrouter); ni.flags = NODE_ADDR_F_ENCRYPTED_ONLY;
		nk.addr = inet_addr(encpeer);
		bpf_map_update_elem(m_nodes, &nk, &ni, BPF_ANY);
		nk.addr = inet_addr(encrouter);
		bpf_map_update_elem(m_nodes, &nk, &ni, BPF_ANY);
		cfg.routing_mode = ROUTING_TUNNEL;
		cfg.tunnel_port = htons(8472);
		cfg.flags = 0; /* guarded without any flag: every encryption mode */
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);

		/* 1: VXLAN to the node in the clear: the VNI would be weighed by from_overlay. */
		p = ipv4(WORLD, node, IPPROTO_UDP, 40000, 8472);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "VXLAN from no node: ret %d, want drop", r.ret);
		expect_event("VXLAN from no node", VERDICT_DROPPED, WEFT_DROP_TUNNEL_SOURCE_NOT_NODE, FLOW_POINT_FROM_UNDERLAY, FLOW_F_TUNNELED, 0);
		CHECK(nev < 1 || (evs[0].src_identity == 2 && evs[0].dst_identity == 1 && evs[0].saddr == inet_addr(WORLD) &&
				  evs[0].daddr == inet_addr(node) && evs[0].dport == htons(8472) && evs[0].protocol == IPPROTO_UDP && evs[0].ep_id == 0),
		      "VXLAN drop: the tunnel packet's own addresses, world -> host (%u -> %u)", evs[0].src_identity, evs[0].dst_identity);
		p = ipv4(encpeer, node, IPPROTO_UDP, 8472, 8472);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "VXLAN in the clear from a node that must encrypt: ret %d, want drop", r.ret);
		expect_event("VXLAN from an encrypting peer", VERDICT_DROPPED, WEFT_DROP_UNENCRYPTED_INGRESS, FLOW_POINT_FROM_UNDERLAY, FLOW_F_TUNNELED, 0);
		CHECK(nev < 1 || evs[0].src_identity == 6, "the peer's identity in the event: %u", evs[0].src_identity);
		p = ipv4(encrouter, node, IPPROTO_UDP, 8472, 8472);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "VXLAN in the clear from a router IP: ret %d, want drop", r.ret);
		expect_event("VXLAN from a router IP", VERDICT_DROPPED, WEFT_DROP_UNENCRYPTED_INGRESS, FLOW_POINT_FROM_UNDERLAY, FLOW_F_TUNNELED, 0);
		p = ipv4(peer, node, IPPROTO_UDP, 8472, 8472);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "VXLAN from a clear peer's address but not its MAC: ret %d, want drop", r.ret);
		expect_event("VXLAN not from the node's MAC", VERDICT_DROPPED, WEFT_DROP_SOURCE_NOT_FROM_OWNER, FLOW_POINT_FROM_UNDERLAY, FLOW_F_TUNNELED, 0);
		cfg.flags = NODE_F_STRICT_INGRESS; /* the flag changes nothing */
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
		p = ipv4(WORLD, node, IPPROTO_UDP, 40000, 8472);
		r = run(prog_ul, &p, 0); drain();
		expect_event("VXLAN from no node, strict flag", VERDICT_DROPPED, WEFT_DROP_TUNNEL_SOURCE_NOT_NODE, FLOW_POINT_FROM_UNDERLAY, FLOW_F_TUNNELED, 0);
		cfg.flags = 0;
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
		p = ipv4(WORLD, node, IPPROTO_UDP, 40000, 6081);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == UNSPEC && nev == 0, "Geneve's port while the tunnel is VXLAN: ret %d, want pass", r.ret);
		cfg.tunnel_port = htons(6081);
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "Geneve from no node: ret %d, want drop", r.ret);
		expect_event("Geneve from no node", VERDICT_DROPPED, WEFT_DROP_TUNNEL_SOURCE_NOT_NODE, FLOW_POINT_FROM_UNDERLAY, FLOW_F_TUNNELED, 0);
		cfg.tunnel_port = htons(8472);
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
		/* A later fragment has no ports; its first fragment is dropped, so it never reassembles. */
		p = ipv4(WORLD, node, IPPROTO_UDP, 40000, 8472);
		p.b[14 + 6] = 0x00; p.b[14 + 7] = 0xb9;
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == UNSPEC && nev == 0, "later fragment: ret %d, want pass", r.ret);

		/* 2: to a pod of this node from an address the ipcache knows. */
		const struct { const char *what, *src; __u8 reason; __u32 identity; } drops[] = {
			{ "a pod of a node reached encrypted, in the clear", "10.0.7.6", WEFT_DROP_UNENCRYPTED_INGRESS, 2100 },
			{ "a pod of a keyless node (strict), in the clear", "10.0.7.5", WEFT_DROP_UNENCRYPTED_INGRESS, 2100 },
			{ "a pod of this very node, from outside", B, WEFT_DROP_SOURCE_NOT_FROM_OWNER, 1001 },
			{ "a pod of a node reached in the clear, routed in tunnel mode", REMOTE, WEFT_DROP_SOURCE_NOT_FROM_OWNER, 2000 },
			{ "a node's address, not from its MAC", peer, WEFT_DROP_SOURCE_NOT_FROM_OWNER, 6 },
		};
		for (unsigned i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
			p = ipv4(drops[i].src, A, IPPROTO_UDP, 40000 + i, 9090);
			r = run(prog_ul, &p, 0); drain();
			CHECK(r.ret == TC_ACT_SHOT, "%s: ret %d, want drop", drops[i].what, r.ret);
			expect_event(drops[i].what, VERDICT_DROPPED, drops[i].reason, FLOW_POINT_FROM_UNDERLAY, 0, 0);
			CHECK(nev < 1 || (evs[0].src_identity == drops[i].identity && evs[0].dst_identity == 1000 && evs[0].ep_id == 1 && evs[0].sport == htons(40000 + i)),
			      "%s: the claimed identity and the endpoint (%u -> %u, ep %u)", drops[i].what, evs[0].src_identity, evs[0].dst_identity, evs[0].ep_id);
		}
		p = ipv4("10.0.7.5", A, IPPROTO_ICMP, 8, 0x77);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "clear ICMP from a keyless node's pod: ret %d, want drop", r.ret);
		expect_event("clear ICMP from a keyless pod", VERDICT_DROPPED, WEFT_DROP_UNENCRYPTED_INGRESS, FLOW_POINT_FROM_UNDERLAY, 0, 0);

		/* Passes: control traffic between nodes, the world, pods talking to this node itself. */
		const struct { const char *what, *src, *dst; __u8 proto; __u16 sport, dport; } pass[] = {
			{ "WireGuard lane 0", peer, node, IPPROTO_UDP, 51871, 51871 },
			{ "WireGuard lane 1", encpeer, node, IPPROTO_UDP, 51872, 51872 },
			{ "etcd", peer, node, IPPROTO_TCP, 40000, 2379 },
			{ "clustermesh", peer, node, IPPROTO_TCP, 40000, 32379 },
			{ "ESP", encpeer, node, 50, 0, 0 },
			{ "ICMP between nodes", peer, node, IPPROTO_ICMP, 8, 0x42 },
			{ "the world to a pod", WORLD, A, IPPROTO_TCP, 40000, 8080 },
			{ "the world to a pod's own port 8472", WORLD, A, IPPROTO_UDP, 40000, 8472 },
			{ "a CIDR identity to a pod", "10.0.9.7", A, IPPROTO_TCP, 40000, 8080 },
			{ "a remote pod to this node's own address", "10.0.7.6", node, IPPROTO_TCP, 40000, 10250 },
		};
		for (unsigned i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
			p = ipv4(pass[i].src, pass[i].dst, pass[i].proto, pass[i].sport, pass[i].dport);
			r = run(prog_ul, &p, 0); drain();
			CHECK(r.ret == UNSPEC && nev == 0, "%s: ret %d events %d, want pass (-1) and no event", pass[i].what, r.ret, nev);
		}
		p = ipv4("10.0.7.6", A, IPPROTO_UDP, 40000, 9090);
		p.b[12] = 0x08; p.b[13] = 0x06; /* ARP */
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == UNSPEC && nev == 0, "ARP: ret %d, want pass", r.ret);
		p.b[12] = 0x86; p.b[13] = 0xdd; p.len = 14 + 40 + 8;
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == UNSPEC && nev == 0, "IPv6: ret %d, want pass (not ours to judge)", r.ret);
		p = ipv4("10.0.7.6", node, IPPROTO_TCP, 40000, 80);
		p.len = 14 + 20 + 2; /* truncated TCP */
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == UNSPEC && nev == 0, "truncated: ret %d, want pass (the stack drops it)", r.ret);

		/* Direct routing: no tunnel port; a pod reached in the clear must come from its node's MAC. */
		cfg.routing_mode = ROUTING_DIRECT;
		cfg.tunnel_port = 0;
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
		p = ipv4(WORLD, node, IPPROTO_UDP, 40000, 8472);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == UNSPEC && nev == 0, "direct routing, UDP 8472 to the node: ret %d, want pass", r.ret);
		p = ipv4("10.0.7.6", A, IPPROTO_TCP, 40000, 8080);
		p.b[14 + 20 + 13] = TH_SYN | TH_ACK;
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "direct routing, clear packet of an encrypted peer's pod: ret %d, want drop", r.ret);
		expect_event("direct routing, clear pod packet", VERDICT_DROPPED, WEFT_DROP_UNENCRYPTED_INGRESS, FLOW_POINT_FROM_UNDERLAY, 0, 0);
		CHECK(nev < 1 || evs[0].tcp_flags == (TH_SYN | TH_ACK), "from_underlay's event: TCP flags 0x%x, want SYN|ACK", evs[0].tcp_flags);
		p = ipv4(REMOTE, A, IPPROTO_TCP, 40000, 8080);
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "direct routing, a clear pod's address not from its node's MAC: ret %d, want drop", r.ret);
		expect_event("direct routing, not from the owner", VERDICT_DROPPED, WEFT_DROP_SOURCE_NOT_FROM_OWNER, FLOW_POINT_FROM_UNDERLAY, 0, 0);
		p.b[14 + 20 + 13] = TH_RST;
		p.len = 14 + 20 + 8; /* a TCP header cut before its flags: still judged on its ports, flags unknown */
		r = run(prog_ul, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "direct routing, truncated TCP not from the owner: ret %d, want drop", r.ret);
		expect_event("truncated TCP, not from the owner", VERDICT_DROPPED, WEFT_DROP_SOURCE_NOT_FROM_OWNER, FLOW_POINT_FROM_UNDERLAY, 0, 0);
		CHECK(nev < 1 || (evs[0].tcp_flags == 0 && evs[0].dport == htons(8080)), "truncated TCP: flags 0x%x (want 0), port %u", evs[0].tcp_flags, ntohs(evs[0].dport));
	}

	printf("policy generations, fail-closed endpoints, incomplete ipcache\n");
	{
		cfg.routing_mode = ROUTING_DIRECT;
		cfg.tunnel_port = 0;
		cfg.flags = 0;
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
		set_ipcache(REMOTE, 32, 2000, "192.168.0.2", IPCACHE_F_EXACT);

		/* Entries of the generation not in force are never looked up; one update of the endpoint flips. */
		struct policy_key g1 = pkey(POLICY_PREFIX_IDENTITY, 1, 1, 0, 0, 0);
		g1.gen = 1;
		set_policy(g1, 0, 61);
		set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE, 1000, 10, MAC_A, NODE_A);
		p = ipv4(A, REMOTE, IPPROTO_UDP, 48000, 9999);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "generation 0 in force, allow-all only in generation 1: ret %d, want drop", r.ret);
		expect_event("generation 0", VERDICT_DROPPED, WEFT_DROP_POLICY, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
		set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE | EP_F_POLICY_GEN, 1000, 11, MAC_A, NODE_A);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "flipped to generation 1: ret %d, want 0", r.ret);
		expect_event("generation 1", VERDICT_FORWARDED, 0, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 61);

		/* Fail-closed: every packet of the endpoint, both directions, established ones too; audit or not. */
		set_endpoint(A, 1, 1, EP_F_FAIL_CLOSED | EP_F_AUDIT | EP_F_POLICY_GEN, 1000, 12, MAC_A, NODE_A);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "fail-closed, established egress: ret %d, want drop", r.ret);
		expect_event("fail-closed egress", VERDICT_DROPPED, WEFT_DROP_FAIL_CLOSED, FLOW_POINT_FROM_ENDPOINT, 0, 0);
		p = ipv4(REMOTE, A, IPPROTO_TCP, 5555, 22);
		r = run(prog_to, &p, 0xAB000000 | 2000); drain();
		CHECK(r.ret == TC_ACT_SHOT, "fail-closed ingress: ret %d, want drop", r.ret);
		expect_event("fail-closed ingress", VERDICT_DROPPED, WEFT_DROP_FAIL_CLOSED, FLOW_POINT_TO_ENDPOINT, 0, 0);
		p.b[12] = 0x08; p.b[13] = 0x06;
		r = run(prog_to, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK && nev == 0, "fail-closed, ARP: ret %d, want pass", r.ret);

		/* Incomplete ipcache: an enforced direction's new connection needs an exact entry (or the mark). */
		set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE | EP_F_INGRESS_ENFORCE | EP_F_POLICY_GEN, 1000, 13, MAC_A, NODE_A);
		cfg.flags = NODE_F_IPCACHE_INCOMPLETE;
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
		p = ipv4(A, WORLD, IPPROTO_UDP, 48001, 53);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "incomplete, no entry: ret %d, want drop", r.ret);
		expect_event("incomplete, world", VERDICT_DROPPED, WEFT_DROP_IPCACHE_INCOMPLETE, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
		set_ipcache("10.9.0.0", 16, 300, NULL, 0);
		p = ipv4(A, "10.9.1.1", IPPROTO_UDP, 48002, 53);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "incomplete, a CIDR hit: ret %d, want drop", r.ret);
		expect_event("incomplete, CIDR", VERDICT_DROPPED, WEFT_DROP_IPCACHE_INCOMPLETE, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
		p = ipv4(A, REMOTE, IPPROTO_UDP, 48003, 53);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "incomplete, an exact entry: ret %d, want pass", r.ret);
		p = ipv4("10.9.1.1", A, IPPROTO_UDP, 48004, 53);
		r = run(prog_to, &p, 0); drain();
		CHECK(r.ret == TC_ACT_SHOT, "incomplete, ingress from a CIDR hit: ret %d, want drop", r.ret);
		expect_event("incomplete, ingress", VERDICT_DROPPED, WEFT_DROP_IPCACHE_INCOMPLETE, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 0);
		set_policy(pkey(POLICY_PREFIX_IDENTITY, 1, 0, 300, 0, 0), 0, 62);
		struct policy_key in1 = pkey(POLICY_PREFIX_IDENTITY, 1, 0, 300, 0, 0);
		in1.gen = 1;
		set_policy(in1, 0, 63);
		r = run(prog_to, &p, 0xAB000000 | 300); drain();
		CHECK(r.ret == TC_ACT_OK, "incomplete, identity from the mark: ret %d, want pass", r.ret);
		expect_event("incomplete, mark", VERDICT_FORWARDED, 0, FLOW_POINT_TO_ENDPOINT, FLOW_F_NEW, 63);
		set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE | EP_F_AUDIT | EP_F_POLICY_GEN, 1000, 14, MAC_A, NODE_A);
		p = ipv4(A, WORLD, IPPROTO_UDP, 48005, 53);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "incomplete, audit: ret %d, want pass", r.ret);
		expect_event("incomplete, audit", VERDICT_AUDIT, WEFT_DROP_IPCACHE_INCOMPLETE, FLOW_POINT_FROM_ENDPOINT, FLOW_F_NEW, 0);
		set_endpoint(A, 1, 1, EP_F_POLICY_GEN, 1000, 15, MAC_A, NODE_A);
		p = ipv4(A, WORLD, IPPROTO_UDP, 48006, 53);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "incomplete, not enforcing: ret %d, want pass", r.ret);
		cfg.flags = 0;
		bpf_map_update_elem(m_config, &zero, &cfg, BPF_ANY);
		set_endpoint(A, 1, 1, EP_F_EGRESS_ENFORCE | EP_F_POLICY_GEN, 1000, 16, MAC_A, NODE_A);
		p = ipv4(A, WORLD, IPPROTO_UDP, 48007, 53);
		r = run(prog_from, &p, 0); drain();
		CHECK(r.ret == TC_ACT_OK, "complete again, world: ret %d, want pass", r.ret);
	}

	icmp_errors_and_fragments();

	ct_replaced_pod();
	ct_flood();
	ct_timeouts();
	ct_identity_change();
	ct_service_entries();

	{
		/* Every run above is drained before the next, far below the ring buffer's size. */
		int ncpu = libbpf_num_possible_cpus();
		__u64 per[ncpu], lost = 0;

		memset(per, 0, sizeof(per));
		CHECK(bpf_map_lookup_elem(m_events_lost, &zero, per) == 0, "weft_events_lost: lookup failed");
		for (int i = 0; i < ncpu; i++)
			lost += per[i];
		CHECK(lost == 0, "weft_events_lost counts %llu lost events, want 0", (unsigned long long)lost);
	}

	ring_buffer__free(rb);
	bpf_object__unpin_maps(lxc, NULL);
	bpf_object__close(lxc);
	bpf_object__close(ovl);
	bpf_object__close(host);
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
EOF

"${CC:-cc}" -O1 -Wall -Werror -o "$scratch/selftest" "$scratch/selftest.c" -I "$root/bpf/lib" -lbpf
"$scratch/selftest" "$root/bpf/build/bpf_lxc.o" "$root/bpf/build/bpf_overlay.o" "$root/bpf/build/bpf_host.o" "$pins"
