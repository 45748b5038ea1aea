/**
 * The agent's Prometheus metrics (docs/metrics.md), served by @weft/metrics' MetricsServer on
 * config.metrics.listen, under Cilium's names where Cilium has the metric.
 *
 * Events are counted as they happen: flow events from the datapath, into a fixed array indexed by
 * verdict, observation point and drop reason (a flow costs two additions and no allocation, and
 * the series are made at scrape time); endpoint regenerations (PolicyEngine.onRegenerated); key
 * rotations (NodeEncryption.onRotationFinished). Everything else is read when scraped, from what
 * the agent keeps anyway and through the functions `weft status` and `weft encrypt status` use:
 * conntrack pressure from the per-endpoint counts (never a walk of the table), map use from the
 * datapath's own counts, encryption from the devices' peer lists (as Cilium's WireGuard collector
 * reads its device). A reader that fails or takes over 5 s leaves its families empty for that
 * scrape and is counted in weft_metrics_collect_errors_total; the rest of the scrape is served.
 */
import type { Logger } from '@weft/common';
import { FlowFlag, ObservationPoint, Verdict, dropReasonName, DROP_CT_FULL, DROP_CT_QUOTA } from '@weft/datapath';
import type { IdentityAllocator } from '@weft/identity';
import type { FlowExporter, LocalObserver } from '@weft/observer';
import { Counter, counterOf, createRegistry, gaugeOf, Histogram, MetricsServer, type ListenAddress, type Registry, type Samples } from '@weft/metrics';
import type { ClusterState } from './cluster-state.js';
import type { AgentConfig } from './config.js';
import type { ConntrackGc } from './conntrack-gc.js';
import type { Datapath, FlowSample } from './datapath-port.js';
import { LIVE_HANDSHAKE_S, type EncryptionStatus, type NodeEncryption } from './encryption.js';
import type { EndpointManager } from './endpoint-manager.js';
import type { PolicyEngine } from './policy-engine.js';
import { conntrackReport, endpointPolicySummary, type ConntrackReport } from './status-routes.js';

/**
 * The parts of the agent the metrics read: the Agent itself, whose parts exist once it has
 * started (read at scrape time, and the server starts last).
 */
export interface AgentMetricsParts {
  readonly config: AgentConfig;
  readonly datapath: Datapath;
  readonly endpoints: EndpointManager;
  readonly allocator: IdentityAllocator;
  readonly policy: PolicyEngine;
  readonly cluster: ClusterState;
  readonly encryption: NodeEncryption | undefined;
  readonly conntrackGc: ConntrackGc | undefined;
  /** The node's Observer API (its flow ring) and the flow export, when configured. */
  readonly flows: LocalObserver;
  readonly exporter: FlowExporter | undefined;
}

/** How long one reader may take before the scrape goes on without it. */
const READ_TIMEOUT_MS = 5000;

export class AgentMetrics {
  readonly registry: Registry;
  private server: MetricsServer | undefined;
  readonly flows = new FlowCounters();

  private readonly regenerations: Counter;
  private readonly regenerationTime: Histogram;
  private readonly rotations: Counter;
  private readonly rotationTime: Histogram;

