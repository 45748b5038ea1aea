/**
 * Records agents publish in their cluster's etcd, bound to the agent's lease
 * (a dead node's records vanish with it):
 *
 *   weft/state/v1/nodes/<node>        NodeRecord
 *   weft/state/v1/endpoints/<ip>      EndpointRecord
 *
 * Every reader validates what it reads: a record that does not parse or does
 * not make sense is skipped and reported, never programmed into a datapath.
 */
import { inCluster, isReserved } from '@weft/identity';
import { decodeKey } from '@weft/net';
import { parseCidr, parseIpv4 } from '@weft/policy';

export const STATE_ROOT = 'weft/state/v1/';
export const NODES_PREFIX = `${STATE_ROOT}nodes/`;
export const ENDPOINTS_PREFIX = `${STATE_ROOT}endpoints/`;

export interface NodeRecord {
  name: string;
  cluster: string;
  ip: string;
  podCidr: string;
  routing: 'vxlan' | 'geneve' | 'direct';
  /** Present when the node encrypts with WireGuard: its public key (base64) and UDP port. */
  wireguard?: { publicKey: string; port: number };
}

export interface EndpointRecord {
  ip: string;
  identity: number;
  node: string;
  nodeIp: string;
  namespace: string;
  pod: string;
  /** The pod's labels (Kubernetes form), for flows and `weft endpoint list`. */
  labels: Record<string, string>;
}

export function nodeKey(name: string): string {
  return `${NODES_PREFIX}${name}`;
}

export function endpointKey(ip: string): string {
  return `${ENDPOINTS_PREFIX}${ip}`;
}

/** Parses and checks a node record; returns a reason string when it is unusable. */
export function parseNodeRecord(value: Buffer, cluster: string): NodeRecord | string {
  let r: Partial<NodeRecord>;
  try {
    r = JSON.parse(value.toString()) as Partial<NodeRecord>;
  } catch {
    return 'not JSON';
  }
  if (typeof r.name !== 'string' || r.name === '') return 'no name';
  if (r.cluster !== cluster) return `cluster ${JSON.stringify(r.cluster)} is not ${cluster}`;
  if (typeof r.ip !== 'string' || parseIpv4(r.ip) === undefined) return `ip ${JSON.stringify(r.ip)} is not IPv4`;
  if (typeof r.podCidr !== 'string' || typeof parseCidr(r.podCidr) === 'string') return `podCidr ${JSON.stringify(r.podCidr)} is not a CIDR`;
  if (r.routing !== 'vxlan' && r.routing !== 'geneve' && r.routing !== 'direct') return `routing ${JSON.stringify(r.routing)} is unknown`;
  if (r.wireguard !== undefined) {
    const wg = r.wireguard as { publicKey?: unknown; port?: unknown };
    if (typeof wg !== 'object' || wg === null) return 'wireguard must be {publicKey, port}';
    try {
      decodeKey(typeof wg.publicKey === 'string' ? wg.publicKey : '', `wireguard.publicKey of node ${r.name}`);
    } catch (err) {
      return (err as Error).message;
    }
    if (typeof wg.port !== 'number' || !Number.isInteger(wg.port) || wg.port < 1 || wg.port > 65535) return `wireguard.port ${JSON.stringify(wg.port)} is not a port`;
  }
  return r as NodeRecord;
}

export function parseEndpointRecord(value: Buffer, clusterId: number): EndpointRecord | string {
  let r: Partial<EndpointRecord>;
  try {
    r = JSON.parse(value.toString()) as Partial<EndpointRecord>;
  } catch {
    return 'not JSON';
  }
  if (typeof r.ip !== 'string' || parseIpv4(r.ip) === undefined) return `ip ${JSON.stringify(r.ip)} is not IPv4`;
  if (typeof r.identity !== 'number' || !(inCluster(r.identity, clusterId) || isReserved(r.identity))) return `identity ${JSON.stringify(r.identity)} is not an identity of cluster ${clusterId}`;
  if (typeof r.nodeIp !== 'string' || parseIpv4(r.nodeIp) === undefined) return `nodeIp ${JSON.stringify(r.nodeIp)} is not IPv4`;
  if (typeof r.node !== 'string' || typeof r.namespace !== 'string' || typeof r.pod !== 'string') return 'node, namespace and pod must be strings';
  if (typeof r.labels !== 'object' || r.labels === null) r.labels = {};
  return r as EndpointRecord;
}
