/**
 * Records agents publish in their cluster's etcd, bound to the agent's lease
 * (a dead node's records vanish with it):
 *
 *   weft/state/v1/nodes/<node>             NodeRecord
 *   weft/state/v1/endpoints/<node>/<ip>    EndpointRecord
 *
 * Each node writes only under its own names (with etcd RBAC on, its role
 * allows nothing else: docs/credentials.md), so endpoints sit under a
 * per-node prefix. Every reader validates what it reads: a record that does
 * not parse or does not make sense is skipped and reported, never programmed
 * into a datapath; an endpoint counts only inside its node's podCidr
 * (endpoint-ownership.ts).
 */
import { inCluster, isReserved } from '@weft/identity';
import { decodeKey } from '@weft/net';
import { parseCidr, parseIpv4, PORT_NAME_RE, type NamedPort } from '@weft/policy';

export const STATE_ROOT = 'weft/state/v1/';
/** Where a cluster's clustermesh-apiserver writes what it imported from remote clusters: `<remote>/<kind>/<key>`. */
export const MESH_ROOT = 'weft/mesh/v1/';
/**
 * The remote clusters this cluster is connected to, `<remote>` -> `{"id": <cluster id>}`, as this
 * cluster's clustermesh configuration gives them (never as a remote says). Written before any of the
 * remote's records and deleted before them, so an agent watches a remote's records under
 * `MESH_ROOT<remote>/` exactly while the remote is listed here.
 */
export const MESH_CLUSTERS_PREFIX = 'weft/meshclusters/v1/';
export const NODES_PREFIX = `${STATE_ROOT}nodes/`;
export const ENDPOINTS_PREFIX = `${STATE_ROOT}endpoints/`;

export interface NodeRecord {
  name: string;
  cluster: string;
  ip: string;
  podCidr: string;
  routing: 'vxlan' | 'geneve' | 'direct';
  /** Present when the node encrypts with WireGuard. */
  wireguard?: WireGuardRecord;
  /** Present when the node encrypts with IPsec. */
  ipsec?: IpsecRecord;
}

/**
 * A node's IPsec state as its peers see it: the mesh key ids it accepts
 * (inbound SAs installed for every peer) and the one it sends under.
 */
export interface IpsecRecord {
  keyIds: number[];
  sendKeyId: number;
}

export type Lane = 0 | 1;

/**
 * A node's WireGuard state as its peers see it. The node runs two devices
 * ("lanes"), each with its own key pair and UDP port, and every peer is
 * configured on both; traffic uses one lane while the other lane's key
 * rotates (see key-rotation.ts).
 */
export interface WireGuardRecord {
  lanes: [WireGuardLaneRecord, WireGuardLaneRecord];
  /** Grows with every change of this node's keys or rotation phase; what peers confirm. */
  epoch: number;
  /** Present while the key of one lane rotates. */
  rotation?: { lane: Lane; phase: 'drain' | 'rekey' };
  /** `cluster/node` -> the epoch of that (rotating) node this node has confirmed. */
  acks?: Record<string, number>;
}

export interface WireGuardLaneRecord {
  /** base64 public key. */
  publicKey: string;
  port: number;
}

/** More would only be a hostile record: acks exist only for nodes rotating right now. */
const MAX_ACKS = 10_000;

export interface EndpointRecord {
  ip: string;
  identity: number;
  node: string;
  nodeIp: string;
  namespace: string;
  pod: string;
  /** The pod's labels (Kubernetes form), for flows and `weft endpoint list`. */
  labels: Record<string, string>;
  /** The pod's named container ports: what a policy's named port resolves to for this pod. */
  namedPorts?: NamedPort[];
}

/** Named ports one endpoint record may carry (a pod with more is published without the rest). */
export const MAX_NAMED_PORTS = 64;

/** A cluster's name: a DNS label of at most 32 characters (it is part of keys and labels). */
export const CLUSTER_NAME_RE = /^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/;

/** The prefix of the records imported from `remote`. */
export function meshClusterRoot(remote: string): string {
  return `${MESH_ROOT}${remote}/`;
}

/** The cluster id in a remote's `MESH_CLUSTERS_PREFIX` record: 1-255, and not this cluster's own. */
export function parseClusterInfo(value: Buffer, ownClusterId: number): number | string {
  let doc: { id?: unknown };
  try {
    doc = JSON.parse(value.toString()) as { id?: unknown };
  } catch {
    return 'not JSON';
  }
  const id = typeof doc === 'object' && doc !== null ? doc.id : undefined;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 255) return `cluster id ${JSON.stringify(id)} is not 1-255`;
  if (id === ownClusterId) return `cluster id ${id} is this cluster's own`;
  return id;
}

export function nodeKey(name: string): string {
  return `${NODES_PREFIX}${name}`;
}

/** The prefix of every endpoint record `node` publishes (the trailing slash keeps node1 from matching node10). */
export function nodeEndpointsPrefix(node: string): string {
  return `${ENDPOINTS_PREFIX}${node}/`;
}