  constructor(
    private readonly p: AgentMetricsParts,
    private readonly log: Logger,
  ) {
    const r = (this.registry = createRegistry({ cluster: p.config.cluster, node: p.config.node }));
    const errors = new Counter({ name: 'weft_metrics_collect_errors_total', help: 'Scrapes that went on without a reader, because it failed or took over 5 s, by reader.', labelNames: ['reader'], registers: [r] });
    const shared = <T>(reader: string, read: () => Promise<T>) => sharedRead(reader, read, (err) => {
      errors.inc({ reader });
      this.log.warn({ reader, err: err.message }, 'metrics reader failed; its families are empty in this scrape');
    });

    // Flows (flows.ts has the same verdicts, points and reasons; so has `weft observe`).
    counterOf(r, { name: 'weft_flows_total', help: 'Flow events of the datapath by verdict and packet direction: FORWARDED for each new connection (and related ICMP error), DROPPED for each dropped packet, AUDIT for each packet policy would drop in audit mode.', labelNames: ['verdict', 'direction'], read: () => this.flows.flows() });
    counterOf(r, { name: 'weft_drop_count_total', help: 'Packets dropped by the datapath, by drop reason and packet direction (INGRESS: towards an endpoint or arriving at the node; EGRESS: leaving an endpoint).', labelNames: ['reason', 'direction'], read: () => this.flows.drops('count') });
    counterOf(r, { name: 'weft_drop_bytes_total', help: 'Bytes of the packets dropped by the datapath, by drop reason and packet direction.', labelNames: ['reason', 'direction'], read: () => this.flows.drops('bytes') });
    counterOf(r, { name: 'weft_policy_verdict_total', help: 'Policy decisions by the direction of the connection the endpoint sees, what decided (rule: a policy rule; default: no rule, so default deny where policy is enforced, default allow where not) and the action (allow: a new connection admitted; deny: a packet dropped by policy; audit: a packet policy would drop, let through in audit mode).', labelNames: ['direction', 'match', 'action'], read: () => this.flows.policyVerdicts() });
    p.datapath.onFlow((f) => this.flows.add(f));
    const lost = shared('flow-events-lost', () => p.datapath.flowEventsLost());
    counterOf(r, { name: 'weft_flow_events_lost_total', help: 'Flow events the datapath could not deliver (its ring buffer was full) since its maps were created: these flows are in no other count.', read: async () => {
      const n = await lost();
      return n === undefined ? [] : [[{}, Number(n)]];
    } });

    // The Observer API and the flow export (`weft observe status`; the export's own counts).
    counterOf(r, { name: 'weft_observer_lost_stream_flows_total', help: 'Flows the Observer API dropped because a client (the relay, weft observe) read more slowly than they came; each such client is told with a LostEvent.', read: () => [[{}, p.flows.lostStreamFlows]] });
    const exported = (read: (s: FlowExporter['stats']) => Samples) => (): Samples => (p.exporter ? read(p.exporter.stats) : []);
    counterOf(r, { name: 'weft_flow_export_flows_total', help: 'Flows of the flow export by outcome: exported (written to the file), filtered (left out by its allow and deny lists), lost (its queue was full or the write failed).', labelNames: ['outcome'], read: exported((s) => [[{ outcome: 'exported' }, s.exported], [{ outcome: 'filtered' }, s.filtered], [{ outcome: 'lost' }, s.lost]]) });
    counterOf(r, { name: 'weft_flow_export_bytes_total', help: 'Bytes the flow export wrote to its file.', read: exported((s) => [[{}, s.bytes]]) });
    counterOf(r, { name: 'weft_flow_export_rotations_total', help: 'Export files renamed to a backup at their size limit.', read: exported((s) => [[{}, s.rotations]]) });
    gaugeOf(r, { name: 'weft_flow_export_queued_bytes', help: 'Bytes of flows waiting in memory to be written to the export file.', read: exported((s) => [[{}, s.queuedBytes]]) });

    // Endpoints, policy, identities.
    gaugeOf(r, { name: 'weft_endpoint', help: 'Endpoints (pods) this agent manages.', read: () => [[{}, p.endpoints.list().length]] });
    gaugeOf(r, {
      name: 'weft_endpoint_state',
      help: 'Endpoints by the state of their policy in the datapath: ok (in force), stale (the previous one stays, the new one did not fit), fail-closed (all traffic dropped: the policy could not be written), error (programming failed).',
      labelNames: ['state'],
      read: () => {
        const s = endpointPolicySummary(p);
        return [[{ state: 'ok' }, s.ok], [{ state: 'stale' }, s.stale], [{ state: 'fail-closed' }, s.failClosed], [{ state: 'error' }, s.error]];
      },
    });
    gaugeOf(r, { name: 'weft_policy', help: 'Network policies loaded (NetworkPolicy, WeftNetworkPolicy, WeftClusterwideNetworkPolicy).', read: () => [[{}, p.policy.policyCount]] });
    gaugeOf(r, {
      name: 'weft_identity',
      help: 'Identities this agent knows, by type: cluster (allocated in this cluster), remote (of connected clusters), cidr (node-local identities of CIDRs that policies name).',
      labelNames: ['type'],
      read: () => [[{ type: 'cluster' }, p.allocator.cache.size], [{ type: 'remote' }, p.cluster.remoteIdentities.size], [{ type: 'cidr' }, p.policy.cidrIdentities().length]],
    });
    const regenerations = (this.regenerations = new Counter({ name: 'weft_endpoint_regenerations_total', help: 'Endpoint regenerations (an endpoint\'s policy written to the datapath) by scope (full: resolved again; incremental: the entries a selection change touched) and outcome (ok, stale, fail-closed, error).', labelNames: ['scope', 'outcome'], registers: [r] }));
    const regenerationTime = (this.regenerationTime = new Histogram({ name: 'weft_endpoint_regeneration_time_stats_seconds', help: 'Time to regenerate an endpoint: resolving its policy and writing it to the datapath, by scope.', labelNames: ['scope'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [r] }));
    for (const scope of ['full', 'incremental']) {
      regenerationTime.zero({ scope });
      for (const outcome of ['ok', 'stale', 'fail-closed', 'error']) regenerations.inc({ scope, outcome }, 0);
    }

    // Conntrack and maps: the counts `weft status` shows.
    const conntrack = shared('conntrack', () => conntrackReport({ config: p.config, datapath: p.datapath, endpoints: p.endpoints, conntrackGc: () => p.conntrackGc }));
    const ct = (read: (c: ConntrackReport) => Samples) => async (): Promise<Samples> => {
      const c = await conntrack();
      return c ? read(c) : [];
    };
    gaugeOf(r, { name: 'weft_conntrack_entries', help: 'Entries in the conntrack table (live, and expired ones not swept yet), by the per-endpoint counts.', read: ct((c) => [[{}, c.entries]]) });
    gaugeOf(r, { name: 'weft_conntrack_capacity', help: 'Size of the conntrack table (max_entries of weft_ct).', read: ct((c) => [[{}, c.capacity]]) });
    gaugeOf(r, { name: 'weft_conntrack_endpoint_quota', help: 'Conntrack entries one endpoint may hold (conntrack.maxEntriesPerEndpoint).', read: ct((c) => [[{}, c.quota]]) });
    gaugeOf(r, { name: 'weft_conntrack_endpoint_entries_max', help: 'Conntrack entries of the busiest endpoint (against weft_conntrack_endpoint_quota).', read: ct((c) => [[{}, c.topEndpoints[0]?.entries ?? 0]]) });
    counterOf(r, { name: 'weft_conntrack_drops_total', help: 'New connections refused for want of conntrack room since the maps were created: CT_FULL (the table was full), CT_QUOTA (the endpoint held its quota).', labelNames: ['reason'], read: ct((c) => [[{ reason: dropReasonName(DROP_CT_FULL) }, c.drops.full], [{ reason: dropReasonName(DROP_CT_QUOTA) }, c.drops.quota]]) });
    counterOf(r, { name: 'weft_conntrack_gc_runs_total', help: 'Sweeps of the conntrack garbage collector.', read: ct((c) => [[{}, c.gc?.runs ?? 0]]) });
    counterOf(r, { name: 'weft_conntrack_gc_deleted_entries_total', help: 'Conntrack entries the garbage collector deleted (expired, or of a removed endpoint).', read: ct((c) => [[{}, c.gc?.deletedTotal ?? 0]]) });
    gaugeOf(r, { name: 'weft_conntrack_gc_duration_seconds', help: 'Duration of the last conntrack sweep.', read: ct((c) => (c.gc?.last ? [[{}, c.gc.last.durationMs / 1000]] : [])) });
    gaugeOf(r, { name: 'weft_bpf_map_capacity', help: 'max_entries of each sized BPF map.', labelNames: ['map_name'], read: () => p.datapath.mapStatus().map((m) => [{ map_name: m.name }, m.maxEntries] as const) });
    gaugeOf(r, { name: 'weft_bpf_map_entries', help: 'Entries in use of each sized BPF map, where the agent counts them (the conntrack table by its per-endpoint counts).', labelNames: ['map_name'], read: () => p.datapath.mapStatus().flatMap((m) => (m.entries === undefined ? [] : [[{ map_name: m.name }, m.entries] as const])) });
    gaugeOf(r, { name: 'weft_bpf_map_pressure', help: 'Use of each sized BPF map, entries / max_entries: 1 is full (what does not fit fails closed, see weft status).', labelNames: ['map_name'], read: () => p.datapath.mapStatus().flatMap((m) => (m.entries === undefined || m.maxEntries === 0 ? [] : [[{ map_name: m.name }, m.entries / m.maxEntries] as const])) });
    gaugeOf(r, { name: 'weft_ipcache_incomplete', help: '1 while the ipcache map is full and some wanted entries are missing (enforcing endpoints then drop peers without an exact entry), else 0.', read: () => [[{}, p.datapath.ipcacheStatus().complete ? 0 : 1]] });
    gaugeOf(r, { name: 'weft_ipcache_missing_entries', help: 'Wanted ipcache entries not in the map (it is full).', read: () => [[{}, p.datapath.ipcacheStatus().missing]] });

    // The mesh as this node reads it (the clustermesh-apiserver has the links themselves).
    gaugeOf(r, { name: 'weft_clustermesh_remote_clusters', help: 'Connected clusters whose records this node reads.', read: () => [[{}, p.cluster.remoteStores().length]] });
    gaugeOf(r, { name: 'weft_clustermesh_remote_cluster_readiness_status', help: '1 once this node has read all of a connected cluster\'s records once, else 0.', labelNames: ['target_cluster'], read: () => p.cluster.remoteStores().map((s) => [{ target_cluster: s.cluster }, s.synced ? 1 : 0] as const) });
    gaugeOf(r, { name: 'weft_clustermesh_remote_nodes', help: 'Nodes of connected clusters this node uses (admitted).', read: () => [[{}, p.cluster.admittedRemoteNodes().size]] });
    gaugeOf(r, { name: 'weft_clustermesh_remote_endpoints', help: 'Endpoints of connected clusters this node uses (admitted).', read: () => [[{}, p.cluster.admittedRemoteEndpoints().size]] });

    // Encryption: `weft encrypt status`.
    const encryption = shared('encryption', async () => encryptionSamples(p.encryption ? await p.encryption.status() : { mode: 'off', strict: false, peers: [], refused: [] }, Date.now()));
    for (const [name, help, labelNames] of ENCRYPTION_FAMILIES) gaugeOf(r, { name, help, labelNames, read: async () => (await encryption())?.get(name) ?? [] });
    const rotations = (this.rotations = new Counter({ name: 'weft_encryption_key_rotations_total', help: 'Key rotations this node finished, by outcome: done (WireGuard: every peer holds the new key; IPsec: sending under the new key id), aborted (WireGuard: given up before any key changed).', labelNames: ['outcome'], registers: [r] }));
    const rotationTime = (this.rotationTime = new Histogram({ name: 'weft_encryption_key_rotation_duration_seconds', help: 'Duration of this node\'s key rotations, from start to end, by outcome.', labelNames: ['outcome'], buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600], registers: [r] }));
    for (const outcome of ['done', 'aborted']) {
      rotations.inc({ outcome }, 0);
      rotationTime.zero({ outcome });
    }
  }

