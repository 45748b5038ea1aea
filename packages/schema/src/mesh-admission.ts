/**
 * What a remote cluster may claim. A remote's node and endpoint records are
 * data from another administrative domain: they become ipcache entries,
 * routes and WireGuard peers here, so they must never reach an address this
 * cluster owns, or one another remote owns. Checked twice, by the same rules:
 * where the records enter (the clustermesh-apiserver's importer) and where
 * they are used (the agent's ClusterState), because the mesh cache in etcd is
 * only as trustworthy as whoever can write it.
 *
 * - A remote node's pod CIDR is no shorter than a minimum prefix (/16 by
 *   default), inside the remote's allow-list when it has one, and overlaps
 *   nothing local (node IPs, pod CIDRs, the underlay, the service CIDR,
 *   special ranges) and no other remote node's pod CIDR or IP.
 * - A remote node's IP is unicast, is not a local node IP, and lies in no
 *   pod CIDR or service range (it may share the underlay: clusters often do).
 * - A remote endpoint sits inside the pod CIDR of the node it names, behind
 *   that node's IP, with an identity of the remote's cluster (never reserved).
 */
import { clusterIdOf, localIdOf, LOCAL_ID_MIN } from '@weft/identity';
import { CidrSet, cidrContains, parseCidr, parseIpv4, type Cidr } from '@weft/policy';
import type { EndpointRecord, NodeRecord } from './state.js';

/** Remote pod CIDRs shorter than this are refused unless configured otherwise. */
export const DEFAULT_MIN_POD_CIDR_BITS = 16;

/** Kinds of local ranges; a remote node's IP may lie in the underlay, nowhere else local. */
export type LocalRangeKind = 'node' | 'pods' | 'underlay' | 'services' | 'special';

export interface LocalRange {
  kind: LocalRangeKind;
  /** How a rejection names it: "local node e1's IP 10.99.1.11". */
  what: string;
}

/** Ranges no cluster's pods or nodes live in. */
const SPECIAL: Array<[string, string]> = [
  ['0.0.0.0/8', 'this network 0.0.0.0/8'],
  ['127.0.0.0/8', 'loopback 127.0.0.0/8'],
  ['224.0.0.0/4', 'multicast 224.0.0.0/4'],
  ['240.0.0.0/4', 'reserved 240.0.0.0/4'],
];

/** This cluster's own addresses, as the rules see them. */
export interface LocalAddressInput {
  /** This cluster's nodes (their records in its etcd). */
  nodes: Iterable<{ name: string; ip: string; podCidr: string }>;
  /** This cluster's pod ranges beyond its nodes' pod CIDRs (a Kubernetes cluster CIDR). */
  podCidrs?: readonly string[];
  underlayCidrs?: readonly string[];
  serviceCidrs?: readonly string[];
}

export class LocalAddresses {
  readonly ranges = new CidrSet<LocalRange>();

  constructor(input: LocalAddressInput) {
    const add = (text: string, range: LocalRange): void => {
      const c = typeof text === 'string' ? parseCidr(text) : 'not a string';
      if (typeof c !== 'string') this.ranges.add(c, range);
    };
    for (const [c, what] of SPECIAL) add(c, { kind: 'special', what });
    for (const n of input.nodes) {
      add(`${n.ip}/32`, { kind: 'node', what: `local node ${n.name}'s IP ${n.ip}` });
      add(n.podCidr, { kind: 'pods', what: `local node ${n.name}'s pod CIDR ${n.podCidr}` });
    }
    for (const c of input.podCidrs ?? []) add(c, { kind: 'pods', what: `this cluster's pod CIDR ${c}` });
    for (const c of input.underlayCidrs ?? []) add(c, { kind: 'underlay', what: `the underlay ${c}` });
    for (const c of input.serviceCidrs ?? []) add(c, { kind: 'services', what: `the service CIDR ${c}` });
  }
}

/** Who claims a range: a remote node, or (no node) a remote's allow-list. */
export interface Claim {
  remote: string;
  node?: string;
}

function claimName(c: Claim): string {
  return c.node === undefined ? `remote ${c.remote}'s allowed pod CIDRs` : `node ${c.remote}/${c.node}`;
}

/**
 * The pod CIDRs and IPs remote nodes hold, and the remotes' allow-lists: one
 * per clustermesh-apiserver (shared by its importers), one per agent sync.
 */
export class RemoteClaims {
  private readonly pods = new CidrSet<Claim>();
  private readonly ips = new CidrSet<Claim>();
  private readonly held = new Map<string, { claim: Claim; pod: Cidr; ip: Cidr }>();

  /** Registers a remote's allow-list: no other remote's node may use these ranges. */
  allow(remote: string, cidrs: readonly Cidr[]): void {
    for (const c of cidrs) this.pods.add(c, { remote });
  }

  /** Records that `node` of `remote` holds its pod CIDR and IP (replacing what it held). */
  claim(remote: string, node: NodeRecord): void {
    this.release(remote, node.name);
    const claim = { remote, node: node.name };
    const entry = { claim, pod: parseCidr(node.podCidr) as Cidr, ip: { addr: parseIpv4(node.ip)!, bits: 32 } };
    this.pods.add(entry.pod, claim);
    this.ips.add(entry.ip, claim);
    this.held.set(`${remote}/${node.name}`, entry);
  }

