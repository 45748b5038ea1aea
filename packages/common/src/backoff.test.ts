import assert from 'node:assert/strict';
import { Backoff } from './backoff.js';
import { retry } from './retry.js';
import { AbortedError } from './errors.js';

describe('Backoff', () => {
  it('grows exponentially and stops at the cap', () => {
    const b = new Backoff({ initialMs: 10, maxMs: 100, jitter: 0 });
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [10, 20, 40, 80, 100]);
  });

  it('jitters within [base*(1-jitter), base]', () => {
    const low = new Backoff({ initialMs: 100, jitter: 0.5, random: () => 0 });
    const high = new Backoff({ initialMs: 100, jitter: 0.5, random: () => 0.999999 });
    assert.equal(low.next(), 50);
    assert.equal(high.next(), 100);
  });

  it('starts small again after reset', () => {
    const b = new Backoff({ initialMs: 10, jitter: 0 });
    b.next();
    b.next();
    b.reset();
    assert.equal(b.next(), 10);
    assert.equal(b.attempts, 1);
  });
});

describe('retry', () => {
  const fast = { initialMs: 1, maxMs: 2 };

  it('retries retryable errors until success', async () => {
    let calls = 0;
    const value = await retry(async () => {
      if (++calls < 3) throw new Error('transient');
      return 'ok';
    }, { policy: fast, isRetryable: () => true });
    assert.equal(value, 'ok');
    assert.equal(calls, 3);
  });

  it('gives up at maxAttempts with the last error', async () => {
    let calls = 0;
    await assert.rejects(
      retry(async () => {
        calls++;
        throw new Error(`failure ${calls}`);
      }, { policy: { ...fast, maxAttempts: 4 }, isRetryable: () => true }),
      /failure 4/,
    );
    assert.equal(calls, 4);
  });

  it('does not retry errors that are not retryable', async () => {
    let calls = 0;
    await assert.rejects(
      retry(async () => {
        calls++;
        throw new TypeError('bug');
      }, { policy: fast, isRetryable: (e) => !(e instanceof TypeError) }),
      TypeError,
    );
    assert.equal(calls, 1);
  });

  it('stops waiting when aborted', async () => {
    const ac = new AbortController();
    const p = retry(async () => {
      throw new Error('down');
    }, { policy: { initialMs: 10_000, maxAttempts: 5 }, isRetryable: () => true, signal: ac.signal, action: 'Talk to etcd' });
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(p, (err: unknown) => err instanceof AbortedError && err.code === 'WEFT_ERR_ABORTED');
  });
});
