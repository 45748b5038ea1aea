/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Weft datapath: every structure shared between the BPF programs and the
 * agent, defined once, here. The TypeScript codecs in packages/datapath/src/maps
 * mirror these layouts and a test checks them against this object's BTF.
 *
 * Rules: a layout change renames the map (append _v2); drop reasons and flow
 * verdicts are append-only and never reused (packages/datapath/src/reasons.ts
 * mirrors them); multi-byte addresses and ports are in network byte order,
 * everything else in host order.
 */
#ifndef WEFT_TYPES_H
#define WEFT_TYPES_H

#include <linux/types.h>

/* ---- ipcache: LPM prefix -> identity and where it lives ------------------ */
struct ipcache_key {
	__u32 prefixlen;	/* LPM prefix length in bits, over `ip` only (0-32) */
	__u32 ip;		/* IPv4, network order */
};

#define IPCACHE_F_LOCAL_ENDPOINT	0x1	/* an endpoint on this node */
#define IPCACHE_F_REMOTE_NODE		0x2	/* a node's own address */
/*
 * Reached encrypted, through WireGuard or an IPsec SA, as it is: the kernel routes the pod packet
 * into the peer's WireGuard device or its ESP policy, without a tunnel header. WireGuard's allowed
 * IPs, or the XFRM forward policy's template, bind the inner source to the node that sent it, and
 * the receiver takes the identity from its own ipcache, so no VNI is needed; tunnel_ip stays the
 * node's router IP for the checks of what arrives in the clear.
 */
#define IPCACHE_F_ENCRYPTED		0x4
#define IPCACHE_F_ENCRYPT_MISSING	0x8	/* its node has no usable key and encryption is strict: drop */
/*
 * A /32 entry. While the ipcache is incomplete (NODE_F_IPCACHE_INCOMPLETE) only
 * such a hit is sure to be what the complete ipcache would answer: a shorter
 * match (a CIDR) or none (world) may stand in for an entry that did not fit.
 */
#define IPCACHE_F_EXACT			0x10

struct ipcache_value {
	__u32 identity;		/* security identity (24 bits) */
	__u32 tunnel_ip;	/* underlay IP of the node hosting it, network order; 0 = this node or none */
	__u16 flags;		/* IPCACHE_F_* */
	__u16 cluster_id;
	__u32 pad;
};

/* ---- nodes: every address another node of the mesh sends tunnel packets from --- */
/*
 * Keyed by a node's node IP and (with encryption) its router IP, both
 * pointing at the same node. from_overlay accepts a tunnel packet only from
 * such an address, with a VNI of that node's cluster and an inner source the
 * ipcache places on that node; from_underlay refuses the clear ones a node
 * must not send in the clear.
 */
#define NODE_ADDR_F_ENCRYPTED_ONLY	0x1	/* its tunnel packets must arrive decrypted (WireGuard device, IPsec): refused in the clear on the underlay */

struct node_key {
	__u32 addr;		/* network order */
};

struct node_info {
	__u32 node_ip;		/* the node's underlay IP, network order */
	__u32 router_ip;	/* its router IP (encryption), network order; 0 = none */
	__u16 cluster_id;	/* the cluster the node belongs to: its VNIs carry this in bits 16-23 */
	__u16 flags;		/* NODE_ADDR_F_* */
};

/* ---- endpoints: local pods by IP ------------------------------------------ */
#define EP_F_INGRESS_ENFORCE	0x1	/* a policy selects the endpoint for ingress */
#define EP_F_EGRESS_ENFORCE	0x2	/* a policy selects the endpoint for egress */
#define EP_F_AUDIT		0x4	/* policy drops are reported as AUDIT and let through */
/*
 * Which generation of the endpoint's weft_policy_v2 entries is in force
 * (policy_key.gen): the agent writes a new policy under the other generation
 * and flips this bit, with the new policy_rev, in one update of the entry.
 */
