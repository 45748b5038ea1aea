/**
 * The policy advisor (`weft policy suggest`): from the flows a cluster's datapaths observed, the
 * least-privilege policies that admit exactly the connections seen, one per workload of the
 * cluster. Pure: flows in, policy documents out, no clock and no I/O. The documents depend only on
 * the set of connections observed, never on the flows' order or how often each was seen, so the
 * same traffic always gives the same documents (and, written by stringifyYamlDocuments, the same
 * bytes).
 *
 * What counts as a connection: a FORWARDED or AUDIT flow at a pod's veth (from-endpoint: the pod
 * sent it, to-endpoint: the pod received it) that opened one (`newConnection`: the datapath reports
 * a connection's first packet, never the rest), or an AUDIT of an established connection checked
 * again after a policy change (which may be a reply: it is turned round to the connection's own
 * direction). Each end of a connection is reported where it lives: the client's node reports its
 * egress at from-endpoint, the server's node its ingress at to-endpoint. So the pod at the veth is
 * the policy's subject, the other side its peer, and the server's port the rule's port. Dropped
 * flows, ICMP errors let through as related to a connection, and the overlay and underlay points
 * (they report drops only) are not traffic to admit; a connection the server's end dropped is not
 * admitted at the client's end either, though the client's egress let it out.
 *
 * What is written, per workload (advisor-model.ts): a NetworkPolicy when one can say everything,
 * else a WeftNetworkPolicy (a peer in another cluster, by `weft.io/cluster`; the host or a remote
 * node, by entity; ICMP; more world addresses than `worldCidrLimit`, as the entity world). Both
 * directions are enforced: a workload observed with no egress gets none. Peers that share exactly
 * the same ports share a rule, so the rules allow nothing that was not seen. What no policy can name
 * (an identity the observing node did not know, a reserved identity other than the world, the host
 * and remote nodes, another IP protocol) is left out with a warning: the policies deny it.
 */
import { CLUSTER_LABEL, NAMESPACE_LABEL } from '@weft/identity';
import { PolicyAdvisorError } from './errors.js';
import { compare, policyNames, selectorOf, WorkloadRegistry, type LabelSelectorDoc, type Side, type Workload } from './advisor-model.js';
import type { Flow, FlowEndpoint } from './types.js';

export type { LabelSelectorDoc, Workload } from './advisor-model.js';

/** Above this many world addresses for one workload and direction, the entity world instead of a /32 each. */
export const DEFAULT_WORLD_CIDR_LIMIT = 16;

export interface AdvisorOptions {
  /**
   * The cluster whose workloads get policies: only flows its nodes observed count. Required when
   * the flows come from several clusters (a relay's); otherwise the one cluster of the flows.
   */
  cluster?: string;
  /** Only workloads of these namespaces get policies (their peers may be anywhere). */
  namespaces?: readonly string[];
  /** Default DEFAULT_WORLD_CIDR_LIMIT. */
  worldCidrLimit?: number;
}

export interface PolicyDocument {
  apiVersion: 'networking.k8s.io/v1' | 'weft.io/v1';
  kind: 'NetworkPolicy' | 'WeftNetworkPolicy';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
}

/** Why a flow did not become a connection to admit. */
export type IgnoredReason = 'verdict' | 'related' | 'point' | 'not-new' | 'other-cluster' | 'dropped-by-peer' | 'namespace' | 'unknown-subject' | 'unknown-peer' | 'protocol';
const IGNORED_REASONS: readonly IgnoredReason[] = ['verdict', 'related', 'point', 'not-new', 'other-cluster', 'dropped-by-peer', 'namespace', 'unknown-subject', 'unknown-peer', 'protocol'];

export interface Suggestion {
  /** The cluster the policies are for (undefined when no flow counted). */
  cluster: string | undefined;
  /** Sorted by namespace, then name. */
  documents: PolicyDocument[];
  /** What was observed and cannot be admitted; sorted, each once. */
  warnings: string[];
  stats: {
    flows: number;
    /** Distinct (workload, direction, peer, port). */
    connections: number;
    /** Workloads given a policy. */
    workloads: number;
    ignored: Record<IgnoredReason, number>;
  };
}