export function endpointKey(node: string, ip: string): string {
  return `${nodeEndpointsPrefix(node)}${ip}`;
}

/** `<node>/<ip>` (what follows ENDPOINTS_PREFIX) -> its parts; undefined for any other shape. */
export function parseEndpointPath(path: string): { node: string; ip: string } | undefined {
  const slash = path.indexOf('/');
  if (slash <= 0 || slash !== path.lastIndexOf('/') || slash === path.length - 1) return undefined;
  return { node: path.slice(0, slash), ip: path.slice(slash + 1) };
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
    const problem = checkWireGuardRecord(r.wireguard, r.name);
    if (problem) return problem;
  }
  if (r.ipsec !== undefined) {
    const x = r.ipsec as Partial<Record<keyof IpsecRecord, unknown>> | null;
    const keyId = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 15;
    if (typeof x !== 'object' || x === null || !Array.isArray(x.keyIds) || x.keyIds.length === 0 || x.keyIds.length > 15 || !x.keyIds.every(keyId)) return `ipsec.keyIds ${JSON.stringify(x?.keyIds)} must list 1-15 key ids (1-15)`;
    if (!keyId(x.sendKeyId) || !x.keyIds.includes(x.sendKeyId)) return `ipsec.sendKeyId ${JSON.stringify(x.sendKeyId)} must be one of its keyIds`;
  }
  return r as NodeRecord;
}

function checkWireGuardRecord(value: unknown, node: string): string | undefined {
  const wg = value as Partial<Record<keyof WireGuardRecord, unknown>>;
  if (typeof wg !== 'object' || wg === null) return 'wireguard must be an object';
  if (!Array.isArray(wg.lanes) || wg.lanes.length !== 2) return 'wireguard.lanes must list exactly two lanes';
  for (const [i, lane] of (wg.lanes as unknown[]).entries()) {
    const l = lane as { publicKey?: unknown; port?: unknown } | null;
    if (typeof l !== 'object' || l === null) return `wireguard.lanes[${i}] must be {publicKey, port}`;
    try {
      decodeKey(typeof l.publicKey === 'string' ? l.publicKey : '', `wireguard.lanes[${i}].publicKey of node ${node}`);
    } catch (err) {
      return (err as Error).message;
    }
    if (typeof l.port !== 'number' || !Number.isInteger(l.port) || l.port < 1 || l.port > 65535) return `wireguard.lanes[${i}].port ${JSON.stringify(l.port)} is not a port`;
  }
  const [a, b] = wg.lanes as WireGuardLaneRecord[];
  if (a!.publicKey === b!.publicKey) return 'wireguard.lanes must have different keys';
  if (typeof wg.epoch !== 'number' || !Number.isSafeInteger(wg.epoch) || wg.epoch < 0) return `wireguard.epoch ${JSON.stringify(wg.epoch)} is not a non-negative integer`;
  if (wg.rotation !== undefined) {
    const rot = wg.rotation as { lane?: unknown; phase?: unknown } | null;
    if (typeof rot !== 'object' || rot === null || (rot.lane !== 0 && rot.lane !== 1) || (rot.phase !== 'drain' && rot.phase !== 'rekey')) return `wireguard.rotation ${JSON.stringify(rot)} must be {lane: 0|1, phase: drain|rekey}`;
  }
  if (wg.acks !== undefined) {
    if (typeof wg.acks !== 'object' || wg.acks === null || Array.isArray(wg.acks)) return 'wireguard.acks must be an object';
    const entries = Object.entries(wg.acks);
    if (entries.length > MAX_ACKS) return `wireguard.acks has ${entries.length} entries (at most ${MAX_ACKS})`;
    for (const [k, v] of entries) if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return `wireguard.acks[${JSON.stringify(k)}] ${JSON.stringify(v)} is not an epoch`;
  }
  return undefined;
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
  if (r.namedPorts !== undefined) {
    const problem = namedPortsProblem(r.namedPorts);
    if (problem) return `namedPorts: ${problem}`;
  }
  return r as EndpointRecord;
}

/** Why `ports` are not a record's named ports (data from another node or cluster, never trusted). */
function namedPortsProblem(ports: unknown): string | undefined {
  if (!Array.isArray(ports)) return 'not a list';
  if (ports.length > MAX_NAMED_PORTS) return `${ports.length} ports, more than ${MAX_NAMED_PORTS}`;
  for (const [i, p] of ports.entries()) {
    const o = p as Partial<NamedPort> | null;
    if (typeof o !== 'object' || o === null) return `[${i}] is not an object`;
    if (typeof o.name !== 'string' || !PORT_NAME_RE.test(o.name)) return `[${i}].name ${JSON.stringify(o.name)} is not a port name`;
    if (o.protocol !== 'TCP' && o.protocol !== 'UDP' && o.protocol !== 'SCTP') return `[${i}].protocol ${JSON.stringify(o.protocol)} is not TCP, UDP or SCTP`;
    if (typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) return `[${i}].port ${JSON.stringify(o.port)} is not 1-65535`;
  }
  return undefined;
}
