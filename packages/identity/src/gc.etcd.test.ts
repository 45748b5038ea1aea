import assert from 'node:assert/strict';
import { useTestEtcd } from '@weft/kvstore';
import { silentLogger } from '@weft/common';
import { KvClient, type TxnResult } from '@weft/kvstore';
import { IdentityAllocator } from './allocator.js';
import { IdentityGarbageCollector } from './gc.js';
import { IdentityLayout } from './layout.js';

/** A client that runs a hook just before the gc's delete transaction: the race window, made certain. */
class RacingClient extends KvClient {
  beforeDelete: (() => Promise<void>) | undefined;
  override async txn(action: string, request: Parameters<KvClient['txn']>[1], options?: Parameters<KvClient['txn']>[2]): Promise<TxnResult> {
    if (action.startsWith('delete unused identity') && this.beforeDelete) {
      const hook = this.beforeDelete;
      this.beforeDelete = undefined;
      await hook();
    }
    return super.txn(action, request, options);
  }
}

describe('IdentityGarbageCollector @etcd', function () {
  const t = useTestEtcd('gc-test');
  const layout = new IdentityLayout();


  async function allocator(node: string, client = new KvClient({ endpoints: [t.etcd.endpoint] })): Promise<IdentityAllocator> {
    return new IdentityAllocator({ client, clusterId: 2, clusterName: 'west', node, sessionTtlSeconds: 2, logger: silentLogger() }).start();
  }

  it('keeps references per node (a prefix etcd RBAC can grant) and still counts legacy references', async () => {
    const a = await allocator('node1');
    const held = await a.allocate({ app: 'held' });
    // The reference is under node1's own prefix; node10's prefix does not contain it.
    assert.ok(await t.kv.get(`${layout.nodeRefsPrefix('node1')}${held.id}`));
    assert.equal(layout.ref(held.id, 'node1').startsWith(layout.nodeRefsPrefix('node10')), false);
    assert.deepEqual(layout.parseRef(layout.ref(held.id, 'node1')), { id: String(held.id), node: 'node1' });
    // An identity held only through an older agent's reference (refs/<id>/<node>) is never collected.
    const legacy = await a.allocate({ app: 'legacy' });
    await a.release({ app: 'legacy' });
    await t.kv.put(`${layout.legacyRefsPrefix}${legacy.id}/old-node`, legacy.labels.key);
    assert.deepEqual(layout.parseRef(`${layout.legacyRefsPrefix}${legacy.id}/old-node`), { id: String(legacy.id), node: 'old-node' });
    const gc = new IdentityGarbageCollector({ client: t.kv, logger: silentLogger() });
    await gc.runOnce();
    assert.deepEqual((await gc.runOnce()).deleted, []);
    assert.ok(await t.kv.get(layout.master(legacy.id)));
    await t.kv.delete(`${layout.legacyRefsPrefix}${legacy.id}/old-node`);
    await gc.runOnce();
    assert.deepEqual((await gc.runOnce()).deleted, [legacy.id]);
    await a.stop();
    await t.kv.deletePrefix(layout.root);
  });

  it('deletes an unreferenced identity only on the second round, never a referenced one', async () => {
    const a = await allocator('n1');
    const used = await a.allocate({ app: 'used' });
    const unused = await a.allocate({ app: 'unused' });
    await a.release({ app: 'unused' });
    const gc = new IdentityGarbageCollector({ client: t.kv, logger: silentLogger() });
    const r1 = await gc.runOnce();
    assert.deepEqual({ marked: r1.marked, deleted: r1.deleted, alive: r1.alive }, { marked: 1, deleted: [], alive: 1 });
    const r2 = await gc.runOnce();
    assert.deepEqual(r2.deleted, [unused.id]);
    assert.equal(await t.kv.get(layout.master(unused.id)), undefined);
    assert.equal(await t.kv.get(layout.index(unused.labels.key)), undefined);
    assert.ok(await t.kv.get(layout.master(used.id)));
    // The label set gets a fresh identity later, as a new allocation.
    const back = await a.allocate({ app: 'unused' });
    assert.equal(back.isNew, true);
    await a.stop();
    await t.kv.deletePrefix(layout.root);
  });

  it('keeps an identity claimed between its mark and its sweep', async () => {
    const a = await allocator('n1');
    const { id } = await a.allocate({ app: 'flaky' });
    await a.release({ app: 'flaky' });
    const gc = new IdentityGarbageCollector({ client: t.kv, logger: silentLogger() });
    assert.equal((await gc.runOnce()).marked, 1);
    assert.equal((await a.allocate({ app: 'flaky' })).id, id);
    await a.release({ app: 'flaky' }); // referenced and released again: the index revision moved
    const r2 = await gc.runOnce();
    assert.deepEqual(r2.deleted, []);
    assert.equal(r2.revived, 1);
    await a.stop();
    await t.kv.deletePrefix(layout.root);
  });

  it('loses the race against a claim landing right before its delete', async () => {
    const a = await allocator('n1');
    const b = await allocator('n2');
    const { id } = await a.allocate({ app: 'contested' });
    await a.release({ app: 'contested' });
    const racing = new RacingClient({ endpoints: [t.etcd.endpoint] });
    const gc = new IdentityGarbageCollector({ client: racing, logger: silentLogger() });
    await gc.runOnce();
    let claimed = 0;
    racing.beforeDelete = async () => {
      claimed = (await b.allocate({ app: 'contested' })).id;
    };
    const r2 = await gc.runOnce();
    assert.equal(claimed, id, 'the claim reused the marked identity');
    assert.equal(r2.raced, 1);
    assert.deepEqual(r2.deleted, []);
    assert.ok(await t.kv.get(layout.master(id)), 'an identity in use was not deleted');
    assert.ok(await t.kv.get(layout.ref(id, 'n2')));
    racing.close();
    await Promise.all([a.stop(), b.stop()]);
    await t.kv.deletePrefix(layout.root);
  });

  it('caps deletions per round', async () => {
    const a = await allocator('n1');
    for (let i = 0; i < 5; i++) {
      await a.allocate({ app: `bulk-${i}` });
      await a.release({ app: `bulk-${i}` });
    }
    const gc = new IdentityGarbageCollector({ client: t.kv, maxDeletesPerRound: 2, logger: silentLogger() });
    await gc.runOnce();
    assert.equal((await gc.runOnce()).deleted.length, 2);
    assert.equal((await gc.runOnce()).deleted.length, 2);
    assert.equal((await gc.runOnce()).deleted.length, 1);
    await a.stop();
    await t.kv.deletePrefix(layout.root);
  });
});
