import assert from 'node:assert/strict';
import { TimeMerger } from './merge.js';
import { makeFlow } from './testing.js';
import type { Flow } from './types.js';

describe('TimeMerger', () => {
  const at = (ms: number): Flow => makeFlow({ time: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 }, length: ms });
  const lengths = (fs: Flow[]) => fs.map((f) => f.length);

  it('lets a flow go as soon as every open stream has sent one as recent', () => {
    const out: Flow[] = [];
    const m = new TimeMerger<Flow>((f) => out.push(f), 60_000);
    m.open('a');
    m.open('b');
    m.push(at(10), 'a');
    m.push(at(30), 'a');
    assert.deepEqual(lengths(out), [], 'b may still send something earlier');
    m.push(at(20), 'b');
    assert.deepEqual(lengths(out), [10, 20]);
    m.push(at(40), 'b');
    assert.deepEqual(lengths(out), [10, 20, 30]);
    m.end('b');
    m.push(at(50), 'a');
    assert.deepEqual(lengths(out), [10, 20, 30, 40, 50], 'an ended stream holds nothing back');
    m.finish();
  });

  it('waits at most its window for a quiet stream', async () => {
    const out: Flow[] = [];
    const m = new TimeMerger<Flow>((f) => out.push(f), 50);
    m.open('a');
    m.open('quiet');
    m.push(at(2), 'a');
    m.push(at(1), 'a');
    await new Promise((r) => setTimeout(r, 120));
    assert.deepEqual(lengths(out), [1, 2]);
    m.finish();
  });

  it('waits longer for a stream that may lag more (another relay\'s merge)', async () => {
    const out: Flow[] = [];
    const m = new TimeMerger<Flow>((f) => out.push(f), 30);
    m.open('node');
    m.open('remote', 150);
    m.push(at(10), 'node');
    await new Promise((r) => setTimeout(r, 80));
    assert.deepEqual(lengths(out), [], 'past the window, within the remote stream\'s lag');
    m.push(at(5), 'remote');
    assert.deepEqual(lengths(out), [5]);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(lengths(out), [5, 10]);
    m.finish();
  });

  it('lets the oldest go when its buffer is full', () => {
    const out: Flow[] = [];
    const m = new TimeMerger<Flow>((f) => out.push(f), 60_000, 3);
    m.open('a');
    m.open('quiet');
    for (const t of [5, 4, 3, 2]) m.push(at(t), 'a');
    assert.deepEqual(lengths(out), [2]);
    m.finish();
    assert.deepEqual(lengths(out), [2, 3, 4, 5]);
  });
});