/** The label every suggested policy carries, so they can be listed and deleted together. */
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'weft-policy-advisor' } as const;

type Protocol = 'TCP' | 'UDP' | 'SCTP' | 'ICMP';
const PROTOCOL_ORDER: readonly Protocol[] = ['TCP', 'UDP', 'SCTP', 'ICMP'];

interface Port {
  protocol: Protocol;
  /** Undefined for ICMP. */
  port?: number;
}

type Peer = Exclude<Side, { kind: 'unknown' }> | { kind: 'all-world' };
type Direction = 'ingress' | 'egress';

interface Subject {
  workload: Workload;
  ingress: Map<string, { peer: Peer; ports: Map<string, Port> }>;
  egress: Map<string, { peer: Peer; ports: Map<string, Port> }>;
}

interface RuleModel {
  peers: Peer[];
  ports: Port[];
}

export function suggestPolicies(flows: Iterable<Flow>, options: AdvisorOptions = {}): Suggestion {
  const limit = options.worldCidrLimit ?? DEFAULT_WORLD_CIDR_LIMIT;
  if (!Number.isInteger(limit) || limit < 0) throw new PolicyAdvisorError(`the world CIDR limit ${JSON.stringify(limit)} is not a whole number of addresses`);
  const namespaces = options.namespaces && options.namespaces.length > 0 ? new Set(options.namespaces) : undefined;
  const ignored = Object.fromEntries(IGNORED_REASONS.map((r) => [r, 0])) as Record<IgnoredReason, number>;
  const warnings = new Set<string>();
  const registry = new WorkloadRegistry();
  const subjects = new Map<string, Subject>();
  const clusters = new Set<string>();
  let count = 0;

  const list = [...flows];
  const failed = failedAtServer(list, options.cluster);
  for (const f of list) {
    count++;
    const reason = firstFilter(f, options.cluster);
    if (reason) {
      ignored[reason]++;
      continue;
    }
    if (f.point === 'from-endpoint' && !f.isReply && failed.has(tupleKey(f))) {
      ignored['dropped-by-peer']++;
      continue;
    }
    // The connection's own direction: a reply (an AUDIT of an established connection) runs against it.
    const client = f.isReply ? f.destination! : f.source!;
    const server = f.isReply ? f.source! : f.destination!;
    const local = f.point === 'from-endpoint' ? f.source! : f.destination!;
    const remote = local === f.source ? f.destination! : f.source!;
    const direction: Direction = local === client ? 'egress' : 'ingress';
    // Both sides join the workloads seen before anything else is decided: selectors and names are
    // chosen among all of them, so a namespace's policies do not depend on --namespace.
    const subject = registry.side(local);
    const peer = registry.side(remote);
    if (subject.kind !== 'workload' || subject.workload.cluster !== f.cluster) {
      ignored['unknown-subject']++;
      const why = subject.kind === 'unknown' ? subject.why : subject.kind === 'workload' ? `its identity is of cluster ${subject.workload.cluster}` : `its identity is the ${subject.kind === 'world' ? 'world' : subject.entity}`;
      warnings.add(`Cannot place the pod at ${describe(local)} that cluster ${f.cluster} observed: ${why}`);
      continue;
    }
    const w = subject.workload;
    if (namespaces && !namespaces.has(w.namespace)) {
      ignored.namespace++;
      continue;
    }
    const what = `${w.namespace}/${workloadText(w)} ${direction === 'ingress' ? 'from' : 'to'} ${describe(remote)}`;
    const port = portOf(f.protocol, server.port);
    if (typeof port === 'string') {
      ignored.protocol++;
      warnings.add(`Cannot admit ${what}: ${port}; the suggested policy denies it`);
      continue;
    }
    if (peer.kind === 'unknown') {
      ignored['unknown-peer']++;
      warnings.add(`Cannot admit ${what} on ${portText(port)}: ${peer.why}; the suggested policy denies it`);
      continue;
    }
    clusters.add(f.cluster);
    let s = subjects.get(w.key);
    if (!s) subjects.set(w.key, (s = { workload: w, ingress: new Map(), egress: new Map() }));
    const key = peerKey(peer);
    let entry = s[direction].get(key);
    if (!entry) s[direction].set(key, (entry = { peer, ports: new Map() }));
    entry.ports.set(portKey(port), port);
  }

  if (options.cluster === undefined && clusters.size > 1) {
    throw new PolicyAdvisorError(`the flows come from ${clusters.size} clusters (${[...clusters].sort(compare).join(', ')}); name the cluster whose workloads get policies`);
  }
  const all = registry.all();
  const names = policyNames(all);
  const groups = new Map<string, Workload[]>();
  for (const w of all) {
    const g = `${w.cluster}/${w.namespace}`;
    (groups.get(g) ?? groups.set(g, []).get(g)!).push(w);
  }
  const selector = (w: Workload, extra?: Record<string, string>): LabelSelectorDoc => selectorOf(w, groups.get(`${w.cluster}/${w.namespace}`)!, extra);
  let connections = 0;
  const documents: PolicyDocument[] = [];
  for (const s of subjects.values()) {
    for (const d of ['ingress', 'egress'] as const) for (const e of s[d].values()) connections += e.ports.size;
    const rules = { ingress: rulesOf(s.ingress, limit), egress: rulesOf(s.egress, limit) };
    const w = s.workload;
    const metadata = { name: names.get(w.key)!, namespace: w.namespace, labels: { ...MANAGED_BY } };
    const weft = [...rules.ingress, ...rules.egress].some((r) => r.ports.some((p) => p.protocol === 'ICMP') || r.peers.some((p) => p.kind === 'entity' || p.kind === 'all-world' || (p.kind === 'workload' && p.workload.cluster !== w.cluster)));
    const spec = weft ? weftSpec(w, rules, selector) : networkPolicySpec(w, rules, selector);
    documents.push(weft ? { apiVersion: 'weft.io/v1', kind: 'WeftNetworkPolicy', metadata, spec } : { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata, spec });
  }
  documents.sort((a, b) => compare(a.metadata.namespace, b.metadata.namespace) || compare(a.metadata.name, b.metadata.name));
  return {
    cluster: options.cluster ?? [...clusters][0],
    documents,
    warnings: [...warnings].sort(compare),
    stats: { flows: count, connections, workloads: subjects.size, ignored },
  };
}