  /** Hears the events of the policy engine and encryption, once the agent has made them (before any endpoint is regenerated). */
  attach(): void {
    this.p.policy.onRegenerated = (scope, outcome, seconds) => {
      this.regenerations.inc({ scope, outcome });
      this.regenerationTime.observe({ scope }, seconds);
    };
    if (this.p.encryption) {
      this.p.encryption.onRotationFinished = (outcome, durationMs) => {
        this.rotations.inc({ outcome });
        if (durationMs !== undefined) this.rotationTime.observe({ outcome }, durationMs / 1000);
      };
    }
  }

  /** Serves the registry on config.metrics.listen; resolves to the address bound. */
  async start(): Promise<ListenAddress> {
    this.server = new MetricsServer({ registry: this.registry, listen: this.p.config.metrics?.listen ?? '127.0.0.1:0', log: this.log });
    return this.server.start();
  }

  /** Where the metrics are served, once started. */
  get address(): ListenAddress | undefined {
    return this.server?.address;
  }

  async stop(): Promise<void> {
    await this.server?.stop();
  }
}

/** Families read from `weft encrypt status`: name, help, labels. */
const ENCRYPTION_FAMILIES: ReadonlyArray<[string, string, string[]]> = [
  ['weft_encryption_mode', 'Encryption of pod traffic between nodes: 1 for the mode in force (wireguard, ipsec, off).', ['mode']],
  ['weft_encryption_strict', '1 when pod traffic to a node whose key is unknown is dropped rather than sent in the clear.', []],
  ['weft_encryption_peers', 'Nodes of this and every connected cluster that pod traffic to leaves encrypted.', []],
  ['weft_encryption_refused_peers', 'Nodes refused as encryption peers (no key, a key another node claims, no IPsec key id in common).', []],
  ['weft_encryption_rotation_waiting_peers', 'Peers a key rotation in progress waits for (to move off a lane, install a key or accept a key id); 0 when none is in progress.', []],
  ['weft_wireguard_peers', 'WireGuard peers by their latest handshake on either lane: live (within 180 s, a session is up), stale (older), none (never).', ['handshake']],
  ['weft_wireguard_handshake_age_max_seconds', 'Age of the oldest latest handshake among WireGuard peers that have had one.', []],
  ['weft_wireguard_epoch', 'This node\'s WireGuard epoch: grows with every key change and rotation phase.', []],
  ['weft_wireguard_key_age_seconds', 'Age of each WireGuard lane\'s key.', ['lane']],
  ['weft_wireguard_rotation_in_progress', '1 while this node rotates a WireGuard key, else 0.', []],
  ['weft_ipsec_key_id', 'The IPsec key id this node sends under.', []],
  ['weft_ipsec_keys', 'IPsec key ids this node accepts (more than one during a rotation).', []],
  ['weft_ipsec_xfrm_states', 'IPsec SAs with peers, by direction (in, out).', ['direction']],
  ['weft_ipsec_sa_errors', 'Errors counted by the IPsec SAs in place, by type: integrity (failed authentication), replay (replayed or outside the window).', ['type']],
];

