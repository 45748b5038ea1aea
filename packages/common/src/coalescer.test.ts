import assert from 'node:assert/strict';
import { Coalescer } from './coalescer.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Coalescer', () => {
  it('runs once for a burst, never concurrently, and again for changes made while running', async () => {
    let runs = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const c = new Coalescer(async () => {
      runs++;
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await tick(30);
      concurrent--;
    }, 5, (err) => assert.fail(err));
    for (let i = 0; i < 10; i++) c.schedule();
    await tick(15);
    assert.equal(runs, 1, 'a burst is one run');
    c.schedule(); // arrives while the first run is in progress
    await tick(80);
    assert.equal(runs, 2, 'a change during a run gets its own run afterwards');
    assert.equal(maxConcurrent, 1);
    await c.stop();
    c.schedule();
    await tick(20);
    assert.equal(runs, 2, 'nothing runs after stop');
  });

  it('reports a failing job and keeps working', async () => {
    const errors: string[] = [];
    let n = 0;
    const c = new Coalescer(async () => {
      if (++n === 1) throw new Error('boom');
    }, 1, (err) => errors.push(err.message));
    c.schedule();
    await tick(10);
    c.schedule();
    await tick(10);
    assert.deepEqual(errors, ['boom']);
    assert.equal(n, 2);
    await c.stop();
  });
});