#define EP_F_POLICY_GEN		0x8
/*
 * The agent could not write the endpoint's policy: every packet to or from it
 * is dropped (WEFT_DROP_FAIL_CLOSED), audit mode or not, until it can.
 */
#define EP_F_FAIL_CLOSED	0x10

struct endpoint_key {
	__u32 ip;		/* network order */
};

struct endpoint_info {
	__u32 ifindex;		/* host-side veth */
	__u16 ep_id;		/* node-local endpoint id, 1-65535 */
	__u16 flags;		/* EP_F_* */
	__u32 identity;
	__u32 policy_rev;	/* bumped by the agent on every policy change of this endpoint */
	__u8 mac[6];		/* the pod's eth0 */
	__u8 node_mac[6];	/* the host-side veth */
};

/* ---- policy: one LPM trie for all endpoints of the node ------------------- */
/*
 * Lookups use the full prefix (96 bits); entries use shorter prefixes to
 * wildcard the trailing fields:
 *   64 bits: ep_id, egress, identity         (any protocol, any port)
 *   80 bits: ... + protocol                   (any port)
 *   81-96 bits: ... + dport prefix            (port ranges, as prefixes)
 *   96 bits: exact port
 * Identity 0 means "any identity" and is a second lookup. `gen` sits inside
 * the 64 bits every entry matches, so entries of the generation not in force
 * are never found.
 */
struct policy_key {
	__u32 prefixlen;
	__u16 ep_id;
	__u8 egress;		/* 1 = egress (from the endpoint), 0 = ingress */
	__u8 gen;		/* policy generation, 0 or 1: only the endpoint's EP_F_POLICY_GEN one is looked up */
	__u32 identity;		/* remote identity, host order (always fully matched), 0 = any */
	__u8 protocol;		/* IPPROTO_*, 0 only with a 64-bit prefix */
	__u8 pad2;
	__u16 dport;		/* network order */
};

#define POLICY_PREFIX_IDENTITY	64
#define POLICY_PREFIX_PROTO	80
#define POLICY_PREFIX_FULL	96

/*
 * Node-local identities of the CIDRs policies name (cluster bits 0, above the
 * reserved ones): weft_policy_cidrs holds at most this many entries.
 */
#define CIDR_IDENTITY_MIN	0x100
#define CIDR_IDENTITY_MAX	0xffff

struct policy_value {
	__u8 deny;		/* 1 = deny rule (beats any allow) */
	__u8 pad[3];
	__u32 rule_id;		/* agent-assigned, for counters and flows */
	__u64 packets;		/* matched packets (new connections) */
	__u64 bytes;
};

/* ---- connection tracking --------------------------------------------------- */
/*
 * A plain hash, not an LRU: a full table refuses new connections (CT_FULL)
 * instead of evicting someone else's live entry, and each endpoint may hold
 * at most node_config.ct_quota entries (CT_QUOTA), counted in weft_ct_count.
 * An entry lives until `expires`; a dead one is treated as absent by the
 * datapath (which deletes it when it meets it) and collected by the agent.
 */
#define CT_EGRESS	1	/* entry created when an endpoint opened the connection */
#define CT_INGRESS	2	/* entry created when an endpoint accepted it */

struct ct_key {
	__u32 saddr;		/* network order, as seen on the connection's first packet */
	__u32 daddr;
	__u16 sport;		/* network order */
	__u16 dport;
	__u8 protocol;
	__u8 dir;		/* CT_EGRESS or CT_INGRESS */
	__u16 pad;
};

#define CT_SERVICE	3	/* a connection to a service address: which backend it was given */

#define CT_F_DNAT	0x1	/* CT_EGRESS entry of a connection opened to a service: replies get nat_addr:nat_port back as their source */
#define CT_F_SEEN_REPLY	0x2	/* a packet of the reply direction was seen */
#define CT_F_TX_CLOSING	0x4	/* TCP: FIN or RST from the side that sent the first packet */
#define CT_F_RX_CLOSING	0x8	/* TCP: FIN or RST from the other side */

