/**
 * A distributed mutex on etcd, the recipe of etcd's own concurrency package:
 * each contender writes `<name>/<lease>` bound to its session's lease; the key
 * with the lowest create revision holds the lock; every other contender waits
 * only for the deletion of the key just ahead of it, so a release wakes one
 * waiter, not a herd. A holder that dies releases by lease expiry.
 */
import { AbortedError, throwIfAborted } from '@weft/common';
import { cmp, op, type KvClient } from './client.js';
import { LockTimeoutError, SessionLostError } from './errors.js';
import type { Session } from './session.js';

export interface LockOptions {
  signal?: AbortSignal;
  /** Give up after this long; default: wait until aborted or the session is lost. */
  timeoutMs?: number;
}

export interface LockHandle {
  readonly key: string;
  /** Releases the lock; safe to call more than once. */
  unlock(): Promise<void>;
}

export class Mutex {
  private readonly myKey: string;

  constructor(
    private readonly client: KvClient,
    private readonly session: Session,
    readonly name: string,
  ) {
    this.myKey = `${name}/${session.leaseId}`;
  }

  async lock(options: LockOptions = {}): Promise<LockHandle> {
    const action = `acquire lock ${this.name}`;
    if (!this.session.isActive) throw new SessionLostError(this.session.leaseId, `cannot ${action} with a session that is ${this.session.state}`);
    throwIfAborted(options.signal, action);
    const timeout = options.timeoutMs !== undefined ? AbortSignal.timeout(options.timeoutMs) : undefined;
    const signals = [this.session.signal, options.signal, timeout].filter((s): s is AbortSignal => s !== undefined);
    const signal = AbortSignal.any(signals);

    // Write our key once (create-only: a retried request must not move our place in line).
    const res = await this.client.txn(action, {
      compare: [cmp.absent(this.myKey)],
      success: [op.put(this.myKey, '', this.session.leaseId), op.get(this.myKey)],
      failure: [op.get(this.myKey)],
    }, { signal });
    const mine = res.succeeded ? res.gets[1]![0] : res.gets[0]![0];
    if (!mine) throw new SessionLostError(this.session.leaseId, `lock key ${this.myKey} vanished while acquiring`);
    const handle: LockHandle = { key: this.myKey, unlock: () => this.unlock() };
    try {
      await this.waitForTurn(mine.createRevision, signal);
      return handle;
    } catch (err) {
      await this.unlock().catch(() => undefined);
      if (timeout?.aborted && !options.signal?.aborted) throw new LockTimeoutError(this.name, options.timeoutMs!);
      if (this.session.signal.aborted) throw new SessionLostError(this.session.leaseId, `lost while waiting for lock ${this.name}`, { cause: err });
      throw err;
    }
  }

  private async waitForTurn(myRevision: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      throwIfAborted(signal, `acquire lock ${this.name}`);
      const { items, revision } = await this.client.list(`${this.name}/`, { signal });
      let ahead: { key: string; rev: number } | undefined;
      for (const kv of items) {
        if (kv.createRevision < myRevision && (!ahead || kv.createRevision > ahead.rev)) ahead = { key: kv.key, rev: kv.createRevision };
      }
      if (!ahead) return;
      await this.waitDeleted(ahead.key, revision + 1, signal);
    }
  }

  /** Resolves when `key` is deleted at or after `fromRevision` (or the watch breaks: the caller re-checks). */
  private async waitDeleted(key: string, fromRevision: number, signal: AbortSignal): Promise<void> {
    const watcher = await this.client.etcd.watch().key(key).startRevision(String(fromRevision)).create();
    try {
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => reject(new AbortedError(`acquire lock ${this.name}`, { cause: signal.reason }));
        signal.addEventListener('abort', onAbort, { once: true });
        const done = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        watcher.on('delete', done);
        watcher.on('disconnected', done);
        watcher.on('error', done);
      });
    } finally {
      await watcher.cancel().catch(() => undefined);
    }
  }

  private async unlock(): Promise<void> {
    await this.client.delete(this.myKey);
  }
}
