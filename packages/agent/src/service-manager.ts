/**
 * ServiceManager: the node's load balancer content. Watches the cluster's
 * Services, takes endpoints (own cluster and remote) and remote clusters'
 * exported services from ClusterState, resolves every service's backends
 * (services.ts) and programs them, differences only, after a short debounce.
 * A failed-over global service is therefore as fast as an endpoint record's
 * removal reaching this node. With a Kubernetes source, a local backend must
 * also be a ready address of the Service's EndpointSlices, and nothing is
 * programmed before those are read too.
 */
import { Coalescer, type Logger } from '@weft/common';
import type { Resource, ResourceSource, ResourceWatch, ServiceSpec } from '@weft/resources';
import type { ClusterState } from './cluster-state.js';
import type { Datapath, ServiceProgram } from './datapath-port.js';
import { serviceRecordKey, serviceView, type ServiceRecord, type ServiceView } from '@weft/schema';
import { EndpointIndex, resolveService, type RemoteServiceInput, type ServiceState } from './services.js';

/** Backends per service port the datapath can hold (lb_value.count is 16 bits). */
export const MAX_BACKENDS = 65535;

export class ServiceManager {
  private readonly services = new Map<string, ServiceView>();
  readonly invalid = new Map<string, string>();
  private states: ServiceState[] = [];
  private watcher: ResourceWatch | undefined;
  private endpointsWatch: ResourceWatch | undefined;
  /**
   * Kubernetes: each Service's ready addresses, from its EndpointSlices; a local backend must be
   * among them (not-ready and terminating pods get no traffic). Undefined in standalone mode, where
   * selectors alone decide.
   */
  private readonly readyAddresses: Map<string, ReadonlySet<string>> | undefined;
  /** No sync before every Service was read: an agent restart must not empty the pinned maps meanwhile. */
  private ready = false;
  private readonly syncer: Coalescer;
  lastSync: { frontends: number; changed: number; at: string } | undefined;

  constructor(
    private readonly cluster: string,
    private readonly resources: ResourceSource,
    private readonly state: ClusterState,
    private readonly datapath: Datapath,
    private readonly log: Logger,
  ) {
    this.syncer = new Coalescer(() => this.sync(), 10, (err) => this.log.error({ err: err.message }, 'service sync failed'));
    this.readyAddresses = resources.watchServiceEndpoints ? new Map() : undefined;
  }

  async start(): Promise<void> {
    let synced!: () => void;
    const ready = new Promise<void>((r) => (synced = r));
    this.watcher = this.resources.watch<ServiceSpec>('Service', {
      onChange: (type, key, r) => {
        if (type === 'delete' || !r) {
          this.services.delete(key);
          this.invalid.delete(key);
        } else this.accept(key, r);
        this.schedule();
      },
      onSynced: () => synced(),
      onInvalid: (key, err) => this.invalid.set(key, err.message),
    }, this.log);
    const slicesReady = new Promise<void>((resolve) => {
      if (!this.readyAddresses) return resolve();
      const byService = this.readyAddresses;
      this.endpointsWatch = this.resources.watchServiceEndpoints!({
        onChange: (key, addresses) => {
          if (addresses) byService.set(key, addresses);
          else byService.delete(key);
          this.schedule();
        },
        onSynced: () => resolve(),
      }, this.log);
    });
    await Promise.all([ready, slicesReady]);
    this.ready = true;
    this.schedule();
  }

  async stop(): Promise<void> {
    await this.watcher?.stop();
    await this.endpointsWatch?.stop();
    await this.syncer.stop();
  }

  schedule(): void {
    if (this.ready) this.syncer.schedule();
  }

  /** What every service resolved to at the last sync, for `weft service list`. */
  list(): ServiceState[] {
    return this.states;
  }

  get count(): number {
    return this.services.size;
  }

  private accept(key: string, r: Resource<ServiceSpec>): void {
    const v = serviceView(r);
    if (typeof v === 'string') {
      this.services.delete(key);
      this.invalid.set(key, v);
      this.log.warn({ key, reason: v }, 'service not programmed');
      return;
    }
    this.invalid.delete(key);
    this.services.set(key, v);
  }

  /** Resolves every service (endpoints grouped by namespace once per sync) and programs the result. */
  private async sync(): Promise<void> {
    const local = new EndpointIndex(this.state.endpoints.values());
    const remoteEps = new Map<string, EndpointIndex>();
    for (const [cluster, eps] of this.state.remoteEndpointsByCluster()) remoteEps.set(cluster, new EndpointIndex(eps));
    const remoteServices = new Map<string, Array<{ cluster: string; record: ServiceRecord }>>();
    for (const [id, record] of this.state.remoteServices) {
      const name = serviceRecordKey(record.namespace, record.name);
      const list = remoteServices.get(name) ?? [];
      list.push({ cluster: id.slice(0, id.indexOf('/')), record });
      remoteServices.set(name, list);
    }

    const states: ServiceState[] = [];
    const programs: ServiceProgram[] = [];
    for (const [resourceKey, v] of this.services) {
      const remotes: RemoteServiceInput[] = v.global
        ? (remoteServices.get(serviceRecordKey(v.namespace, v.name)) ?? []).map((r) => ({ ...r, endpoints: remoteEps.get(r.cluster)?.select(v.namespace, r.record.selector) ?? [] }))
        : [];
      const selected = local.select(v.namespace, v.selector);
      const ready = this.readyAddresses && (this.readyAddresses.get(resourceKey) ?? new Set<string>());
      const s = resolveService(v, this.cluster, ready ? selected.filter((e) => ready.has(e.ip)) : selected, remotes);
      states.push(s);
      const key = `${v.namespace}/${v.name}`;
      this.invalid.delete(key);
      for (const f of s.frontends) {
        // The datapath counts backends in 16 bits.
        if (f.backends.length > MAX_BACKENDS) this.invalid.set(key, `${f.backends.length} backends on port ${f.port}: only the first ${MAX_BACKENDS} are used`);
        programs.push({ vip: f.vip, port: f.port, protocol: f.protocol, backends: f.backends.slice(0, MAX_BACKENDS) });
      }
    }
    const result = await this.datapath.syncServices(programs);
    this.states = states.sort((a, b) => (a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
    this.lastSync = { ...result, at: new Date().toISOString() };
    if (result.changed > 0) this.log.debug({ frontends: result.frontends, changed: result.changed }, 'services programmed');
  }
}