struct ct_value {
	__u64 expires;		/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) after which the entry is dead */
	__u64 packets;
	__u64 bytes;
	__u32 policy_rev;	/* endpoint policy revision the entry was admitted (or last re-checked) under */
	__u32 remote_identity;	/* the peer's identity it was admitted (or last re-checked) for */
	__u16 ep_id;		/* the endpoint whose entry it is (and whose quota it counts against) */
	__u16 flags;		/* CT_F_* */
	__u32 rule_id;
	__u32 nat_addr;		/* CT_SERVICE: the chosen backend; CT_F_DNAT: the service address. Network order */
	__u16 nat_port;		/* likewise, network order */
	__u16 pad;
};

/* Node-wide conntrack counters (per CPU; the agent sums them). */
struct ct_stats {
	__u64 drops_full;	/* new connections refused because the table was full */
	__u64 drops_quota;	/* new connections refused because their endpoint was at its quota */
};

/* ---- services: ClusterIP load balancing ----------------------------------- */
/*
 * One entry per service port at slot 0 (the count of backends), then one per
 * backend at slots 1..count. A connection's first packet picks a slot at
 * random; conntrack (CT_SERVICE) keeps the connection on that backend for as
 * long as weft_lb_backends says the backend still belongs to the service.
 */
struct lb_key {
	__u32 vip;		/* network order */
	__u16 dport;		/* network order */
	__u8 protocol;
	__u8 pad;
	__u32 slot;		/* 0 = the service, 1..count = its backends */
};

struct lb_value {
	__u32 addr;		/* slot > 0: backend IP, network order */
	__u16 port;		/* slot > 0: backend port, network order */
	__u16 count;		/* slot 0: number of backends */
};

/*
 * Which addresses may be a service's (weft_lb_vips): a bitmap of
 * LB_VIP_FILTER_WORDS __u64 words over the destination address, bit
 * lb_vip_bit(vip) = (host-order vip * LB_VIP_HASH_MUL) >> 16, the top 16 bits
 * of a Fibonacci hash. lb_egress looks weft_lb_services up only when the
 * bit is set: a clear bit proves no frontend has the address, which spares a
 * pod-to-pod packet the hash lookup. The agent sets a frontend's bit before
 * writing the frontend and clears one only after the last frontend hashing
 * to it is gone: a set bit may be stale (one lookup that misses), a bit a
 * frontend needs is never clear.
 */
#define LB_VIP_FILTER_WORDS	1024
#define LB_VIP_HASH_MUL		0x9E3779B1

struct lb_backend_key {
	__u32 vip;		/* network order */
	__u32 addr;		/* backend, network order */
	__u16 dport;		/* service port, network order */
	__u16 port;		/* backend port, network order */
	__u8 protocol;
	__u8 pad[3];
};

/* ---- IP fragments: a datagram's first fragment, for its later ones ---------- */
/*
 * Only the first fragment of a datagram carries its L4 header. Its ports (and,
 * at a client's veth, the backend a service gave it) are recorded under this
 * key, so the later fragments meet the same conntrack entry, policy verdict
 * and backend. Addresses as the recording program saw them: before any
 * service translation.
 */
struct frag_key {
	__u32 saddr;		/* network order */
	__u32 daddr;
	__u16 id;		/* IPv4 identification, network order */
	__u8 protocol;
	__u8 pad;
};

struct frag_value {
	__u64 first_seen;	/* bpf_ktime_get_ns() of the first fragment */
	__u16 sport;		/* network order */
	__u16 dport;
	__u32 nat_addr;		/* from_container, a datagram to a service: the backend its first fragment went to; else 0 */
	__u16 nat_port;		/* likewise, network order */
	__u16 pad;
	__u32 pad2;
};

/* ---- node configuration (array of one) ------------------------------------ */
#define ROUTING_TUNNEL	0
#define ROUTING_DIRECT	1

