/**
 * ServiceMap: flows in, a graph of who talks to whom out. Nodes are workloads (pods sharing their
 * workload labels: a Deployment's replicas are one node), pods without labels, Services (the
 * address a client dialed) and entities (the world, hosts, remote nodes), each in its cluster;
 * edges are (source -> destination, port/protocol) with flows counted by verdict, drop reasons,
 * the deciding rule and when they were last seen.
 *
 * Work is proportional: a flow touches at most three nodes and two edges, and the changes are
 * collected for the next delta (takeDelta) instead of recomputing the map. Memory is bounded: at
 * most `maxEdges` edges and `maxNodes` nodes (the least recently seen edges go first, and a node
 * lives exactly as long as an edge uses it), edges not seen for `expireMs` age out (expire), and
 * each node keeps a few pod names and each edge a few drop reasons.
 */
import { CLUSTER_LABEL, DEFAULT_EXCLUDED_KEYS, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX } from '@weft/identity';
import type { Flow, FlowEndpoint, FlowService } from '@weft/observer';
import type { GraphDelta, GraphFacets, GraphFilter, GraphSnapshot, MapEdge, MapNode, MapStats, MapVerdict, NodeKind } from './types.js';

export interface ServiceMapOptions {
  /** Default 2,000. */
  maxNodes?: number;
  /** Default 5,000. */
  maxEdges?: number;
  /** Edges not seen for this long are removed by expire() (default 15 minutes). */
  expireMs?: number;
}

/** The colour of each verdict on the page (and in the JSON, so the page and tests agree). */
export const VERDICT_COLOURS: Readonly<Record<MapVerdict, string>> = { FORWARDED: '#2f9e44', DROPPED: '#e03131', AUDIT: '#f08c00' };

/** Labels that name a workload, in order of preference (Kubernetes' recommended one first). */
const NAME_KEYS = ['app.kubernetes.io/name', 'k8s-app', 'app', 'name'];
/** Labels the same for every pod of a namespace or cluster: they say nothing about the workload. */
const CONTEXT_KEYS = new Set([NAMESPACE_LABEL, CLUSTER_LABEL]);
const MAX_PODS_LISTED = 8;
const MAX_PODS_COUNTED = 512;
const MAX_DROP_REASONS = 16;
/** Connections remembered with the Service they were dialed through (see add()). */
const MAX_SERVICE_CONNECTIONS = 4096;

/** One end of a flow, resolved to the node it belongs to. */
interface Side {
  id: string;
  kind: NodeKind;
  cluster: string;
  namespace: string;
  name: string;
  labels: string[];
  pod: string;
  address: string;
}

interface NodeEntry {
  node: MapNode;
  /** Edges that use it: the node goes with the last. */
  edges: number;
  pods: Set<string>;
}

export class ServiceMap {
  private readonly maxNodes: number;
  private readonly maxEdges: number;
  private readonly expireMs: number;
  private readonly nodes = new Map<string, NodeEntry>();
  /** In the order they were last seen: the oldest first, so eviction and expiry look at the front. */
  private readonly edges = new Map<string, MapEdge>();
  private readonly clusters = new Map<string, number>();
  private readonly namespaces = new Map<string, number>();
  private readonly changedNodes = new Set<string>();
  private readonly changedEdges = new Set<string>();
  private readonly removedNodes = new Set<string>();
  private readonly removedEdges = new Set<string>();
  private readonly counters = { flows: 0, ignoredFlows: 0, evictedEdges: 0, expiredEdges: 0 };
  /** `protocol|client:port|backend:port` -> the Service, oldest first. */
  private readonly serviceConnections = new Map<string, FlowService>();

  constructor(options: ServiceMapOptions = {}) {
    this.maxNodes = Math.max(2, options.maxNodes ?? 2000);
    this.maxEdges = Math.max(1, options.maxEdges ?? 5000);
    this.expireMs = options.expireMs ?? 15 * 60_000;
  }