/** The samples of the encryption families for one status (pure: tests give it statuses). */
export function encryptionSamples(s: EncryptionStatus, nowMs: number): Map<string, Samples> {
  const out = new Map<string, Samples>();
  out.set('weft_encryption_mode', [[{ mode: s.mode }, 1]]);
  out.set('weft_encryption_strict', [[{}, s.mode !== 'off' && s.strict ? 1 : 0]]);
  out.set('weft_encryption_peers', [[{}, s.peers.filter((x) => x.encrypted).length]]);
  out.set('weft_encryption_refused_peers', [[{}, s.refused.length]]);
  out.set('weft_encryption_rotation_waiting_peers', [[{}, s.rotation?.waitingFor.length ?? s.ipsec?.waitingFor.length ?? 0]]);
  if (s.mode === 'wireguard') {
    const counts = { live: 0, stale: 0, none: 0 };
    let oldest: number | undefined;
    for (const peer of s.peers) {
      const at = peer.lastHandshake === undefined ? NaN : Date.parse(peer.lastHandshake);
      if (Number.isNaN(at)) {
        counts.none++;
        continue;
      }
      const age = Math.max(0, (nowMs - at) / 1000);
      counts[age <= LIVE_HANDSHAKE_S ? 'live' : 'stale']++;
      oldest = Math.max(oldest ?? 0, age);
    }
    out.set('weft_wireguard_peers', Object.entries(counts).map(([handshake, n]) => [{ handshake }, n] as const));
    if (oldest !== undefined) out.set('weft_wireguard_handshake_age_max_seconds', [[{}, oldest]]);
    if (s.epoch !== undefined) out.set('weft_wireguard_epoch', [[{}, s.epoch]]);
    out.set('weft_wireguard_key_age_seconds', (s.lanes ?? []).map((l) => [{ lane: l.lane }, Math.max(0, (nowMs - Date.parse(l.keyCreated)) / 1000)] as const));
    out.set('weft_wireguard_rotation_in_progress', [[{}, s.rotation ? 1 : 0]]);
  }
  if (s.mode === 'ipsec' && s.ipsec) {
    out.set('weft_ipsec_key_id', [[{}, s.ipsec.sendKeyId]]);
    out.set('weft_ipsec_keys', [[{}, s.ipsec.keyIds.length]]);
    const sas = s.peers.flatMap((x) => x.sas ?? []);
    out.set('weft_ipsec_xfrm_states', [[{ direction: 'in' }, sas.filter((x) => x.direction === 'in').length], [{ direction: 'out' }, sas.filter((x) => x.direction === 'out').length]]);
    out.set('weft_ipsec_sa_errors', [[{ type: 'integrity' }, sas.reduce((a, x) => a + x.integrityFailures, 0)], [{ type: 'replay' }, sas.reduce((a, x) => a + x.replayDrops, 0)]]);
  }
  return out;
}