#define NODE_F_AUDIT	0x1	/* global audit mode */
#define NODE_F_STRICT_INGRESS	0x2	/* strict WireGuard (informational: from_underlay now takes strictness from the ipcache and node flags) */
/*
 * Some ipcache entries the agent wants did not fit (the map is full): for a
 * direction an endpoint enforces, a new connection whose remote identity did
 * not come from an IPCACHE_F_EXACT entry (or the identity mark) is dropped
 * (WEFT_DROP_IPCACHE_INCOMPLETE), since a missing entry would make it "world"
 * or a CIDR's identity, which a policy may allow where the real one is denied.
 */
#define NODE_F_IPCACHE_INCOMPLETE	0x4

struct node_config {
	__u32 node_ip;		/* this node's underlay IP, network order */
	__u32 tunnel_ifindex;	/* the collect-metadata VXLAN/Geneve device */
	__u32 routing_mode;	/* ROUTING_* */
	__u32 cluster_id;
	__u32 flags;		/* NODE_F_* */
	/*
	 * UDP port of the tunnel device (VXLAN or Geneve), network order; 0 in
	 * direct routing. Took the place of a pad: size and every other offset
	 * unchanged, and the agent rewrites the whole entry at every start, so
	 * the map kept its name.
	 */
	__u16 tunnel_port;
	__u16 pad;
	/*
	 * Conntrack: entries per endpoint, and how long an entry lives after
	 * its last packet, in seconds. 0 = the datapath's default (ct.h).
	 */
	__u32 ct_quota;
	__u32 ct_tcp_syn;		/* TCP until the other side answered */
	__u32 ct_tcp_established;
	__u32 ct_tcp_close;		/* TCP after FIN both ways, or RST */
	__u32 ct_udp;			/* UDP and every protocol without its own */
	__u32 ct_icmp;
};

/* ---- flow events (ring buffer) --------------------------------------------- */
#define VERDICT_FORWARDED	1
#define VERDICT_DROPPED		2
#define VERDICT_AUDIT		3

#define FLOW_F_REPLY		0x1
#define FLOW_F_NEW		0x2
#define FLOW_F_TUNNELED		0x4
#define FLOW_F_ENCRYPTED	0x8	/* leaves the node encrypted (WireGuard) */
#define FLOW_F_RELATED		0x10	/* an ICMP error about a tracked connection (matched by its embedded header) */

#define FLOW_POINT_FROM_ENDPOINT	1	/* pod egress, on the host-side veth */
#define FLOW_POINT_TO_ENDPOINT		2	/* pod ingress, on the host-side veth */
#define FLOW_POINT_FROM_OVERLAY		3	/* arrived through the tunnel */
#define FLOW_POINT_FROM_UNDERLAY	4	/* arrived on the node's underlay device (before any decapsulation) */

struct flow_event {
	__u64 timestamp;	/* bpf_ktime_get_ns() */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 saddr;		/* network order */
	__u32 daddr;
	__u16 sport;		/* network order */
	__u16 dport;
	__u8 protocol;
	__u8 verdict;		/* VERDICT_* */
	__u8 drop_reason;	/* WEFT_DROP_*, 0 when forwarded */
	__u8 point;		/* FLOW_POINT_* */
	__u16 ep_id;
	__u16 flags;		/* FLOW_F_* */
	__u32 ifindex;
	__u32 length;
	__u32 rule_id;
	/* TCP: the header's flags byte (TH_* in common.h), as parsed; 0 for other protocols, later fragments and unreadable headers. */
	__u8 tcp_flags;
	__u8 pad;
	/*
	 * The Service of a service connection the packet belongs to, as the client
	 * addressed it (network order; both 0 when none). Only the client's veth
	 * knows it (the backend's side sees the backend's address only):
	 *   FROM_ENDPOINT: the service address the packet was sent to, which lb_egress
	 *     (or, for a later fragment or related ICMP error, frag.h and icmp.h)
	 *     translated; daddr/dport are then the backend's. A drop before any
	 *     translation (NO_SERVICE_BACKEND, NAT) has 0 and the service as daddr.
	 *   TO_ENDPOINT: a reply, or related ICMP error, of a connection the pod opened
	 *     to a service: the address its source gets back (the CT_F_DNAT entry's);
	 *     saddr is still the backend's (the event comes before lb_reverse), except
	 *     in an ICMP error the backend itself sent, already rewritten.
	 *   FROM_OVERLAY, FROM_UNDERLAY: always 0.
	 * These 8 bytes were a __u32 pad and tail padding, so the size is unchanged
	 * and the map kept its name: a program of the previous layout still attached
	 * during an upgrade writes 0 at 48..51 and leaves 52..55 as they were, so its
	 * events read tcp_flags 0 and svc_port 0, and the codec takes svc_addr only
	 * with a port (a service always has one).
	 */
	__u16 svc_port;
	__u32 svc_addr;
};