  /**
   * Adds a flow: its edge (two through a Service: client -> Service -> backend) and their nodes.
   * Only the client's node knows the Service (it translates the address); the backend's node sees
   * the same connection to the backend, so the connection is remembered with its Service and that
   * flow takes the same path. A flow without addresses (a frame that is not IP, dropped as
   * UNSUPPORTED_L3) names no one and is left out.
   */
  add(flow: Flow): void {
    const verdict = flow.verdict;
    // A reply travels against its connection: it belongs to the connection's edge.
    const [from, to] = flow.isReply ? [flow.destination, flow.source] : [flow.source, flow.destination];
    if ((verdict !== 'FORWARDED' && verdict !== 'DROPPED' && verdict !== 'AUDIT') || !from || !to || (!addressed(from) && !addressed(to))) {
      this.counters.ignoredFlows++;
      return;
    }
    this.counters.flows++;
    const ms = flowMs(flow);
    const src = sideOf(from, flow.cluster);
    const dst = sideOf(to, flow.cluster);
    const port = portOf(flow.protocol, to.port);
    const connection = `${flow.protocol}|${from.ip}:${from.port}|${to.ip}:${to.port}`;
    let svc = flow.destinationService?.ip ? flow.destinationService : undefined;
    if (svc) this.rememberService(connection, svc);
    else svc = this.serviceConnections.get(connection);
    if (svc) {
      const name = svc.name || `${svc.ip}:${svc.port}`;
      const service: Side = { id: `svc:${src.cluster}/${svc.namespace}/${name}`, kind: 'service', cluster: src.cluster, namespace: svc.namespace, name, labels: [], pod: '', address: `${svc.ip}:${svc.port}` };
      this.record(src, service, portOf(flow.protocol, svc.port), flow, ms);
      this.record(service, dst, port, flow, ms);
    } else {
      this.record(src, dst, port, flow, ms);
    }
  }

  /** Removes the edges not seen for `expireMs` before `nowMs` (and the nodes only they used). */
  expire(nowMs: number): number {
    const cutoff = nowMs - this.expireMs;
    let n = 0;
    // Every edge is looked at (a few thousand, every few seconds): the order is by arrival, and an
    // edge's time is its flows', which need not follow it exactly.
    for (const edge of this.edges.values()) {
      if (edge.lastSeenMs >= cutoff) continue;
      this.removeEdge(edge);
      n++;
    }
    this.counters.expiredEdges += n;
    return n;
  }

  /** The map (or the part the filter shows), as copies. */
  snapshot(filter?: GraphFilter): GraphSnapshot {
    const edges: MapEdge[] = [];
    const nodeIds = new Set<string>();
    for (const e of this.edges.values()) {
      if (filter && !this.edgeMatches(e, filter)) continue;
      edges.push(copyEdge(e));
      nodeIds.add(e.source);
      nodeIds.add(e.destination);
    }
    const nodes = [...nodeIds].map((id) => copyNode(this.nodes.get(id)!.node));
    return { nodes, edges, facets: this.facets(), stats: this.stats() };
  }

  /** What changed since the last call (undefined: nothing), for every viewer at once; see filterDelta for one viewer's part. */
  takeDelta(): GraphDelta | undefined {
    if (this.changedNodes.size + this.changedEdges.size + this.removedNodes.size + this.removedEdges.size === 0) return undefined;
    const delta: GraphDelta = {
      nodes: [...this.changedNodes].map((id) => copyNode(this.nodes.get(id)!.node)),
      edges: [...this.changedEdges].map((id) => copyEdge(this.edges.get(id)!)),
      removedNodes: [...this.removedNodes],
      removedEdges: [...this.removedEdges],
    };
    this.changedNodes.clear();
    this.changedEdges.clear();
    this.removedNodes.clear();
    this.removedEdges.clear();
    return delta;
  }

  /**
   * A viewer's part of a delta: the edges its filter shows and their nodes. Removals pass as they
   * are (removing what a viewer does not have is harmless, and the edge is gone from the map, so
   * its ends cannot be asked).
   */
  filterDelta(delta: GraphDelta, filter: GraphFilter): GraphDelta {
    if (filter.clusters.length === 0 && filter.namespaces.length === 0) return delta;
    const edges = delta.edges.filter((e) => this.edgeMatches(e, filter));
    const ends = new Set(edges.flatMap((e) => [e.source, e.destination]));
    return { nodes: delta.nodes.filter((n) => ends.has(n.id)), edges, removedNodes: delta.removedNodes, removedEdges: delta.removedEdges };
  }

  facets(): GraphFacets {
    return { clusters: [...this.clusters.keys()].sort(), namespaces: [...this.namespaces.keys()].sort() };
  }

