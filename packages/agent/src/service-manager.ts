/**
 * ServiceManager: the node's load balancer content. Watches the cluster's
 * Services, takes endpoints (own cluster and remote) and remote clusters'
 * exported services from ClusterState, resolves each service's backends
 * (services.ts) and programs them after a short debounce. A failed-over
 * global service is therefore as fast as an endpoint record's removal
 * reaching this node. With a Kubernetes source, a local backend must also be
 * a ready address of the Service's EndpointSlices, and nothing is programmed
 * before those are read too.
 *
 * The work is proportional to the change, as in Cilium's ServiceCache: each
 * ClusterState change (`changed`) updates the manager's own label indexes of
 * the endpoints in use and marks dirty only the services it can touch: an
 * endpoint of this cluster, the services of its namespace whose selector
 * matches its old or new labels; a remote endpoint, the global services of its
 * namespace whose record from that cluster selects it; a remote record, the
 * service of its name; a Service or its EndpointSlices, that service. A sync
 * resolves the dirty services and writes only the frontends whose backends
 * changed (Datapath.updateServices). The full resync (the first sync, after a
 * failed write, and `resync()`) rebuilds the indexes from ClusterState itself
 * and replaces the whole map (Datapath.syncServices).
 *
 * Invariants: after each sync, `resolved` is what a full resync would compute
 * from the same inputs, and `programmed` is what the datapath holds. A
 * frontend two Services claim (the same clusterIP and port) is programmed from
 * the one whose key sorts first, whatever order they came in.
 */
import { Coalescer, type Logger } from '@weft/common';
import type { Resource, ResourceSource, ResourceWatch, ServiceSpec } from '@weft/resources';
import type { ClusterChange, ClusterState } from './cluster-state.js';
import type { Datapath, ServiceFrontendRef, ServiceProgram } from './datapath-port.js';
import { serviceRecordKey, serviceView, type EndpointRecord, type ServiceRecord, type ServiceView } from '@weft/schema';
import { EndpointIndex, resolveService, selects, type RemoteServiceInput, type ServiceState } from './services.js';

/** Backends per service port the datapath can hold (lb_value.count is 16 bits). */
export const MAX_BACKENDS = 65535;

/** What a full resync reads from ClusterState (changes between resyncs come through `changed`). */
export type ServiceInputs = Pick<ClusterState, 'endpoints' | 'remoteServices' | 'admittedRemoteEndpoints'>;

interface Resolved {
  state: ServiceState;
  /** One per frontend, backends cut to MAX_BACKENDS. */
  programs: ServiceProgram[];
}

export class ServiceManager {
  private readonly services = new Map<string, ServiceView>();
  readonly invalid = new Map<string, string>();
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

  /** Endpoints in use: this cluster's, and each remote's (admitted ones), as ClusterState told them. */
  private local = new EndpointIndex();
  private remote = new Map<string, EndpointIndex>();
  /** Remote service records by `<cluster>/<namespace>.<name>`, and by `<namespace>.<name>` -> cluster. */
  private remoteRecords = new Map<string, ServiceRecord>();
  private recordsByName = new Map<string, Map<string, ServiceRecord>>();
  /** Which services an endpoint may touch: Service keys by `<namespace>\0k=v`, record names by `<cluster>\0<namespace>\0k=v` (one pair of each selector). */
  private readonly bySelector = new Map<string, Set<string>>();
  private recordsBySelector = new Map<string, Set<string>>();
  /** Service key by `<namespace>.<name>` (remote records name services so). */
  private readonly keyByName = new Map<string, string>();

  /** Services to resolve at the next sync (keys; a key no longer in `services` is removed). */
  private dirty = new Set<string>();
  /** The next sync is a full resync. */
  private full = true;
  private readonly resolved = new Map<string, Resolved>();
  /** Frontend key -> the Services that resolve to it, and what the datapath holds for it. */
  private readonly claims = new Map<string, Set<string>>();
  private readonly programmed = new Map<string, ServiceProgram>();
  /** list()'s answer, sorted; rebuilt when a service's state changed. */
  private sorted: ServiceState[] = [];

