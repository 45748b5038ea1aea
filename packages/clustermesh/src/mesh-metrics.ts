/**
 * The clustermesh-apiserver's Prometheus metrics (docs/metrics.md), served by @weft/metrics'
 * MetricsServer on config.metrics.listen, under Cilium's clustermesh names where Cilium has them
 * (`target_cluster` is the other cluster, on both sides of a link).
 *
 * What `weft clustermesh status` shows is read when scraped, from the apiserver's status(): each
 * remote's link state, records written and rejected per kind, what is served and to whom. The
 * link's events are counted as they happen, from the importers' state transitions: failures (the
 * stream broke or could not open), reconnects, and the time from connect to every kind synced.
 */
import type { Logger } from '@weft/common';
import { Counter, counterOf, createRegistry, gaugeOf, Histogram, MetricsServer, type ListenAddress, type Registry, type Samples } from '@weft/metrics';
import type { LinkState, RemoteStatus } from './importer.js';
import { MESH_KINDS, type MeshKind } from './types.js';

/** What the metrics read of the apiserver: its configuration and its status (the apiserver's MeshStatus has this shape). */
export interface MeshMetricsSource {
  readonly config: { cluster: string; metrics?: { listen: string } };
  status(): {
    remotes: RemoteStatus[];
    rejectedRemotes: readonly unknown[];
    exported: Record<MeshKind, number>;
    servingTo: string[];
    serving: Array<{ peer: string; pendingKeys: number; inFlightBytes: number }>;
    stalledPeers: number;
    refusedPeers: number;
    unexportedEndpoints?: { count: number };
  };
}

const LINK_STATES: readonly LinkState[] = ['connecting', 'syncing', 'synced', 'disconnected', 'stopped'];

export class MeshMetrics {
  readonly registry: Registry;
  private server: MetricsServer | undefined;
  private readonly failures: Counter;
  private readonly reconnects: Counter;
  private readonly syncTime: Histogram;
  /** Remotes whose event series exist (zeroed once: a histogram's zero() resets what it holds). */
  private readonly withSeries = new Set<string>();

