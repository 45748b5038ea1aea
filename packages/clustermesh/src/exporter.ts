/**
 * Exporter: this cluster's identities, nodes, endpoints and global services,
 * mirrored into memory: identities, nodes and endpoints by prefix watchers on
 * the local etcd, Services through the cluster's ResourceSource (its etcd in
 * standalone mode, the API server in kubernetes mode) and turned into export
 * records (only global, shared ones). Served to remote clusters:
 * a snapshot in batches, a synced mark, then every change, each reader at its
 * own pace with a backlog bounded by the state's size (subscription.ts).
 * Snapshot and subscription happen in one turn of the event loop, so no
 * change falls between them.
 *
 * Endpoints are exported by IP (`<ip>`, the wire format remotes know), but
 * stored per node (`endpoints/<node>/<ip>`): only a record that its node may
 * claim (inside the node's podCidr, one claim per IP: the agent's
 * EndpointOwnership) leaves the cluster; the rest are counted in `rejected`.
 */
import type { Logger } from '@weft/common';
import { IdentityLayout } from '@weft/identity';
import { PrefixWatcher, type KvClient } from '@weft/kvstore';
import { ENDPOINTS_PREFIX, EndpointOwnership, exportRecord, NODES_PREFIX, parseEndpointPath, parseEndpointRecord, parseNodeRecord, serviceRecordKey, serviceView } from '@weft/schema';
import { RESOURCES_ROOT, type Resource, type ResourceSource, type ResourceWatch, type ServiceSpec } from '@weft/resources';
import { Subscription, type BatchSink } from './subscription.js';
import type { MeshKind, SyncBatch } from './types.js';

/** Turns a watched key and value into the exported key and value; undefined value = not exported. */
type Transform = (key: string, value: string | undefined) => [string, string | undefined];

const SERVICES_PREFIX = `${RESOURCES_ROOT}Service/`;

/** A Service's resourceKey -> `<namespace>.<name>` and its export record, if it is global and shared. */
function exportService(key: string, service: Resource<ServiceSpec> | undefined): [string, string | undefined] {
  const [namespace = '', name = ''] = key.slice(SERVICES_PREFIX.length).split('/');
  const out = serviceRecordKey(namespace, name);
  if (service === undefined) return [out, undefined];
  const view = serviceView(service);
  const record = typeof view === 'string' ? undefined : exportRecord(view);
  return [out, record ? JSON.stringify(record) : undefined];
}

export class Exporter {
  private readonly data = new Map<MeshKind, Map<string, string>>();
  private readonly subscriptions = new Map<MeshKind, Set<Subscription>>();
  private readonly watchers: PrefixWatcher[] = [];
  private servicesWatch: ResourceWatch | undefined;
  /** Local endpoint records not exported, `endpoints/<node>/<ip>` -> why. */
  readonly rejected = new Map<string, string>();

  constructor(
    private readonly kv: KvClient,
    private readonly log: Logger,
    /** Where Services come from. */
    private readonly resources: ResourceSource,
    /** This cluster: node records must name it, endpoint identities must be in its range. */
    private readonly local: { cluster: string; clusterId: number },
  ) {}

  async start(): Promise<void> {
    const identity: Transform = (key, value) => [key, value];
    const setEndpoint = this.setter('endpoints');
    const ownership = new EndpointOwnership({
      onChange: (ip, record) => setEndpoint(ip, record ? JSON.stringify(record) : undefined),
      onReject: (node, ip, reason) => {
        const key = `${ENDPOINTS_PREFIX}${node}/${ip}`;
        if (reason === undefined) this.rejected.delete(key);
        else this.rejected.set(key, reason);
      },
    });
    const prefixes: Array<[MeshKind, string, Transform]> = [
      ['identities', new IdentityLayout().mastersPrefix, identity],
      ['nodes', NODES_PREFIX, (key, value) => {
        const parsed = value === undefined ? undefined : parseNodeRecord(Buffer.from(value), this.local.cluster);
        ownership.setNode(key, typeof parsed === 'object' && parsed.name === key ? parsed : undefined);
        return [key, value];
      }],
    ];
    for (const [kind, prefix, transform] of prefixes) {
      const set = this.setter(kind);
      this.watchers.push(new PrefixWatcher(this.kv, prefix, {
        onEvent: (e) => set(...transform(e.key.slice(prefix.length), e.type === 'delete' ? undefined : e.value.toString())),
      }, { logger: this.log }).start());
    }
    this.watchers.push(new PrefixWatcher(this.kv, ENDPOINTS_PREFIX, {
      onEvent: (e) => {
        const path = parseEndpointPath(e.key.slice(ENDPOINTS_PREFIX.length));
        if (!path) {
          if (e.type === 'delete') this.rejected.delete(e.key);
          else this.rejected.set(e.key, 'key is not endpoints/<node>/<ip>');
          return;
        }
        const parsed = e.type === 'delete' ? undefined : parseEndpointRecord(e.value, this.local.clusterId);
        ownership.setEndpoint(path.node, path.ip, typeof parsed === 'object' ? parsed : undefined);
        if (typeof parsed === 'string') this.rejected.set(e.key, parsed);
      },
    }, { logger: this.log }).start());
    const setService = this.setter('services');
    const servicesSynced = new Promise<void>((resolve) => {
      this.servicesWatch = this.resources.watch<ServiceSpec>('Service', {
        onChange: (_type, key, service) => setService(...exportService(key, service)),
        onSynced: () => resolve(),
        // Not exported while it does not parse (as a Service deleted).
        onInvalid: (key) => setService(...exportService(key, undefined)),
      }, this.log);
    });
    await Promise.all([...this.watchers.map((w) => w.waitSynced()), servicesSynced]);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.watchers.map((w) => w.stop()), this.servicesWatch?.stop()]);
  }

  /** Sets (or, for an undefined value, removes) one exported entry of `kind`, telling subscribers of real changes. */
  private setter(kind: MeshKind): (key: string, value: string | undefined) => void {
    const map = new Map<string, string>();
    this.data.set(kind, map);
    const subscriptions = new Set<Subscription>();
    this.subscriptions.set(kind, subscriptions);
    return (key, value) => {
      if (value === undefined) {
        if (!map.delete(key)) return;
      } else {
        if (map.get(key) === value) return;
        map.set(key, value);
      }
      for (const s of subscriptions) s.changed(kind, key);
    };
  }

  /** Local nodes' pod CIDRs, so imports can refuse endpoints that claim them. */
  localValues(kind: MeshKind): IterableIterator<string> {
    return this.data.get(kind)!.values();
  }

  count(kind: MeshKind): number {
    return this.data.get(kind)?.size ?? 0;
  }

  /**
   * Sends the snapshot of `kinds` to `sink`, then every change, at the sink's pace, until the
   * subscription is closed (see subscription.ts for `stallMs`).
   */
  subscribe(kinds: readonly MeshKind[], sink: BatchSink, options: { stallMs?: number; onStall?: () => void } = {}): Subscription {
    const sub: Subscription = new Subscription(kinds, (kind) => this.data.get(kind)!, sink, {
      ...options,
      onClose: () => {
        for (const k of kinds) this.subscriptions.get(k)?.delete(sub);
      },
    });
    for (const k of kinds) this.subscriptions.get(k)!.add(sub);
    return sub;
  }

  /** Every change of `kind`, to an in-process listener (which takes everything at once). */
  listen(kind: MeshKind, listener: (batch: SyncBatch) => void): () => void {
    const sub = this.subscribe([kind], { write: (b, done) => (listener(b), done(), true), once: () => undefined });
    return () => sub.close();
  }
}
