import assert from 'node:assert/strict';
import { useTestEtcd } from './testing.js';
import { clearSynced, markSynced, readSynced, syncedKey } from './synced.js';
import { Session } from './session.js';

describe('synced markers @etcd', function () {
  const t = useTestEtcd('synced-test');


  it('is absent until marked, carries the revision, and can be cleared', async () => {
    assert.equal(await readSynced(t.kv, 'east/identities'), undefined);
    await t.kv.put('data/x', '1');
    const marker = await markSynced(t.kv, 'east/identities');
    const read = await readSynced(t.kv, 'east/identities');
    assert.deepEqual(read, marker);
    assert.ok(marker.revision >= (await t.kv.get('data/x'))!.modRevision);
    await clearSynced(t.kv, 'east/identities');
    assert.equal(await readSynced(t.kv, 'east/identities'), undefined);
  });

  it('vanishes with the writer when bound to its session', async () => {
    const s = await Session.create(t.kv, { ttlSeconds: 5 });
    await markSynced(t.kv, 'east/nodes', { lease: s.leaseId });
    assert.ok(await readSynced(t.kv, 'east/nodes'));
    await s.close();
    assert.equal(await readSynced(t.kv, 'east/nodes'), undefined);
  });

  it('treats a corrupt marker as not synced', async () => {
    await t.kv.put(syncedKey('east/endpoints'), '{not json');
    assert.equal(await readSynced(t.kv, 'east/endpoints'), undefined);
  });
});
