import assert from 'node:assert/strict';
import { useTestEtcd, until } from '@weft/kvstore';
import { once } from 'node:events';
import { silentLogger } from '@weft/common';
import { KvClient, KvstoreUnavailableError, Session } from '@weft/kvstore';
import { IdentityAllocator, type AllocatorOptions } from './allocator.js';
import { EtcdIdentityBackend } from './etcd-backend.js';
import { AllocatorStoppedError, IdentityExhaustedError, IdentityNotHeldError, InvalidClusterIdError, InvalidLabelError } from './errors.js';
import { IdentityLayout } from './layout.js';
import { LabelSet } from './labels.js';
import { ReservedIdentity, clusterIdOf } from './numeric.js';


/** Counts the backend's etcd transactions, to prove cached paths make none. */
class CountingBackend extends EtcdIdentityBackend {
  writes = 0;
  override claim(...args: Parameters<EtcdIdentityBackend['claim']>) {
    this.writes++;
    return super.claim(...args);
  }
  override create(...args: Parameters<EtcdIdentityBackend['create']>) {
    this.writes++;
    return super.create(...args);
  }
}

describe('IdentityAllocator @etcd', function () {
  const t = useTestEtcd('allocator-test');
  const layout = new IdentityLayout();
  const started: IdentityAllocator[] = [];
  const clients: KvClient[] = [];

  async function allocator(node: string, extra: Partial<AllocatorOptions> = {}): Promise<IdentityAllocator> {
    const client = new KvClient({ endpoints: [t.etcd.endpoint] });
    clients.push(client);
    const a = new IdentityAllocator({ client, clusterId: 5, clusterName: 'east', node, sessionTtlSeconds: 2, logger: silentLogger(), ...extra });
    started.push(a);
    return a.start();
  }

  afterEach(async () => {
    await Promise.all(started.splice(0).map((a) => a.stop().catch(() => undefined)));
    clients.splice(0).forEach((c) => c.close());
    await t.kv.deletePrefix(layout.root);
  });

  it('gives the same labels the same id on every node, in the cluster range', async () => {
    const [a, b] = [await allocator('node-a'), await allocator('node-b')];
    const x = await a.allocate({ app: 'web', tier: 'front' });
    const y = await b.allocate(['k8s:tier=front', 'k8s:app=web']);
    const z = await b.allocate({ app: 'db' });
    assert.equal(x.id, y.id);
    assert.equal(x.isNew, true);
    assert.equal(y.isNew, false);
    assert.notEqual(z.id, x.id);
    assert.equal(clusterIdOf(x.id), 5);
    assert.equal(x.labels.key, 'k8s:app=web;k8s:tier=front;k8s:weft.io/cluster=east');
    // Both nodes hold a reference bound to their own lease.
    assert.deepEqual((await t.kv.list(layout.refsPrefix)).items.map((i) => i.key).filter((k) => layout.parseRef(k)?.id === String(x.id)).sort(), [layout.ref(x.id, 'node-a'), layout.ref(x.id, 'node-b')]);
    await until(() => a.lookupById(z.id)?.key === z.labels.key, 'node a learning node b identity');
    assert.equal(a.lookupByLabels({ app: 'db' }), z.id);
  });

  it("announces the node's own new identities to its cache's listeners, once", async () => {
    const a = await allocator('node-a');
    const seen: string[] = [];
    a.cache.on('change', (c: { type: string; id: number }) => seen.push(`${c.type} ${c.id}`));
    const x = await a.allocate({ app: 'announced' });
    assert.deepEqual(seen, [`upsert ${x.id}`]);
    // The watch brings the same identity back: known, not announced twice.
    const b = await allocator('node-b');
    await b.allocate({ app: 'other' });
    await until(() => a.lookupByLabels({ app: 'other' }) !== undefined, 'node a learning node b identity');
    assert.equal(seen.filter((s) => s === `upsert ${x.id}`).length, 1);
  });

  it('answers repeated local use from its reference count without etcd', async () => {
    const client = new KvClient({ endpoints: [t.etcd.endpoint] });
    clients.push(client);
    const backend = new CountingBackend(client, layout);
    const a = await allocator('node-a', { client, backend });
    const first = await a.allocate({ app: 'web' });
    for (let i = 0; i < 100; i++) assert.equal((await a.allocate({ app: 'web' })).id, first.id);
    assert.equal(backend.writes, 1);
    assert.deepEqual(a.held(), [{ id: first.id, labels: first.labels.key, refs: 101 }]);
    for (let i = 0; i < 100; i++) assert.equal(await a.release({ app: 'web' }), false);
    assert.ok(await t.kv.get(layout.ref(first.id, 'node-a')), 'still referenced');
    assert.equal(await a.release({ app: 'web' }), true);
    assert.equal(await t.kv.get(layout.ref(first.id, 'node-a')), undefined);
    await assert.rejects(a.release({ app: 'web' }), IdentityNotHeldError);
  });

  it('resolves reserved labels without etcd', async () => {
    const a = await allocator('node-a');
    assert.equal((await a.allocate(['reserved:host'])).id, ReservedIdentity.host);
    assert.equal((await a.allocate(LabelSet.reserved('world'))).id, 2);
    assert.equal(a.lookupById(6)?.key, 'reserved:remote-node');
    await assert.rejects(a.allocate(['reserved:host', 'k8s:app=x']), /a reserved label must stand alone/);
  });

  it('frees a dead node\'s references with its lease', async () => {
    const a = await allocator('node-a');
    const { id } = await a.allocate({ app: 'ephemeral' });
    assert.ok(await t.kv.get(layout.ref(id, 'node-a')));
    await a.stop({ release: false }); // dies without cleaning up
    await until(async () => (await t.kv.get(layout.ref(id, 'node-a'))) === undefined, 'the lease to expire', 10_000);
    assert.ok(await t.kv.get(layout.master(id)), 'the identity itself stays until gc');
  });

  it('rejects bad input before touching etcd', async () => {
    const client = new KvClient({ endpoints: [t.etcd.endpoint] });
    clients.push(client);
    for (const clusterId of [0, 256]) {
      assert.throws(() => new IdentityAllocator({ client, clusterId, clusterName: 'east', node: 'n' }), InvalidClusterIdError);
    }
    assert.throws(() => new IdentityAllocator({ client, clusterId: 1, clusterName: 'east', node: 'bad/node' }), /node name "bad\/node"/);
    const a = await allocator('node-a');
    await assert.rejects(a.allocate({ app: 'x', 'weft.io/cluster': 'west' }), (err: unknown) => {
      assert.ok(err instanceof InvalidLabelError);
      assert.match(err.message, /label weft\.io\/cluster=west does not match this cluster \(east\)/);
      return true;
    });
    await assert.rejects(a.allocate({ 'bad key!': 'x' }), InvalidLabelError);
    assert.equal((await t.kv.list(layout.root)).items.length, 0, 'nothing was written');
  });

  it('reports exhaustion of the range clearly', async () => {
    const a = await allocator('node-a', { localIdMin: 256, localIdMax: 259 });
    const ids = new Set<number>();
    for (let i = 0; i < 4; i++) ids.add((await a.allocate({ app: `a${i}` })).id);
    assert.equal(ids.size, 4);
    await assert.rejects(a.allocate({ app: 'one-too-many' }), (err: unknown) => {
      assert.ok(err instanceof IdentityExhaustedError);
      assert.match(err.message, /all 4 identities of cluster 5 \(327936-327939\) are in use/);
      return true;
    });
    assert.equal(a.heldCount, 4, 'the failed call left nothing behind');
  });

  it('fails with a typed error when etcd is down, changes nothing, and works once it is back', async () => {
    const client = new KvClient({ endpoints: [t.etcd.endpoint], retry: { maxAttempts: 2, initialMs: 10, maxMs: 20 }, requestTimeoutMs: 1000 });
    clients.push(client);
    const a = await allocator('node-a', { client, sessionTtlSeconds: 30 });
    const held = await a.allocate({ app: 'before' });
    await t.etcd.kill();
    try {
      await assert.rejects(a.allocate({ app: 'during' }), KvstoreUnavailableError);
      assert.deepEqual(a.held().map((h) => h.labels), [held.labels.key]);
      // Held identities keep answering locally while etcd is away.
      assert.equal((await a.allocate({ app: 'before' })).id, held.id);
    } finally {
      await t.etcd.start();
    }
    await until(async () => {
      try {
        await a.allocate({ app: 'during' });
        return true;
      } catch (err) {
        if (err instanceof KvstoreUnavailableError) return false;
        throw err;
      }
    }, 'allocation after etcd returned');
  });

  it('finishes allocations in flight across an etcd restart without duplicates', async () => {
    const [a, b] = [await allocator('node-a', { sessionTtlSeconds: 30 }), await allocator('node-b', { sessionTtlSeconds: 30 })];
    const sets = Array.from({ length: 60 }, (_, i) => ({ app: `svc-${i % 40}` }));
    const inflight = sets.map((s, i) => (i % 2 ? a : b).allocate(s));
    setTimeout(() => void t.etcd.kill().then(() => new Promise((r) => setTimeout(r, 500))).then(() => t.etcd.start()), 5);
    const results = await Promise.all(inflight);
    const byLabels = new Map<string, number>();
    for (const r of results) {
      const prev = byLabels.get(r.labels.key);
      assert.ok(prev === undefined || prev === r.id, `one id for ${r.labels.key}`);
      byLabels.set(r.labels.key, r.id);
    }
    assert.equal(new Set(byLabels.values()).size, 40, 'forty label sets, forty ids');
    assert.equal((await t.kv.list(layout.mastersPrefix)).items.length, 40);
  });

  it('restores its references under a new lease after losing its session', async () => {
    const a = await allocator('node-a', { sessionTtlSeconds: 1 });
    const { id } = await a.allocate({ app: 'survivor' });
    const lost = once(a, 'sessionLost');
    const recovered = once(a, 'recovered');
    await t.etcd.kill();
    await lost;
    await new Promise((r) => setTimeout(r, 1500));
    await t.etcd.start();
    await recovered;
    await until(async () => (await t.kv.get(layout.ref(id, 'node-a'))) !== undefined, 'reference restored');
    assert.equal((await t.kv.get(layout.master(id)))!.value.toString(), 'k8s:app=survivor;k8s:weft.io/cluster=east');
    assert.equal(a.lookupByLabels({ app: 'survivor' }), id);
  });

  it("binds its references to the caller's session, never a lease of its own, and restores them under the next one", async () => {
    const client = new KvClient({ endpoints: [t.etcd.endpoint] });
    clients.push(client);
    const first = await Session.create(client, { ttlSeconds: 1, logger: silentLogger() });
    const a = await allocator('node-a', { client, session: first });
    const { id } = await a.allocate({ app: 'shared-lease' });
    assert.equal((await t.kv.get(layout.ref(id, 'node-a')))!.lease, first.leaseId, 'the reference lives on the caller\'s lease');
    const lost = once(a, 'sessionLost');
    await t.etcd.kill();
    await lost;
    await new Promise((r) => setTimeout(r, 1500));
    await t.etcd.start();
    // No session of its own: an allocation waits for the owner's next one.
    const waiting = a.allocate({ app: 'after-loss' });
    await until(async () => (await t.kv.get(layout.ref(id, 'node-a'))) === undefined, 'the old lease to expire with its reference', 10_000);
    const next = await Session.create(client, { ttlSeconds: 5, logger: silentLogger() });
    const recovered = once(a, 'recovered');
    a.useSession(next);
    await recovered;
    assert.equal((await t.kv.get(layout.ref(id, 'node-a')))!.lease, next.leaseId, 'restored under the next session');
    const later = await waiting;
    assert.equal((await t.kv.get(layout.ref(later.id, 'node-a')))!.lease, next.leaseId);
    await a.stop();
    assert.ok(next.isActive, 'stopping the allocator leaves the owner\'s session alone');
    await next.close();
  });

  it('restores master and index keys deleted behind its back', async () => {
    const [a, b] = [await allocator('node-a'), await allocator('node-b')];
    const { id, labels } = await a.allocate({ app: 'fragile' });
    await t.kv.delete(layout.master(id));
    await until(async () => (await t.kv.get(layout.master(id)))?.value.toString() === labels.key, 'master restored by its holder');
    // Once every node has seen the identity, losing the index cannot split it.
    await until(() => b.cache.lookupByLabels(labels.key) === id, 'node b to see the restored master');
    await t.kv.delete(layout.index(labels.key));
    const again = await b.allocate({ app: 'fragile' });
    assert.equal(again.id, id, 'a second node repairs the index instead of creating a second id');
    assert.equal((await t.kv.get(layout.index(labels.key)))!.value.toString(), String(id));
  });

  it('skips and reports corrupt entries without crashing the cache', async () => {
    await t.kv.put(layout.master(327936), 'k8s:app=valid;k8s:weft.io/cluster=east');
    await t.kv.put(`${layout.mastersPrefix}not-a-number`, 'k8s:app=x');
    await t.kv.put(layout.master(327937), '%%% not labels');
    await t.kv.put(layout.master((9 << 16) | 300), 'k8s:app=other-cluster'); // outside cluster 5
    await t.kv.put(layout.index('k8s:app=broken;k8s:weft.io/cluster=east'), 'garbage');
    const a = await allocator('node-a');
    assert.equal(a.cache.size, 1);
    assert.equal(a.cache.invalid.size, 3);
    assert.match([...a.cache.invalid.values()].join('\n'), /not an identity of cluster 5/);
    // A corrupt index entry is dropped and the labels get a proper identity.
    const fixed = await a.allocate({ app: 'broken' });
    assert.equal((await t.kv.get(layout.index(fixed.labels.key)))!.value.toString(), String(fixed.id));
    // A value turning corrupt later is reported the same way.
    const invalid = once(a.cache, 'invalid');
    await t.kv.put(layout.master(327936), '\u0000');
    await invalid;
    assert.equal(a.cache.lookupById(327936), undefined);
  });

  it('refuses calls once stopped', async () => {
    const a = await allocator('node-a');
    await a.stop();
    await assert.rejects(a.allocate({ app: 'late' }), AllocatorStoppedError);
  });
});
