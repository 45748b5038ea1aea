/**
 * Timers that respect an AbortSignal, so a stopped component is never held up
 * by a pending backoff: stop() aborts, the sleep rejects at once.
 */
import { AbortedError } from './errors.js';

/** Resolves after `ms`, or rejects with AbortedError when `signal` fires first. */
export function sleep(ms: number, signal?: AbortSignal, action = 'Sleep'): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortedError(action, { cause: signal.reason }));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError(action, { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Throws AbortedError if the signal has already fired. */
export function throwIfAborted(signal: AbortSignal | undefined, action: string): void {
  if (signal?.aborted) throw new AbortedError(action, { cause: signal.reason });
}
