/**
 * The byte layout of every struct in bpf/lib/weft_types.h, as the codecs use
 * it. Mirrors the C definitions; `layout.privileged.test.ts` compares each
 * size and offset with the BTF of the compiled objects, so a C change that is
 * not mirrored here fails the build's tests instead of corrupting maps.
 */

export interface StructLayout {
  /** The C struct name. */
  name: string;
  size: number;
  /** Field name -> byte offset. */
  offsets: Record<string, number>;
}

function layout(name: string, size: number, offsets: Record<string, number>): StructLayout {
  return { name, size, offsets };
}

export const IPCACHE_KEY = layout('ipcache_key', 8, { prefixlen: 0, ip: 4 });
export const IPCACHE_VALUE = layout('ipcache_value', 16, { identity: 0, tunnel_ip: 4, flags: 8, cluster_id: 10, pad: 12 });
export const NODE_KEY = layout('node_key', 4, { addr: 0 });
export const NODE_INFO = layout('node_info', 12, { node_ip: 0, router_ip: 4, cluster_id: 8, flags: 10 });
export const ENDPOINT_KEY = layout('endpoint_key', 4, { ip: 0 });
export const ENDPOINT_INFO = layout('endpoint_info', 28, { ifindex: 0, ep_id: 4, flags: 6, identity: 8, policy_rev: 12, mac: 16, node_mac: 22 });
export const POLICY_KEY = layout('policy_key', 16, { prefixlen: 0, ep_id: 4, egress: 6, gen: 7, identity: 8, protocol: 12, pad2: 13, dport: 14 });
export const POLICY_VALUE = layout('policy_value', 24, { deny: 0, pad: 1, rule_id: 4, packets: 8, bytes: 16 });
export const CT_KEY = layout('ct_key', 16, { saddr: 0, daddr: 4, sport: 8, dport: 10, protocol: 12, dir: 13, pad: 14 });
export const CT_VALUE = layout('ct_value', 48, { expires: 0, packets: 8, bytes: 16, policy_rev: 24, remote_identity: 28, ep_id: 32, flags: 34, rule_id: 36, nat_addr: 40, nat_port: 44, pad: 46 });
export const LB_KEY = layout('lb_key', 12, { vip: 0, dport: 4, protocol: 6, pad: 7, slot: 8 });
export const LB_VALUE = layout('lb_value', 8, { addr: 0, port: 4, count: 6 });
export const LB_BACKEND_KEY = layout('lb_backend_key', 16, { vip: 0, addr: 4, dport: 8, port: 10, protocol: 12, pad: 13 });
export const FRAG_KEY = layout('frag_key', 12, { saddr: 0, daddr: 4, id: 8, protocol: 10, pad: 11 });
export const FRAG_VALUE = layout('frag_value', 24, { first_seen: 0, sport: 8, dport: 10, nat_addr: 12, nat_port: 16, pad: 18, pad2: 20 });
export const CT_STATS = layout('ct_stats', 16, { drops_full: 0, drops_quota: 8 });
export const NODE_CONFIG = layout('node_config', 48, {
  node_ip: 0,
  tunnel_ifindex: 4,
  routing_mode: 8,
  cluster_id: 12,
  flags: 16,
  tunnel_port: 20,
  pad: 22,
  ct_quota: 24,
  ct_tcp_syn: 28,
  ct_tcp_established: 32,
  ct_tcp_close: 36,
  ct_udp: 40,
  ct_icmp: 44,
});
export const FLOW_EVENT = layout('flow_event', 56, {
  timestamp: 0,
  src_identity: 8,
  dst_identity: 12,
  saddr: 16,
  daddr: 20,
  sport: 24,
  dport: 26,
  protocol: 28,
  verdict: 29,
  drop_reason: 30,
  point: 31,
  ep_id: 32,
  flags: 34,
  ifindex: 36,
  length: 40,
  rule_id: 44,
  tcp_flags: 48,
  pad: 49,
  svc_port: 50,
  svc_addr: 52,
});

export const ALL_LAYOUTS: readonly StructLayout[] = [
  IPCACHE_KEY, IPCACHE_VALUE, NODE_KEY, NODE_INFO, ENDPOINT_KEY, ENDPOINT_INFO, POLICY_KEY, POLICY_VALUE, CT_KEY, CT_VALUE, CT_STATS, LB_KEY, LB_VALUE, LB_BACKEND_KEY, FRAG_KEY, FRAG_VALUE, NODE_CONFIG, FLOW_EVENT,
];

/**
 * Map names; a layout change renames the map (`_v2`), so an old pinned map is never misread.
 * (weft_policy became weft_policy_v2 when policy_key's pad1 became the generation.)
 * Names a previous layout used are in RetiredMapNames, for the agent to unpin.
 */
