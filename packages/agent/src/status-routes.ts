/**
 * What `weft status` shows of a node (GET /v1/status), and the node's BPF ipcache and node table
 * as they are (GET /v1/bpf/ipcache, /v1/bpf/nodes): read from the parts the agent composes,
 * computed only when asked.
 */
import type { IdentityAllocator } from '@weft/identity';
import type { ApiServer } from './api.js';
import type { ClusterState } from './cluster-state.js';
import { conntrackConfig, type AgentConfig } from './config.js';
import type { ConntrackGc, ConntrackGcStatus } from './conntrack-gc.js';
import type { Datapath } from './datapath-port.js';
import type { EndpointManager } from './endpoint-manager.js';
import type { PolicyEngine } from './policy-engine.js';
import type { ServiceManager } from './service-manager.js';

/** The parts a node's status reads. */
export interface StatusParts {
  config: AgentConfig;
  endpoints: EndpointManager;
  allocator: IdentityAllocator;
  policy: PolicyEngine;
  cluster: ClusterState;
  services: ServiceManager;
  datapath: Datapath;
  sessionState(): string;
  conntrackGc(): ConntrackGc | undefined;
}

export function statusRoutes(api: ApiServer, p: StatusParts): void {
  api.route('GET', '/v1/status', async (): Promise<NodeStatus> => ({ ...nodeStatus(p), conntrack: await conntrackReport(p) }));
  api.route('GET', '/v1/bpf/ipcache', async () => p.datapath.dumpIpcache());
  api.route('GET', '/v1/bpf/nodes', async () => p.datapath.dumpNodes());
}

/** GET /v1/status. */
export type NodeStatus = ReturnType<typeof nodeStatus> & { conntrack: ConntrackReport };

function nodeStatus(p: StatusParts) {
  const c = p.config;
  const cluster = p.cluster;
  return {
    cluster: c.cluster,
    clusterId: c.clusterId,
    node: c.node,
    source: c.source ?? 'standalone',
    nodeIp: c.nodeIp,
    podCidr: c.podCidr,
    routing: c.routing,
    encapsulationMtuOverhead: c.routing === 'direct' ? 0 : 50,
    session: p.sessionState(),
    endpoints: p.endpoints.list().length,
    identities: p.allocator.cache.size,
    policies: p.policy.policyCount,
    clusterNodes: cluster.nodes.size,
    clusterEndpoints: cluster.endpoints.size,
    // What is used: remote records that passed admission (@weft/schema mesh-admission.ts); the rest is in remoteRefused.
    remoteNodes: cluster.admittedRemoteNodes().size,
    remoteEndpoints: cluster.admittedRemoteEndpoints().size,
    remoteRefused: cluster.refused.size,
    remoteIdentities: cluster.remoteIdentities.size,
    // Remote cluster name -> id, as this cluster's clustermesh configuration gives it (tunnel checks hold remote nodes to it).
    remoteClusterIds: Object.fromEntries(cluster.remoteClusterIds),
    // The remotes whose records this node reads (one watcher each), and whether it has read them all once.
    remoteStores: cluster.remoteStores(),
    // Addresses several nodes claim: tunnel packets from them are refused until the conflict is resolved.
    nodeAddressConflicts: cluster.nodeAddressConflicts,
    services: p.services.count,
    remoteServices: cluster.remoteServices.size,
    memory: memoryMb(),
    lastIpcacheSync: cluster.lastSync,
    // A full ipcache: enforcing endpoints drop peers without an exact entry until it is complete.
    ipcache: p.datapath.ipcacheStatus(),
    maps: p.datapath.mapStatus(),
    endpointPolicy: endpointPolicySummary(p),
    lastServiceSync: p.services.lastSync,
    invalidRecords: Object.fromEntries([...cluster.invalid, ...cluster.refused, ...p.policy.invalid, ...p.allocator.cache.invalid, ...p.services.invalid]),
  };
}

/** How many endpoints have their policy in force, and which do not (stale, fail-closed) and why. */
export function endpointPolicySummary(p: Pick<StatusParts, 'policy' | 'endpoints'>): { ok: number; stale: number; failClosed: number; error: number; failing: Array<{ endpoint: string; id: number; state: string; error?: string; since?: string }> } {
  const failing = p.policy.failing();
  const byId = new Map(p.endpoints.list().map((e) => [e.epId, e]));
  const count = (s: string): number => failing.filter((f) => f.state === s).length;
  return {
    ok: byId.size - failing.filter((f) => byId.has(f.epId)).length,
    stale: count('stale'),
    failClosed: count('fail-closed'),
    error: count('error'),
    failing: failing.map((f) => {
      const ep = byId.get(f.epId);
      const row: { endpoint: string; id: number; state: string; error?: string; since?: string } = { endpoint: ep ? `${ep.namespace}/${ep.pod}` : String(f.epId), id: f.epId, state: f.state };
      if (f.error !== undefined) row.error = f.error;
      if (f.since !== undefined) row.since = f.since;
      return row;
    }),
  };
}

/** Conntrack pressure for `weft status`: use of the table, the busiest endpoints against their quota, drops, the last sweep. */
export async function conntrackReport(p: Pick<StatusParts, 'config' | 'datapath' | 'endpoints' | 'conntrackGc'>): Promise<ConntrackReport> {
  const quota = conntrackConfig(p.config).maxEntriesPerEndpoint;
  const s = await p.datapath.conntrackStatus();
  const byId = new Map(p.endpoints.list().map((e) => [e.epId, e]));
  let entries = 0;
  for (const n of s.byEndpoint.values()) entries += Math.max(0, n);
  const top = [...s.byEndpoint].filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]).slice(0, 5).map(([id, n]) => {
    const ep = byId.get(id);
    return { id, ...(ep ? { pod: `${ep.namespace}/${ep.pod}` } : {}), entries: n, quotaUse: Math.round((n / quota) * 1000) / 1000 };
  });
  return { entries, capacity: s.capacity, quota, topEndpoints: top, drops: { full: Number(s.dropsFull), quota: Number(s.dropsQuota) }, gc: p.conntrackGc()?.status() };
}

function memoryMb(): { rss: number; heapUsed: number; external: number } {
  const m = process.memoryUsage();
  const mb = (n: number): number => Math.round((n / 1048576) * 10) / 10;
  return { rss: mb(m.rss), heapUsed: mb(m.heapUsed), external: mb(m.external) };
}

/** `conntrack` in /v1/status. */
export interface ConntrackReport {
  /** Entries held (live, and dead ones not yet swept), by the per-endpoint counts. */
  entries: number;
  capacity: number;
  /** Entries one endpoint may hold. */
  quota: number;
  /** The busiest endpoints. */
  topEndpoints: Array<{ id: number; pod?: string; entries: number; quotaUse: number }>;
  /** New connections refused since the maps were created: table full, endpoint at its quota. */
  drops: { full: number; quota: number };
  gc: ConntrackGcStatus | undefined;
}