  stats(): MapStats {
    return { nodes: this.nodes.size, edges: this.edges.size, ...this.counters };
  }

  private rememberService(connection: string, svc: FlowService): void {
    this.serviceConnections.delete(connection);
    this.serviceConnections.set(connection, svc);
    if (this.serviceConnections.size > MAX_SERVICE_CONNECTIONS) this.serviceConnections.delete(this.serviceConnections.keys().next().value!);
  }

  private edgeMatches(e: Pick<MapEdge, 'source' | 'destination'>, filter: GraphFilter): boolean {
    return nodeMatches(this.nodes.get(e.source)?.node, filter) || nodeMatches(this.nodes.get(e.destination)?.node, filter);
  }

  private record(src: Side, dst: Side, port: number, flow: Flow, ms: number): void {
    const verdict = flow.verdict as MapVerdict;
    const id = `${src.id}->${dst.id}:${port}/${flow.protocol}`;
    let edge = this.edges.get(id);
    if (edge) {
      this.edges.delete(id); // to the back: the most recently seen
    } else {
      this.touchNode(src, ms, 1);
      this.touchNode(dst, ms, 1);
      edge = {
        id, source: src.id, destination: dst.id, port, protocol: flow.protocol, verdict, colour: VERDICT_COLOURS[verdict],
        counts: { FORWARDED: 0, DROPPED: 0, AUDIT: 0 }, dropReasons: {}, lastDropReason: '', policy: '', firstSeenMs: ms, lastSeenMs: ms,
      };
      this.removedEdges.delete(id);
    }
    this.edges.set(id, edge);
    // Times only move forward: a late flow counts but does not make the edge older.
    if (ms >= edge.lastSeenMs) {
      edge.lastSeenMs = ms;
      edge.verdict = verdict;
      edge.colour = VERDICT_COLOURS[verdict];
    }
    edge.counts[verdict]++;
    if (flow.dropReason && verdict !== 'FORWARDED') {
      if (flow.dropReason in edge.dropReasons || Object.keys(edge.dropReasons).length < MAX_DROP_REASONS) edge.dropReasons[flow.dropReason] = (edge.dropReasons[flow.dropReason] ?? 0) + 1;
      edge.lastDropReason = flow.dropReason;
    }
    if (flow.policy) edge.policy = flow.policy;
    this.changedEdges.add(id);
    this.touchNode(src, ms, 0);
    this.touchNode(dst, ms, 0);
    // A delta carries the ends of every edge it carries: a viewer whose filter newly shows the
    // edge may not have them yet.
    this.changedNodes.add(src.id);
    this.changedNodes.add(dst.id);
    this.enforceCaps(id);
  }

  /** Creates or refreshes a node; `ref` counts a new edge using it. */
  private touchNode(side: Side, ms: number, ref: number): void {
    let entry = this.nodes.get(side.id);
    if (!entry) {
      entry = {
        node: { id: side.id, kind: side.kind, cluster: side.cluster, namespace: side.namespace, name: side.name, labels: side.labels, pods: [], podCount: 0, address: side.address, firstSeenMs: ms, lastSeenMs: ms },
        edges: 0,
        pods: new Set(),
      };
      this.nodes.set(side.id, entry);
      this.removedNodes.delete(side.id);
      bump(this.clusters, side.cluster, 1);
      if (side.namespace) bump(this.namespaces, side.namespace, 1);
    }
    entry.edges += ref;
    if (ms > entry.node.lastSeenMs) entry.node.lastSeenMs = ms;
    if (side.pod && !entry.pods.has(side.pod)) {
      // The set counts every pod but holds names only while they fit: a node's memory stays small.
      if (entry.pods.size < MAX_PODS_COUNTED) entry.pods.add(side.pod);
      entry.node.podCount = entry.pods.size;
      if (entry.node.pods.length < MAX_PODS_LISTED) entry.node.pods.push(side.pod);
    }
  }

  private enforceCaps(keep: string): void {
    for (const edge of this.edges.values()) {
      if (this.edges.size <= this.maxEdges && this.nodes.size <= this.maxNodes) return;
      if (edge.id === keep) return;
      this.removeEdge(edge);
      this.counters.evictedEdges++;
    }
  }

