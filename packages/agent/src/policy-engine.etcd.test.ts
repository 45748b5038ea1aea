import assert from 'node:assert/strict';
import { silentLogger } from '@weft/common';
import { IdentityAllocator, workloadLabels, type LabelSet } from '@weft/identity';
import { until, useTestEtcd } from '@weft/kvstore';
import { ResourceStore, type Resource } from '@weft/resources';
import { validateAgentConfig } from './config.js';
import type { Endpoint } from './endpoint-manager.js';
import { CIDR_ID_MAX, CIDR_ID_MIN } from './cidr-identities.js';
import { MemoryDatapath } from './memory-datapath.js';
import { PolicyEngine } from './policy-engine.js';

/** The engine resolves only what a change can touch (real etcd for identities and policies). */
describe('policy engine: only what changed is recomputed @etcd', function () {
  this.timeout(60_000);
  const t = useTestEtcd('policy-engine-test');

  it('resolves the endpoints whose selections or policies changed, and no other', async () => {
    const allocator = await new IdentityAllocator({ client: t.kv, clusterId: 1, clusterName: 'c1', node: 'n1', logger: silentLogger() }).start();
    const store = new ResourceStore(t.kv);
    const datapath = new MemoryDatapath();
    const identity = async (labels: Record<string, string>): Promise<number> => (await allocator.allocate(workloadLabels({ cluster: 'c1', namespace: 'demo', labels }))).id;
    const ep = async (epId: number, labels: Record<string, string>): Promise<Endpoint> => ({
      epId, containerId: `c${epId}`, namespace: 'demo', pod: `p${epId}`, ip: `10.1.0.${epId}`, hostIf: `lxc${epId}`, podIf: 'eth0', netns: '-', identity: await identity(labels), labels, namespaceLabels: {}, mac: '02:00:00:00:00:01', nodeMac: '02:00:00:00:00:02',
    });
    const endpoints = [await ep(1, { app: 'a' }), await ep(2, { app: 'b' }), await ep(3, { app: 'c' })];
    const policy = (name: string, app: string, from: Record<string, string>): Resource =>
      ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'demo', labels: {}, annotations: {} }, spec: { podSelector: { matchLabels: { app } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: from } }] }] } }) as unknown as Resource;
    await store.apply([policy('a', 'a', { role: 'client' }), policy('b', 'b', { role: 'admin' })]);
    const engine = new PolicyEngine(validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n1', etcd: [t.etcd.endpoint], nodeIp: '192.0.2.1', podCidr: '10.1.0.0/24', bpfDir: '/nonexistent' }), store, allocator, datapath, () => endpoints, silentLogger());
    const resolved: number[] = [];
    const apply = engine.apply.bind(engine);
    engine.apply = async (e: Endpoint) => {
      resolved.push(e.epId);
      return apply(e);
    };
    // Endpoints given only the entries a selection diff changed, and how many.
    const updated: Array<{ epId: number; upsert: number; remove: number }> = [];
    const update = datapath.updateEndpointPolicy.bind(datapath);
    datapath.updateEndpointPolicy = async (e, changes, rev) => {
      updated.push({ epId: e.epId, upsert: changes.upsert.length, remove: changes.remove.length });
      return update(e, changes, rev);
    };
    try {
      await engine.start();
      engine.schedule();
      await until(() => [1, 2, 3].every((id) => engine.endpointState(id)?.state === 'ok'), 'every endpoint programmed');
      const settle = async (what: string, done: () => boolean): Promise<number[]> => {
        await until(done, what);
        await new Promise((r) => setTimeout(r, 300)); // anything else the change scheduled
        return resolved.splice(0).sort();
      };
      resolved.splice(0);

      // A new client identity: only A's selector selects it, and A gets its one entry without a resolution.
      const client = await identity({ role: 'client', n: '1' });
      assert.deepEqual(await settle('A admits the new client', () => datapath.policies.get(1)!.some((e) => e.identity === client)), []);
      assert.deepEqual(updated.splice(0), [{ epId: 1, upsert: 1, remove: 0 }]);
      assert.ok(!datapath.policies.get(2)!.some((e) => e.identity === client));

      // A new policy for C: only C.
      await store.apply([policy('c', 'c', { role: 'admin' })]);
      assert.deepEqual(await settle('C enforces', () => engine.endpointState(3)?.ingressEnforced === true), [3]);

      // B's policy removed: only B.
      await store.delete([{ kind: 'NetworkPolicy', metadata: { name: 'b', namespace: 'demo' } }]);
      assert.deepEqual(await settle('B back to allow-all', () => engine.endpointState(2)?.ingressEnforced === false), [2]);

      // An identity nobody selects: nobody.
      await identity({ role: 'bystander' });
      assert.deepEqual(await settle('quiet', () => true), []);
      assert.deepEqual(updated.splice(0), []);
    } finally {
      await engine.stop();
      await allocator.stop({ release: false });
    }
  });

  it("takes remote clusters' identities by event: a new one is admitted where selected, a removed one goes", async () => {
    const allocator = await new IdentityAllocator({ client: t.kv, clusterId: 1, clusterName: 'c1', node: 'n2', logger: silentLogger() }).start();
    const store = new ResourceStore(t.kv);
    const datapath = new MemoryDatapath();
    const remote = new Map<number, LabelSet>();
    const a: Endpoint = { epId: 1, containerId: 'c1', namespace: 'demo', pod: 'a', ip: '10.1.0.1', hostIf: 'lxc1', podIf: 'eth0', netns: '-', identity: (await allocator.allocate(workloadLabels({ cluster: 'c1', namespace: 'demo', labels: { app: 'remote-in' } }))).id, labels: { app: 'remote-in' }, namespaceLabels: {}, mac: '02:00:00:00:00:01', nodeMac: '02:00:00:00:00:02' };
    await store.apply([
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'from-west', namespace: 'demo', labels: {}, annotations: {} }, spec: { podSelector: { matchLabels: { app: 'remote-in' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: 'api', 'weft.io/cluster': 'west' } } }] }] } } as unknown as Resource,
    ]);
    const engine = new PolicyEngine(validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n2', etcd: [t.etcd.endpoint], nodeIp: '192.0.2.2', podCidr: '10.1.0.0/24', bpfDir: '/nonexistent' }), store, allocator, datapath, () => [a], silentLogger(), () => remote);
    const admits = (id: number): boolean => (datapath.policies.get(1) ?? []).some((e) => !e.egress && e.identity === id);
    try {
      await engine.start();
      engine.schedule();
      await until(() => engine.endpointState(1)?.ingressEnforced === true, 'the policy in force');
      // Both changes reach the map as the one entry they change, without a resolution of the endpoint.
      let resolutions = 0;
      const apply = engine.apply.bind(engine);
      engine.apply = async (e: Endpoint) => {
        resolutions++;
        return apply(e);
      };
      const updates: string[] = [];
      const update = datapath.updateEndpointPolicy.bind(datapath);
      datapath.updateEndpointPolicy = async (e, changes, rev) => {
        updates.push(`${e.epId} +${changes.upsert.map((x) => x.identity).join()} -${changes.remove.map((x) => x.identity).join()}`);
        return update(e, changes, rev);
      };
      const west = (2 << 16) | 300;
      remote.set(west, workloadLabels({ cluster: 'west', namespace: 'demo', labels: { app: 'api' } }));
      engine.remoteIdentityChanged(west);
      await until(() => admits(west), 'the remote identity admitted');
      remote.delete(west);
      engine.remoteIdentityChanged(west);
      await until(() => !admits(west), 'the removed remote identity gone');
      assert.deepEqual(updates, [`1 +${west} -`, `1 + -${west}`]);
      assert.equal(resolutions, 0);
    } finally {
      await engine.stop();
      await allocator.stop({ release: false });
    }
  });

  it('writes a policy CIDR to the datapath before any policy names it, and removes it only once none does', async () => {
    const allocator = await new IdentityAllocator({ client: t.kv, clusterId: 1, clusterName: 'c1', node: 'n3', logger: silentLogger() }).start();
    const store = new ResourceStore(t.kv);
    /** Checks, at each write, that every CIDR identity a policy names is in weft_policy_cidrs. */
    class CheckedDatapath extends MemoryDatapath {
      readonly violations: string[] = [];
      private check(when: string): void {
        const known = new Set(this.policyCidrs.values());
        for (const [epId, entries] of this.policies) {
          for (const e of entries) if (e.identity >= CIDR_ID_MIN && e.identity <= CIDR_ID_MAX && !known.has(e.identity)) this.violations.push(`${when}: endpoint ${epId} names CIDR identity ${e.identity}, unknown to the datapath`);
        }
      }
      override async programEndpoint(...args: Parameters<MemoryDatapath['programEndpoint']>) {
        const out = await super.programEndpoint(...args);
        this.check(`programming endpoint ${args[0].epId}`);
        return out;
      }
      override async syncPolicyCidrs(...args: Parameters<MemoryDatapath['syncPolicyCidrs']>) {
        await super.syncPolicyCidrs(...args);
        this.check(`syncPolicyCidrs ${args[1]}`);
      }
    }
    const datapath = new CheckedDatapath();
    const a: Endpoint = { epId: 1, containerId: 'c1', namespace: 'demo', pod: 'a', ip: '10.1.0.1', hostIf: 'lxc1', podIf: 'eth0', netns: '-', identity: (await allocator.allocate(workloadLabels({ cluster: 'c1', namespace: 'demo', labels: { app: 'cidr-out' } }))).id, labels: { app: 'cidr-out' }, namespaceLabels: {}, mac: '02:00:00:00:00:01', nodeMac: '02:00:00:00:00:02' };
    const egressTo = (name: string, cidr: string, except: string[]): Resource =>
      ({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace: 'demo', labels: {}, annotations: {} }, spec: { podSelector: { matchLabels: { app: 'cidr-out' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr, except } }] }] } }) as unknown as Resource;
    await store.apply([egressTo('to-block', '10.9.0.0/16', ['10.9.1.0/24'])]);
    const engine = new PolicyEngine(validateAgentConfig({ cluster: 'c1', clusterId: 1, node: 'n3', etcd: [t.etcd.endpoint], nodeIp: '192.0.2.3', podCidr: '10.1.0.0/24', bpfDir: '/nonexistent' }), store, allocator, datapath, () => [a], silentLogger());
    const cidrs = (): string[] => [...datapath.policyCidrs.keys()].sort();
    try {
      await engine.start();
      engine.schedule();
      await until(() => engine.endpointState(1)?.egressEnforced === true, 'the policy in force');
      assert.deepEqual(cidrs(), ['10.9.0.0/16', '10.9.1.0/24']);
      const block = datapath.policyCidrs.get('10.9.0.0/16')!;
      assert.ok(datapath.policies.get(1)!.some((e) => e.egress && e.identity === block), 'the block\'s identity is allowed');
      assert.ok(!datapath.policies.get(1)!.some((e) => e.identity === datapath.policyCidrs.get('10.9.1.0/24')), 'its except is not');

      // Another block in, the first one out: the old identity goes from the datapath after the policy stops naming it.
      await store.apply([egressTo('to-other', '10.8.0.0/16', [])]);
      await until(() => cidrs().includes('10.8.0.0/16') && datapath.policies.get(1)!.some((e) => e.identity === datapath.policyCidrs.get('10.8.0.0/16')), 'the second block allowed');
      await store.delete([{ kind: 'NetworkPolicy', metadata: { name: 'to-block', namespace: 'demo' } }]);
      await until(() => cidrs().join() === '10.8.0.0/16', 'only the second block left');
      assert.ok(!datapath.policies.get(1)!.some((e) => e.identity === block), 'the first block no longer allowed');
      assert.deepEqual(datapath.violations, []);
    } finally {
      await engine.stop();
      await allocator.stop({ release: false });
    }
  });
});
