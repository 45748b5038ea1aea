/**
 * Encoders and decoders for the map structs (layouts in layout.ts). Addresses
 * and ports travel in network byte order, everything else in host order
 * (little-endian on every platform we run on). Encoders write into a caller's
 * buffer at an offset so batch updates fill one allocation.
 */
import {
  CT_KEY,
  CT_STATS,
  CT_VALUE,
  ENDPOINT_INFO,
  FLOW_EVENT,
  IPCACHE_KEY,
  IPCACHE_VALUE,
  LB_BACKEND_KEY,
  LB_KEY,
  LB_VALUE,
  NODE_CONFIG,
  NODE_INFO,
  NODE_KEY,
  POLICY_KEY,
  POLICY_VALUE,
} from './layout.js';

/** Dotted IPv4 <-> unsigned 32-bit (written big-endian): @weft/common's arithmetic, under the names the codecs use. */
export { ipv4ToInt, formatIpv4 as intToIpv4 } from '@weft/common';

function macBytes(mac: string, what: string): Buffer {
  const b = Buffer.from(mac.replace(/:/g, ''), 'hex');
  if (b.length !== 6 || !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac)) throw new RangeError(`Invalid ${what} MAC address ${JSON.stringify(mac)}`);
  return b;
}

function macString(buf: Buffer, off: number): string {
  return [...buf.subarray(off, off + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

// ---- ipcache ----------------------------------------------------------------

export interface IpcacheEntry {
  /** IPv4 address as an unsigned integer. */
  ip: number;
  prefixlen: number;
  identity: number;
  /** Underlay IP of the hosting node as an unsigned integer; 0 = this node or none. */
  tunnelIp: number;
  flags: number;
  clusterId: number;
}

export function encodeIpcacheKey(buf: Buffer, off: number, ip: number, prefixlen: number): void {
  buf.writeUInt32LE(prefixlen, off + IPCACHE_KEY.offsets.prefixlen!);
  buf.writeUInt32BE(ip, off + IPCACHE_KEY.offsets.ip!);
}

export function encodeIpcacheValue(buf: Buffer, off: number, e: Pick<IpcacheEntry, 'identity' | 'tunnelIp' | 'flags' | 'clusterId'>): void {
  buf.writeUInt32LE(e.identity, off + IPCACHE_VALUE.offsets.identity!);
  buf.writeUInt32BE(e.tunnelIp, off + IPCACHE_VALUE.offsets.tunnel_ip!);
  buf.writeUInt16LE(e.flags, off + IPCACHE_VALUE.offsets.flags!);
  buf.writeUInt16LE(e.clusterId, off + IPCACHE_VALUE.offsets.cluster_id!);
  buf.writeUInt32LE(0, off + IPCACHE_VALUE.offsets.pad!);
}

export function decodeIpcache(key: Buffer, value: Buffer): IpcacheEntry {
  return {
    prefixlen: key.readUInt32LE(0),
    ip: key.readUInt32BE(4),
    identity: value.readUInt32LE(0),
    tunnelIp: value.readUInt32BE(4),
    flags: value.readUInt16LE(8),
    clusterId: value.readUInt16LE(10),
  };
}

/** weft_policy_cidrs: the key is an ipcache_key, the value the CIDR's identity (__u32, host order). */
export function encodePolicyCidr(ip: number, prefixlen: number, identity: number): { key: Buffer; value: Buffer } {
  const key = Buffer.alloc(IPCACHE_KEY.size);
  encodeIpcacheKey(key, 0, ip, prefixlen);
  const value = Buffer.alloc(4);
  value.writeUInt32LE(identity, 0);
  return { key, value };
}

export function decodePolicyCidr(key: Buffer, value: Buffer): { ip: number; prefixlen: number; identity: number } {
  return { prefixlen: key.readUInt32LE(IPCACHE_KEY.offsets.prefixlen!), ip: key.readUInt32BE(IPCACHE_KEY.offsets.ip!), identity: value.readUInt32LE(0) };
}

// ---- endpoints ---------------------------------------------------------------

export interface EndpointEntry {
  ip: number;
  ifindex: number;
  epId: number;
  flags: number;
  identity: number;
  policyRev: number;
  mac: string;
  nodeMac: string;
}

export function encodeEndpointKey(ip: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ip, 0);
  return b;
}

export function encodeEndpointInfo(e: EndpointEntry): Buffer {
  const b = Buffer.alloc(ENDPOINT_INFO.size);
  const o = ENDPOINT_INFO.offsets;
  b.writeUInt32LE(e.ifindex, o.ifindex!);
  b.writeUInt16LE(e.epId, o.ep_id!);
  b.writeUInt16LE(e.flags, o.flags!);
  b.writeUInt32LE(e.identity, o.identity!);
  b.writeUInt32LE(e.policyRev >>> 0, o.policy_rev!);
  macBytes(e.mac, 'endpoint').copy(b, o.mac!);
  macBytes(e.nodeMac, 'host-side veth').copy(b, o.node_mac!);
  return b;
}

export function decodeEndpoint(key: Buffer, value: Buffer): EndpointEntry {
  const o = ENDPOINT_INFO.offsets;
  return {
    ip: key.readUInt32BE(0),
    ifindex: value.readUInt32LE(o.ifindex!),
    epId: value.readUInt16LE(o.ep_id!),
    flags: value.readUInt16LE(o.flags!),
    identity: value.readUInt32LE(o.identity!),
    policyRev: value.readUInt32LE(o.policy_rev!),
    mac: macString(value, o.mac!),
    nodeMac: macString(value, o.node_mac!),
  };
}

// ---- policy ------------------------------------------------------------------

export interface PolicyMapKey {
  epId: number;
  egress: boolean;
  identity: number;
  /** 0 = any protocol. */
  protocol: number;
  /** Undefined = any port. */
  port?: number;
  /** Leading bits of `port` that match, 0-16. */
  portBits?: number;
  /** Policy generation, 0 or 1 (see EP_F_POLICY_GEN); default 0. */
  gen?: number;
}

export function policyPrefixLen(k: PolicyMapKey): number {
  if (k.protocol === 0) return POLICY_PREFIX_IDENTITY_BITS;
  if (k.port === undefined) return POLICY_PREFIX_PROTO_BITS;
  return POLICY_PREFIX_PROTO_BITS + (k.portBits ?? 16);
}
const POLICY_PREFIX_IDENTITY_BITS = 64;
const POLICY_PREFIX_PROTO_BITS = 80;

export function encodePolicyKey(buf: Buffer, off: number, k: PolicyMapKey): void {
  const o = POLICY_KEY.offsets;
  buf.fill(0, off, off + POLICY_KEY.size);
  buf.writeUInt32LE(policyPrefixLen(k), off + o.prefixlen!);
  buf.writeUInt16LE(k.epId, off + o.ep_id!);
  buf.writeUInt8(k.egress ? 1 : 0, off + o.egress!);
  buf.writeUInt8(k.gen ?? 0, off + o.gen!);
  buf.writeUInt32LE(k.identity, off + o.identity!);
  buf.writeUInt8(k.protocol, off + o.protocol!);
  buf.writeUInt16BE(k.port ?? 0, off + o.dport!);
}

export function encodePolicyValue(buf: Buffer, off: number, deny: boolean, ruleId: number): void {
  const o = POLICY_VALUE.offsets;
  buf.fill(0, off, off + POLICY_VALUE.size);
  buf.writeUInt8(deny ? 1 : 0, off + o.deny!);
  buf.writeUInt32LE(ruleId, off + o.rule_id!);
}

export function decodePolicy(key: Buffer, value: Buffer): PolicyMapKey & { deny: boolean; ruleId: number; packets: bigint; bytes: bigint; prefixlen: number } {
  const ko = POLICY_KEY.offsets;
  const vo = POLICY_VALUE.offsets;
  const prefixlen = key.readUInt32LE(ko.prefixlen!);
  const protocol = key.readUInt8(ko.protocol!);
  const out: PolicyMapKey & { deny: boolean; ruleId: number; packets: bigint; bytes: bigint; prefixlen: number } = {
    prefixlen,
    epId: key.readUInt16LE(ko.ep_id!),
    egress: key.readUInt8(ko.egress!) === 1,
    gen: key.readUInt8(ko.gen!),
    identity: key.readUInt32LE(ko.identity!),
    protocol: prefixlen >= POLICY_PREFIX_PROTO_BITS ? protocol : 0,
    deny: value.readUInt8(vo.deny!) === 1,
    ruleId: value.readUInt32LE(vo.rule_id!),
    packets: value.readBigUInt64LE(vo.packets!),
    bytes: value.readBigUInt64LE(vo.bytes!),
  };
  if (prefixlen > POLICY_PREFIX_PROTO_BITS) {
    out.port = key.readUInt16BE(ko.dport!);
    out.portBits = prefixlen - POLICY_PREFIX_PROTO_BITS;
  }
  return out;
}

// ---- conntrack -----------------------------------------------------------------

export interface CtEntry {
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
  protocol: number;
  dir: number;
  /** CLOCK_MONOTONIC ns (bpf_ktime_get_ns) after which the entry is dead. */
  expires: bigint;
  packets: bigint;
  bytes: bigint;
  policyRev: number;
  remoteIdentity: number;
  epId: number;
  flags: number;
  ruleId: number;
  /** CT_SERVICE: the backend; CT_F_DNAT: the service address (0 otherwise). */
  natAddr: number;
  natPort: number;
}

export function decodeCt(key: Buffer, value: Buffer): CtEntry {
  const k = CT_KEY.offsets;
  const v = CT_VALUE.offsets;
  return {
    saddr: key.readUInt32BE(k.saddr!),
    daddr: key.readUInt32BE(k.daddr!),
    sport: key.readUInt16BE(k.sport!),
    dport: key.readUInt16BE(k.dport!),
    protocol: key.readUInt8(k.protocol!),
    dir: key.readUInt8(k.dir!),
    expires: value.readBigUInt64LE(v.expires!),
    packets: value.readBigUInt64LE(v.packets!),
    bytes: value.readBigUInt64LE(v.bytes!),
    policyRev: value.readUInt32LE(v.policy_rev!),
    remoteIdentity: value.readUInt32LE(v.remote_identity!),
    epId: value.readUInt16LE(v.ep_id!),
    flags: value.readUInt16LE(v.flags!),
    ruleId: value.readUInt32LE(v.rule_id!),
    natAddr: value.readUInt32BE(v.nat_addr!),
    natPort: value.readUInt16BE(v.nat_port!),
  };
}

export function encodeCtKey(buf: Buffer, off: number, e: Pick<CtEntry, 'saddr' | 'daddr' | 'sport' | 'dport' | 'protocol' | 'dir'>): void {
  const k = CT_KEY.offsets;
  buf.fill(0, off, off + CT_KEY.size);
  buf.writeUInt32BE(e.saddr, off + k.saddr!);
  buf.writeUInt32BE(e.daddr, off + k.daddr!);
  buf.writeUInt16BE(e.sport, off + k.sport!);
  buf.writeUInt16BE(e.dport, off + k.dport!);
  buf.writeUInt8(e.protocol, off + k.protocol!);
  buf.writeUInt8(e.dir, off + k.dir!);
}

export function encodeCtValue(buf: Buffer, off: number, e: Omit<CtEntry, 'saddr' | 'daddr' | 'sport' | 'dport' | 'protocol' | 'dir'>): void {
  const v = CT_VALUE.offsets;
  buf.fill(0, off, off + CT_VALUE.size);
  buf.writeBigUInt64LE(e.expires, off + v.expires!);
  buf.writeBigUInt64LE(e.packets, off + v.packets!);
  buf.writeBigUInt64LE(e.bytes, off + v.bytes!);
  buf.writeUInt32LE(e.policyRev >>> 0, off + v.policy_rev!);
  buf.writeUInt32LE(e.remoteIdentity >>> 0, off + v.remote_identity!);
  buf.writeUInt16LE(e.epId, off + v.ep_id!);
  buf.writeUInt16LE(e.flags, off + v.flags!);
  buf.writeUInt32LE(e.ruleId >>> 0, off + v.rule_id!);
  buf.writeUInt32BE(e.natAddr >>> 0, off + v.nat_addr!);
  buf.writeUInt16BE(e.natPort, off + v.nat_port!);
}

/** The entry's `ep_id`, without decoding the rest (the garbage collector reads every entry). */
export function ctEntryEpId(values: Buffer, off: number): number {
  return values.readUInt16LE(off + CT_VALUE.offsets.ep_id!);
}

/** The entry's `expires`, without decoding the rest. */
export function ctEntryExpires(values: Buffer, off: number): bigint {
  return values.readBigUInt64LE(off + CT_VALUE.offsets.expires!);
}

export interface CtStats {
  dropsFull: bigint;
  dropsQuota: bigint;
}

/** Sums a per-CPU `struct ct_stats` value (one 8-byte-aligned slot per possible CPU). */
export function decodeCtStats(value: Buffer): CtStats {
  const out: CtStats = { dropsFull: 0n, dropsQuota: 0n };
  for (let off = 0; off + CT_STATS.size <= value.length; off += CT_STATS.size) {
    out.dropsFull += value.readBigUInt64LE(off + CT_STATS.offsets.drops_full!);
    out.dropsQuota += value.readBigUInt64LE(off + CT_STATS.offsets.drops_quota!);
  }
  return out;
}

// ---- services --------------------------------------------------------------------

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** One port of a service: address, port and protocol number. */
export interface LbFrontend {
  vip: number;
  port: number;
  protocol: number;
}

/** Key of slot `slot` (0 = the service entry) of a frontend. */
export function encodeLbKey(f: LbFrontend, slot: number): Buffer {
  return encodeLbKeyInto(Buffer.alloc(LB_KEY.size), 0, f, slot);
}

/** encodeLbKey into `b` at `off` (a batch buffer; `b` must be zeroed there: padding is not written). */
export function encodeLbKeyInto(b: Buffer, off: number, f: LbFrontend, slot: number): Buffer {
  b.writeUInt32BE(f.vip, off + LB_KEY.offsets.vip!);
  b.writeUInt16BE(f.port, off + LB_KEY.offsets.dport!);
  b.writeUInt8(f.protocol, off + LB_KEY.offsets.protocol!);
  b.writeUInt32LE(slot, off + LB_KEY.offsets.slot!);
  return b;
}

/** The service entry (count) or a backend slot (addr, port). */
export function encodeLbValue(v: { addr: number; port: number; count: number }): Buffer {
  return encodeLbValueInto(Buffer.alloc(LB_VALUE.size), 0, v.addr, v.port, v.count);
}

/** encodeLbValue into `b` at `off` (zeroed there). */
export function encodeLbValueInto(b: Buffer, off: number, addr: number, port: number, count: number): Buffer {
  b.writeUInt32BE(addr, off + LB_VALUE.offsets.addr!);
  b.writeUInt16BE(port, off + LB_VALUE.offsets.port!);
  b.writeUInt16LE(count, off + LB_VALUE.offsets.count!);
  return b;
}

export function decodeLb(key: Buffer, value: Buffer): LbFrontend & { slot: number; addr: number; backendPort: number; count: number } {
  return {
    vip: key.readUInt32BE(LB_KEY.offsets.vip!),
    port: key.readUInt16BE(LB_KEY.offsets.dport!),
    protocol: key.readUInt8(LB_KEY.offsets.protocol!),
    slot: key.readUInt32LE(LB_KEY.offsets.slot!),
    addr: value.readUInt32BE(LB_VALUE.offsets.addr!),
    backendPort: value.readUInt16BE(LB_VALUE.offsets.port!),
    count: value.readUInt16LE(LB_VALUE.offsets.count!),
  };
}

/** Membership of a backend in a frontend (what keeps a connection on its backend). */
export function encodeLbBackendKey(f: LbFrontend, addr: number, port: number): Buffer {
  return encodeLbBackendKeyInto(Buffer.alloc(LB_BACKEND_KEY.size), 0, f, addr, port);
}

/** encodeLbBackendKey into `b` at `off` (zeroed there). */
export function encodeLbBackendKeyInto(b: Buffer, off: number, f: LbFrontend, addr: number, port: number): Buffer {
  b.writeUInt32BE(f.vip, off + LB_BACKEND_KEY.offsets.vip!);
  b.writeUInt32BE(addr, off + LB_BACKEND_KEY.offsets.addr!);
  b.writeUInt16BE(f.port, off + LB_BACKEND_KEY.offsets.dport!);
  b.writeUInt16BE(port, off + LB_BACKEND_KEY.offsets.port!);
  b.writeUInt8(f.protocol, off + LB_BACKEND_KEY.offsets.protocol!);
  return b;
}

// ---- node addresses (weft_nodes) ------------------------------------------------

/** An address of another node (its node IP or router IP) and the node it belongs to. */
export interface NodeAddressEntry {
  /** The address, as an unsigned integer. */
  addr: number;
  nodeIp: number;
  /** 0 = none. */
  routerIp: number;
  clusterId: number;
  flags: number;
}

export function encodeNodeKey(addr: number): Buffer {
  const b = Buffer.alloc(NODE_KEY.size);
  b.writeUInt32BE(addr >>> 0, NODE_KEY.offsets.addr!);
  return b;
}

export function encodeNodeInfo(buf: Buffer, off: number, e: Omit<NodeAddressEntry, 'addr'>): void {
  const o = NODE_INFO.offsets;
  buf.writeUInt32BE(e.nodeIp >>> 0, off + o.node_ip!);
  buf.writeUInt32BE(e.routerIp >>> 0, off + o.router_ip!);
  buf.writeUInt16LE(e.clusterId, off + o.cluster_id!);
  buf.writeUInt16LE(e.flags, off + o.flags!);
}

export function decodeNodeAddress(key: Buffer, value: Buffer): NodeAddressEntry {
  const o = NODE_INFO.offsets;
  return {
    addr: key.readUInt32BE(NODE_KEY.offsets.addr!),
    nodeIp: value.readUInt32BE(o.node_ip!),
    routerIp: value.readUInt32BE(o.router_ip!),
    clusterId: value.readUInt16LE(o.cluster_id!),
    flags: value.readUInt16LE(o.flags!),
  };
}

// ---- node config ------------------------------------------------------------------

export interface NodeConfig {
  nodeIp: number;
  tunnelIfindex: number;
  routingMode: number;
  clusterId: number;
  flags: number;
  /** UDP port of the tunnel device (VXLAN or Geneve); 0 in direct routing. */
  tunnelPort?: number;
  /** Conntrack quota and timeouts (seconds); a field left out is 0, the datapath's default. */
  conntrack?: Partial<ConntrackSettings>;
}

/** node_config's conntrack fields: entries per endpoint, and lifetimes in seconds. */
export interface ConntrackSettings {
  quota: number;
  tcpSyn: number;
  tcpEstablished: number;
  tcpClose: number;
  udp: number;
  icmp: number;
}

export function encodeNodeConfig(c: NodeConfig): Buffer {
  const b = Buffer.alloc(NODE_CONFIG.size);
  const o = NODE_CONFIG.offsets;
  b.writeUInt32BE(c.nodeIp, o.node_ip!);
  b.writeUInt32LE(c.tunnelIfindex, o.tunnel_ifindex!);
  b.writeUInt32LE(c.routingMode, o.routing_mode!);
  b.writeUInt32LE(c.clusterId, o.cluster_id!);
  b.writeUInt32LE(c.flags, o.flags!);
  b.writeUInt16BE(c.tunnelPort ?? 0, o.tunnel_port!);
  const ct = c.conntrack ?? {};
  b.writeUInt32LE(ct.quota ?? 0, o.ct_quota!);
  b.writeUInt32LE(ct.tcpSyn ?? 0, o.ct_tcp_syn!);
  b.writeUInt32LE(ct.tcpEstablished ?? 0, o.ct_tcp_established!);
  b.writeUInt32LE(ct.tcpClose ?? 0, o.ct_tcp_close!);
  b.writeUInt32LE(ct.udp ?? 0, o.ct_udp!);
  b.writeUInt32LE(ct.icmp ?? 0, o.ct_icmp!);
  return b;
}

// ---- flow events -------------------------------------------------------------------

export interface FlowRecord {
  timestampNs: bigint;
  srcIdentity: number;
  dstIdentity: number;
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
  protocol: number;
  verdict: number;
  dropReason: number;
  point: number;
  epId: number;
  flags: number;
  ifindex: number;
  length: number;
  ruleId: number;
  /**
   * TCP: the header's flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20,
   * ECE 0x40, CWR 0x80); 0 for other protocols, later fragments and headers the datapath could
   * not read.
   */
  tcpFlags: number;
  /**
   * The Service address the client sent to, as an unsigned integer like saddr; 0 when the event
   * names none. Only a client's veth knows it: from-endpoint, the address before translation
   * (daddr is the backend); to-endpoint, for a reply of the client's service connection (saddr
   * is still the backend). Never set from the overlay or the underlay (struct flow_event).
   */
  serviceAddr: number;
  /** The Service's port; 0 when none. */
  servicePort: number;
}

export function decodeFlowEvent(b: Buffer): FlowRecord {
  if (b.length < FLOW_EVENT.size) throw new RangeError(`Flow event of ${b.length} bytes, expected ${FLOW_EVENT.size}`);
  const o = FLOW_EVENT.offsets;
  const servicePort = b.readUInt16BE(o.svc_port!);
  return {
    timestampNs: b.readBigUInt64LE(o.timestamp!),
    srcIdentity: b.readUInt32LE(o.src_identity!),
    dstIdentity: b.readUInt32LE(o.dst_identity!),
    saddr: b.readUInt32BE(o.saddr!),
    daddr: b.readUInt32BE(o.daddr!),
    sport: b.readUInt16BE(o.sport!),
    dport: b.readUInt16BE(o.dport!),
    protocol: b.readUInt8(o.protocol!),
    verdict: b.readUInt8(o.verdict!),
    dropReason: b.readUInt8(o.drop_reason!),
    point: b.readUInt8(o.point!),
    epId: b.readUInt16LE(o.ep_id!),
    flags: b.readUInt16LE(o.flags!),
    ifindex: b.readUInt32LE(o.ifindex!),
    length: b.readUInt32LE(o.length!),
    ruleId: b.readUInt32LE(o.rule_id!),
    tcpFlags: b.readUInt8(o.tcp_flags!),
    // A Service always has a port. Without one the address is none: an event of a program of the
    // previous layout (still attached during an upgrade) never wrote those bytes.
    serviceAddr: servicePort ? b.readUInt32BE(o.svc_addr!) : 0,
    servicePort,
  };
}

/**
 * The flow events lost so far (weft_events was full): the sum of weft_events_lost's per-CPU
 * value (one 8-byte slot per possible CPU), as BpfMap.lookup returns it.
 */
export function decodeFlowEventsLost(value: Buffer): bigint {
  let sum = 0n;
  for (let off = 0; off + 8 <= value.length; off += 8) sum += value.readBigUInt64LE(off);
  return sum;
}
