import assert from 'node:assert/strict';
import { useTestEtcd } from './testing.js';
import { Mutex } from './mutex.js';
import { Session } from './session.js';
import { LockTimeoutError } from './errors.js';

describe('Mutex @etcd', function () {
  const t = useTestEtcd('mutex-test');


  it('admits one holder at a time among contenders with their own sessions', async () => {
    const sessions = await Promise.all([1, 2, 3, 4, 5].map(() => Session.create(t.kv, { ttlSeconds: 5 })));
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all(
      sessions.map(async (s, i) => {
        for (let round = 0; round < 3; round++) {
          const h = await new Mutex(t.kv, s, 'locks/critical').lock();
          inside++;
          maxInside = Math.max(maxInside, inside);
          order.push(i);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
          await h.unlock();
        }
      }),
    );
    assert.equal(maxInside, 1);
    assert.equal(order.length, 15);
    await Promise.all(sessions.map((s) => s.close()));
  });

  it('passes the lock on when the holder dies (its lease revoked)', async () => {
    const holder = await Session.create(t.kv, { ttlSeconds: 5 });
    const waiter = await Session.create(t.kv, { ttlSeconds: 5 });
    await new Mutex(t.kv, holder, 'locks/handover').lock();
    const waiting = new Mutex(t.kv, waiter, 'locks/handover').lock();
    await new Promise((r) => setTimeout(r, 100));
    await holder.close();
    const h = await waiting;
    assert.equal(h.key, `locks/handover/${waiter.leaseId}`);
    await h.unlock();
    await waiter.close();
  });

  it('times out with a typed error and leaves no key behind', async () => {
    const a = await Session.create(t.kv, { ttlSeconds: 5 });
    const b = await Session.create(t.kv, { ttlSeconds: 5 });
    const held = await new Mutex(t.kv, a, 'locks/timeout').lock();
    await assert.rejects(new Mutex(t.kv, b, 'locks/timeout').lock({ timeoutMs: 200 }), (err: unknown) => {
      assert.ok(err instanceof LockTimeoutError);
      assert.match(err.message, /Cannot acquire lock "locks\/timeout": not granted within 200 ms/);
      return true;
    });
    assert.deepEqual((await t.kv.list('locks/timeout/')).items.map((i) => i.key), [held.key]);
    await held.unlock();
    await a.close();
    await b.close();
  });
});
