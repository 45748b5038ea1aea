import assert from 'node:assert/strict';
import { seededRandom, silentLogger } from '@weft/common';
import type { Resource, ResourceSource, ResourceWatchHandler, ServiceEndpointsHandler, ServicePort, ServiceSpec } from '@weft/resources';
import type { ServiceFrontendRef, ServiceProgram } from './datapath-port.js';
import { MemoryDatapath } from './memory-datapath.js';
import { ServiceManager, type ServiceInputs } from './service-manager.js';
import type { ServiceState } from './services.js';
import type { EndpointRecord, ServiceRecord } from '@weft/schema';
import type { ClusterChange } from './cluster-state.js';

const KEY = 'weft/resources/v1/Service/shop/web';
const web: Resource<ServiceSpec> = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop', labels: {}, annotations: {} }, spec: { type: 'ClusterIP', clusterIP: '10.96.12.34', selector: { app: 'web' }, ports: [{ protocol: 'TCP', port: 80, targetPort: 8080 }] } };

function endpoint(ip: string, app: string): EndpointRecord {
  return { ip, identity: 0x10100, node: 'n1', nodeIp: '192.168.56.11', namespace: 'shop', pod: `${app}-${ip}`, labels: { app } };
}

/** A source holding one Service; with `slices`, it also reports EndpointSlice readiness as Kubernetes does. */
function fakeSource(slices: boolean): { source: ResourceSource; ready?: ServiceEndpointsHandler } {
  const out: { source: ResourceSource; ready?: ServiceEndpointsHandler } = {
    source: {
      get: async () => undefined,
      watch: <S>(_kind: string, h: ResourceWatchHandler<S>) => {
        h.onChange('upsert', KEY, web as unknown as Resource<S>);
        h.onSynced?.();
        return { stop: async () => undefined };
      },
    },
  };
  if (slices) out.source.watchServiceEndpoints = (h) => ((out.ready = h), { stop: async () => undefined });
  return out;
}