export const MapName = {
  ipcache: 'weft_ipcache',
  nodes: 'weft_nodes',
  endpoints: 'weft_endpoints',
  policy: 'weft_policy_v2',
  /** The CIDRs policies name -> their CIDR identity (ipcache_key -> __u32): an ipBlock selects pod addresses too (bpf/lib/policy.h). */
  policyCidrs: 'weft_policy_cidrs',
  ct: 'weft_ct_v3',
  /** Conntrack entries per endpoint (array by ep_id, __u32). */
  ctCount: 'weft_ct_count',
  /** Conntrack drops (per-CPU struct ct_stats). */
  ctStats: 'weft_ct_stats',
  lbServices: 'weft_lb_services',
  lbBackends: 'weft_lb_backends',
  /** Which addresses may be a service's: a bitmap lb_egress reads before weft_lb_services (lb-vips.ts). */
  lbVips: 'weft_lb_vips',
  /** Later IP fragments' ports (bpf/lib/frag.h): read by nobody but the datapath, named for inspection. */
  frag: 'weft_frag',
  config: 'weft_config_v2',
  events: 'weft_events',
  /** Flow events a full weft_events could not take (per-CPU array of one __u64). */
  eventsLost: 'weft_events_lost',
} as const;

/** Pins of maps whose layout (or type) changed: the agent removes them once nothing it loads uses them. */
export const RetiredMapNames = ['weft_policy', 'weft_ct', 'weft_ct_v2', 'weft_config'] as const;

// Flags and constants from weft_types.h.
export const IPCACHE_F_LOCAL_ENDPOINT = 0x1;
export const IPCACHE_F_REMOTE_NODE = 0x2;
/** Reached encrypted (WireGuard or IPsec), routed as it is without a tunnel header: the receiver's ipcache gives the identity. */
export const IPCACHE_F_ENCRYPTED = 0x4;
export const IPCACHE_F_ENCRYPT_MISSING = 0x8;
/** A /32 entry: the only kind of hit trusted while the ipcache is incomplete (NODE_F_IPCACHE_INCOMPLETE). */
export const IPCACHE_F_EXACT = 0x10;
/** weft_nodes: tunnel packets from this address must arrive decrypted (refused in the clear on the underlay). */
export const NODE_ADDR_F_ENCRYPTED_ONLY = 0x1;
export const EP_F_INGRESS_ENFORCE = 0x1;
export const EP_F_EGRESS_ENFORCE = 0x2;
export const EP_F_AUDIT = 0x4;
/** Which generation (policy_key.gen) of the endpoint's policy entries is in force. */
export const EP_F_POLICY_GEN = 0x8;
/** The endpoint's policy could not be written: all its traffic is dropped (FAIL_CLOSED). */
export const EP_F_FAIL_CLOSED = 0x10;
export const POLICY_PREFIX_IDENTITY = 64;
export const POLICY_PREFIX_PROTO = 80;
export const POLICY_PREFIX_FULL = 96;
/** Node-local identities of policy CIDRs (cluster bits 0); weft_policy_cidrs holds this whole range. */
export const CIDR_IDENTITY_MIN = 0x100;
export const CIDR_IDENTITY_MAX = 0xffff;
export const CT_EGRESS = 1;
export const CT_INGRESS = 2;
export const CT_SERVICE = 3;
export const CT_F_DNAT = 0x1;
export const CT_F_SEEN_REPLY = 0x2;
export const CT_F_TX_CLOSING = 0x4;
export const CT_F_RX_CLOSING = 0x8;
/** Endpoint ids are 16 bits: weft_ct_count has one slot per id. */
export const CT_COUNT_SLOTS = 65536;
export const ROUTING_TUNNEL = 0;
export const ROUTING_DIRECT = 1;
export const NODE_F_AUDIT = 0x1;
/** Strict WireGuard (informational: from_underlay takes strictness from the ipcache and weft_nodes flags). */
export const NODE_F_STRICT_INGRESS = 0x2;
/** Some wanted ipcache entries did not fit: enforcing endpoints drop new connections whose peer has no exact entry. */
export const NODE_F_IPCACHE_INCOMPLETE = 0x4;
/** weft_lb_vips: __u64 words of the service-address bitmap, and the multiplier of its hash (lb-vips.ts). */
export const LB_VIP_FILTER_WORDS = 1024;
export const LB_VIP_HASH_MUL = 0x9e3779b1;
/** skb->mark carrying a known source identity inside a node. */
export const MARK_IDENTITY_MAGIC = 0xab000000;

/**
 * The maps whose size the agent configures (`mapSizes`), with the sizes bpf/lib/maps.h declares:
 * the defaults.
 */
export const SIZED_MAPS = {
  ipcache: 512 * 1024,
  endpoints: 65_536,
  policy: 256 * 1024,
  ct: 256 * 1024,
  lbServices: 256 * 1024,
  lbBackends: 256 * 1024,
} as const satisfies Partial<Record<keyof typeof MapName, number>>;
export type SizedMap = keyof typeof SIZED_MAPS;