/** Why the flow is not a connection to admit, before its endpoints are read; undefined when it is one. */
function firstFilter(f: Flow, cluster: string | undefined): IgnoredReason | undefined {
  if (f.verdict !== 'FORWARDED' && f.verdict !== 'AUDIT') return 'verdict';
  if (f.related) return 'related';
  if ((f.point !== 'from-endpoint' && f.point !== 'to-endpoint') || !f.source || !f.destination) return 'point';
  if (!f.newConnection && f.verdict !== 'AUDIT') return 'not-new';
  if (cluster !== undefined && f.cluster !== cluster) return 'other-cluster';
  return undefined;
}

/**
 * The connections the server's end refused: dropped where they reach the server's pod
 * (to-endpoint) and never let through there. The client's node reported them FORWARDED when they
 * left (its egress allowed them), but they never connected, so the client gets no rule for them. A
 * server in another cluster reports its drops to that cluster only: such a connection still counts.
 */
function failedAtServer(flows: readonly Flow[], cluster: string | undefined): Set<string> {
  const dropped = new Set<string>();
  const passed = new Set<string>();
  for (const f of flows) {
    if (f.point !== 'to-endpoint' || f.isReply || f.related || !f.source || !f.destination || (cluster !== undefined && f.cluster !== cluster)) continue;
    if (f.verdict === 'DROPPED') dropped.add(tupleKey(f));
    else if (f.verdict === 'FORWARDED' || f.verdict === 'AUDIT') passed.add(tupleKey(f));
  }
  for (const k of passed) dropped.delete(k);
  return dropped;
}