/**
 * One read shared by the families of a scrape: prom-client starts every family's collection in the
 * same turn, so the first caller starts the read and the others join it while it runs; the next
 * scrape reads afresh. A failure or a read over READ_TIMEOUT_MS resolves to undefined (its
 * families are empty) and is reported once.
 */
function sharedRead<T>(reader: string, read: () => Promise<T>, onError: (err: Error) => void): () => Promise<T | undefined> {
  let running: Promise<T | undefined> | undefined;
  return () => {
    if (running) return running;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${reader} took over ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS);
      timer.unref();
    });
    const value: Promise<T | undefined> = Promise.race([read(), timeout]).then(
      (v) => v,
      (err: Error) => {
        onError(err);
        return undefined;
      },
    ).finally(() => {
      clearTimeout(timer);
      running = undefined;
    });
    running = value;
    return value;
  };
}

type Direction = 'INGRESS' | 'EGRESS' | 'UNKNOWN';
const DIRECTIONS: readonly Direction[] = ['UNKNOWN', 'INGRESS', 'EGRESS'];
const VERDICTS = 4;
const POINTS = 8;
const REASONS = 256;
const FORWARDED = 1;
const DROPPED = 2;
const AUDIT = 3;
const VERDICT_NAMES = ['UNKNOWN', ...[1, 2, 3].map((v) => (Verdict as Record<number, string>)[v]!)];
/** Packet direction (index into DIRECTIONS) by observation point: leaving an endpoint is egress, the rest arrives. */
const POINT_DIRECTION = Array.from({ length: POINTS }, (_, p) => {
  const name = (ObservationPoint as Record<number, string>)[p];
  return name === 'from-endpoint' ? 2 : name === undefined ? 0 : 1;
});
/** Drops that are policy's decision (the others are the datapath's: malformed, no route, no room, ...). */
const POLICY_DROPS = new Set([1, 2, 8, 22]); // POLICY_DENIED, POLICY_DENY_RULE, POLICY_REVOKED, IDENTITY_CHANGED
const ACTIONS = ['allow', 'deny', 'audit'] as const;
const MATCHES = ['default', 'rule'] as const;