  constructor(
    private readonly source: MeshMetricsSource,
    private readonly log: Logger,
  ) {
    const r = (this.registry = createRegistry({ cluster: source.config.cluster }));
    const remotes = (): RemoteStatus[] => source.status().remotes;
    const perRemote = (value: (s: RemoteStatus) => number) => (): Samples => remotes().map((s) => [{ target_cluster: s.name }, value(s)] as const);
    const perKind = (value: (s: RemoteStatus, k: MeshKind) => number) => (): Samples => remotes().flatMap((s) => MESH_KINDS.map((kind) => [{ target_cluster: s.name, kind }, value(s, kind)] as const));
    // Every configured remote has its event series from the first scrape, zeros included.
    const zeroed = () => {
      for (const s of remotes()) this.ensureSeries(s.name);
    };

    // Links to remote clusters (importers).
    gaugeOf(r, { name: 'weft_clustermesh_remote_clusters', help: 'Remote clusters this apiserver imports from (configured and accepted).', read: () => [[{}, remotes().length]] });
    gaugeOf(r, { name: 'weft_clustermesh_rejected_remotes', help: 'Configured remote clusters refused before connecting (a bad or conflicting configuration; weft clustermesh status says why).', read: () => [[{}, source.status().rejectedRemotes.length]] });
    gaugeOf(r, { name: 'weft_clustermesh_remote_cluster_readiness_status', help: '1 while the link to a remote cluster is synced (every kind\'s snapshot complete), else 0.', labelNames: ['target_cluster'], read: perRemote((s) => (s.state === 'synced' ? 1 : 0)) });
    gaugeOf(r, { name: 'weft_clustermesh_remote_cluster_state', help: 'State of the link to a remote cluster: 1 for the current state (connecting, syncing, synced, disconnected, stopped), 0 for the others.', labelNames: ['target_cluster', 'state'], read: () => remotes().flatMap((s) => LINK_STATES.map((state) => [{ target_cluster: s.name, state }, s.state === state ? 1 : 0] as const)) });
    gaugeOf(r, { name: 'weft_clustermesh_remote_cluster_records', help: 'Records of a remote cluster written to the local etcd (admitted), by kind.', labelNames: ['target_cluster', 'kind'], read: perKind((s, k) => s.counts[k]) });
    counterOf(r, { name: 'weft_clustermesh_remote_cluster_rejected_records_total', help: 'Records of a remote cluster rejected since the apiserver started (invalid, refused against the rest, or over a cap), by kind.', labelNames: ['target_cluster', 'kind'], read: perKind((s, k) => s.rejectedByKind[k]) });
    counterOf(r, { name: 'weft_clustermesh_remote_cluster_over_limit_records_total', help: 'The part of the rejected records that were over the remote\'s cap, by kind.', labelNames: ['target_cluster', 'kind'], read: perKind((s, k) => s.overLimit[k]) });
    gaugeOf(r, { name: 'weft_clustermesh_remote_cluster_pending_endpoints', help: 'Endpoints of a remote cluster held, unwritten, until their node is admitted.', labelNames: ['target_cluster'], read: perRemote((s) => s.pendingEndpoints) });
    gaugeOf(r, { name: 'weft_clustermesh_remote_cluster_bytes', help: 'Bytes of a remote cluster\'s records held (against its bytes cap).', labelNames: ['target_cluster'], read: perRemote((s) => s.bytes) });
    gaugeOf(r, { name: 'weft_clustermesh_remote_cluster_last_failure_ts', help: 'Unix time of the last failure of the link to a remote cluster (the stream broke or could not open); 0 if none since the apiserver started.', labelNames: ['target_cluster'], read: perRemote((s) => (s.disconnectedAt ? Date.parse(s.disconnectedAt) / 1000 : 0)) });
    this.failures = new Counter({ name: 'weft_clustermesh_remote_cluster_failures_total', help: 'Failures of the link to a remote cluster: its stream broke or could not open.', labelNames: ['target_cluster'], registers: [r], collect: zeroed });
    this.reconnects = new Counter({ name: 'weft_clustermesh_remote_cluster_reconnects_total', help: 'Connections to a remote cluster opened again after a failure (after the backoff).', labelNames: ['target_cluster'], registers: [r], collect: zeroed });
    this.syncTime = new Histogram({
      name: 'weft_clustermesh_remote_cluster_sync_duration_seconds',
      help: 'Time from connecting to a remote cluster to every kind synced (the sync time of weft clustermesh status), once per connection.',
      labelNames: ['target_cluster'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: [r],
      collect: zeroed,
    });

    // What this cluster serves (exporter, subscriptions).
    gaugeOf(r, { name: 'weft_clustermesh_exported_records', help: 'This cluster\'s records served to remote clusters, by kind.', labelNames: ['kind'], read: () => Object.entries(source.status().exported).map(([kind, n]) => [{ kind }, n] as const) });
    gaugeOf(r, { name: 'weft_clustermesh_subscribers', help: 'Remote clusters reading this cluster\'s records now (one stream each).', read: () => [[{}, source.status().servingTo.length]] });
    gaugeOf(r, { name: 'weft_clustermesh_subscriber_pending_keys', help: 'Changed keys not yet sent to a remote cluster reading this one.', labelNames: ['target_cluster'], read: () => source.status().serving.map((s) => [{ target_cluster: s.peer }, s.pendingKeys] as const) });
    gaugeOf(r, { name: 'weft_clustermesh_subscriber_in_flight_bytes', help: 'Bytes sent to a remote cluster reading this one and not yet taken by it.', labelNames: ['target_cluster'], read: () => source.status().serving.map((s) => [{ target_cluster: s.peer }, s.inFlightBytes] as const) });
    counterOf(r, { name: 'weft_clustermesh_stalled_subscribers_total', help: 'Streams reset because their reader took nothing for exportStallSeconds.', read: () => [[{}, source.status().stalledPeers]] });
    counterOf(r, { name: 'weft_clustermesh_refused_peers_total', help: 'Streams refused: no certificate, or one naming no configured remote, or a remote claiming another cluster\'s name.', read: () => [[{}, source.status().refusedPeers]] });
    gaugeOf(r, { name: 'weft_clustermesh_unexported_endpoints', help: 'Local endpoint records not served (outside their node\'s pod CIDR, no node, ...).', read: () => [[{}, source.status().unexportedEndpoints?.count ?? 0]] });
  }

  private ensureSeries(name: string): void {
    if (this.withSeries.has(name)) return;
    this.withSeries.add(name);
    const labels = { target_cluster: name };
    this.failures.inc(labels, 0);
    this.reconnects.inc(labels, 0);
    this.syncTime.zero(labels);
  }

  /** The importers' state transitions (ImportContext.onTransition). */
  readonly onTransition = (status: Readonly<RemoteStatus>, from: LinkState, to: LinkState): void => {
    this.ensureSeries(status.name);
    const labels = { target_cluster: status.name };
    if (to === 'disconnected') this.failures.inc(labels);
    if (to === 'connecting' && from === 'disconnected') this.reconnects.inc(labels);
    if (to === 'synced' && status.syncMs !== undefined) this.syncTime.observe(labels, status.syncMs / 1000);
  };

  /** Serves the registry on config.metrics.listen; resolves to the address bound. */
  async start(): Promise<ListenAddress> {
    this.server = new MetricsServer({ registry: this.registry, listen: this.source.config.metrics?.listen ?? '127.0.0.1:0', log: this.log });
    return this.server.start();
  }

  get address(): ListenAddress | undefined {
    return this.server?.address;
  }

  async stop(): Promise<void> {
    await this.server?.stop();
  }
}