function tupleKey(f: Flow): string {
  return `${f.protocol} ${f.source!.ip}:${f.source!.port} ${f.destination!.ip}:${f.destination!.port}`;
}

/** The port a rule names, or why there is none. */
function portOf(protocol: string, port: number): Port | string {
  if (protocol === 'ICMP') return { protocol };
  if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') return `IP protocol ${protocol} has no policy port rule`;
  if (!(port >= 1 && port <= 65535)) return `${protocol} port ${port} is not a port a rule can name`;
  return { protocol, port };
}

function portKey(p: Port): string {
  return `${PROTOCOL_ORDER.indexOf(p.protocol)}/${String(p.port ?? 0).padStart(5, '0')}`;
}

function portText(p: Port): string {
  return p.port === undefined ? p.protocol : `${p.protocol}/${p.port}`;
}

/** Sorts peers: workloads (by cluster, namespace, labels), entities, then world addresses in numeric order. */
function peerKey(p: Peer): string {
  switch (p.kind) {
    case 'workload':
      return `0|${p.workload.key}`;
    case 'entity':
      return `1|${p.entity}`;
    case 'all-world':
      return '1|world';
    case 'world':
      return `2|${p.ip.split('.').map((o) => o.padStart(3, '0')).join('.')}`;
  }
}

function workloadText(w: Workload): string {
  return w.labels.length === 0 ? '(unlabeled pods)' : w.labels.map(([k, v]) => `${k}=${v}`).join(',');
}

function describe(ep: FlowEndpoint): string {
  const pod = ep.pod ? `${ep.namespace}/${ep.pod} ` : '';
  return `${pod}${ep.ip} (identity ${ep.identity})`;
}

/**
 * A direction's rules: peers with the same ports share one; beyond `limit` world addresses, the
 * world entity with all their ports. Sorted by their first peer.
 */
function rulesOf(peers: Subject['ingress'], limit: number): RuleModel[] {
  let entries = [...peers.entries()];
  const world = entries.filter(([, e]) => e.peer.kind === 'world');
  if (world.length > limit) {
    const ports = new Map<string, Port>();
    for (const [, e] of world) for (const [k, p] of e.ports) ports.set(k, p);
    entries = [...entries.filter(([, e]) => e.peer.kind !== 'world'), ['1|world', { peer: { kind: 'all-world' }, ports }]];
  }
  const byPorts = new Map<string, { ports: Port[]; peers: Array<[string, Peer]> }>();
  for (const [key, e] of entries) {
    const sorted = [...e.ports.entries()].sort(([a], [b]) => compare(a, b));
    const pk = sorted.map(([k]) => k).join(',');
    let r = byPorts.get(pk);
    if (!r) byPorts.set(pk, (r = { ports: sorted.map(([, p]) => p), peers: [] }));
    r.peers.push([key, e.peer]);
  }
  return [...byPorts.values()]
    .map((r) => ({ ports: r.ports, peers: r.peers.sort(([a], [b]) => compare(a, b)) }))
    .sort((a, b) => compare(a.peers[0]![0], b.peers[0]![0]))
    .map((r) => ({ ports: r.ports, peers: r.peers.map(([, p]) => p) }));
}

type SelectorOf = (w: Workload, extra?: Record<string, string>) => LabelSelectorDoc;

