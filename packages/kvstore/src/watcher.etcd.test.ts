import assert from 'node:assert/strict';
import { useTestEtcd, until } from './testing.js';
import { Backoff } from '@weft/common';
import { KvClient } from './client.js';
import { PrefixWatcher } from './watcher.js';
import type { WatchEvent } from './types.js';

/** A consumer that mirrors the prefix into a map, as every Weft cache does. */
class Mirror {
  readonly map = new Map<string, string>();
  readonly events: WatchEvent[] = [];
  syncs = 0;
  onEvent(e: WatchEvent): void {
    this.events.push(e);
    if (e.type === 'upsert') this.map.set(e.key, e.value.toString());
    else this.map.delete(e.key);
  }
  onSynced(): void {
    this.syncs++;
  }
}


async function storeMap(kv: KvClient, prefix: string): Promise<Map<string, string>> {
  const { items } = await kv.list(prefix);
  return new Map(items.map((i) => [i.key, i.value.toString()]));
}

describe('PrefixWatcher @etcd', function () {
  const t = useTestEtcd('watcher-test');


  it('delivers the initial list, then changes in order, and only under its prefix', async () => {
    await t.kv.put('w1/a', '1');
    await t.kv.put('w1/b', '2');
    const m = new Mirror();
    const w = new PrefixWatcher(t.kv, 'w1/', m).start();
    await w.waitSynced();
    assert.deepEqual([...m.map], [['w1/a', '1'], ['w1/b', '2']]);
    await t.kv.put('w1/c', '3');
    await t.kv.put('w1/a', '1b');
    await t.kv.delete('w1/b');
    await t.kv.put('w1x', 'outside');
    await until(() => m.map.size === 2 && m.map.get('w1/a') === '1b', 'changes');
    assert.deepEqual(m.events.slice(2).map((e) => `${e.type} ${e.key}`), ['upsert w1/c', 'upsert w1/a', 'delete w1/b']);
    await w.stop();
    assert.equal(w.state, 'closed');
  });

  it('resumes after etcd restarts without missing or repeating an event', async () => {
    const m = new Mirror();
    const w = new PrefixWatcher(t.kv, 'w2/', m, { backoff: new Backoff({ initialMs: 50, maxMs: 200 }) }).start();
    await w.waitSynced();
    for (let i = 0; i < 20; i++) await t.kv.put(`w2/k${i}`, String(i));
    await until(() => m.map.size === 20, 'first writes');
    await t.etcd.kill();
    await t.etcd.start();
    // Writes land while the watcher is still reconnecting.
    for (let i = 20; i < 40; i++) await t.kv.put(`w2/k${i}`, String(i));
    await t.kv.delete('w2/k0');
    await until(() => m.map.size === 39, 'writes made around the restart');
    assert.deepEqual(m.map, await storeMap(t.kv, 'w2/'));
    const revisions = m.events.map((e) => e.modRevision);
    assert.deepEqual(revisions, [...revisions].sort((a, b) => a - b), 'in revision order');
    assert.equal(new Set(revisions).size, revisions.length, 'no event delivered twice');
    assert.ok(w.stats.reconnects >= 1);
    assert.equal(m.syncs, 1, 'a resume is not a relist');
    await w.stop();
  });

  it('relists after compaction and reports keys that vanished meanwhile as deleted', async () => {
    for (let i = 0; i < 5; i++) await t.kv.put(`w3/k${i}`, 'old');
    const m = new Mirror();
    // A long reconnect delay keeps the watcher away while history is rewritten.
    const w = new PrefixWatcher(t.kv, 'w3/', m, { backoff: new Backoff({ initialMs: 4000, maxMs: 4000, jitter: 0 }) }).start();
    await w.waitSynced();
    await t.etcd.kill();
    await t.etcd.start();
    await t.kv.delete('w3/k0');
    await t.kv.delete('w3/k1');
    await t.kv.put('w3/k2', 'new');
    await t.kv.put('w3/k9', 'added');
    await t.kv.compact(await t.kv.revision());
    await until(() => w.stats.compactions === 1 && m.syncs === 2, 'compaction resync');
    assert.deepEqual(m.map, await storeMap(t.kv, 'w3/'));
    const after = m.events.slice(5).map((e) => `${e.type} ${e.key}`).sort();
    assert.deepEqual(after, ['delete w3/k0', 'delete w3/k1', 'upsert w3/k2', 'upsert w3/k9']);
    // And it keeps watching after the resync.
    await t.kv.put('w3/k10', 'later');
    await until(() => m.map.get('w3/k10') === 'later', 'a change after the resync');
    await w.stop();
  });
});