  constructor(
    private readonly cluster: string,
    private readonly resources: ResourceSource,
    private readonly state: ServiceInputs,
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
          this.setService(key, undefined);
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
          this.dirty.add(key);
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

  /** Resolve and write everything again from ClusterState (the resync path; normally changes are applied one by one). */
  resync(): void {
    this.full = true;
    this.schedule();
  }

  /** One change from ClusterState: indexes updated now, the services it touches resolved at the next sync. */
  changed(c: ClusterChange): void {
    // A pending full resync reads ClusterState itself (an agent's start: 100k endpoints arrive before it).
    if (this.full) return;
    if (c.kind === 'local-endpoint') {
      const before = this.local.set(c.ip, c.record);
      this.touchLocal(before);
      this.touchLocal(c.record);
    } else if (c.kind === 'remote-endpoint') {
      let index = this.remote.get(c.cluster);
      if (!index) this.remote.set(c.cluster, (index = new EndpointIndex()));
      const before = index.set(c.ip, c.record);
      if (index.size === 0) this.remote.delete(c.cluster);
      this.touchRemote(c.cluster, before);
      this.touchRemote(c.cluster, c.record);
    } else {
      const before = this.setRecord(c.cluster, c.key, c.record);
      for (const r of [before, c.record]) {
        const key = r && this.keyByName.get(serviceRecordKey(r.namespace, r.name));
        if (key !== undefined) this.dirty.add(key);
      }
    }
    this.schedule();
  }

  /** Resolves once the changes made so far are programmed (or their sync failed). */
  settled(): Promise<void> {
    return this.syncer.idle();
  }

  /** What every service resolved to at the last sync, for `weft service list`. */
  list(): ServiceState[] {
    return this.sorted;
  }

  get count(): number {
    return this.services.size;
  }

  private accept(key: string, r: Resource<ServiceSpec>): void {
    const v = serviceView(r);
    if (typeof v === 'string') {
      this.setService(key, undefined);
      this.invalid.set(key, v);
      this.log.warn({ key, reason: v }, 'service not programmed');
      return;
    }
    this.invalid.delete(key);
    this.setService(key, v);
  }

  /** Stores (or removes) a Service, with the indexes that find it from endpoints and remote records. */
  private setService(key: string, v: ServiceView | undefined): void {
    const before = this.services.get(key);
    if (before) {
      removeFrom(this.bySelector, selectorSlot(before.namespace, before.selector), key);
      if (this.keyByName.get(serviceRecordKey(before.namespace, before.name)) === key) this.keyByName.delete(serviceRecordKey(before.namespace, before.name));
      this.services.delete(key);
    }
    if (v) {
      addTo(this.bySelector, selectorSlot(v.namespace, v.selector), key);
      this.keyByName.set(serviceRecordKey(v.namespace, v.name), key);
      this.services.set(key, v);
    }
    this.dirty.add(key);
  }

  /** Stores (or removes) a remote service record; returns the one it replaces. */
  private setRecord(cluster: string, key: string, r: ServiceRecord | undefined): ServiceRecord | undefined {
    const id = `${cluster}/${key}`;
    const before = this.remoteRecords.get(id);
    if (before) {
      const name = serviceRecordKey(before.namespace, before.name);
      removeFrom(this.recordsBySelector, recordSlot(cluster, before), name);
      const byCluster = this.recordsByName.get(name);
      byCluster?.delete(cluster);
      if (byCluster?.size === 0) this.recordsByName.delete(name);
      this.remoteRecords.delete(id);
    }
    if (r) {
      const name = serviceRecordKey(r.namespace, r.name);
      addTo(this.recordsBySelector, recordSlot(cluster, r), name);
      let byCluster = this.recordsByName.get(name);
      if (!byCluster) this.recordsByName.set(name, (byCluster = new Map()));
      byCluster.set(cluster, r);
      this.remoteRecords.set(id, r);
    }
    return before;
  }

  /** Marks the Services an endpoint of this cluster selects (or selected). */
  private touchLocal(e: EndpointRecord | undefined): void {
    if (!e) return;
    for (const [k, v] of Object.entries(e.labels)) {
      for (const key of this.bySelector.get(`${e.namespace}\0${k}=${v}`) ?? []) {
        const s = this.services.get(key);
        if (s && selects(s.selector, e.namespace, e)) this.dirty.add(key);
      }
    }
  }

  /** Marks the global Services whose record from `cluster` selects (or selected) a remote endpoint. */
  private touchRemote(cluster: string, e: EndpointRecord | undefined): void {
    if (!e) return;
    for (const [k, v] of Object.entries(e.labels)) {
      for (const name of this.recordsBySelector.get(`${cluster}\0${e.namespace}\0${k}=${v}`) ?? []) {
        const r = this.recordsByName.get(name)?.get(cluster);
        const key = this.keyByName.get(name);
        if (r && key !== undefined && this.services.get(key)?.global && selects(r.selector, e.namespace, e)) this.dirty.add(key);
      }
    }
  }

  /** The indexes again from ClusterState, and every service dirty: the resync path. */
  private rebuild(): void {
    this.local = new EndpointIndex(this.state.endpoints.values());
    this.remote = new Map();
    for (const [id, e] of this.state.admittedRemoteEndpoints()) {
      const cluster = id.slice(0, id.indexOf('/'));
      let index = this.remote.get(cluster);
      if (!index) this.remote.set(cluster, (index = new EndpointIndex()));
      index.set(e.ip, e);
    }
    this.remoteRecords = new Map();
    this.recordsByName = new Map();
    this.recordsBySelector = new Map();
    for (const [id, r] of this.state.remoteServices) this.setRecord(id.slice(0, id.indexOf('/')), id.slice(id.indexOf('/') + 1), r);
    for (const key of this.services.keys()) this.dirty.add(key);
    for (const key of this.resolved.keys()) this.dirty.add(key);
  }

  private resolve(v: ServiceView, key: string): Resolved {
    const remotes: RemoteServiceInput[] = [];
    if (v.global) {
      const records = this.recordsByName.get(serviceRecordKey(v.namespace, v.name));
      // By cluster name: the same result whatever order the records came in.
      for (const cluster of [...(records?.keys() ?? [])].sort()) {
        const record = records!.get(cluster)!;
        remotes.push({ cluster, record, endpoints: this.remote.get(cluster)?.select(v.namespace, record.selector) ?? [] });
      }
    }
    const selected = this.local.select(v.namespace, v.selector);
    const ready = this.readyAddresses && (this.readyAddresses.get(key) ?? new Set<string>());
    const state = resolveService(v, this.cluster, ready ? selected.filter((e) => ready.has(e.ip)) : selected, remotes);
    const name = `${v.namespace}/${v.name}`;
    this.invalid.delete(name);
    const programs = state.frontends.map((f) => {
      // The datapath counts backends in 16 bits.
      if (f.backends.length > MAX_BACKENDS) this.invalid.set(name, `${f.backends.length} backends on port ${f.port}: only the first ${MAX_BACKENDS} are used`);
      return { vip: f.vip, port: f.port, protocol: f.protocol, backends: f.backends.slice(0, MAX_BACKENDS) };
    });
    return { state, programs };
  }

  /** Resolves the dirty services and writes the frontends that changed (all of them on a full resync). */
  private async sync(): Promise<void> {
    const full = this.full;
    this.full = false;
    if (full) this.rebuild();
    const dirty = this.dirty;
    this.dirty = new Set();
    const touched = new Set<string>();
    for (const key of dirty) {
      const before = this.resolved.get(key);
      const v = this.services.get(key);
      const after = v && this.resolve(v, key);
      if (!before && !after) continue;
      for (const p of before?.programs ?? []) {
        const f = frontendKey(p);
        removeFrom(this.claims, f, key);
        touched.add(f);
      }
      if (after) {
        for (const p of after.programs) {
          const f = frontendKey(p);
          addTo(this.claims, f, key);
          touched.add(f);
        }
        this.resolved.set(key, after);
      } else {
        this.resolved.delete(key);
        this.invalid.delete(`${before!.state.namespace}/${before!.state.name}`);
      }
    }
    const writes: ServiceProgram[] = [];
    const removed: ServiceFrontendRef[] = [];
    for (const fkey of touched) {
      const held = this.programmed.get(fkey);
      const want = this.wanted(fkey);
      if (want && held && sameBackends(want.backends, held.backends)) continue;
      if (want) {
        this.programmed.set(fkey, want);
        writes.push(want);
      } else if (held) {
        this.programmed.delete(fkey);
        removed.push(held);
      }
    }
    if (dirty.size > 0) this.sorted = [...this.resolved.values()].map((r) => r.state).sort(byName);
    if (!full && writes.length === 0 && removed.length === 0) {
      if (dirty.size > 0) this.lastSync = { frontends: this.programmed.size, changed: 0, at: new Date().toISOString() };
      return;
    }
    let result: { frontends: number; changed: number };
    try {
      result = full ? await this.datapath.syncServices([...this.programmed.values()]) : await this.datapath.updateServices(writes, removed);
    } catch (err) {
      // What the datapath holds is unknown now: the next sync writes all of it.
      this.resync();
      throw err;
    }
    this.lastSync = { ...result, at: new Date().toISOString() };
    if (result.changed > 0) this.log.debug({ frontends: result.frontends, changed: result.changed, services: dirty.size, full }, 'services programmed');
  }

  /** The Service whose frontend this is (the one programmed there), for flows; protocol TCP or UDP. */
  serviceAt(vip: string, port: number, protocol: string): { namespace: string; name: string } | undefined {
    let owner: string | undefined;
    for (const key of this.claims.get(`${vip}/${port}/${protocol}`) ?? []) if (owner === undefined || key < owner) owner = key;
    const state = owner === undefined ? undefined : this.resolved.get(owner)?.state;
    return state && { namespace: state.namespace, name: state.name };
  }

  /** The program a frontend should have: from the Service claiming it whose key sorts first. */
  private wanted(fkey: string): ServiceProgram | undefined {
    let owner: string | undefined;
    for (const key of this.claims.get(fkey) ?? []) if (owner === undefined || key < owner) owner = key;
    return owner === undefined ? undefined : this.resolved.get(owner)!.programs.find((p) => frontendKey(p) === fkey);
  }
}

function frontendKey(f: ServiceFrontendRef): string {
  return `${f.vip}/${f.port}/${f.protocol}`;
}

/** The one selector pair a Service is indexed under: any endpoint it selects carries it. Empty selectors select nothing. */
function selectorSlot(namespace: string, selector: Record<string, string>): string | undefined {
  const k = Object.keys(selector).sort()[0];
  return k === undefined ? undefined : `${namespace}\0${k}=${selector[k]}`;
}

function recordSlot(cluster: string, r: ServiceRecord): string | undefined {
  const slot = selectorSlot(r.namespace, r.selector);
  return slot === undefined ? undefined : `${cluster}\0${slot}`;
}

function addTo(index: Map<string, Set<string>>, slot: string | undefined, value: string): void {
  if (slot === undefined) return;
  let set = index.get(slot);
  if (!set) index.set(slot, (set = new Set()));
  set.add(value);
}

function removeFrom(index: Map<string, Set<string>>, slot: string | undefined, value: string): void {
  if (slot === undefined) return;
  const set = index.get(slot);
  set?.delete(value);
  if (set?.size === 0) index.delete(slot);
}

function sameBackends(a: ServiceProgram['backends'], b: ServiceProgram['backends']): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.ip !== b[i]!.ip || a[i]!.port !== b[i]!.port) return false;
  return true;
}

function byName(a: ServiceState, b: ServiceState): number {
  return a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1;
}