/** networking.k8s.io/v1: pods of the subject's cluster, world addresses; both directions enforced. */
function networkPolicySpec(w: Workload, rules: Record<Direction, RuleModel[]>, selector: SelectorOf): Record<string, unknown> {
  const peer = (p: Peer): Record<string, unknown> => {
    if (p.kind === 'world') return { ipBlock: { cidr: `${p.ip}/32` } };
    if (p.kind !== 'workload') throw new Error(`unreachable: a ${p.kind} peer in a NetworkPolicy`);
    if (p.workload.namespace === w.namespace) return { podSelector: selector(p.workload) };
    return { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': p.workload.namespace } }, podSelector: selector(p.workload) };
  };
  const ports = (r: RuleModel): Array<Record<string, unknown>> => r.ports.map((p) => ({ protocol: p.protocol, port: p.port }));
  return {
    podSelector: selector(w),
    policyTypes: ['Ingress', 'Egress'],
    ingress: rules.ingress.map((r) => ({ from: r.peers.map(peer), ports: ports(r) })),
    egress: rules.egress.map((r) => ({ to: r.peers.map(peer), ports: ports(r) })),
  };
}

/** The CRD's limits (hack/gen-crds.js): peers of a kind per rule, ports per toPorts entry. */
const MAX_ENDPOINTS = 64;
const MAX_CIDRS = 256;
const MAX_PORTS = 32;

/** weft.io/v1: what a NetworkPolicy cannot say as well. Both directions listed, so both are enforced. */
function weftSpec(w: Workload, rules: Record<Direction, RuleModel[]>, selector: SelectorOf): Record<string, unknown> {
  const rulesFor = (d: Direction): Array<Record<string, unknown>> => {
    const [endpointsField, entitiesField, cidrField] = d === 'ingress' ? ['fromEndpoints', 'fromEntities', 'fromCIDR'] : ['toEndpoints', 'toEntities', 'toCIDR'];
    const out: Array<Record<string, unknown>> = [];
    for (const r of rules[d]) {
      const endpoints = r.peers.flatMap((p) => (p.kind === 'workload' ? [selector(p.workload, placement(w, p.workload))] : []));
      const entities = r.peers.flatMap((p) => (p.kind === 'entity' ? [p.entity] : p.kind === 'all-world' ? ['world'] : []));
      const cidrs = r.peers.flatMap((p) => (p.kind === 'world' ? [`${p.ip}/32`] : []));
      const toPorts = chunks(r.ports, MAX_PORTS).map((c) => ({ ports: c.map((p) => (p.port === undefined ? { protocol: p.protocol } : { port: String(p.port), protocol: p.protocol })) }));
      // A rule per chunk when one kind of peer is more than a rule may list.
      const parts = Math.max(1, Math.ceil(endpoints.length / MAX_ENDPOINTS), Math.ceil(cidrs.length / MAX_CIDRS));
      for (let i = 0; i < parts; i++) {
        const rule: Record<string, unknown> = {};
        const e = endpoints.slice(i * MAX_ENDPOINTS, (i + 1) * MAX_ENDPOINTS);
        const c = cidrs.slice(i * MAX_CIDRS, (i + 1) * MAX_CIDRS);
        if (e.length > 0) rule[endpointsField] = e;
        if (i === 0 && entities.length > 0) rule[entitiesField] = entities;
        if (c.length > 0) rule[cidrField] = c;
        rule.toPorts = toPorts;
        out.push(rule);
      }
    }
    return out;
  };
  return { endpointSelector: selector(w), ingress: rulesFor('ingress'), egress: rulesFor('egress') };
}

/**
 * What a Weft selector adds to place a peer: its namespace when it is not the policy's (a selector
 * naming `io.kubernetes.pod.namespace` leaves the policy's namespace), and `weft.io/cluster` when it
 * is in another cluster (without it a selector matches the policy's own cluster only).
 */
function placement(subject: Workload, peer: Workload): Record<string, string> {
  const out: Record<string, string> = {};
  if (peer.namespace !== subject.namespace || peer.cluster !== subject.cluster) out[NAMESPACE_LABEL] = peer.namespace;
  if (peer.cluster !== subject.cluster) out[CLUSTER_LABEL] = peer.cluster;
  return out;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