/* ---- drop reasons (append-only; never reuse a number) ---------------------- */
#define WEFT_DROP_POLICY		1	/* no rule allows it (default deny) */
#define WEFT_DROP_POLICY_DENY		2	/* a deny rule matched */
#define WEFT_DROP_INVALID_PACKET	3	/* truncated or malformed headers */
#define WEFT_DROP_UNKNOWN_SOURCE	4	/* source address is not the endpoint of this veth (spoofing) */
#define WEFT_DROP_NO_TUNNEL		5	/* remote destination without a tunnel endpoint */
#define WEFT_DROP_UNSUPPORTED_L3	6	/* not IPv4 (and not ARP) */
#define WEFT_DROP_REDIRECT		7	/* redirect or tunnel key failed */
#define WEFT_DROP_POLICY_REVOKED	8	/* an established connection no longer allowed after a policy change */
#define WEFT_DROP_UNKNOWN_ENDPOINT	9	/* no local endpoint for the destination */
#define WEFT_DROP_NO_SERVICE_BACKEND	10	/* a service address with no backend */
#define WEFT_DROP_NAT			11	/* rewriting addresses or checksums failed */
#define WEFT_DROP_UNENCRYPTED		12	/* would leave for another node unencrypted (strict encryption) */
#define WEFT_DROP_UNENCRYPTED_INGRESS	13	/* pod or tunnel traffic from another node arrived in the clear on the underlay, where it must be encrypted */
#define WEFT_DROP_TUNNEL_SOURCE_NOT_NODE	14	/* a tunnel packet whose outer source is no node of the mesh */
#define WEFT_DROP_TUNNEL_CLUSTER_MISMATCH	15	/* the VNI names an identity of another cluster than the sending node's */
#define WEFT_DROP_RESERVED_IDENTITY_CLAIM	16	/* the VNI is a reserved or node-local identity the sending node may not claim */
#define WEFT_DROP_INNER_SOURCE_MISMATCH	17	/* the inner source is not an address the ipcache places on the sending node */
#define WEFT_DROP_SOURCE_NOT_FROM_OWNER	18	/* a pod or node address arrived from the underlay from a machine that does not own it */
#define WEFT_DROP_CT_FULL		20	/* a new connection, and the conntrack table is full */
#define WEFT_DROP_CT_QUOTA		21	/* a new connection, and its endpoint holds its quota of conntrack entries */
#define WEFT_DROP_IDENTITY_CHANGED	22	/* an established connection's peer changed identity, and the new one is not allowed */
#define WEFT_DROP_FRAG_NO_FIRST		24	/* a later IP fragment whose first fragment was not seen (or is too old): its ports are unknown */
#define WEFT_DROP_FAIL_CLOSED		28	/* the endpoint's policy could not be written (EP_F_FAIL_CLOSED) */
#define WEFT_DROP_IPCACHE_INCOMPLETE	29	/* the ipcache is incomplete and the peer has no exact entry (NODE_F_IPCACHE_INCOMPLETE) */

#endif /* WEFT_TYPES_H */