/**
 * Flow events counted by verdict, observation point and drop reason, and policy decisions by
 * action, connection direction and match: plain arrays, made into series only when scraped.
 */
export class FlowCounters {
  private readonly events = new Float64Array(VERDICTS * POINTS * REASONS);
  private readonly bytes = new Float64Array(VERDICTS * POINTS * REASONS);
  private readonly verdicts = new Float64Array(ACTIONS.length * DIRECTIONS.length * MATCHES.length);

  add(f: FlowSample): void {
    const v = f.verdict < VERDICTS ? f.verdict : 0;
    const p = f.point < POINTS ? f.point : 0;
    const i = (v * POINTS + p) * REASONS + (f.dropReason & 0xff);
    this.events[i]!++;
    this.bytes[i]! += f.length;
    const action = v === FORWARDED ? ((f.flags & FlowFlag.new) !== 0 ? 0 : -1) : v === DROPPED ? (POLICY_DROPS.has(f.dropReason) ? 1 : -1) : v === AUDIT ? 2 : -1;
    if (action < 0) return;
    // The connection's direction, as the endpoint's policy sees it: a reply travels against it.
    let d = POINT_DIRECTION[p]!;
    if (d !== 0 && (f.flags & FlowFlag.reply) !== 0) d = 3 - d;
    this.verdicts[(action * DIRECTIONS.length + d) * MATCHES.length + (f.ruleId ? 1 : 0)]!++;
  }

