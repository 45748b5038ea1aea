import assert from 'node:assert/strict';
import { KvClient } from './client.js';
import { EtcdProcess } from './etcd-process.js';
import { clearSynced, markSynced, readSynced, syncedKey } from './synced.js';
import { Session } from './session.js';

describe('synced markers @etcd', function () {
  let etcd: EtcdProcess;
  let kv: KvClient;

  before(async () => {
    etcd = await EtcdProcess.start({ name: 'synced-test' });
    kv = new KvClient({ endpoints: [etcd.endpoint] });
  });
  after(async () => {
    kv?.close();
    await etcd?.stop();
  });

  it('is absent until marked, carries the revision, and can be cleared', async () => {
    assert.equal(await readSynced(kv, 'east/identities'), undefined);
    await kv.put('data/x', '1');
    const marker = await markSynced(kv, 'east/identities');
    const read = await readSynced(kv, 'east/identities');
    assert.deepEqual(read, marker);
    assert.ok(marker.revision >= (await kv.get('data/x'))!.modRevision);
    await clearSynced(kv, 'east/identities');
    assert.equal(await readSynced(kv, 'east/identities'), undefined);
  });

  it('vanishes with the writer when bound to its session', async () => {
    const s = await Session.create(kv, { ttlSeconds: 5 });
    await markSynced(kv, 'east/nodes', { lease: s.leaseId });
    assert.ok(await readSynced(kv, 'east/nodes'));
    await s.close();
    assert.equal(await readSynced(kv, 'east/nodes'), undefined);
  });

  it('treats a corrupt marker as not synced', async () => {
    await kv.put(syncedKey('east/endpoints'), '{not json');
    assert.equal(await readSynced(kv, 'east/endpoints'), undefined);
  });
});
