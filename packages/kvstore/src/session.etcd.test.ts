import assert from 'node:assert/strict';
import { useTestEtcd } from './testing.js';
import { once } from 'node:events';
import { Session } from './session.js';
import { SessionLostError } from './errors.js';

describe('Session @etcd', function () {
  const t = useTestEtcd('session-test');


  it('binds keys to its lease; closing revokes them', async () => {
    const s = await Session.create(t.kv, { ttlSeconds: 5 });
    assert.equal(s.state, 'active');
    await t.kv.put('s/owned', 'x', { lease: s.leaseId });
    assert.ok(await t.kv.get('s/owned'));
    await s.close();
    assert.equal(s.state, 'closed');
    assert.equal(s.signal.aborted, true);
    assert.equal(await t.kv.get('s/owned'), undefined);
  });

  it('keeps the lease alive beyond its TTL', async () => {
    const s = await Session.create(t.kv, { ttlSeconds: 1 });
    await t.kv.put('s/kept', 'x', { lease: s.leaseId });
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(s.state, 'active');
    assert.ok(await t.kv.get('s/kept'), 'the key outlived the TTL because of keep-alives');
    await s.close();
  });

  it('tells its owner once the lease cannot have survived an etcd outage', async () => {
    const s = await Session.create(t.kv, { ttlSeconds: 1 });
    const lost = once(s, 'lost');
    const t0 = Date.now();
    await t.etcd.kill();
    try {
      const [err] = (await lost) as [SessionLostError];
      assert.ok(err instanceof SessionLostError);
      assert.equal(err.code, 'WEFT_ERR_KVSTORE_SESSION_LOST');
      assert.ok(Date.now() - t0 < 4000, 'told within a few seconds of the TTL');
      assert.equal(s.state, 'lost');
      assert.equal(s.signal.aborted, true);
    } finally {
      await t.etcd.start();
    }
    const fresh = await Session.create(t.kv, { ttlSeconds: 2 });
    assert.notEqual(fresh.leaseId, s.leaseId);
    await fresh.close();
  });
});