  /** Returns whether the node held anything. */
  release(remote: string, node: string): boolean {
    const entry = this.held.get(`${remote}/${node}`);
    if (!entry) return false;
    this.pods.delete(entry.pod, entry.claim);
    this.ips.delete(entry.ip, entry.claim);
    this.held.delete(`${remote}/${node}`);
    return true;
  }

  holds(remote: string, node: string): boolean {
    return this.held.has(`${remote}/${node}`);
  }

  /** What `node` of `remote` would collide with, ignoring its own claim and its remote's allow-list. */
  conflict(remote: string, node: NodeRecord, pod: Cidr, ip: Cidr): string | undefined {
    const others = (c: Claim): boolean => c.remote !== remote || (c.node !== undefined && c.node !== node.name);
    const p = this.pods.overlapping(pod, others);
    if (p) return `pod CIDR ${node.podCidr} overlaps ${p.value.node === undefined ? claimName(p.value) : `the pod CIDR of ${claimName(p.value)}`}`;
    const i = this.ips.overlapping(pod, (c) => c.remote !== remote || c.node !== node.name);
    if (i) return `pod CIDR ${node.podCidr} contains the IP of ${claimName(i.value)}`;
    const ipInPods = this.pods.overlapping(ip, (c) => c.remote !== remote || c.node !== node.name);
    if (ipInPods) return `IP ${node.ip} lies in ${ipInPods.value.node === undefined ? claimName(ipInPods.value) : `the pod CIDR of ${claimName(ipInPods.value)}`}`;
    const sameIp = this.ips.overlapping(ip, others);
    if (sameIp) return `IP ${node.ip} is already the IP of ${claimName(sameIp.value)}`;
    return undefined;
  }
}

export interface NodeRules {
  local: LocalAddresses;
  claims: RemoteClaims;
  minPodCidrBits: number;
  /** The remote's allow-list, when its configuration has one. */
  allowed?: readonly Cidr[];
}

/** Why remote `remote`'s node record cannot be used here, or undefined. The record already parsed (parseNodeRecord). */
export function remoteNodeProblem(remote: string, node: NodeRecord, rules: NodeRules): string | undefined {
  const pod = parseCidr(node.podCidr);
  const addr = parseIpv4(node.ip);
  if (typeof pod === 'string' || addr === undefined) return `node ${node.name} has no usable pod CIDR or IP`;
  const ip = { addr, bits: 32 };
  if (pod.bits < rules.minPodCidrBits) return `node ${node.name}'s pod CIDR ${node.podCidr} is shorter than the /${rules.minPodCidrBits} a remote may claim`;
  if (rules.allowed && !rules.allowed.some((a) => cidrContains(a, pod))) return `node ${node.name}'s pod CIDR ${node.podCidr} is outside ${remote}'s allowed pod CIDRs`;
  if (cidrContains(pod, ip)) return `node ${node.name}'s pod CIDR ${node.podCidr} contains its own IP ${node.ip}`;
  const local = rules.local.ranges.overlapping(pod);
  if (local) return `node ${node.name}'s pod CIDR ${node.podCidr} overlaps ${local.value.what}`;
  const localIp = rules.local.ranges.overlapping(ip, (r) => r.kind !== 'underlay');
  if (localIp) return `node ${node.name}'s IP ${node.ip} ${localIp.value.kind === 'node' ? 'is' : 'lies in'} ${localIp.value.what}`;
  const taken = rules.claims.conflict(remote, node, pod, ip);
  if (taken) return `node ${node.name}'s ${taken}`;
  return undefined;
}

/**
 * Why a remote endpoint cannot be used with `node` (its owning node, already admitted), or
 * undefined. `clusterId` is the remote's cluster id when known (the importer); the agent passes
 * undefined and checks the identity against the remote's identities instead.
 */
export function remoteEndpointProblem(ep: EndpointRecord, node: NodeRecord, clusterId: number | undefined, ownClusterId: number): string | undefined {
  const cluster = clusterIdOf(ep.identity);
  if (cluster === 0 || localIdOf(ep.identity) < LOCAL_ID_MIN) return `endpoint ${ep.ip} claims identity ${ep.identity}: a remote's endpoints cannot carry reserved identities`;
  if (cluster === ownClusterId || (clusterId !== undefined && cluster !== clusterId)) return `endpoint ${ep.ip} has identity ${ep.identity} of cluster id ${cluster}, not its own cluster's`;
  if (ep.nodeIp !== node.ip) return `endpoint ${ep.ip} gives nodeIp ${ep.nodeIp}, but node ${node.name}'s IP is ${node.ip}`;
  const pod = parseCidr(node.podCidr) as Cidr;
  if (!cidrContains(pod, { addr: parseIpv4(ep.ip)!, bits: 32 })) return `endpoint ${ep.ip} is outside the pod CIDR ${node.podCidr} of its node ${node.name}`;
  return undefined;
}