async function backends(programs: () => ServiceProgram[] | undefined, want: string[]): Promise<void> {
  const until = Date.now() + 2000;
  for (;;) {
    const got = programs()?.[0]?.backends.map((b) => b.ip);
    if (got && JSON.stringify(got) === JSON.stringify(want)) return;
    if (Date.now() > until) assert.deepEqual(got, want);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('ServiceManager and the resource source', () => {
  const state: ServiceInputs = { endpoints: new Map([['10.244.1.5', endpoint('10.244.1.5', 'web')], ['10.244.2.6', endpoint('10.244.2.6', 'web')], ['10.244.3.7', endpoint('10.244.3.7', 'db')]]), admittedRemoteEndpoints: () => new Map(), remoteServices: new Map() };
  let programs: ServiceProgram[] | undefined;
  let datapath: MemoryDatapath;
  let manager: ServiceManager | undefined;
  beforeEach(() => {
    programs = undefined;
    datapath = new MemoryDatapath();
    // Nothing written yet is not the same as an empty map written.
    const write = (): void => void (programs = datapath.services);
    const sync = datapath.syncServices.bind(datapath);
    const update = datapath.updateServices.bind(datapath);
    datapath.syncServices = async (p) => sync(p).finally(write);
    datapath.updateServices = async (p, r) => update(p, r).finally(write);
  });
  afterEach(async () => manager?.stop());

  it('standalone: the selector alone picks the backends', async () => {
    manager = new ServiceManager('c1', fakeSource(false).source, state, datapath, silentLogger());
    await manager.start();
    await backends(() => programs, ['10.244.1.5', '10.244.2.6']);
  });

  it('kubernetes: only addresses the EndpointSlices call ready, and nothing before the slices are read', async () => {
    const fake = fakeSource(true);
    manager = new ServiceManager('c1', fake.source, state, datapath, silentLogger());
    let started = false;
    const starting = manager.start().then(() => (started = true));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(started, false, 'waits for the slices: a restart must not empty the maps meanwhile');
    assert.equal(programs, undefined);
    fake.ready!.onChange(KEY, new Set(['10.244.1.5', '10.244.3.7']));
    fake.ready!.onSynced!();
    await starting;
    await backends(() => programs, ['10.244.1.5']); // 10.244.2.6 not ready; 10.244.3.7 ready but not selected
    fake.ready!.onChange(KEY, new Set(['10.244.1.5', '10.244.2.6']));
    await backends(() => programs, ['10.244.1.5', '10.244.2.6']);
    fake.ready!.onChange(KEY, undefined);
    await backends(() => programs, []);
  });
});

/** ClusterState as the ServiceManager sees it: the maps a resync reads, and one change event per mutation. */
class FakeCluster implements ServiceInputs {
  readonly endpoints = new Map<string, EndpointRecord>();
  readonly remoteServices = new Map<string, ServiceRecord>();
  private readonly admitted = new Map<string, EndpointRecord>();
  readonly managers: ServiceManager[] = [];

  admittedRemoteEndpoints(): ReadonlyMap<string, EndpointRecord> {
    return this.admitted;
  }

  local(ip: string, record: EndpointRecord | undefined): void {
    if (record) this.endpoints.set(ip, record);
    else this.endpoints.delete(ip);
    this.emit({ kind: 'local-endpoint', ip, record });
  }

  remote(cluster: string, ip: string, record: EndpointRecord | undefined): void {
    if (record) this.admitted.set(`${cluster}/${ip}`, record);
    else this.admitted.delete(`${cluster}/${ip}`);
    this.emit({ kind: 'remote-endpoint', cluster, ip, record });
  }

  record(cluster: string, record: ServiceRecord | { namespace: string; name: string; gone: true }): void {
    const key = `${record.namespace}.${record.name}`;
    if ('gone' in record) this.remoteServices.delete(`${cluster}/${key}`);
    else this.remoteServices.set(`${cluster}/${key}`, record);
    this.emit({ kind: 'remote-service', cluster, key, record: 'gone' in record ? undefined : record });
  }

  private emit(c: ClusterChange): void {
    for (const m of this.managers) m.changed(c);
  }
}

/** A standalone resource source whose Services a test changes while the manager runs. */
class FakeServices implements ResourceSource {
  readonly objects = new Map<string, Resource<ServiceSpec>>();
  private readonly handlers = new Set<ResourceWatchHandler<ServiceSpec>>();

  async get(): Promise<undefined> {
    return undefined;
  }

  watch<S>(_kind: string, h: ResourceWatchHandler<S>): { stop: () => Promise<void> } {
    const handler = h as unknown as ResourceWatchHandler<ServiceSpec>;
    this.handlers.add(handler);
    for (const [key, r] of this.objects) handler.onChange('upsert', key, r);
    h.onSynced?.();
    return { stop: async () => void this.handlers.delete(handler) };
  }

  set(r: Resource<ServiceSpec>): void {
    const key = `weft/resources/v1/Service/${r.metadata.namespace}/${r.metadata.name}`;
    this.objects.set(key, r);
    for (const h of this.handlers) h.onChange('upsert', key, r);
  }

  delete(namespace: string, name: string): void {
    const key = `weft/resources/v1/Service/${namespace}/${name}`;
    this.objects.delete(key);
    for (const h of this.handlers) h.onChange('delete', key, undefined);
  }
}

function service(namespace: string, name: string, clusterIP: string, selector: Record<string, string>, annotations: Record<string, string> = {}, ports: ServicePort[] = [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080 }]): Resource<ServiceSpec> {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, labels: {}, annotations }, spec: { type: 'ClusterIP', clusterIP, selector, ports } };
}

function ep(ip: string, namespace: string, labels: Record<string, string>): EndpointRecord {
  return { ip, identity: 0x10100, node: 'n1', nodeIp: '192.168.56.11', namespace, pod: `p-${ip}`, labels };
}

/** A datapath that also records what each partial update wrote. */
class RecordingDatapath extends MemoryDatapath {
  writes: string[] = [];
  override async updateServices(services: readonly ServiceProgram[], removed: readonly ServiceFrontendRef[]): Promise<{ frontends: number; changed: number }> {
    this.writes.push(...services.map((s) => `${s.vip}:${s.port}`), ...removed.map((r) => `-${r.vip}:${r.port}`));
    return super.updateServices(services, removed);
  }
}

async function running(cluster: FakeCluster, source: FakeServices, datapath = new RecordingDatapath()): Promise<{ manager: ServiceManager; datapath: RecordingDatapath }> {
  const manager = new ServiceManager('east', source, cluster, datapath, silentLogger());
  cluster.managers.push(manager);
  await manager.start();
  await manager.settled();
  return { manager, datapath };
}

function stateOf(m: ServiceManager, namespace: string, name: string): ServiceState {
  const s = m.list().find((x) => x.namespace === namespace && x.name === name);
  assert.ok(s, `no state for ${namespace}/${name}`);
  return s;
}

