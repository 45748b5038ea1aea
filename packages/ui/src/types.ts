/**
 * The service map's data contract: what the model holds and what GET /api/graph and the
 * /api/events stream carry to the page (static/app.js reads exactly these shapes). A leaf: it
 * imports nothing.
 */

/** The verdicts an edge counts (a flow of another verdict is not drawn). */
export type MapVerdict = 'FORWARDED' | 'DROPPED' | 'AUDIT';
export const MAP_VERDICTS: readonly MapVerdict[] = ['FORWARDED', 'DROPPED', 'AUDIT'];

/**
 * What a node stands for: a workload (pods sharing their workload labels: replicas collapse), a
 * pod without labels, a Service (the address dialed before translation), or an entity outside
 * the cluster's pods (the world, a node's host, a remote node, an identity not known here).
 */
export type NodeKind = 'workload' | 'pod' | 'service' | 'world' | 'host' | 'remote-node' | 'entity';

export interface MapNode {
  /** `cluster/namespace/name` (workloads, pods), `svc:cluster/namespace/name`, `cluster/world`. */
  id: string;
  kind: NodeKind;
  cluster: string;
  /** Empty for entities. */
  namespace: string;
  /** What the page writes beside it: the workload's app label, the pod's, the Service's or the entity's name. */
  name: string;
  /** A workload's labels (`k8s:app=echo`), without the per-cluster and per-namespace ones. */
  labels: string[];
  /** Some pods seen in it (at most 8); `podCount` counts them (up to 512). */
  pods: string[];
  podCount: number;
  /** A Service's address (`10.96.0.10:80`), as dialed. */
  address: string;
  firstSeenMs: number;
  lastSeenMs: number;
}

export interface MapEdge {
  /** `source->destination:port/protocol`, e.g. `c1/demo/client->c1/demo/echo:8081/TCP`. */
  id: string;
  source: string;
  destination: string;
  /** The destination's port (0 for ICMP and other protocols without ports). */
  port: number;
  protocol: string;
  /** The last flow's verdict: what happens now (a policy applied later turns an edge red). */
  verdict: MapVerdict;
  /** The verdict's colour, the page's too (green forwarded, red dropped, orange audit). */
  colour: string;
  /** Flows by verdict (a connection is usually seen twice: leaving its pod and arriving at the other). */
  counts: Record<MapVerdict, number>;
  /** Dropped (and audited) flows by drop reason, e.g. `{ POLICY_DENIED: 3 }`. */
  dropReasons: Record<string, number>;
  /** The last drop (or audit) reason; empty when none was seen. */
  lastDropReason: string;
  /** The last deciding rule (`WeftNetworkPolicy/demo/only-8080#ingress#0`), when one decided. */
  policy: string;
  firstSeenMs: number;
  lastSeenMs: number;
}

/**
 * Which part of the map to show: an edge is shown when either of its ends is in one of the
 * clusters (any, when none is named) and in one of the namespaces (any, when none is named); a
 * node when it is the end of an edge shown. Entities have no namespace, so a namespace filter
 * shows them only as the other end of a workload's edge.
 */
export interface GraphFilter {
  clusters: readonly string[];
  namespaces: readonly string[];
}

/** The clusters and namespaces the whole map has (whatever the filter): the page's filter choices. */
export interface GraphFacets {
  clusters: string[];
  namespaces: string[];
}

export interface GraphSnapshot {
  nodes: MapNode[];
  edges: MapEdge[];
  facets: GraphFacets;
  stats: MapStats;
}

/** What changed since the last delta: upserts carry the whole node or edge, removals its id. */
export interface GraphDelta {
  nodes: MapNode[];
  edges: MapEdge[];
  removedNodes: string[];
  removedEdges: string[];
}

export interface MapStats {
  nodes: number;
  edges: number;
  /** Flows made into edges, and flows left out (an unknown verdict, or no address on either side). */
  flows: number;
  ignoredFlows: number;
  /** Edges removed to stay within the caps, and edges aged out. */
  evictedEdges: number;
  expiredEdges: number;
}

/**
 * A flow source's state, as the page shows it: connecting (asking), following (the stream is up
 * and the server answered), retrying (it failed; the next attempt after a backoff), stopped.
 */
export type FollowState = 'idle' | 'connecting' | 'following' | 'retrying' | 'stopped';

export interface FollowStatus {
  /** `c1/relay`, or a node's name when agents are asked directly. */
  source: string;
  state: FollowState;
  /** Why the last attempt failed (empty while following). */
  error: string;
  /** When the state was entered, and (retrying) when the next attempt starts. */
  sinceMs: number;
  retryAtMs: number;
  /** Flows received, lost on the way (the observer's LostEvents), and the last one's time. */
  flows: number;
  lostFlows: number;
  lastFlowMs: number;
  /** The relay's view: nodes it reads from and those it cannot reach (`cluster/node`). */
  connectedNodes: number;
  unavailableNodes: string[];
}
