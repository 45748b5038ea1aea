/**
 * Retrying an operation that fails with a transient error (etcd unreachable,
 * leader election), with the shared backoff. The retry policy is an option so
 * that a caller that must fail fast (a CLI) and one that must ride out an etcd
 * restart (an agent) use the same code.
 */
import { Backoff, type BackoffOptions } from './backoff.js';
import { sleep } from './sleep.js';

export interface RetryPolicy extends BackoffOptions {
  /** Attempts in total, including the first. Default 8. Infinity retries until aborted. */
  maxAttempts?: number;
}

export interface RetryOptions {
  policy?: RetryPolicy;
  signal?: AbortSignal;
  /** Which errors are worth another attempt. */
  isRetryable: (err: unknown) => boolean;
  /** Told about each failed attempt that will be retried. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Names the operation in an AbortedError. */
  action?: string;
}

export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const policy = options.policy ?? {};
  const maxAttempts = policy.maxAttempts ?? 8;
  const backoff = new Backoff(policy);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= maxAttempts || !options.isRetryable(err)) throw err;
      const delay = backoff.next();
      options.onRetry?.(err, attempt, delay);
      await sleep(delay, options.signal, options.action ?? 'Retry');
    }
  }
}