describe('ServiceManager: changes touch only the services they can', () => {
  let managers: ServiceManager[] = [];
  afterEach(async () => {
    await Promise.all(managers.map((m) => m.stop()));
    managers = [];
  });

  it('an endpoint change in one namespace resolves no service of another', async () => {
    const cluster = new FakeCluster();
    const source = new FakeServices();
    source.set(service('a', 'web', '10.96.0.1', { app: 'web' }));
    source.set(service('a', 'db', '10.96.0.2', { app: 'db' }));
    source.set(service('b', 'web', '10.96.0.3', { app: 'web' }));
    const { manager, datapath } = await running(cluster, source);
    managers.push(manager);
    const [aWeb, aDb, bWeb] = [stateOf(manager, 'a', 'web'), stateOf(manager, 'a', 'db'), stateOf(manager, 'b', 'web')];

    cluster.local('10.244.1.5', ep('10.244.1.5', 'a', { app: 'web' }));
    await manager.settled();
    assert.notEqual(stateOf(manager, 'a', 'web'), aWeb, 'a/web selects the new endpoint: resolved again');
    assert.equal(stateOf(manager, 'b', 'web'), bWeb, 'b/web (same selector, other namespace) not resolved');
    assert.equal(stateOf(manager, 'a', 'db'), aDb, 'a/db (same namespace, other selector) not resolved');
    assert.deepEqual(datapath.writes, ['10.96.0.1:80'], 'only the frontend that changed is written');
    assert.deepEqual(stateOf(manager, 'a', 'web').frontends[0]!.backends.map((b) => b.ip), ['10.244.1.5']);

    // Its labels change: the service it left and the one it joins; nothing in b.
    datapath.writes = [];
    cluster.local('10.244.1.5', ep('10.244.1.5', 'a', { app: 'db' }));
    await manager.settled();
    assert.equal(stateOf(manager, 'b', 'web'), bWeb);
    assert.deepEqual(datapath.writes.sort(), ['10.96.0.1:80', '10.96.0.2:80']);
    assert.equal(manager.lastSync?.frontends, 3);
  });

  it('a remote service record change touches only that service', async () => {
    const cluster = new FakeCluster();
    const source = new FakeServices();
    const global = { 'weft.io/global': 'true' };
    source.set(service('shop', 'echo', '10.96.0.1', { app: 'echo' }, global));
    source.set(service('shop', 'cart', '10.96.0.2', { app: 'cart' }, global));
    const record = (name: string, targetPort: number): ServiceRecord => ({ namespace: 'shop', name, selector: { app: name }, ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort }] });
    cluster.record('west', record('echo', 9090));
    cluster.record('west', record('cart', 9090));
    cluster.remote('west', '10.102.0.2', ep('10.102.0.2', 'shop', { app: 'echo' }));
    cluster.remote('west', '10.102.0.3', ep('10.102.0.3', 'shop', { app: 'cart' }));
    const { manager, datapath } = await running(cluster, source);
    managers.push(manager);
    const cart = stateOf(manager, 'shop', 'cart');

    cluster.record('west', record('echo', 7070));
    await manager.settled();
    assert.equal(stateOf(manager, 'shop', 'cart'), cart, 'cart not resolved');
    assert.deepEqual(stateOf(manager, 'shop', 'echo').frontends[0]!.backends.map((b) => `${b.ip}:${b.port}`), ['10.102.0.2:7070']);
    assert.deepEqual(datapath.writes, ['10.96.0.1:80']);

    // A remote endpoint only the cart record selects; then the echo record goes.
    datapath.writes = [];
    cluster.remote('west', '10.102.0.4', ep('10.102.0.4', 'shop', { app: 'cart' }));
    await manager.settled();
    assert.deepEqual(datapath.writes, ['10.96.0.2:80']);
    const cart2 = stateOf(manager, 'shop', 'cart');
    datapath.writes = [];
    cluster.record('west', { namespace: 'shop', name: 'echo', gone: true });
    await manager.settled();
    assert.equal(stateOf(manager, 'shop', 'cart'), cart2);
    assert.deepEqual(stateOf(manager, 'shop', 'echo').frontends[0]!.backends, []);
    assert.deepEqual(datapath.writes, ['10.96.0.1:80']);
  });

  it('resync() resolves every service again from ClusterState, and a consistent state comes out unchanged', async () => {
    const cluster = new FakeCluster();
    const source = new FakeServices();
    source.set(service('a', 'web', '10.96.0.1', { app: 'web' }));
    source.set(service('b', 'web', '10.96.0.2', { app: 'web' }));
    cluster.local('10.244.1.5', ep('10.244.1.5', 'a', { app: 'web' }));
    const { manager, datapath } = await running(cluster, source);
    managers.push(manager);
    const before = manager.list();
    const held = await datapath.dumpServices();
    manager.resync();
    await manager.settled();
    assert.deepEqual(manager.list(), before);
    assert.ok(manager.list().every((s, i) => s !== before[i]), 'every service resolved again');
    assert.deepEqual(await datapath.dumpServices(), held);
    assert.deepEqual(datapath.writes, [], 'through the whole sync, not partial updates');
    assert.equal(manager.lastSync?.changed, 0);
  });

  it('after any sequence of changes, the same result as a full resync (seeded, property style)', async function () {
    for (const seed of [1, 7, 2026]) {
      const rng = seededRandom(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
      const namespaces = ['a', 'b'];
      const names = ['s0', 's1', 's2', 's3', 's4', 's5'];
      const clusters = ['west', 'north'];
      const labels = (): Record<string, string> => {
        const l: Record<string, string> = { app: pick(['x', 'y', 'z']) };
        if (rng() < 0.5) l.tier = pick(['1', '2']);
        return l;
      };
      const selector = (): Record<string, string> => (rng() < 0.1 ? {} : rng() < 0.7 ? { app: pick(['x', 'y', 'z']) } : { app: pick(['x', 'y']), tier: pick(['1', '2']) });
      const ports = (): ServicePort[] => (rng() < 0.7 ? [{ name: 'http', protocol: 'TCP' as const, port: 80, targetPort: 8080 }] : [{ name: 'http', protocol: 'TCP' as const, port: 80, targetPort: 8081 }, { name: 'dns', protocol: 'UDP' as const, port: 53, targetPort: 5353 }]);
      const cluster = new FakeCluster();
      const source = new FakeServices();
      const { manager, datapath } = await running(cluster, source);
      managers.push(manager);
      for (let step = 0; step < 300; step++) {
        const op = rng();
        const ip = `10.${pick(['1', '2'])}.0.${Math.floor(rng() * 12)}`;
        if (op < 0.3) cluster.local(ip, rng() < 0.8 ? ep(ip, pick(namespaces), labels()) : undefined);
        else if (op < 0.6) cluster.remote(pick(clusters), ip, rng() < 0.8 ? ep(ip, pick(namespaces), labels()) : undefined);
        else if (op < 0.8) {
          const [namespace, name] = [pick(namespaces), pick(names)];
          cluster.record(pick(clusters), rng() < 0.8 ? { namespace, name, selector: selector(), ports: ports().map((p) => ({ ...p, targetPort: p.targetPort + 1000 })) } : { namespace, name, gone: true });
        } else if (rng() < 0.85) {
          // A small pool of cluster IPs: two services sometimes claim the same frontend.
          const annotations: Record<string, string> = rng() < 0.7 ? { 'weft.io/global': 'true', 'weft.io/affinity': pick(['none', 'local', 'remote']) } : {};
          source.set(service(pick(namespaces), pick(names), `10.96.0.${Math.floor(rng() * 8) + 1}`, selector(), annotations, ports()));
        } else source.delete(pick(namespaces), pick(names));
        // Changes arrive in bursts: some share a sync, some get their own.
        if (rng() < 0.1) await manager.settled();
        if (step % 100 !== 99) continue;
        await manager.settled();
        // A manager started now does a full resync only: what the incremental one must have reached.
        const fresh = await running(cluster, source);
        cluster.managers.pop();
        await fresh.manager.stop();
        const label = `seed ${seed}, step ${step}`;
        assert.deepEqual(manager.list(), fresh.manager.list(), `${label}: resolved services`);
        const held = async (d: MemoryDatapath) => (await d.dumpServices()).sort((x, y) => (`${x.vip}:${x.port}/${x.protocol}` < `${y.vip}:${y.port}/${y.protocol}` ? -1 : 1));
        assert.deepEqual(await held(datapath), await held(fresh.datapath), `${label}: programmed frontends`);
        assert.deepEqual([...manager.invalid].sort(), [...fresh.manager.invalid].sort(), `${label}: invalid`);
        assert.ok(manager.list().length > 0, `${label}: the sequence has services`);
      }
    }
  });
});