  private removeEdge(edge: MapEdge): void {
    this.edges.delete(edge.id);
    this.changedEdges.delete(edge.id);
    this.removedEdges.add(edge.id);
    for (const id of [edge.source, edge.destination]) {
      const entry = this.nodes.get(id);
      if (!entry || --entry.edges > 0) continue;
      this.nodes.delete(id);
      this.changedNodes.delete(id);
      this.removedNodes.add(id);
      bump(this.clusters, entry.node.cluster, -1);
      if (entry.node.namespace) bump(this.namespaces, entry.node.namespace, -1);
    }
  }
}

function nodeMatches(node: MapNode | undefined, filter: GraphFilter): boolean {
  if (!node) return false;
  return (filter.clusters.length === 0 || filter.clusters.includes(node.cluster)) && (filter.namespaces.length === 0 || filter.namespaces.includes(node.namespace));
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

function addressed(ep: FlowEndpoint): boolean {
  return ep.ip !== '' && ep.ip !== '0.0.0.0';
}

function flowMs(flow: Flow): number {
  return flow.time ? flow.time.seconds * 1000 + Math.floor(flow.time.nanos / 1e6) : 0;
}

/** Ports matter for TCP, UDP and SCTP; ICMP and the rest are one edge per pair. */
function portOf(protocol: string, port: number): number {
  return protocol === 'TCP' || protocol === 'UDP' || protocol === 'SCTP' ? port : 0;
}

/** `source:key=value` -> [source, key, value]. */
function splitLabel(label: string): [string, string, string] {
  const colon = label.indexOf(':');
  const source = colon < 0 ? '' : label.slice(0, colon);
  const rest = label.slice(colon + 1);
  const eq = rest.indexOf('=');
  return eq < 0 ? [source, rest, ''] : [source, rest.slice(0, eq), rest.slice(eq + 1)];
}

/**
 * The node an endpoint belongs to. A pod's identity labels already leave out what differs between
 * replicas (the allocator's label filter); the same keys are dropped here again, so labels from an
 * identity made under another filter still collapse.
 */
export function sideOf(ep: FlowEndpoint, flowCluster: string): Side {
  let reserved = '';
  let cidr = false;
  let namespace = ep.namespace;
  let cluster = ep.cluster;
  const workload: Array<[string, string]> = [];
  for (const label of ep.labels) {
    const [source, key, value] = splitLabel(label);
    if (source === 'reserved') {
      reserved ||= key;
      continue;
    }
    if (source === 'cidr') {
      cidr = true;
      continue;
    }
    if (key === NAMESPACE_LABEL) namespace ||= value;
    else if (key === CLUSTER_LABEL) cluster ||= value;
    if (CONTEXT_KEYS.has(key) || key.startsWith(NAMESPACE_LABELS_PREFIX) || DEFAULT_EXCLUDED_KEYS.some((re) => re.test(key))) continue;
    workload.push([key, value]);
  }
  cluster ||= flowCluster;
  const entity = (kind: NodeKind, name: string): Side => ({ id: `${cluster}/${name}`, kind, cluster, namespace: '', name, labels: [], pod: '', address: '' });
  if (reserved) {
    if (reserved === 'world' || reserved === 'world-ipv4' || reserved === 'world-ipv6') return entity('world', 'world');
    if (reserved === 'host' || reserved === 'remote-node') return entity(reserved, reserved);
    return entity('entity', reserved);
  }
  if (cidr && workload.length === 0) return entity('world', 'world');
  if (workload.length > 0) {
    workload.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const named = NAME_KEYS.map((k) => workload.find(([key]) => key === k)).find((x) => x !== undefined);
    const name = named ? named[1] || named[0] : workload.map(([k, v]) => (v ? `${k}=${v}` : k)).join(',');
    return { id: `${cluster}/${namespace}/${name}`, kind: 'workload', cluster, namespace, name, labels: workload.map(([k, v]) => `${k}=${v}`), pod: ep.pod, address: '' };
  }
  if (ep.pod) return { id: `${cluster}/${namespace}/${ep.pod}`, kind: 'pod', cluster, namespace, name: ep.pod, labels: [], pod: ep.pod, address: '' };
  return entity('entity', 'unknown');
}

function copyNode(n: MapNode): MapNode {
  return { ...n, labels: [...n.labels], pods: [...n.pods] };
}

function copyEdge(e: MapEdge): MapEdge {
  return { ...e, counts: { ...e.counts }, dropReasons: { ...e.dropReasons } };
}
