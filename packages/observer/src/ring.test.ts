import assert from 'node:assert/strict';
import { FlowRing, type DeferredFlow } from './ring.js';
import { makeFlow } from './testing.js';

describe('FlowRing', () => {
  it('keeps the last flows in order, overwriting the oldest, and counts every flow seen', () => {
    const ring = new FlowRing(3);
    for (let port = 1; port <= 5; port++) ring.push(makeFlow({ source: { port } }));
    assert.equal(ring.size, 3);
    assert.equal(ring.seen, 5);
    assert.deepEqual(ring.last(10, () => true).map((f) => f.source!.port), [3, 4, 5]);
    assert.deepEqual(ring.last(2, () => true).map((f) => f.source!.port), [4, 5]);
    assert.deepEqual(ring.last(10, (f) => f.source!.port % 2 === 1).map((f) => f.source!.port), [3, 5]);
  });

  it('builds a deferred flow when it is first read, once, and never one overwritten unread', () => {
    const ring = new FlowRing(2);
    const built: number[] = [];
    const deferred = (port: number): DeferredFlow => ({ build: () => (built.push(port), makeFlow({ source: { port } })) });
    for (let port = 1; port <= 3; port++) ring.push(deferred(port));
    assert.deepEqual(built, []);
    assert.deepEqual(ring.last(10, () => true).map((f) => f.source!.port), [2, 3]);
    assert.deepEqual(ring.last(10, () => true).map((f) => f.source!.port), [2, 3]);
    assert.deepEqual(built, [3, 2], 'each read flow built once, newest first; flow 1 never');
  });

  it('refuses a capacity below 1', () => assert.throws(() => new FlowRing(0), RangeError));
});
