import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@weft/common';
import { IdentityAllocator } from '@weft/identity';
import { until, useTestEtcd } from '@weft/kvstore';
import { ResourceStore, type Resource } from '@weft/resources';
import { validateAgentConfig } from './config.js';
import { EndpointManager, endpointLabels, type Endpoint } from './endpoint-manager.js';
import { Ipam } from './ipam.js';
import { MemoryDatapath } from './memory-datapath.js';
import { PolicyEngine } from './policy-engine.js';
import { endpointKey, type EndpointRecord } from '@weft/schema';

/**
 * A running endpoint follows its pod's and its namespace's labels (real etcd: identities, resources,
 * records): a new identity in its maps, its record and its peers' policies, the old one released
 * only after, and DEL releases what was allocated.
 */
describe('endpoint regeneration on label changes @etcd', function () {
  this.timeout(60_000);
  const t = useTestEtcd('endpoint-regeneration-test');
  let stateDir: string;

  beforeEach(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'weft-regen-'));
  });
  afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

  const ns = (name: string, labels: Record<string, string>): Resource => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels, annotations: {} }, spec: {} }) as unknown as Resource;
  const pod = (name: string, labels: Record<string, string>): Resource =>
    ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'demo', labels, annotations: {} }, spec: { nodeName: 'n1', containers: [{ name: 'c', command: [] }] } }) as unknown as Resource;
  // db admits pods labelled app=web from namespaces labelled team=a.
  const dbPolicy = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'db', namespace: 'demo', labels: {}, annotations: {} },
    spec: { podSelector: { matchLabels: { app: 'db' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'a' } }, podSelector: { matchLabels: { app: 'web' } } }] }] },
  } as unknown as Resource;

  /** Two endpoints saved as an agent left them (so no veth is needed), adopted by a fresh manager. */
  async function node(): Promise<{ manager: EndpointManager; allocator: IdentityAllocator; datapath: MemoryDatapath; engine: PolicyEngine; store: ResourceStore; web: Endpoint; db: Endpoint; stop: () => Promise<void> }> {
    const config = validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n1', etcd: [t.etcd.endpoint], nodeIp: '192.0.2.1', podCidr: '10.1.0.0/24', bpfDir: '/nonexistent', stateDir });
    const store = new ResourceStore(t.kv);
    await store.apply([ns('demo', { team: 'a' }), pod('web', { app: 'web' }), pod('db', { app: 'db' }), dbPolicy]);
    const saved = (epId: number, name: string, labels: Record<string, string>): Endpoint => ({
      epId, containerId: `c-${name}`, namespace: 'demo', pod: name, ip: `10.1.0.${epId + 10}`, hostIf: `weftrgt${epId}`, podIf: 'eth0', netns: '-', identity: 0, labels, namespaceLabels: { team: 'a' }, mac: '02:00:00:00:00:01', nodeMac: '02:00:00:00:00:02',
    });
    writeFileSync(join(stateDir, 'endpoints.json'), JSON.stringify([saved(1, 'web', { app: 'web' }), saved(2, 'db', { app: 'db' })]));
    const allocator = await new IdentityAllocator({ client: t.kv, clusterId: 1, clusterName: 'c1', node: 'n1', logger: silentLogger() }).start();
    const datapath = new MemoryDatapath();
    let manager!: EndpointManager;
    const engine = new PolicyEngine(config, store, allocator, datapath, () => manager.list(), silentLogger());
    manager = new EndpointManager({
      config, kv: t.kv, leaseId: () => '0', allocator, resources: store, ipam: new Ipam(config.podCidr, join(stateDir, 'ipam.json')), datapath,
      onChange: async (ep, removed) => (removed ? engine.forget(ep.epId) : engine.apply(ep)),
      log: silentLogger(),
    });
    await engine.start();
    for (const ep of manager.restore()) await manager.readopt(ep);
    await manager.watchLabels();
    const [web, db] = manager.list() as [Endpoint, Endpoint];
    return {
      manager, allocator, datapath, engine, store, web, db,
      stop: async () => {
        await manager.stop();
        await engine.stop();
        await allocator.stop({ release: false });
      },
    };
  }

  const record = async (ip: string): Promise<EndpointRecord> => JSON.parse((await t.kv.get(endpointKey('n1', ip)))!.value.toString()) as EndpointRecord;
  const admits = (d: MemoryDatapath, epId: number, identity: number): boolean => (d.policies.get(epId) ?? []).some((e) => !e.egress && e.identity === identity && !e.deny);

  it('a pod relabelled out of and back into a selector changes identity, maps, record and peers, and releases the old identity after', async () => {
    const n = await node();
    try {
      const first = n.web.identity;
      await until(() => admits(n.datapath, n.db.epId, first), 'db admits web');
      assert.deepEqual(n.allocator.held().map((h) => h.id).sort(), [first, n.db.identity].sort());

      await n.store.apply([pod('web', { app: 'web', track: 'canary' })]); // still app=web: still admitted
      await until(() => n.web.regeneration?.state === 'ready', 'web regenerated');
      const canary = n.web.identity;
      assert.notEqual(canary, first);
      assert.deepEqual(n.web.labels, { app: 'web', track: 'canary' });
      assert.equal(n.datapath.endpoints.get(n.web.ip)?.identity, canary, 'the datapath sends with the new identity');
      assert.equal((await record(n.web.ip)).identity, canary, 'the record names the new identity');
      await until(() => admits(n.datapath, n.db.epId, canary), 'db admits the canary identity');
      assert.ok(!n.allocator.held().some((h) => h.id === first), 'the old identity is released');
      assert.deepEqual(n.web.regeneration, { ...n.web.regeneration, state: 'ready', reason: 'pod labels', from: first, to: canary, count: 1 });

      await n.store.apply([pod('web', { app: 'other' })]); // out of the selector
      await until(() => n.web.regeneration?.count === 2 && n.web.regeneration.state === 'ready', 'web regenerated again');
      // (The canary identity stays admitted until the identity GC removes it: nobody carries it any more.)
      await until(() => !admits(n.datapath, n.db.epId, n.web.identity), 'db does not admit web as app=other');

      await n.store.apply([pod('web', { app: 'web' })]); // back in: the first label set, the first identity again
      await until(() => n.web.regeneration?.count === 3 && n.web.regeneration.state === 'ready', 'web regenerated a third time');
      await until(() => admits(n.datapath, n.db.epId, n.web.identity), 'db admits web again');
      assert.deepEqual(n.allocator.held().map((h) => h.id).sort(), [n.web.identity, n.db.identity].sort(), 'one reference per endpoint, none leaked');
    } finally {
      await n.stop();
    }
  });

  it('a namespace relabel regenerates its endpoints, and DEL after it releases what was allocated', async () => {
    const n = await node();
    try {
      const webFirst = n.web.identity;
      await until(() => admits(n.datapath, n.db.epId, webFirst), 'db admits web');
      await n.store.apply([ns('demo', { team: 'b' })]); // out of the namespaceSelector
      await until(() => n.web.regeneration?.state === 'ready' && n.db.regeneration?.state === 'ready', 'both endpoints regenerated');
      assert.equal(n.web.regeneration?.reason, 'namespace labels');
      assert.deepEqual(n.web.namespaceLabels, { team: 'b' });
      assert.equal(n.allocator.lookupByLabels(endpointLabels('c1', n.web)), n.web.identity);
      await until(() => !admits(n.datapath, n.db.epId, n.web.identity), 'db no longer admits web from team b');

      // DEL right after another relabel, while its regeneration may be running: nothing leaks.
      await n.store.apply([ns('demo', { team: 'c' })]);
      await n.manager.del(n.web.containerId);
      await n.manager.del(n.db.containerId);
      assert.deepEqual(n.allocator.held(), [], 'every reference released');
      assert.equal(await t.kv.get(endpointKey('n1', n.web.ip)), undefined);
    } finally {
      await n.stop();
    }
  });
});
