import assert from 'node:assert/strict';
import { useTestEtcd } from './testing.js';
import { KvClient, cmp, op } from './client.js';
import { KvstoreUnavailableError, KvstoreClosedError } from './errors.js';

describe('KvClient @etcd', function () {
  const t = useTestEtcd('kv-client-test');


  it('puts, gets, lists and counts under a prefix at one revision', async () => {
    await t.kv.put('t/list/a', '1');
    await t.kv.put('t/list/b', '2');
    await t.kv.put('t/listx', 'not under t/list/');
    const got = await t.kv.get('t/list/a');
    assert.equal(got?.value.toString(), '1');
    assert.ok(got!.createRevision > 0 && got!.modRevision === got!.createRevision);
    const listed = await t.kv.list('t/list/');
    assert.deepEqual(listed.items.map((i) => i.key), ['t/list/a', 't/list/b']);
    assert.ok(listed.revision >= got!.modRevision);
    assert.equal(await t.kv.count('t/list/'), 2);
    assert.equal(await t.kv.deletePrefix('t/list/'), 2);
    assert.equal(await t.kv.get('t/list/a'), undefined);
  });

  it('applies a compare-and-swap only when every condition holds', async () => {
    const create = () =>
      t.kv.txn('create once', { compare: [cmp.absent('t/cas')], success: [op.put('t/cas', 'first')], failure: [op.get('t/cas')] });
    const first = await create();
    assert.equal(first.succeeded, true);
    const second = await create();
    assert.equal(second.succeeded, false);
    assert.equal(second.gets[0]![0]!.value.toString(), 'first', 'the failure branch reads the winner');

    const current = (await t.kv.get('t/cas'))!;
    const stale = await t.kv.txn('swap stale', { compare: [cmp.modRevisionIs('t/cas', current.modRevision - 1)], success: [op.put('t/cas', 'lost')] });
    assert.equal(stale.succeeded, false);
    const fresh = await t.kv.txn('swap fresh', { compare: [cmp.modRevisionIs('t/cas', current.modRevision), cmp.valueIs('t/cas', 'first')], success: [op.put('t/cas', 'second'), op.put('t/cas2', 'x')] });
    assert.equal(fresh.succeeded, true);
    assert.equal((await t.kv.get('t/cas'))!.value.toString(), 'second');
    assert.equal((await t.kv.get('t/cas2'))!.value.toString(), 'x');
  });

  it('reports etcd being down as a typed, retryable error, and works again when it is back', async () => {
    const impatient = new KvClient({ endpoints: [t.etcd.endpoint], retry: { maxAttempts: 2, initialMs: 10, maxMs: 20 }, requestTimeoutMs: 1000 });
    try {
      await t.etcd.kill();
      await assert.rejects(impatient.put('t/down', 'x'), (err: unknown) => {
        assert.ok(err instanceof KvstoreUnavailableError, String(err));
        assert.equal(err.code, 'WEFT_ERR_KVSTORE_UNAVAILABLE');
        assert.match(err.message, /Cannot put key t\/down: etcd at 127\.0\.0\.1:\d+ is unavailable/);
        return true;
      });
      // A patient client rides out the restart.
      const patient = t.kv.put('t/down', 'y');
      setTimeout(() => void t.etcd.start(), 300);
      await patient;
      assert.equal((await t.kv.get('t/down'))!.value.toString(), 'y');
    } finally {
      impatient.close();
      if (!t.etcd.running) await t.etcd.start();
    }
  });

  it('refuses requests after close with a typed error', async () => {
    const c = new KvClient({ endpoints: [t.etcd.endpoint] });
    c.close();
    await assert.rejects(c.get('x'), KvstoreClosedError);
  });
});