  /** weft_flows_total: every verdict and direction, zeros included (so rates start at the first scrape). */
  flows(): Samples {
    const sums = new Map<string, number>();
    for (const verdict of VERDICT_NAMES.slice(1)) for (const direction of ['INGRESS', 'EGRESS']) sums.set(`${verdict} ${direction}`, 0);
    for (let v = 0; v < VERDICTS; v++) {
      for (let p = 0; p < POINTS; p++) {
        let n = 0;
        const base = (v * POINTS + p) * REASONS;
        for (let r = 0; r < REASONS; r++) n += this.events[base + r]!;
        if (n === 0) continue;
        const key = `${VERDICT_NAMES[v]} ${DIRECTIONS[POINT_DIRECTION[p]!]}`;
        sums.set(key, (sums.get(key) ?? 0) + n);
      }
    }
    return [...sums].map(([key, n]) => {
      const [verdict, direction] = key.split(' ') as [string, string];
      return [{ verdict, direction }, n] as const;
    });
  }

  /** weft_drop_count_total or weft_drop_bytes_total: the reasons and directions seen. */
  drops(what: 'count' | 'bytes'): Samples {
    const from = what === 'count' ? this.events : this.bytes;
    const sums = new Map<string, number>();
    for (let p = 0; p < POINTS; p++) {
      const base = (DROPPED * POINTS + p) * REASONS;
      for (let r = 0; r < REASONS; r++) {
        const n = from[base + r]!;
        if (this.events[base + r] === 0) continue;
        const key = `${dropReasonName(r)} ${DIRECTIONS[POINT_DIRECTION[p]!]}`;
        sums.set(key, (sums.get(key) ?? 0) + n);
      }
    }
    return [...sums].map(([key, n]) => {
      const [reason, direction] = key.split(' ') as [string, string];
      return [{ reason, direction }, n] as const;
    });
  }

  /** weft_policy_verdict_total: every action, direction (but UNKNOWN, when unseen) and match. */
  policyVerdicts(): Samples {
    const out: Array<readonly [Record<string, string>, number]> = [];
    ACTIONS.forEach((action, a) =>
      DIRECTIONS.forEach((direction, d) =>
        MATCHES.forEach((match, m) => {
          const n = this.verdicts[(a * DIRECTIONS.length + d) * MATCHES.length + m]!;
          if (n > 0 || direction !== 'UNKNOWN') out.push([{ direction, match, action }, n]);
        }),
      ),
    );
    return out;
  }
}
